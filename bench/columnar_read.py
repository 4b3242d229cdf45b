"""How fast the rebuild's first phase could go in a columnar engine: a measurement for a design decision.

Issue 14 asks for a canonical full rebuild within twice Splink's time. Most of ours moves data between
the warehouse and Python objects: at a million records the rebuild's phase that reads the payloads and
makes their fields, contact points and consent takes 34 to 41 s (`bench/rebuild_phases.py`), where
Splink on DuckDB normalises, links and clusters in 2.2 to 5.7 s, starting from a frame of each
record's email and phone that `bench/scale.py` reads for it, untimed. Whether a columnar engine would
close that gap is a question for the people who plan the work (it means a new runtime dependency and
the warehouse read through it), so this measures the first part of the answer on a warehouse kept by
``bench/scale.py --keep DIR``: every live contact record's id and the payload values its layout reads
(`models.normalise.layouts`: names, company, title, city, country, emails, phones, the modification
time), as text, by

- **Python**, the way the rebuild reads them: ``sqlite3`` rows, each payload parsed by orjson
  (`models.warehouse.json_text.loads`), each path looked up in the dict; and
- **Arrow**: the ids and payload texts read by ADBC's SQLite driver straight into Arrow columns, the
  payloads of each source object parsed by pyarrow's JSON reader (C++, several threads) with an
  explicit schema of only the paths read, each as the JSON type a sample of payloads shows, then
  made text.

Both read the same rows and end with the same values (checked, and the count of values that differ
printed, if any). Neither normalises nor links: this is the read and the parse only.

    python3.11 -m venv /tmp/venv-col && /tmp/venv-col/bin/pip install -e '.[bench]'
    /tmp/venv-col/bin/python bench/columnar_read.py /tmp/wh --runs 3

pyarrow (through Splink) and the ADBC driver come with the ``bench`` extra, never the runtime: in a
venv of its own, as bench/README.md says for Splink.
"""

import argparse
import sqlite3
import time
from pathlib import Path
from typing import Any

from models.normalise.fields import _lookup
from models.normalise.layouts import LAYOUTS
from models.warehouse.json_text import loads

LIVE_CONTACTS = (
    "SELECT id, payload FROM raw_records WHERE source = ? AND object = ? AND deleted_at IS NULL ORDER BY id"
)


def _as_text(value: Any) -> str | None:
    """A payload value as the text both readers compare: None stays None, a number its JSON text."""
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def python_read(database: Path) -> dict[tuple[str, str], dict[str, list[Any]]]:
    """Per source object: the ids, then each path's values, through Python objects."""
    found: dict[tuple[str, str], dict[str, list[Any]]] = {}
    with sqlite3.connect(database) as connection:
        for (source, obj), layout in LAYOUTS.items():
            columns: dict[str, list[Any]] = {"id": []} | {path: [] for path in layout.paths}
            for record_id, payload_text in connection.execute(LIVE_CONTACTS, (source, obj)):
                payload = loads(payload_text)
                columns["id"].append(record_id)
                for path in layout.paths:
                    columns[path].append(_as_text(_lookup(payload, path)))
            found[(source, obj)] = columns
    return found


#: The Arrow reader's seconds in ADBC's read of the rows and in preparing and parsing the JSON.
ARROW_SECONDS = {"read": 0.0, "parse": 0.0}


