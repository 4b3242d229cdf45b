"""Tables the steps build the first time a process needs them, built ahead of that moment.

Identity resolution and reverse sync read first names and countries. The first first name written in
Chinese characters imports pypinyin, whose dictionaries and word segmentation take 0.2 s to set up
(more where the machine has paged the files out between runs: its imports read 1 s of files in one
measured step); the first country name builds the table of every country name in every language
phonenumbers ships (0.08 s). Both happen inside identity resolution, on the run's critical path.

So they are built before: in the step processes' server, once for every step it forks
(`pipelines.step_server`), and in a sync run in one process (`contact-sync sync`), in a thread of
their own while the extract waits on the APIs. Together they hold about 57 MiB, which a warehouse
with Chinese names pays in identity resolution anyway.
"""

import threading

from models.normalise.countries import country_code
from models.normalise.given_names import name_token


def build_first_use_tables() -> None:
    """Build the tables now, in this thread; each is built once a process, later calls find it."""
    name_token("伟")
    country_code("United States")


def build_in_background() -> threading.Thread:
    """Start building the tables in a daemon thread (a process that ends first just ends) and return
    it. A step that needs a table meanwhile waits for the import under way, or builds its own copy of
    the country table; either way it reads the same values."""
    thread = threading.Thread(target=build_first_use_tables, name="first-use tables", daemon=True)
    thread.start()
    return thread
