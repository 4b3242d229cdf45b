"""The canonical full rebuild's phases on a kept warehouse: wall and CPU seconds and peak RSS each.

`bench/scale.py --keep DIR` leaves a synced SQLite warehouse in DIR (with the emulator's settings in
``env.json``). This copies it for every run, so each starts from the same stored state, and times one
rebuild (`models.identity.canonical.build_canonical`) in a fresh process, wrapping its phases:

- read and parse payloads (fields, contact points, consent, and, since the rebuild judges our writes
  slice by slice, the ledger's writes to each slice and their judging; since 2026-12-07 the points'
  normalising too, and at eight slices or more in worker processes): ``_read_records``
- last run's assignment: ``_previous``
- the whole ledger's writes, read before the records by code older than the slice-by-slice judging:
  ``own_writes``
- normalise (E.164, email): ``normalise_points``; inside the read since 2026-12-07, so counted in
  both rows where the read runs here, and in neither's CPU where worker processes read (the last
  line then gives their CPU)
- link, guards, cluster, ids: ``resolve``
- survivorship (consent, custom; our writes too, in code older than the slice-by-slice judging):
  ``join_people`` and ``survive_people``
- write (read the stored rows, give the contacts their times, compare, write what differs; since
  2026-12-07 the reading and comparing in worker processes from 16 slices on): ``write_rebuild``
  (`models.identity.rebuild_write`; ``_write`` before it)

The phases are looked up by name in whatever ``models.identity.canonical`` the interpreter imports, so
``PYTHONPATH`` picks the code under test and two versions can be run alternately on one warehouse:

    python bench/rebuild_phases.py /tmp/wh --runs 3                     # this tree
    PYTHONPATH=/work/main python bench/rebuild_phases.py /tmp/wh        # another one
    python bench/rebuild_phases.py /tmp/wh --database-url postgresql://...  # a PostgreSQL copy
    python bench/rebuild_phases.py /tmp/wh --profile /tmp/rebuild.prof   # cProfile one rebuild

``--database-url`` times a PostgreSQL warehouse in place instead (the rebuild over its own result
writes what differs, so runs after the first start from the same state).
"""

import argparse
import contextlib
import cProfile
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()

#: Phase label, then the functions of ``models.identity.canonical`` it is made of.
PHASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("whole ledger's writes (older code)", ("own_writes",)),
    ("read and parse payloads", ("_read_records",)),
    ("last run's assignment", ("_previous",)),
    ("normalise", ("normalise_points",)),
    ("link, guards, cluster, ids", ("resolve",)),
    ("survivorship", ("join_people", "survive_people")),
    ("write", ("write_rebuild", "_write")),
)


def _memory(field: str) -> float:
    """This process's ``VmRSS`` (now) or ``VmHWM`` (peak since the last reset) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


#: The process's highest RSS before the last reset of ``VmHWM`` (MiB): the reset also lowers the
#: kernel's high-water mark that ``getrusage`` reports, so the whole peak is kept here.
_HIGHEST = [0.0]


def _reset_peak() -> None:
    """Start ``VmHWM`` again from the current RSS (Linux: 5 to ``clear_refs``), so each phase's own
    peak can be read, keeping the peak so far in `_HIGHEST`."""
    _HIGHEST[0] = max(_HIGHEST[0], _memory("VmHWM"))
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _whole_peak() -> float:
    """The process's highest RSS (MiB), across the phases' resets."""
    return max(_HIGHEST[0], _memory("VmHWM"), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _workers_cpu() -> float:
    """User and system CPU seconds of this process's ended children (the rebuild's worker
    processes, `models.warehouse.worker_processes`), which ``process_time`` leaves out."""
    times = os.times()
    return times.children_user + times.children_system


def _tree_peak(process: subprocess.Popen[str]) -> float:
    """The highest resident memory of ``process`` and its children (MiB), polled until it ends: the
    child's own peak leaves out its worker processes."""
    from scale import tree_rss  # the scale bench's poll; imported here, where the child never runs

    highest = 0
    while process.poll() is None:
        highest = max(highest, tree_rss(process.pid))
        time.sleep(0.05)
    return highest / 2**20