def arrow_read(database: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """The same through Arrow: ADBC reads the rows, pyarrow's JSON reader parses the payloads. The
    values stay in Arrow columns, as a columnar rebuild would keep them."""
    import adbc_driver_sqlite.dbapi as adbc
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    found: dict[tuple[str, str], dict[str, Any]] = {}
    with adbc.connect(str(database)) as connection, connection.cursor() as cursor:
        for (source, obj), layout in LAYOUTS.items():
            started = time.perf_counter()
            cursor.execute(LIVE_CONTACTS, (source, obj))
            table = cursor.fetch_arrow_table()
            ARROW_SECONDS["read"] += time.perf_counter() - started
            started = time.perf_counter()
            # One JSON document a line (the payloads are stored compact, one line each): each text
            # given a newline, and the values buffer of the result is the whole file.
            lines = pc.binary_join_element_wise(table["payload"].cast(pa.string()), "", "\n").combine_chunks()
            offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[
                lines.offset : lines.offset + len(lines) + 1
            ]
            start, end = int(offsets[0]), int(offsets[-1])
            text = lines.buffers()[2][start:end]
            schema = _schema(layout.paths, _kinds(table["payload"][:100].to_pylist(), layout.paths), pa)
            parsed = pj.read_json(
                pa.BufferReader(text),
                parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
            )
            columns: dict[str, Any] = {"id": table["id"]}
            for path in layout.paths:
                column: Any = parsed
                for key in path.split("."):
                    column = column[key] if isinstance(column, pa.Table) else pc.struct_field(column, key)
                columns[path] = column if column.type == pa.string() else _json_text(column, pa, pc)
            ARROW_SECONDS["parse"] += time.perf_counter() - started
            found[(source, obj)] = columns
    return found


def _kinds(payloads: list[Any], paths: tuple[str, ...]) -> dict[str, type]:
    """The JSON type of each path's values in a sample of payloads: pyarrow's reader takes one type a
    column, and refuses a document whose value has another (a source that sends a time as a number
    in one record and as text in the next could not be read this way)."""
    kinds: dict[str, type] = {}
    for text in payloads:
        payload = loads(text)
        for path in paths:
            value = _lookup(payload, path)
            if value is not None and not isinstance(value, dict | list):
                kinds.setdefault(path, type(value))
    return kinds


def _json_text(column: Any, pa: Any, pc: Any) -> Any:
    """A numeric column as the text ``str()`` gives its values (integers without a decimal point)."""
    return pc.cast(column, pa.string())


def _schema(paths: tuple[str, ...], kinds: dict[str, type], pa: Any) -> Any:
    """The explicit schema of ``paths``: each as the type its sampled values have (text when none was
    seen), a dotted path as a struct."""
    arrow_types = {int: pa.int64(), float: pa.float64(), bool: pa.bool_()}
    nested: dict[str, Any] = {}
    for path in paths:
        node = nested
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node.setdefault(leaf, arrow_types.get(kinds.get(path, str), pa.string()))

    def to_type(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        return pa.struct([pa.field(key, to_type(child)) for key, child in node.items()])

    return pa.schema([pa.field(key, to_type(child)) for key, child in nested.items()])


def _differences(python: dict[Any, dict[str, list[Any]]], arrow: dict[Any, dict[str, Any]]) -> int:
    """Values that differ between the two readers (the Arrow columns made Python lists here, outside
    the timing)."""
    return sum(
        a != b
        for key, columns in python.items()
        for name, values in columns.items()
        for a, b in zip(values, arrow[key][name].to_pylist(), strict=True)
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("kept", type=Path, help="a folder bench/scale.py --keep left (its warehouse.db)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    database = args.kept / "warehouse.db"
    for run in range(args.runs):
        figures = []
        results: list[Any] = []
        for name, read in (("python", python_read), ("arrow", arrow_read)):
            started, cpu = time.perf_counter(), time.process_time()
            results.append(read(database))
            figures.append(
                f"{name} {time.perf_counter() - started:5.2f} s ({time.process_time() - cpu:5.2f} s CPU)"
            )
        split = f"arrow's read {ARROW_SECONDS['read']:.2f} s, parse {ARROW_SECONDS['parse']:.2f} s"
        ARROW_SECONDS.update(read=0.0, parse=0.0)
        records = sum(len(columns["id"]) for columns in results[0].values())
        differing = _differences(results[0], results[1])
        print(
            f"run {run + 1}: {records:,} live contact records; "
            + ", ".join(figures)
            + f" ({split}); {differing} values differ"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
