"""Scale benchmark: a full sync and an incremental one of N source records, per step, with peak memory.

Issue 14 asks that a scheduled run cost what changed and that a full rebuild fit in bounded memory. This is
where those numbers come from, on both warehouses:

1. The emulator (``contact-sync sandbox``, its own process, rate limits lifted, no latency) holds about N
   contact records (the people it is given times the records each person has at the sources).
2. A **full sync** runs in a fresh process; then about 1% of the contact records change at the sources
   (new, edited, deleted, plus new activity) and an **incremental sync** runs in another fresh process.
   Each is timed per step from Dagster's event log (extract, canonical contacts, its checks, activity,
   reverse sync, with the planning seconds the push assets report), and the peak resident memory of the
   syncing process with all its children is polled from ``/proc``.
3. The **canonical full rebuild** runs alone (fresh process) on the synced warehouse, and **Splink** runs
   its deterministic rules on the same records in another: normalise email and phone in DuckDB, link on
   email-or-phone exact match, cluster. Splink is in the ``bench`` extra only.

Reverse sync runs as a dry run by default (plans and records every write, sends none), as sending a
full sync's writes one request at a time measures the emulator, not us; ``--push on`` sends them.

A dry run leaves every write the full sync planned open, so the incremental run after it plans them all
again and its reverse-sync figure measures that, not the change. ``--settle`` measures the steady state
instead (and implies ``--push on``): full sync, a **settling sync** (it reads our writes back, as the
run after a real full sync does), a wait until the full sync's writes are older than the sources'
lookback (``--quiet-minutes``), a **warm-up** change and incremental sync, then the 1% change and the
timed incremental sync, each in a fresh process and in the table. The lookback (5 to 10 minutes)
counts back from each stream's watermark, the newest change it has read, not from the clock: until a
newer change moves the watermark, every run re-reads the minutes before it, which after a full sync
are our own writes, however long the wait. The warm-up run moves the watermarks past them; the timed
run then re-reads what the warm-up's change left within its lookback, as every scheduled run
re-reads the last minutes of the run before it.

    python bench/scale.py --records 100000                       # SQLite and PostgreSQL
    python bench/scale.py --records 1000000 --warehouses sqlite
    python bench/scale.py --records 100000 --only-canonical      # the rebuild and Splink alone
    python bench/scale.py --records 100000 --settle --no-rebuild # the settled incremental run

PostgreSQL: ``CONTACT_SYNC_BENCH_POSTGRES_URL`` (default postgresql://postgres@127.0.0.1:5432/test) names
a server; the benchmark makes a database of its own there and drops it afterwards.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

#: Contact records per emulated person, measured on the emulator (seed 1): 2,743 records for 1,163 people.
RECORDS_PER_PERSON = 2.36
POSTGRES_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
HERE = Path(__file__).resolve()
STEP_GROUPS = ("extract", "canonical", "checks", "activity", "reverse sync")
#: The sync runs in the order they run (``settle`` and ``warmup`` only with ``--settle``).
RUNS = ("full", "settle", "warmup", "incremental")


# ---------------------------------------------------------------------------------------------------
# Peak memory of a process tree, polled from /proc.


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            found.extend(int(part) for part in text.split())
    except OSError:
        pass
    return found


def _rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants now."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += _rss_bytes(current)
        todo.extend(_children(current))
    return total


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds ``pid`` has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # After the command's closing parenthesis: state is field 3, utime and stime fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_child(
    args: list[str],
    interval: float = 0.05,
    python: str = sys.executable,
    emulator_pid: int | None = None,
    code: str | None = None,
) -> tuple[dict[str, Any], int]:
    """Run this script as ``--child ...`` in a fresh process; its JSON answer and the tree's peak RSS.

    The answer gains ``samples``: (wall time, resident bytes) every ``interval`` seconds, so a child
    that reports when its steps ran can be given each step's peak (`step_peaks`), and ``own_cpu``:
    (wall time, the child's CPU seconds so far), so each step's CPU can be set beside its seconds
    (`cpu_while`: a step whose CPU is near its seconds is bound by the interpreter, not by waits); with
    ``emulator_pid``, also ``emulator_cpu``: (wall time, the emulator's CPU seconds so far), so each
    step can be charged the emulator's work it caused. ``code``: the child imports
    the project from this tree (its ``PYTHONPATH``) rather than the one this process was given."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        answer = Path(out.name)
    env = None if code is None else {**os.environ, "PYTHONPATH": code}
    process = subprocess.Popen([python, str(HERE), "--child", str(answer), *args], env=env)
    samples: list[tuple[float, int]] = []
    own: list[tuple[float, float]] = []
    emulator: list[tuple[float, float]] = []
    while process.poll() is None:
        samples.append((time.time(), tree_rss(process.pid)))
        own.append((time.time(), cpu_seconds(process.pid)))
        if emulator_pid is not None:
            emulator.append((time.time(), cpu_seconds(emulator_pid)))
        time.sleep(interval)
    try:
        if process.returncode != 0:
            raise RuntimeError(f"child {args[0]} exited with {process.returncode}")
        result = json.loads(answer.read_text())
    finally:
        answer.unlink(missing_ok=True)
    result["samples"] = samples
    result["own_cpu"] = own
    result["emulator_cpu"] = emulator
    return result, max((rss for _, rss in samples), default=0)


def sync_child(
    env: str, url: str, push: str, emulator_pid: int, profile: str = "", code: str | None = None
) -> tuple[dict[str, Any], int]:
    """`run_child` of one sync; the answer gains ``log_left``: the bytes of SQLite's log file once
    the process has exited (None on PostgreSQL), what a run leaves beside the database."""
    args = ["sync", env, url, push, *([profile] if profile else [])]
    result, peak = run_child(args, emulator_pid=emulator_pid, code=code)
    database = sqlite_file(url)
    log = Path(f"{database}-wal") if database else None
    result["log_left"] = None if log is None else (log.stat().st_size if log.exists() else 0)
    return result, peak


def sqlite_file(url: str) -> str | None:
    """The file of a SQLite URL (None for any other)."""
    prefix = "sqlite:///"
    return url[len(prefix) :] if url.startswith(prefix) else None


def cpu_while(result: dict[str, Any], group: str = "extract", of: str = "emulator_cpu") -> float:
    """CPU seconds used while ``group``'s steps ran (0 when not sampled): by the emulator, or with
    ``of="own_cpu"`` by the syncing process itself."""
    used = 0.0
    samples = result.get(of, [])
    for key, (start, end) in result.get("windows", {}).items():
        if _group(key) != group:
            continue
        inside = [cpu for when, cpu in samples if start <= when <= end]
        before = [cpu for when, cpu in samples if when < start]
        if inside:
            used += inside[-1] - (before[-1] if before else inside[0])
    return used


def step_peaks(result: dict[str, Any]) -> dict[str, int]:
    """The highest resident bytes sampled while each step group ran (steps run one after another)."""
    peaks = dict.fromkeys(STEP_GROUPS, 0)
    for key, (start, end) in result.get("windows", {}).items():
        group = _group(key)
        inside = [rss for when, rss in result["samples"] if start <= when <= end]
        peaks[group] = max([peaks[group], *inside])
    return peaks


# ---------------------------------------------------------------------------------------------------
# Children: each runs in a fresh process, so its peak memory is its own.


def _settings(env: dict[str, str], database_url: str, push: str) -> Any:
    from pipelines.settings import load_settings

    return load_settings(
        **{name.lower(): value for name, value in env.items()},
        contact_sync_database_url=database_url,
        contact_sync_maton_rps=100_000.0,
        contact_sync_linkflow_rps=100_000.0,
        contact_sync_push=push,
    )


def _group(step_key: str) -> str:
    if step_key.startswith("reverse_sync"):
        return "reverse sync"
    if step_key.startswith("canonical__contacts") and step_key != "canonical__contacts":
        return "checks"
    if step_key == "canonical__contacts":
        return "canonical"
    if step_key == "canonical__activity":
        return "activity"
    return "extract"


def child_sync(env: dict[str, str], database_url: str, push: str, profile: str = "") -> dict[str, Any]:
    """One ``full_sync`` run: seconds per step group (from the event log), the push assets' planning
    seconds, records read and the run's wall time; cProfiled into ``profile`` when one is named."""
    import dagster as dg

    from pipelines.runner import run_sync

    settings = _settings(env, database_url, push)
    loggers = {"console": {"config": {"log_level": "WARNING"}}}
    with dg.DagsterInstance.ephemeral() as instance:
        started = time.perf_counter()
        with profiled(profile), statements_timed(database_url) as statements:
            report = run_sync(settings, instance=instance, loggers=loggers)
        wall = time.perf_counter() - started
        starts: dict[str, float] = {}
        steps: dict[str, float] = {}
        windows: dict[str, tuple[float, float]] = {}
        for entry in instance.all_logs(report.run_id):
            event = entry.dagster_event
            if event is None or event.step_key is None:
                continue
            if event.event_type_value == "STEP_START":
                starts[event.step_key] = entry.timestamp
            elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and event.step_key in starts:
                steps[event.step_key] = entry.timestamp - starts[event.step_key]
                windows[event.step_key] = (starts[event.step_key], entry.timestamp)
    groups = dict.fromkeys(STEP_GROUPS, 0.0)
    for key, seconds in steps.items():
        groups[_group(key)] += seconds
    pushes = {name: meta for name, meta in report.assets.items() if name.startswith("reverse_sync/")}
    planning = sum(float(meta.get("plan_seconds", 0) or 0) for meta in pushes.values())
    records = sum(
        int(meta.get("rows_read", 0) or 0)
        for name, meta in report.assets.items()
        if not name.startswith(("reverse_sync/", "canonical/"))
    )
    canonical = report.assets.get("canonical/contacts", {})
    requests = sum(
        int(meta.get("requests", 0) or 0)
        for name, meta in report.assets.items()
        if not name.startswith(("reverse_sync/", "canonical/"))
    )
    return {
        "ended": time.time(),
        "wall": wall,
        "groups": groups,
        "steps": steps,
        "windows": windows,
        "planning": planning,
        "planned": sum(int(meta.get("planned", 0) or 0) for meta in pushes.values()),
        "read": records,
        "extract_requests": requests,
        "streams": {
            name: [meta.get("duration_s"), meta.get("requests"), meta.get("rows_read")]
            for name, meta in report.assets.items()
            if not name.startswith(("reverse_sync/", "canonical/"))
        },
        "statements": statements,
        "contacts": int(canonical.get("contacts", 0) or 0),
        "canonical_records": int(canonical.get("records", 0) or 0),
        "success": report.success,
        "failures": report.failures,
    }


@contextmanager
def statements_timed(database_url: str) -> Iterator[list[tuple[float, float, str, int]]]:
    """Every statement sent to the warehouse while inside: (wall start, seconds until the driver
    returned, the statement's first words, parameter sets), so each step's round trips can be counted.
    Dagster's own storage (another URL) is left out."""
    import re

    wanted = sa.make_url(database_url)
    seen: list[tuple[float, float, str, int]] = []
    local = threading.local()

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        local.started = (time.time(), time.perf_counter())

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if conn.engine.url.database != wanted.database:
            return
        wall, started = getattr(local, "started", (time.time(), time.perf_counter()))
        words = re.sub(r"\s+", " ", statement).strip()
        shape = re.sub(r"\(([^()]*(%\(|\?|\$)[^()]*)\)", "(...)", words)[:90]
        sets = len(parameters) if many and isinstance(parameters, list | tuple) else 1
        seen.append((wall, time.perf_counter() - started, shape, sets))

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", before)
    sa.event.listen(sa.engine.Engine, "after_cursor_execute", after)
    try:
        yield seen
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", before)
        sa.event.remove(sa.engine.Engine, "after_cursor_execute", after)


def statements_in(result: dict[str, Any], group: str = "extract") -> dict[str, list[float]]:
    """Statement shape -> [count, parameter sets, seconds] over the windows of ``group``'s steps."""
    windows = [span for key, span in result.get("windows", {}).items() if _group(key) == group]
    tally: dict[str, list[float]] = {}
    for wall, seconds, shape, sets in result.get("statements", []):
        if any(start <= wall <= end for start, end in windows):
            row = tally.setdefault(shape, [0, 0, 0.0])
            row[0] += 1
            row[1] += sets
            row[2] += seconds
    return tally


@contextmanager
def profiled(path: str | None) -> Iterator[None]:
    """cProfile the main thread and every thread started inside (reverse sync plans its destinations in
    threads), all written to ``path`` as one pstats file; nothing when ``path`` is empty."""
    if not path:
        yield
        return
    import cProfile
    import pstats

    profilers: list[cProfile.Profile] = []

    def start_thread(*_: object) -> None:
        # Called once by a new thread's first event: enabling swaps in the C profiler for that thread.
        profiler = cProfile.Profile()
        profilers.append(profiler)
        profiler.enable()

    main = cProfile.Profile()
    threading.setprofile(start_thread)
    main.enable()
    try:
        yield
    finally:
        main.disable()
        threading.setprofile(None)  # type: ignore[arg-type]
        stats = pstats.Stats(main)
        for profiler in profilers:
            stats.add(profiler)
        stats.dump_stats(path)


def child_rebuild(env: dict[str, str], database_url: str) -> dict[str, Any]:
    """The canonical full rebuild alone, as ``--full-refresh`` runs it: seconds and contacts."""
    from models.identity.canonical_incremental import build_canonical_incremental
    from models.warehouse.db import open_warehouse
    from pipelines.canonical import canonical_config, phone_regions
    from pipelines.resources import WarehouseResource

    settings = _settings(env, database_url, "off")
    engine = open_warehouse(database_url)
    config = canonical_config(settings, phone_regions(settings, WarehouseResource(database_url=database_url)))
    started = time.perf_counter()
    report = build_canonical_incremental(engine, config, full=True)
    return {"seconds": time.perf_counter() - started, "records": report.records, "contacts": report.contacts}


def _splink_input(database_url: str) -> Any:
    """One row per live contact record with its first email and first phone as the source wrote them
    (``contact_identifiers.raw_value``): the same records and raw values our canonical step reads."""
    import pandas as pd

    engine = sa.create_engine(database_url)
    query = """
        select raw_record_id, kind, raw_value, field
        from contact_identifiers
        order by raw_record_id, kind, field
    """
    with engine.connect() as connection:
        points = pd.DataFrame(connection.execute(sa.text(query)).all(), columns=["id", "kind", "raw", "f"])
        ids = pd.DataFrame(
            connection.execute(sa.text("select raw_record_id from contact_sources")).all(), columns=["id"]
        )
    engine.dispose()
    first = points.drop_duplicates(["id", "kind"]).pivot(index="id", columns="kind", values="raw")
    frame = ids.merge(first, left_on="id", right_index=True, how="left")
    for kind in ("email", "phone"):
        if kind not in frame:
            frame[kind] = None
    return frame.rename(columns={"id": "unique_id"}).loc[:, ["unique_id", "email", "phone"]]


def child_splink(database_url: str, max_records: int, threads: int) -> dict[str, Any]:
    """Splink's deterministic email-or-phone rules on DuckDB: normalise, link, cluster, timed."""
    import logging

    import duckdb
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    frame = _splink_input(database_url)
    connection = duckdb.connect()
    connection.execute(f"set threads = {threads}")
    connection.register("raw_input", frame)
    started = time.perf_counter()
    # Normalise: trimmed lower-case emails, phones as their digits; a value more records hold than the
    # pipeline's record limit is dropped, as our junk guard drops it (else its pairs grow quadratically).
    connection.execute(
        f"""
        create table normalised as
        with cleaned as (
            select unique_id,
                   nullif(lower(trim(email)), '') as email,
                   nullif(regexp_replace(coalesce(phone, ''), '[^0-9]', '', 'g'), '') as phone
            from raw_input
        ),
        common_email as (select email from cleaned where email is not null
                         group by email having count(*) > {max_records}),
        common_phone as (select phone from cleaned where phone is not null
                         group by phone having count(*) > {max_records})
        select unique_id,
               case when email in (select email from common_email) then null else email end as email,
               case when phone in (select phone from common_phone) then null else phone end as phone
        from cleaned
        """
    )
    normalised = time.perf_counter()
    api = DuckDBAPI(connection=connection)
    table = api.register("normalised")
    settings = SettingsCreator(
        link_type="dedupe_only",
        blocking_rules_to_generate_predictions=[block_on("email"), block_on("phone")],
        retain_intermediate_calculation_columns=False,
    )
    linker = Linker(table, settings, log_level=logging.WARNING)
    pairs = linker.inference.deterministic_link()
    linked = time.perf_counter()
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(pairs, None)
    assigned = clusters.as_pandas_dataframe()
    done = time.perf_counter()
    return {
        "normalise": normalised - started,
        "link": linked - normalised,
        "cluster": done - linked,
        "seconds": done - started,
        "records": len(frame),
        "clusters": int(assigned["cluster_id"].nunique()),
    }


def child_main(answer: str, kind: str, rest: list[str]) -> None:
    if kind == "sync":
        env, url, push = json.loads(rest[0]), rest[1], rest[2]
        result = child_sync(env, url, push, rest[3] if len(rest) > 3 else "")
    elif kind == "rebuild":
        result = child_rebuild(json.loads(rest[0]), rest[1])
    elif kind == "splink":
        result = child_splink(rest[0], int(rest[1]), int(rest[2]))
    else:
        raise SystemExit(f"unknown child {kind}")
    Path(answer).write_text(json.dumps(result))


# ---------------------------------------------------------------------------------------------------
# The parent: one emulator per warehouse, the children one after another, the table at the end.


@contextmanager
def warehouse(kind: str, tmp: str, keep: Path | None = None) -> Iterator[str]:
    """The URL of an empty warehouse: a SQLite file, or a PostgreSQL database of our own, dropped after.

    ``keep``: a SQLite warehouse is made in that folder and left there (``KEEP/warehouse.db``), a
    PostgreSQL one is not dropped (its URL in ``KEEP/postgresql.url``, to drop by hand), to time a
    rebuild on it again with other code (`bench/rebuild_phases.py`)."""
    if kind == "sqlite":
        folder = keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        yield f"sqlite:///{folder}/warehouse.db"
        return
    server = sa.make_url(os.environ.get("CONTACT_SYNC_BENCH_POSTGRES_URL", POSTGRES_DEFAULT))
    name = f"bench_scale_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
        (keep / "postgresql.url").write_text(url)
    try:
        yield url
    finally:
        if not keep:
            with admin.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _change(sandbox: Any, contacts: int, percent: float) -> dict[str, Any]:
    change = max(1, round(contacts * percent / 100))
    new = deleted = change // 10
    return sandbox.mutate(
        new=new,
        updated=change - new - deleted,
        deleted=deleted,
        events=max(1, change // 2),
        messages=max(1, change // 2),
    )


def _quiet(until: float, kind: str) -> None:
    """Wait until ``until`` (epoch seconds): the warm-up change after it is then newer than the full
    sync's last write by more than the sources' lookback (up to ten minutes before a stream's
    watermark, `connectors`: ``lookback``), so once the warm-up run has moved the watermarks to it,
    the timed run no longer re-reads those writes."""
    pause = until - time.time()
    if pause > 0:
        with announced(f"{kind}: waiting {pause:.0f} s for the sources' lookback to pass our writes"):
            time.sleep(pause)


def _heartbeat(label: str, stop: threading.Event) -> None:
    started = time.perf_counter()
    while not stop.wait(60):
        print(f"    ... {label}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)


@contextmanager
def announced(label: str) -> Iterator[None]:
    print(f"  {label} ...", file=sys.stderr, flush=True)
    stop = threading.Event()
    thread = threading.Thread(target=_heartbeat, args=(label, stop), daemon=True)
    thread.start()
    started = time.perf_counter()
    try:
        yield
    finally:
        stop.set()
        print(f"  {label}: {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)


def bench_warehouse(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    from e2e_sync import Sandbox

    people = max(10, round(args.records / RECORDS_PER_PERSON))
    out: dict[str, Any] = {"kind": kind}
    with (
        Sandbox(people, args.seed) as sandbox,
        tempfile.TemporaryDirectory() as tmp,
        warehouse(kind, tmp, args.keep) as url,
    ):
        sandbox.configure(latency_ms=0, maton_rps=None)
        env = json.dumps(sandbox.env)
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            (args.keep / "env.json").write_text(env)
        with announced(f"{kind}: full sync of {people:,} people"):
            out["full"], out["full_peak"] = sync_child(env, url, args.push, sandbox.pid)
        if args.settle:
            profile = str(args.profile.with_suffix(f".{kind}.settle.prof")) if args.profile_settle else ""
            with announced(f"{kind}: settling sync (reads our writes back)"):
                out["settle"], out["settle_peak"] = sync_child(env, url, args.push, sandbox.pid, profile)
        if not args.only_canonical:
            contacts = out["full"]["canonical_records"]
            if args.settle:
                _quiet(float(out["full"]["ended"]) + args.quiet_minutes * 60, kind)
                with announced(f"{kind}: warm-up change and incremental sync (moves the watermarks)"):
                    _change(sandbox, contacts, args.change)
                    out["warmup"], out["warmup_peak"] = sync_child(env, url, args.push, sandbox.pid)
            with announced(f"{kind}: change {args.change}% of {contacts:,} contact records"):
                out["mutation"] = _change(sandbox, contacts, args.change)
            with announced(f"{kind}: incremental sync"):
                out["incremental"], out["incremental_peak"] = sync_child(env, url, args.push, sandbox.pid)
            if args.compare:
                out["rounds"] = _compare_rounds(sandbox, env, url, contacts, args)
            if args.profile:
                # Profiled apart, so the timed run above carries no profiler overhead.
                _change(sandbox, contacts, args.change)
                profile = str(args.profile.with_suffix(f".{kind}.prof"))
                with announced(f"{kind}: another {args.change}% change, incremental sync under cProfile"):
                    run_child(["sync", env, url, args.push, profile], emulator_pid=sandbox.pid)
        if not args.no_rebuild:
            with announced(f"{kind}: canonical full rebuild alone"):
                out["rebuild"], out["rebuild_peak"] = run_child(["rebuild", env, url])
        if not args.no_rebuild and not args.no_splink:
            with announced(f"{kind}: Splink on the same records"):
                splink = ["splink", url, str(args.max_records), str(args.splink_threads)]
                out["splink"], out["splink_peak"] = run_child(splink, python=args.splink_python)
    return out


def _compare_rounds(
    sandbox: Any, env: str, url: str, contacts: int, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """``args.rounds`` rounds of a change and an incremental sync with the code in ``args.compare`` and
    a change and one with this process's code, the first of the two alternating round by round. Same
    warehouse, same kind of change, cache state alike. Each run re-reads the changes of the runs
    before it that fall within the sources' lookback, so the extract grows from run to run (about
    0.7 s a run at a million records); alternating the order keeps that drift out of the comparison
    once the rounds are averaged."""
    own = os.environ.get("PYTHONPATH", "")
    rounds: list[dict[str, Any]] = []
    for number in range(1, args.rounds + 1):
        pair = [("compared", str(args.compare)), ("own", own)]
        for label, code in pair if number % 2 else pair[::-1]:
            with announced(f"round {number}: {args.change}% change, incremental sync, {label} code"):
                _change(sandbox, contacts, args.change)
                result, peak = sync_child(env, url, args.push, sandbox.pid, code=code)
            rounds.append({"round": number, "code": label, "path": code, "result": result, "peak": peak})
    return rounds


def print_rounds(results: list[dict[str, Any]]) -> None:
    """The ``--compare`` rounds: each incremental run's steps, alternating the two trees."""
    if not any(result.get("rounds") for result in results):
        return
    print()
    print("incremental runs after a change each, alternating the code (--compare)")
    print(
        f"{'warehouse':<11}{'round':>6}  {'code':<10}{'records':>9}{'extract':>9}{'canonical':>10}"
        f"{'checks':>8}{'activity':>9}{'rev sync':>9}{'run s':>8}{'peak MiB':>9}"
    )
    for result in results:
        for entry in result.get("rounds", []):
            data, groups = entry["result"], entry["result"]["groups"]
            print(
                f"{result['kind']:<11}{entry['round']:>6}  {entry['code']:<10}{data['canonical_records']:>9,}"
                f"{groups['extract']:>9.1f}{groups['canonical']:>10.1f}{groups['checks']:>8.1f}"
                f"{groups['activity']:>9.1f}{groups['reverse sync']:>9.1f}{data['wall']:>8.1f}"
                f"{_mib(entry['peak']):>9}"
            )
            cpu = {group: cpu_while(data, group, "own_cpu") for group in STEP_GROUPS}
            print(
                f"{'':<17}{'  CPU s':<10}{'':>9}{cpu['extract']:>9.1f}{cpu['canonical']:>10.1f}"
                f"{cpu['checks']:>8.1f}{cpu['activity']:>9.1f}{cpu['reverse sync']:>9.1f}"
            )


def _mib(value: int) -> str:
    return f"{value / 2**20:,.0f}"


def print_table(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print()
    print(
        f"scale benchmark: ~{args.records:,} contact records asked, seed {args.seed}, emulator at full "
        f"speed, push {args.push}; seconds per step from Dagster's event log, peak RSS of the syncing "
        "process tree (MiB)"
    )
    header = (
        f"{'warehouse':<11}{'run':<13}{'records':>9}{'extract':>9}{'canonical':>10}{'checks':>8}"
        f"{'activity':>9}{'rev sync':>9}{'plan sum':>9}{'run s':>8}{'peak MiB':>9}"
    )
    print(header)
    for result in results:
        for run in RUNS:
            if run not in result:
                continue
            data, peak = result[run], result[f"{run}_peak"]
            groups = data["groups"]
            line = (
                f"{result['kind']:<11}{run:<13}{data['canonical_records']:>9,}{groups['extract']:>9.1f}"
                f"{groups['canonical']:>10.1f}{groups['checks']:>8.1f}{groups['activity']:>9.1f}"
                f"{groups['reverse sync']:>9.1f}{data['planning']:>9.1f}{data['wall']:>8.1f}{_mib(peak):>9}"
            )
            print(line + ("" if data["success"] else "  FAILED: " + "; ".join(data["failures"])[:200]))
            print(f"{'':<11}{'  planned':<13}{data['planned']:>9,}  fields planned by reverse sync")
            print(
                f"{'':<11}{'  requests':<13}{data.get('extract_requests', 0):>9,}  by extract; the "
                f"emulator's CPU while extract ran {cpu_while(data):.2f} s"
            )
            tally = statements_in(data)
            sent, waited = sum(int(row[0]) for row in tally.values()), sum(row[2] for row in tally.values())
            print(
                f"{'':<11}{'  statements':<13}{sent:>9,}  sent by extract to the warehouse, "
                f"{waited:.2f} s until the driver returned"
            )
            pushed = statements_in(data, "reverse sync").values()
            count, sets = sum(int(row[0]) for row in pushed), sum(int(row[1]) for row in pushed)
            print(
                f"{'':<11}{'  statements':<13}{count:>9,}  sent by reverse sync ({sets:,} parameter sets), "
                f"{sum(row[2] for row in pushed):.2f} s until the driver returned"
            )
            if data.get("log_left") is not None:
                print(
                    f"{'':<11}{'  log left':<13}{data['log_left'] / 2**20:>9,.1f}  MiB of SQLite's log file "
                    "beside the database after the process exited"
                )
            cpu = {group: cpu_while(data, group, "own_cpu") for group in STEP_GROUPS}
            print(
                f"{'':<11}{'  CPU s':<13}{'':>9}{cpu['extract']:>9.1f}{cpu['canonical']:>10.1f}"
                f"{cpu['checks']:>8.1f}{cpu['activity']:>9.1f}{cpu['reverse sync']:>9.1f}"
                "  of the syncing process (workers not counted)"
            )
            peaks = step_peaks(data)
            print(
                f"{'':<11}{'  peak MiB':<13}{'':>9}{_mib(peaks['extract']):>9}{_mib(peaks['canonical']):>10}"
                f"{_mib(peaks['checks']):>8}{_mib(peaks['activity']):>9}{_mib(peaks['reverse sync']):>9}"
            )
    if not any("rebuild" in result for result in results):
        return
    print()
    print("canonical step, full rebuild alone against Splink (deterministic email-or-phone, DuckDB)")
    print(
        f"{'warehouse':<11}{'records':>9}{'contacts':>10}{'rebuild s':>11}{'peak MiB':>9}"
        f"{'splink s':>10}{'(norm/link/clus)':>20}{'clusters':>10}{'peak MiB':>9}{'ratio':>7}"
    )
    for result in results:
        if "rebuild" not in result:
            continue
        rebuild, splink = result["rebuild"], result.get("splink")
        line = (
            f"{result['kind']:<11}{rebuild['records']:>9,}{rebuild['contacts']:>10,}"
            f"{rebuild['seconds']:>11.1f}{_mib(result['rebuild_peak']):>9}"
        )
        if splink:
            parts = f"{splink['normalise']:.1f}/{splink['link']:.1f}/{splink['cluster']:.1f}"
            line += (
                f"{splink['seconds']:>10.1f}{parts:>20}{splink['clusters']:>10,}{_mib(result['splink_peak']):>9}"
                f"{rebuild['seconds'] / splink['seconds']:>7.2f}"
            )
        print(line)
    print(
        "ratio = rebuild / Splink (goal <= 2). Our rebuild includes reading payloads from the warehouse, "
        "phone parsing, junk guards, household splitting, survivorship, lineage and writes; Splink's "
        f"time covers SQL normalisation, linking and clustering with {args.splink_threads} DuckDB threads."
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        child_main(argv[1], argv[2], argv[3:])
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=100_000, help="contact records to build (about)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--change", type=float, default=1.0, help="percent of contact records changed")
    parser.add_argument("--warehouses", default="sqlite,postgresql", help="sqlite, postgresql or both")
    parser.add_argument("--push", choices=("dry-run", "on"), default="dry-run")
    parser.add_argument("--only-canonical", action="store_true", help="skip the incremental run")
    parser.add_argument(
        "--settle",
        action="store_true",
        help="steady state: push on, a settling sync, a wait, a warm-up change and sync, then the change",
    )
    parser.add_argument(
        "--quiet-minutes",
        type=float,
        default=11.0,
        help="with --settle: the warm-up change waits until this long after the full sync ended, so "
        "the full sync's writes fall outside the lookback (10 minutes at most) of the timed run",
    )
    parser.add_argument("--no-rebuild", action="store_true", help="skip the canonical rebuild and Splink")
    parser.add_argument("--no-splink", action="store_true")
    parser.add_argument("--splink-threads", type=int, default=2)
    parser.add_argument(
        "--splink-python",
        default=os.environ.get("CONTACT_SYNC_BENCH_SPLINK_PYTHON", sys.executable),
        help="the interpreter that runs Splink: one with the bench extra (Splink brings pyarrow, which "
        "pandas then loads in every process, so keep it out of the pipeline's environment)",
    )
    parser.add_argument("--max-records", type=int, default=25, help="the pipeline's record limit, for Splink")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument(
        "--keep",
        type=Path,
        help="leave the warehouses: SQLite's in this folder, PostgreSQL's URL written there",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="after the timed incremental sync, change as much again and cProfile another incremental "
        "sync (all threads) into PROFILE.<warehouse>.prof",
    )
    parser.add_argument(
        "--compare",
        type=Path,
        help="after the timed incremental sync, --rounds rounds of a change and an incremental sync with "
        "the project imported from this tree, then a change and one with this process's own",
    )
    parser.add_argument("--rounds", type=int, default=2, help="with --compare: how many rounds")
    parser.add_argument(
        "--profile-settle",
        action="store_true",
        help="with --profile: cProfile the settling sync too (its figures then carry the overhead)",
    )
    args = parser.parse_args(argv)
    if args.profile_settle and not (args.profile and args.settle):
        parser.error("--profile-settle needs --settle and --profile")
    if args.settle:
        args.push = "on"
    os.environ.pop("DAGSTER_HOME", None)
    results = [bench_warehouse(kind.strip(), args) for kind in args.warehouses.split(",") if kind.strip()]
    print_table(results, args)
    print_rounds(results)
    if args.json:
        for result in results:
            for run in (*RUNS, "rebuild", "splink"):
                if run in result:
                    result[run]["step_peaks"] = step_peaks(result[run])
                    result[run]["emulator_extract_cpu"] = cpu_while(result[run])
                    result[run]["cpu"] = {
                        group: cpu_while(result[run], group, "own_cpu") for group in STEP_GROUPS
                    }
                    result[run].pop("samples", None)
                    result[run].pop("emulator_cpu", None)
                    result[run].pop("own_cpu", None)
                    result[run]["statements_by_step"] = {
                        group: statements_in(result[run], group) for group in STEP_GROUPS
                    }
                    result[run].pop("statements", None)
            for entry in result.get("rounds", []):
                entry["result"].pop("samples", None)
                entry["result"].pop("emulator_cpu", None)
                entry["result"].pop("own_cpu", None)
                entry["result"].pop("statements", None)
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
