"""Benchmark of the steps after identity resolution: activity linking and the blocking checks.

Builds a warehouse of N people through the emulator (its rate limits lifted), resolves it, then changes
about 1% of it at the sources (new, edited and deleted contacts, new events and messages), extracts
and resolves again, and times, on that same state:

- activity: the incremental run (new and changed rows, keys of the contacts the run touched) against a
  full rebuild (what every run did before);
- each blocking check: scoped to the run's changes against the whole warehouse.

    python bench/incremental_steps.py --people 100000                    # SQLite in a temporary folder
    python bench/incremental_steps.py --people 100000 --database-url postgresql://...  # an empty database
"""

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa

from connectors.emulator import running_emulator
from models.identity.activity import build_activity
from models.identity.canonical_incremental import build_canonical_incremental
from models.identity.checks import CHECKS, run_check
from models.warehouse.db import open_warehouse
from models.warehouse.store import RawStore
from models.warehouse.tables import ContactActivity, RawRecord
from pipelines.canonical import canonical_config
from pipelines.clients import clients_for
from pipelines.extract import run_extract
from pipelines.settings import SOURCES, load_settings
from pipelines.streams import STREAMS

REGIONS = {"linkflow": "CN", "clicksend": "US", "clickfunnels": "US", "zoho_crm": "US", "zoho_bigin": "US"}
T = TypeVar("T")


def timed(label: str, fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    print(f"  {label:<62} {seconds:8.2f} s", flush=True)
    return result, seconds


def extract(settings: Any, store: RawStore) -> int:
    with clients_for(settings, SOURCES) as clients:
        return sum(run_extract(stream, clients, store).counts.read for stream in STREAMS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--change", type=float, default=1.0, help="percent of people changed")
    parser.add_argument(
        "--database-url", default=None, help="an empty warehouse; default SQLite in a temp dir"
    )
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="bench_incremental_")
    url = args.database_url or f"sqlite:///{Path(folder) / 'warehouse.db'}"
    with running_emulator(seed=args.seed, people=args.people) as emu:
        values: dict[str, Any] = {name.lower(): value for name, value in emu.env().items()}
        settings = load_settings(
            **values,
            contact_sync_database_url=url,
            contact_sync_maton_rps=10_000.0,
            contact_sync_linkflow_rps=10_000.0,
        )
        engine = open_warehouse(url)
        store = RawStore(engine)
        config = canonical_config(settings, REGIONS)
        print(f"{args.people:,} people, {url.split(':', 1)[0]}")
        timed("extract (first)", lambda: extract(settings, store))
        with engine.connect() as connection:
            records = connection.execute(sa.select(sa.func.count()).select_from(RawRecord)).scalar_one()
        print(f"  raw records: {records:,}")
        timed("canonical (full)", lambda: build_canonical_incremental(engine, config, run_id="r1"))
        timed("activity (first, full)", lambda: build_activity(engine, REGIONS))
        for name in CHECKS:
            timed(
                f"check {name} (first, whole)", lambda n=name: run_check(n, engine, "r1", timedelta(hours=24))
            )

        changed = max(1, int(args.people * args.change / 100))
        emu.mutate(
            seed=args.seed + 1,
            new=changed // 4,
            updated=changed // 2,
            deleted=changed // 4,
            events=changed,
            messages=changed,
        )
        print(
            f"after a {args.change}% change ({changed:,} people new, edited or deleted; "
            "as many new events and messages)"
        )
        timed("extract (incremental)", lambda: extract(settings, store))
        report, _ = timed(
            "canonical (incremental)", lambda: build_canonical_incremental(engine, config, run_id="r2")
        )
        print(f"    records loaded {report.records:,}, merges {report.merges}, splits {report.splits}")
        inc, inc_s = timed("activity incremental", lambda: build_activity(engine, REGIONS))
        print(
            f"    written {inc.rows_written:,}, removed {inc.rows_removed:,}, "
            f"keys re-linked {inc.keys_relinked:,}"
        )
        scoped_total = whole_total = 0.0
        for name, check in CHECKS.items():
            result, seconds = timed(f"check {name} (this run's changes)", lambda c=check: c(engine, "r2"))
            assert result.passed, result.description
            scoped_total += seconds
        # The same state, the way every run worked before: activity rebuilt, checks over everything.
        before = _activity(engine)
        full, full_s = timed(
            "activity full rebuild (as before)", lambda: build_activity(engine, REGIONS, full=True)
        )
        assert _activity(engine) == before, "incremental activity differs from a full rebuild"
        for name, check in CHECKS.items():
            _, seconds = timed(f"check {name} (whole, as before)", lambda c=check: c(engine, None))
            whole_total += seconds
        print(
            f"summary: activity {inc_s:.2f} s incremental vs {full_s:.2f} s full ({full.activity:,} rows); "
            f"checks {scoped_total:.2f} s scoped vs {whole_total:.2f} s whole"
        )


def _activity(engine: Any) -> dict[str, Any]:
    with engine.connect() as connection:
        return dict(
            connection.execute(sa.select(ContactActivity.activity_id, ContactActivity.contact_id)).all()
        )


if __name__ == "__main__":
    main()
