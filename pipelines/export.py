"""Exports of the golden contacts and the unified activity, streamed in chunks to CSV or JSON lines."""

import json
import sys
from contextlib import ExitStack
from typing import IO, Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models.warehouse.tables import Contact, ContactActivity

_TABLES: dict[str, sa.Select[Any]] = {
    "contacts": sa.select(Contact.__table__).order_by(Contact.contact_id),
    "activity": sa.select(ContactActivity.__table__).order_by(
        ContactActivity.occurred_at, ContactActivity.activity_id
    ),
}
_CHUNK_ROWS = 50_000


def _write_chunk(frame: pd.DataFrame, stream: IO[str], fmt: str, first: bool) -> None:
    if fmt == "csv":
        # JSON objects (the mapped fields in `custom`) as JSON text a spreadsheet or a script can read.
        for name in frame.columns[frame.map(lambda v: isinstance(v, dict)).any().to_numpy()]:
            frame[name] = [
                json.dumps(v, ensure_ascii=False) if isinstance(v, dict) else v for v in frame[name]
            ]
        frame.to_csv(stream, index=False, header=first)
    elif not frame.empty:
        frame.to_json(stream, orient="records", lines=True, force_ascii=False, date_format="iso")


def export_table(engine: Engine, table: str, fmt: str, output: str | None) -> int:
    """Write ``table`` to ``output`` (stdout when None) and return the number of rows written."""
    written = 0
    with ExitStack() as stack:
        stream = sys.stdout if output is None else stack.enter_context(open(output, "w", encoding="utf-8"))
        connection = stack.enter_context(engine.connect())
        for index, frame in enumerate(pd.read_sql(_TABLES[table], connection, chunksize=_CHUNK_ROWS)):
            _write_chunk(frame, stream, fmt, first=index == 0)
            written += len(frame)
    return written
