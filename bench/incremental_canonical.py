"""Benchmark: does the incremental run's canonical step grow with the stored records?

For each size in ``--people``, builds a warehouse through the emulator (its rate limits lifted), resolves
it in full, links activity, then changes the SAME absolute number of people at the sources (new, edited
and deleted contacts, as many new events and messages) and extracts again. The state after that extract
is kept (a copy of the SQLite file, or a PostgreSQL database made from it as a template), and each
measured step runs in a fresh child process on its own copy: the incremental canonical step (and the
counts and sample the pipeline's asset reads after it), the three blocking checks over the run's changes
and the incremental activity step, each with its seconds and the child's peak resident memory. If the
time of a step does not grow with the stored records, the two sizes print the same figures.

    python bench/incremental_canonical.py --people 10000,40000 --changed 120
    python bench/incremental_canonical.py --people 10000,40000 --database-url postgresql://postgres@127.0.0.1:5432/test
    python bench/incremental_canonical.py --people 10000 --keep /tmp/wh --profile canonical  # cProfile it
    python bench/incremental_canonical.py --people 10000 --reuse /tmp/wh --cold  # from disk, not the cache

``--keep DIR`` leaves the warehouses there (SQLite files; PostgreSQL databases named in DIR's JSON
files, to drop by hand) and ``--reuse DIR`` starts from them again, so two versions of the code can be
measured on the same state: run it from the other checkout with ``PYTHONPATH`` pointing there (older
code reads the same warehouse as long as it knows its migrations). Every warehouse gets a push ledger
of ``--ledger-fields`` rows per contact record, as reverse sync leaves one, since the canonical step
reads our own writes back from it. ``--profile STEP`` prints the step's cProfile (with
``CONTACT_SYNC_BENCH_PROFILE_OUT=FILE`` it also keeps the stats in FILE, for pstats). ``--profile sql``
prints each statement's seconds per step; they leave out fetching, where SQLite does most of a SELECT's
work, so use EXPLAIN QUERY PLAN for those.
"""

import argparse
import contextlib
import json
import os
import pickle
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

REGIONS = {"linkflow": "CN", "clicksend": "US", "clickfunnels": "US", "zoho_crm": "US", "zoho_bigin": "US"}
STEPS = ("canonical", "checks", "activity")


def _settings(emu_env: dict[str, str], url: str) -> Any:
    from pipelines.settings import load_settings

    values: dict[str, Any] = {name.lower(): value for name, value in emu_env.items()}
    return load_settings(
        **values,
        contact_sync_database_url=url,
        contact_sync_maton_rps=10_000.0,
        contact_sync_linkflow_rps=10_000.0,
    )


def _extract(settings: Any, url: str) -> None:
    from models.warehouse.db import open_warehouse
    from models.warehouse.store import RawStore
    from pipelines.clients import clients_for
    from pipelines.extract import run_extract
    from pipelines.settings import SOURCES
    from pipelines.streams import STREAMS

    store = RawStore(open_warehouse(url))
    with clients_for(settings, SOURCES) as clients:
        for stream in STREAMS:
            run_extract(stream, clients, store)


def _seed_ledger(engine: Any, fields: int) -> None:
    """A push ledger as reverse sync leaves one: ``fields`` rows per contact record, a tenth of them
    real writes still in flight ("sent"), the rest dry-run plans. Planning is not what this measures,
    but the canonical step reads our own writes back from this table, and it grows with every run."""
    from models.warehouse.tables import ContactSource, PushLedger, utcnow

    now = utcnow()
    names = ("email", "phone", "first_name", "last_name", "city", "company", "title", "country")[:fields]
    with engine.begin() as connection:
        records = connection.execute(
            sa.select(
                ContactSource.source, ContactSource.object, ContactSource.source_id, ContactSource.contact_id
            )
        ).all()
        rows = [
            {
                "run_id": "first",
                "destination": source,
                "object": obj,
                "record_id": source_id,
                "contact_id": contact_id,
                "field": name,
                "before_value": None,
                "after_value": f"{name}-{source_id}",
                "reason": "fill",
                "status": "sent" if index % 10 == 0 else "unchanged",
                "attempts": 1,
                "dry_run": index % 10 != 0,
                "created_at": now,
                "updated_at": now,
            }
            for index, (source, obj, source_id, contact_id) in enumerate(records)
            for name in names
        ]
        for start in range(0, len(rows), 50_000):
            connection.execute(sa.insert(PushLedger), rows[start : start + 50_000])


