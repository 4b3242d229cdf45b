"""Keep Python's cycle collector off the objects a process holds for its whole life.

A sync's process holds about a quarter of a million long-lived objects once Dagster, pandas,
SQLAlchemy and the project are imported (modules, functions, type objects, the phone metadata), and
about half a million during a run. Every full collection of the cycle collector walks all of them,
0.1 to 0.2 s each here, and the imported ones hold no garbage. Two places pay for that:

- **while importing**: the imports themselves allocate enough to trigger five full collections,
  0.4 s of the 2 s an interpreter takes to import the code location (measured with ``gc.callbacks``);
- **during a run**: each later full collection walks them again, and a run's pages, frames and rows
  trigger them (the identity resolution's slices already run without the collector, see
  `models.identity.canonical.cyclic_gc_paused`).

So imports run with the collector off, and what they leave is moved out of its reach
(``gc.freeze``): later collections walk only what the run itself made. A process that forks (the
step-process server, `pipelines.definitions.STEP_PROCESSES`) hands the frozen heap to every child,
which also keeps the children from writing to the shared pages.

Freezing keeps any garbage among those objects for the life of the process; at import there is
next to none, and it happens once per process (`freeze_long_lived`).
"""

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_frozen = False


@contextmanager
def imports_uncollected() -> Iterator[None]:
    """Inside: the collector off (the imports it would walk repeatedly); after: everything they
    left frozen, the collector back as it was."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        freeze_long_lived()
        if enabled:
            gc.enable()


def freeze_long_lived() -> None:
    """Move every object the process holds now out of the collector's reach, once per process: the
    first call (after the imports, before the first run) catches the heap that lives as long as
    the process; later ones would freeze a run's garbage for good, so they do nothing."""
    global _frozen  # noqa: PLW0603 - one flag for the process, by design
    if _frozen:
        return
    gc.freeze()
    _frozen = True
