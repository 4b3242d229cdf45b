"""Dagster's instance opened once in the step processes' server, so that each step process forked from
it (`pipelines.definitions.STEP_PROCESSES`) opens the instance in a few milliseconds.

A step process's first act is to open the run's instance: its run, event-log and schedule storages.
Forked from a server that had only imported the code location, that took 0.3 to 0.4 s a step (seven
steps a run): the storages' modules were imported for the first time (0.15 s), and every storage
checked its schema against the newest revision of its migrations, which Alembic finds by executing
each of the storage's revision files again, for every check (about 45 ms a check, four or five
checks a step, the run's event-log shard among them).

So the server opens the instance of ``DAGSTER_HOME`` once, which imports those modules, and Alembic's
script directories for Dagster's own storages are kept for the server's life (`remember_dagster_scripts`):
the forked steps inherit both. Dagster's migration scripts are files of the installed package; they
cannot change while a run's server lives (a new run starts a new server). Other script directories,
the warehouse's own migrations among them, are read afresh as before.
"""

import logging
import os
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path

import dagster as dg
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import coerce_resource_to_filename

log = logging.getLogger(__name__)

_remembered: dict[str, ScriptDirectory] = {}


def _package_roots() -> tuple[Path, ...]:
    """Where Dagster's storages keep their migrations (named ``dagster:_core/storage/alembic`` and
    the like): its own package and, when installed, the PostgreSQL storages'."""
    roots = [Path(dg.__file__).resolve().parent]
    postgres = find_spec("dagster_postgres")  # not imported: an instance on SQLite never needs it
    if postgres is not None and postgres.origin is not None:
        roots.append(Path(postgres.origin).resolve().parent)
    return tuple(roots)


def _under(directory: Path, roots: tuple[Path, ...]) -> bool:
    """Whether ``directory`` lies in one of the packages ``roots``, links resolved."""
    resolved = directory.resolve()
    return any(resolved.is_relative_to(root) for root in roots)


def remember_dagster_scripts() -> None:
    """From now on in this process (and the processes it forks), one `ScriptDirectory` per Dagster
    storage's migrations, its revisions read once; every other directory as Alembic makes it."""
    if getattr(ScriptDirectory.from_config, "remembers_dagster_scripts", False):
        return
    made_anew: Callable[[Config], ScriptDirectory] = ScriptDirectory.from_config
    roots = _package_roots()

    def from_config(_cls: type[ScriptDirectory], config: Config) -> ScriptDirectory:
        location = config.get_main_option("script_location")
        if location is None or not _under(Path(coerce_resource_to_filename(location)), roots):
            return made_anew(config)
        if location not in _remembered:
            _remembered[location] = made_anew(config)
        return _remembered[location]

    from_config.remembers_dagster_scripts = True  # type: ignore[attr-defined]
    ScriptDirectory.from_config = classmethod(from_config)  # type: ignore[method-assign,assignment]


def open_instance_once() -> bool:
    """Open and close the instance of ``DAGSTER_HOME``, the one a run's steps open; whether it was
    opened. Without ``DAGSTER_HOME`` (a run's instance made in memory, a test's) there is nothing to
    open ahead. A failure here is only a lost head start: the step processes open the instance
    themselves and report what is wrong with it."""
    home = os.environ.get("DAGSTER_HOME")
    if not home or not Path(home).is_dir():
        return False
    try:
        with dg.DagsterInstance.get():
            return True
    except Exception as error:  # a head start, not a requirement (see the docstring)
        log.debug("step server: the instance of DAGSTER_HOME not opened ahead: %s", error)
        return False
