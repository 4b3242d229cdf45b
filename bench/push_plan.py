"""Reverse-sync planning alone, in CPU seconds, on a copy of a warehouse `bench/scale.py --keep` left.

A scheduled run's reverse sync plans the records whose plan can have changed since the last plan
(`models.push.ledger.PlanWatermark`). To time that planning per record without a full benchmark, this
copies the kept SQLite warehouse, moves every destination's stored watermark back so that the newest
``--contacts`` golden contacts (by ``contacts.updated_at``) count as changed, and makes each
destination's incremental plan in turn, in one thread, recording and sending nothing. The planning
settings are the sync's own, except ClickSend's opt-out lists (which need the emulator): the stored
digest is replaced by this run's, so the plan stays incremental.

    python bench/scale.py --records 100000 --warehouses sqlite --settle --no-rebuild --keep /tmp/wh100k
    PYTHONPATH=$PWD python bench/push_plan.py /tmp/wh100k --contacts 1500 --profile /tmp/plan.prof

Run it twice with different ``--contacts`` and the difference gives the CPU a record in scope costs,
apart from each destination's fixed cost (the first plan in a process also pays one-time tables).

On PostgreSQL, ``--database-url`` names the kept database (`bench/scale.py --keep` writes its URL
beside ``env.json``): there is no copy, so its stored watermarks are moved back in place. Its wall
seconds then include the server's work, which its CPU seconds do not.

    python bench/push_plan.py /tmp/wh1m_pg --database-url "$(cat /tmp/wh1m_pg/postgresql.url)"
"""

import argparse
import cProfile
import json
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

HERE = Path(__file__).resolve().parent


def copy_warehouse(kept: Path, into: Path) -> str:
    """A consistent copy of ``kept``'s SQLite warehouse (its WAL folded in first); its URL."""
    with sqlite3.connect(kept / "warehouse.db") as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(kept / "warehouse.db", into / "warehouse.db")
    return f"sqlite:///{into}/warehouse.db"


def rewind(engine: Any, config: Any, contacts: int) -> None:
    """Every destination's stored plan watermark moved back before the newest ``contacts`` contacts."""
    from models.push import ledger
    from models.warehouse.store import store_cursor
    from models.warehouse.tables import Contact
    from pipelines.reverse_sync import WRITABLE_STREAMS

    newest = sa.select(Contact.updated_at).order_by(Contact.updated_at.desc()).offset(contacts).limit(1)
    with engine.begin() as connection:
        since = connection.execute(newest).scalar_one_or_none()
        for stream in WRITABLE_STREAMS:
            stored = ledger.stored_watermark(engine, stream.source, stream.object)
            if stored is None:
                raise SystemExit(f"{stream.name}: never planned in this warehouse")
            moved = ledger.PlanWatermark(
                stored.raw_changed_at,
                since,
                stored.merged_at,
                stored.ledger_id,
                stored.read_since,
                config.fingerprint(stream.source, stream.object),
            )
            store_cursor(connection, ledger.plan_key(stream.source, stream.object), moved.as_cursor(), since)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("kept", type=Path, help="a folder bench/scale.py --keep left (SQLite)")
    parser.add_argument("--contacts", type=int, default=1000, help="newest golden contacts taken as changed")
    parser.add_argument("--profile", type=Path, help="cProfile the plans into this file")
    parser.add_argument(
        "--database-url", help="plan on this kept database in place (PostgreSQL) instead of a copy"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from scale import _settings

    from models.warehouse.db import open_warehouse
    from pipelines.canonical import phone_regions
    from pipelines.resources import WarehouseResource
    from pipelines.reverse_sync import WRITABLE_STREAMS, _plan, push_config

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or copy_warehouse(args.kept, Path(tmp))
        settings = _settings(json.loads((args.kept / "env.json").read_text()), url, "on")
        engine = open_warehouse(url)
        config = push_config(
            settings, phone_regions(settings, WarehouseResource(database_url=url)), frozenset()
        )
        rewind(engine, config, args.contacts)
        profiler = cProfile.Profile() if args.profile else None
        targets = rows = 0
        started, wall = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        for stream in WRITABLE_STREAMS:
            cpu, clock = time.process_time(), time.perf_counter()
            plan, report, _ = _plan(stream, engine, config, full_plan=False)
            targets, rows = targets + report.targets_loaded, rows + len(plan)
            spent = time.process_time() - cpu
            print(
                f"{stream.name:<24}{report.plan:<13}{report.targets_loaded:>8,} records"
                f"{report.contacts_loaded:>8,} contacts{len(plan):>7,} rows{spent:>8.3f} s CPU"
                f"{time.perf_counter() - clock:>8.3f} s"
            )
        if profiler:
            profiler.disable()
            profiler.dump_stats(args.profile)
        spent = time.process_time() - started
        print(
            f"{'all':<37}{targets:>8,} records{'':>17}{rows:>7,} rows{spent:>8.3f} s CPU"
            f"{time.perf_counter() - wall:>8.3f} s"
        )
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