def _timed(fn: Callable[..., Any], totals: list[float]) -> Callable[..., Any]:
    """``fn``, adding its wall and CPU seconds to ``totals`` and keeping the RSS it started at and
    the highest peak it reached (MiB)."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _reset_peak()
        start = _memory("VmRSS")
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[0] += time.perf_counter() - wall
            totals[1] += time.process_time() - cpu
            totals[2] = max(totals[2], start)
            totals[3] = max(totals[3], _memory("VmHWM"))

    return wrapper


def child(database_url: str, env_file: str, profile: str) -> dict[str, Any]:
    """One rebuild in this process, its phases wrapped; seconds per phase and the process's peak."""
    import models.identity.canonical as canonical
    from models.warehouse.db import open_warehouse
    from pipelines.canonical import canonical_config, phone_regions
    from pipelines.resources import WarehouseResource
    from pipelines.settings import load_settings

    env = json.loads(Path(env_file).read_text()) if env_file else {}
    settings = load_settings(
        **{name.lower(): value for name, value in env.items()}, contact_sync_database_url=database_url
    )
    engine = open_warehouse(database_url)
    config = canonical_config(settings, phone_regions(settings, WarehouseResource(database_url=database_url)))
    totals: dict[str, list[float]] = {}
    for label, names in PHASES:
        totals[label] = [0.0, 0.0, 0.0, 0.0]
        for name in names:  # a name the code under test lacks belongs to another version
            if hasattr(canonical, name):
                setattr(canonical, name, _timed(getattr(canonical, name), totals[label]))
    profiler = cProfile.Profile() if profile else None
    wall, cpu, workers = time.perf_counter(), time.process_time(), _workers_cpu()
    if profiler:
        profiler.enable()
    report = canonical.build_canonical(engine, config)
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)
    whole = (time.perf_counter() - wall, time.process_time() - cpu)
    return {
        "phases": totals,
        "whole": whole,
        "workers_cpu": _workers_cpu() - workers,
        "peak_mib": _whole_peak(),
        "records": report.records,
        "contacts": report.contacts,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", type=Path, help="kept by bench/scale.py --keep (warehouse.db, env.json)")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--database-url", help="time this warehouse in place instead of a SQLite copy")
    parser.add_argument("--profile", default="", help="cProfile the (single) rebuild into this file")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0
    env_file = str(args.folder / "env.json") if (args.folder / "env.json").exists() else ""
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            if args.database_url:
                url = args.database_url
            else:
                shutil.copy(args.folder / "warehouse.db", f"{tmp}/warehouse.db")
                url = f"sqlite:///{tmp}/warehouse.db"
            command = [sys.executable, str(HERE), str(args.folder), "--child", url, env_file, args.profile]
            with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
                tree_peak = _tree_peak(process)
                out = process.stdout.read() if process.stdout else ""
            if process.returncode:
                raise SystemExit(f"the rebuild failed (exit {process.returncode})")
        result = json.loads(out.strip().splitlines()[-1])
        load, code = os.getloadavg()[0], os.environ.get("PYTHONPATH", "")
        print(
            f"run {run + 1}: {result['records']:,} records, {result['contacts']:,} contacts, "
            f"load {load:.1f}, peak {result['peak_mib']:.0f} MiB (with its workers {tree_peak:.0f} MiB), "
            f"PYTHONPATH={code}"
        )
        print(f"  {'phase':<36}{'wall s':>7} / CPU s, RSS at start -> peak MiB")
        for label, (wall, cpu, start, peak) in result["phases"].items():
            print(f"  {label:<36}{wall:>7.2f} / {cpu:.2f}, {start:,.0f} -> {peak:,.0f}")
        print(f"  {'whole rebuild':<36}{result['whole'][0]:>7.2f} / {result['whole'][1]:.2f}")
        if result.get("workers_cpu"):
            print(f"  {'of which worker processes, CPU s':<36}{'':>7}   {result['workers_cpu']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
