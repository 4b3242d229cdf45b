"""The demo and the sandbox: the whole pipeline against the local emulator, with no credentials.

The demo is what a data engineer runs before handing over real keys: a first sync that reads
everything, a few changes made at the "sources", and a second sync that reads only those changes.
"""

import shutil
import signal
import threading
from collections.abc import Callable
from pathlib import Path

from connectors.emulator import Emulator
from connectors.emulator.behaviours import Behaviours
from connectors.emulator.faults import FaultConfig
from pipelines.runner import SyncReport, run_sync
from pipelines.settings import load_settings

DEMO_DIR = Path("contact-sync-demo")


def run_demo(
    *,
    people: int = 300,
    seed: int = 1,
    directory: Path = DEMO_DIR,
    echo: Callable[[str], None] = print,
    households: bool = False,
) -> tuple[SyncReport, SyncReport]:
    """Sync twice into a fresh SQLite warehouse in ``directory``; return both reports. ``households``
    generates people sharing landlines and emails (see ``connectors.emulator.households``)."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    database_url = f"sqlite:///{directory.resolve() / 'warehouse.db'}"
    with Emulator(seed=seed, people=people, maton_rps=10.0, households=households) as emulator:
        settings = load_settings(contact_sync_database_url=database_url, **_lowercase(emulator.env()))
        shared = f", {len(emulator.dataset.households)} households" if households else ""
        echo(f"emulator of the five APIs on {emulator.base_url} with {people} people{shared} (seed {seed})")
        echo(f"warehouse: {database_url}")
        echo("")
        echo("first sync: everything is new")
        first = run_sync(settings)
        if first.stopped:  # Ctrl-C: the second sync is not wanted either
            return first, first
        _print(first, echo)
        changes = emulator.mutate(seed=seed + 1, new=5, updated=10, deleted=2, events=20, messages=10)
        echo("")
        echo(f"changed at the sources: {changes.describe()}")
        echo("second sync: incremental (the changes, plus, once, the records the first push filled in)")
        second = run_sync(settings)
        _print(second, echo)
    echo("")
    echo(f"explore it: CONTACT_SYNC_DATABASE_URL={database_url} contact-sync status")
    return first, second


def _lowercase(env: dict[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in env.items()}


def _print(report: SyncReport, echo: Callable[[str], None]) -> None:
    for line in report.lines():
        echo(line)


def run_sandbox(
    *,
    host: str,
    port: int,
    seed: int,
    people: int,
    behaviours: Behaviours | None = None,
    faults: FaultConfig | None = None,
    echo: Callable[[str], None] = print,
    households: bool = False,
) -> None:
    """Serve the emulator until Ctrl-C or SIGTERM, printing first the variables that point us at it.

    ``behaviours`` plays other answers to the vendors' open questions, so a user can see what
    ``check`` and ``sync`` make of an account without POLL rules or a Bigin without ``/deleted``;
    ``faults`` injects trouble from the first request (429s, 503s, drops, unreadable answers);
    ``households`` serves people sharing landlines and emails."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    emulator = Emulator(
        seed=seed,
        people=people,
        maton_rps=10.0,
        behaviours=behaviours,
        faults=faults,
        households=households,
    )
    emulator.start(host=host, port=port)
    try:
        shared = f", {len(emulator.dataset.households)} households" if households else ""
        echo(f"# emulator of the five APIs on {emulator.base_url} ({people} people{shared}, seed {seed})")
        changed = {k: v for k, v in emulator.behaviours.to_json().items() if v != getattr(Behaviours(), k)}
        if changed:
            echo("# playing " + ", ".join(f"{k}={v}" for k, v in sorted(changed.items())))
        injected = {k: v for k, v in emulator.faults.to_json().items() if v != FaultConfig().to_json()[k]}
        if injected:
            shown = {k: ",".join(v) if isinstance(v, list) else v for k, v in sorted(injected.items())}
            echo("# injecting " + ", ".join(f"{k}={v}" for k, v in shown.items()))
        echo("# point contact-sync at it with:")
        for name, value in emulator.env().items():
            echo(f"export {name}={value}")
        echo("# stop with Ctrl-C")
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