def build(people: int, changed: int, seed: int, url: str, ledger_fields: int) -> dict[str, int]:
    """A warehouse of ``people`` resolved in full, then ``changed`` people changed and extracted."""
    from connectors.emulator import running_emulator
    from models.identity.activity import build_activity
    from models.identity.canonical_incremental import build_canonical_incremental
    from models.identity.checks import CHECKS, run_check
    from models.warehouse.db import open_warehouse
    from models.warehouse.tables import RawRecord
    from pipelines.canonical import canonical_config

    with running_emulator(seed=seed, people=people) as emu:
        settings = _settings(emu.env(), url)
        engine = open_warehouse(url)
        start = time.perf_counter()
        _extract(settings, url)
        config = canonical_config(settings, REGIONS)
        # The child resolves with the same rules, or their fingerprint would force a full rebuild.
        Path(url_config(url)).write_bytes(pickle.dumps(config))
        build_canonical_incremental(engine, config, run_id="first")
        build_activity(engine, REGIONS)
        _seed_ledger(engine, ledger_fields)
        # The first sync's checks run whole and remember it, so the next run's are scoped to its changes.
        for name in CHECKS:
            run_check(name, engine, "first", timedelta(days=365))
        print(f"  built in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
        emu.mutate(
            seed=seed + 1,
            new=changed // 4,
            updated=changed // 2,
            deleted=changed // 4,
            events=changed,
            messages=changed,
        )
        _extract(settings, url)
        with engine.connect() as connection:
            records = connection.execute(sa.select(sa.func.count()).select_from(RawRecord)).scalar_one()
        engine.dispose()
    return {"people": people, "raw_records": int(records)}


def measure(url: str, profile: str | None) -> dict[str, Any]:
    """Run in a child: the incremental steps on this warehouse, each timed, with the peak memory after it."""
    from models.identity.activity import build_activity
    from models.identity.canonical_incremental import build_canonical_incremental
    from models.identity.checks import CHECKS, run_check
    from models.identity.lookup import golden_sample, records_per_source
    from models.identity.phases import CanonicalConfig
    from models.warehouse.db import open_warehouse
    from models.warehouse.tables import Quarantine

    engine = open_warehouse(url)
    statements = _time_statements(engine) if profile == "sql" else None
    config: CanonicalConfig = pickle.loads(Path(os.environ["BENCH_CANONICAL_CONFIG"]).read_bytes())
    out: dict[str, Any] = {"rss_start_mib": _peak_mib()}
    profiler = None
    current = ["setup"]
    if statements is not None:
        statements["__step__"] = current  # type: ignore[assignment]
    if profile in STEPS:
        import cProfile

        profiler = cProfile.Profile()

    def step(name: str, fn: Any) -> Any:
        if statements is not None:
            current[0] = name
        if profiler is not None and name == profile:
            profiler.enable()
        start, cpu = time.perf_counter(), time.process_time()
        result = fn()
        out[f"{name}_s"] = time.perf_counter() - start
        out[f"{name}_cpu_s"] = time.process_time() - cpu
        if profiler is not None and name == profile:
            profiler.disable()
        out[f"{name}_peak_mib"] = _peak_mib()
        return result

    def canonical() -> Any:
        report = build_canonical_incremental(engine, config, run_id="second")
        # What the pipeline's asset reads after it, for its metadata.
        with engine.connect() as connection:
            connection.execute(sa.select(sa.func.count()).select_from(Quarantine)).scalar_one()
        _records_per_source(engine, records_per_source)
        golden_sample(engine, 10)
        return report

    with _as_in_a_run(engine):
        report = step("canonical", canonical)
        out["records_in_scope"] = report.records
        step("checks", lambda: [run_check(n, engine, "second", timedelta(days=365)) for n in CHECKS])
        step("activity", lambda: build_activity(engine, REGIONS))
    if statements is not None:
        statements.pop("__step__")
        for (name, text), (count, seconds) in sorted(statements.items(), key=lambda i: -i[1][1])[:25]:
            print(f"{seconds:7.3f} s {count:5d}x {name:<9} {text}", file=sys.stderr)
    if profiler is not None:
        import pstats

        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(45)
        if os.environ.get("CONTACT_SYNC_BENCH_PROFILE_OUT"):
            profiler.dump_stats(os.environ["CONTACT_SYNC_BENCH_PROFILE_OUT"])
    return out


def _as_in_a_run(engine: Any) -> Any:
    """What a pipeline run holds around its steps: SQLite's log checkpointed by a thread of its own
    (nothing, for code from before that)."""
    try:
        from models.warehouse.checkpoints import background_checkpoints
    except ImportError:
        return contextlib.nullcontext()
    return background_checkpoints(engine)


def _records_per_source(engine: Any, count: Any) -> dict[str, int]:
    """As the asset reads them: the counts the canonical run kept, else counted (and older code)."""
    try:
        from models.identity import source_counts
    except ImportError:
        return dict(count(engine, sorted(REGIONS)))
    with engine.connect() as connection:
        kept = source_counts.stored(connection)
    return dict(count(engine, sorted(REGIONS))) if kept is None else kept


def _time_statements(engine: Any) -> dict[Any, Any]:
    """Seconds and count per SQL statement (its first 150 characters), per step, for ``--profile sql``."""
    totals: dict[Any, Any] = {}

    @sa.event.listens_for(engine, "before_cursor_execute")
    def before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        conn.info["bench_start"] = time.perf_counter()

    @sa.event.listens_for(engine, "after_cursor_execute")
    def after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        seconds = time.perf_counter() - conn.info.pop("bench_start", time.perf_counter())
        text = " ".join(statement.split())
        text = text[:110] + " ... " + text[-60:] if len(text) > 170 else text
        key = (totals["__step__"][0], text)
        count, total = totals.get(key, (0, 0.0))
        totals[key] = (count + 1, total + seconds)

    return totals


def _peak_mib() -> float:
    """The process's own peak resident memory (VmHWM: ru_maxrss would carry the parent's over exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _copy(source_url: str, folder: Path, tag: str, *, cold: bool = False) -> tuple[str, Any]:
    """A fresh copy of the kept warehouse, and what drops it; with ``cold``, a SQLite copy is written
    out and dropped from the page cache, so the step reads it from disk as a run on a host whose
    cache has moved on would (PostgreSQL's pages are the server's, and stay as they are)."""
    if source_url.startswith("sqlite"):
        path = Path(source_url.split("///", 1)[1])
        copy = folder / f"run_{tag}.db"
        shutil.copyfile(path, copy)
        if cold:
            _evict(copy)

        def remove() -> None:
            copy.unlink(missing_ok=True)
            shutil.rmtree(f"{copy}.locks", ignore_errors=True)

        return f"sqlite:///{copy}", remove
    base = sa.engine.make_url(source_url)
    name = f"bench_incrcanon_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{base.database}"'))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    return base.set(database=name).render_as_string(hide_password=False), drop


def _evict(path: Path) -> None:
    """Write ``path`` to disk and drop its pages from the page cache (clean pages only are dropped)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
        os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(descriptor)


def url_config(url: str) -> str:
    """Where the canonical config of the warehouse at ``url`` is kept."""
    name = str(sa.engine.make_url(url).database).replace("/", "_")
    return str(Path(tempfile.gettempdir()) / f"bench_incrcanon_{name}.pickle")


def _drop_postgres(url: str) -> None:
    base = sa.engine.make_url(url)
    admin = sa.create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{base.database}" WITH (FORCE)'))


def _new_postgres(server_url: str) -> str:
    base = sa.engine.make_url(server_url)
    name = f"bench_incrcanon_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    return base.set(database=name).render_as_string(hide_password=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", default="10000,40000", help="comma-separated sizes")
    parser.add_argument("--changed", type=int, default=120, help="people changed at every size")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--ledger-fields", type=int, default=4, help="push ledger rows per contact record")
    parser.add_argument("--repeat", type=int, default=1, help="children per size (the best is kept)")
    parser.add_argument("--database-url", default=None, help="a PostgreSQL server; default SQLite")
    parser.add_argument("--keep", default=None, help="keep the SQLite warehouses in this folder")
    parser.add_argument("--reuse", default=None, help="start from warehouses kept by --keep")
    parser.add_argument(
        "--cold", action="store_true", help="SQLite: each child starts with its copy out of the page cache"
    )
    parser.add_argument(
        "--profile", choices=(*STEPS, "sql"), default=None, help="cProfile a step, or time each SQL statement"
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.profile)))
        return
    folder = Path(args.reuse or args.keep or tempfile.mkdtemp(prefix="bench_incrcanon_"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {os.getloadavg()[0]:.1f} (cores: {os.cpu_count()})")
    rows: list[dict[str, Any]] = []
    for people in [int(p) for p in args.people.split(",")]:
        meta_file = folder / f"warehouse_{people}.json"
        if args.reuse and meta_file.exists():
            meta = json.loads(meta_file.read_text())
        else:
            url = (
                _new_postgres(args.database_url)
                if args.database_url
                else f"sqlite:///{folder / f'warehouse_{people}.db'}"
            )
            meta = {**build(people, args.changed, args.seed, url, args.ledger_fields), "url": url}
            meta_file.write_text(json.dumps(meta))
        best: dict[str, Any] | None = None
        for attempt in range(args.repeat):
            url, drop = _copy(meta["url"], folder, f"{people}_{attempt}", cold=args.cold)
            try:
                child = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        url,
                        *(["--profile", args.profile] * bool(args.profile)),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                    env={
                        **os.environ,
                        # The code under test: the PYTHONPATH given, as the other benchmarks
                        # take it, else the folder this runs from (never the venv's editable
                        # install, which may be another checkout).
                        "PYTHONPATH": os.environ.get("PYTHONPATH") or os.getcwd(),
                        "BENCH_CANONICAL_CONFIG": url_config(meta["url"]),
                    },
                )
            finally:
                drop()
            sys.stderr.write(child.stderr[-20000:] if args.profile else "")
            figures = json.loads(child.stdout.strip().splitlines()[-1])
            if best is None or figures["canonical_s"] < best["canonical_s"]:
                best = figures
        assert best is not None
        rows.append({**meta, **best, "load": os.getloadavg()[0]})
        print(_line(rows[-1]), flush=True)
    if not args.keep and not args.reuse:
        for row in rows:
            if args.database_url:
                _drop_postgres(row["url"])
            Path(url_config(row["url"])).unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)


def _line(row: dict[str, Any]) -> str:
    return (
        f"{row['people']:>7,} people {row['raw_records']:>9,} raw records "
        f"| in scope {row['records_in_scope']:>6,} "
        f"| canonical {row['canonical_s']:6.2f} s (CPU {row.get('canonical_cpu_s', float('nan')):5.2f} s) "
        f"peak {row['canonical_peak_mib']:5.0f} MiB "
        f"| checks {row['checks_s']:5.2f} s "
        f"| activity {row['activity_s']:5.2f} s peak {row['activity_peak_mib']:5.0f} MiB "
        f"| child at start {row['rss_start_mib']:4.0f} MiB | load {row['load']:.1f}"
    )


if __name__ == "__main__":
    main()
