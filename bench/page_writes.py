"""Benchmark: the extract's page writes alone, on real payloads, without HTTP or Dagster.

Copies a kept SQLite warehouse (`bench/incremental_canonical.py --keep DIR` or `bench/scale.py --keep
DIR`), takes ``--records`` stored contact payloads of one stream, and writes them back through
`RawStore.write_page` in pages of 200, four times: as they are (every record re-read unchanged: a
content hash each, then a ``last_seen_at`` stamp), with one field changed (hashed and rewritten),
unchanged again, changed again. Prints wall and CPU seconds of each pass. Run it from another checkout
with ``PYTHONPATH`` pointing there to compare two versions on the same payloads:

    python bench/page_writes.py /tmp/ic/warehouse_100000.db --records 20000
    PYTHONPATH=/tmp/before python bench/page_writes.py /tmp/ic/warehouse_100000.db
"""

import argparse
import json
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from models.warehouse.db import open_warehouse
from models.warehouse.store import RawRow, RawStore, StreamKey

PAGE = 200


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("warehouse", type=Path, help="a kept SQLite warehouse file (copied, never written)")
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--source", default="zoho_crm")
    parser.add_argument("--object", default="contact")
    parser.add_argument("--stream", default="contacts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "warehouse.db"
        shutil.copy(args.warehouse, copy)
        with sqlite3.connect(copy) as raw:
            query = "SELECT source_id, payload FROM raw_records WHERE source = ? AND object = ?"
            query += " ORDER BY id LIMIT ?"
            stored = [
                (source_id, json.loads(text))
                for source_id, text in raw.execute(query, (args.source, args.object, args.records))
            ]
        store = RawStore(open_warehouse(f"sqlite:///{copy}"))
        key = StreamKey(args.source, args.object, args.stream)

        def write(label: str, payload_of: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
            pages = [
                [
                    RawRow(source_id, payload_of(payload))
                    for source_id, payload in stored[start : start + PAGE]
                ]
                for start in range(0, len(stored), PAGE)
            ]
            wall, cpu = time.perf_counter(), time.process_time()
            counts = [store.write_page(key, page, move_cursor=False) for page in pages]
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            written = sum(c.inserted + c.updated for c in counts)
            print(
                f"  {label:<10} {len(stored):,} records ({written:,} written) {wall:.2f} s, CPU {cpu:.2f} s",
                flush=True,
            )

        print(f"{len(stored):,} {args.source} {args.object} payloads in pages of {PAGE}")
        write("unchanged", lambda payload: payload)
        write("changed", lambda payload: {**payload, "Description": "changed"})
        write("unchanged", lambda payload: {**payload, "Description": "changed"})
        write("changed", lambda payload: {**payload, "Description": "changed again"})


if __name__ == "__main__":
    main()
