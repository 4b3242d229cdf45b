"""Our own writes read back from the push ledger for a few records, on the real warehouses.

The incremental canonical step asks for the records in its scope only, a rebuild for each slice of
records it reads; `own_writes_of` asks per destination and object, so each is an index probe. It must
give exactly the writes that went out (or may have) to those records, and no others.
"""

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from models.identity.own_writes import own_writes_of
from models.warehouse.db import open_warehouse
from models.warehouse.tables import PushLedger
from tests.models.push.test_ledger_indexes import query_plans, table_scans

AT = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def _ledger_row(destination: str, obj: str, record_id: str, field: str, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "run_id": "r1",
        "destination": destination,
        "object": obj,
        "record_id": record_id,
        "contact_id": "C1",
        "field": field,
        "before_value": None,
        "after_value": f"{field} of {record_id}",
        "reason": "fill",
        "status": "sent",
        "attempts": 1,
        "dry_run": False,
        "created_at": AT,
        "updated_at": AT,
        "record_modified_at": AT,
    }
    return {**row, **changes}


def test_the_records_writes_and_only_theirs(warehouse_url: str) -> None:
    engine = open_warehouse(warehouse_url)
    rows = [
        # Records asked for, across two destinations.
        *(_ledger_row("zoho_crm", "lead", str(n), "Email") for n in range(1, 6)),
        _ledger_row("zoho_crm", "lead", "2", "Phone", run_id="r2"),
        _ledger_row("linkflow", "contact", "9", "email"),
        # The same id elsewhere: not the records asked for.
        _ledger_row("linkflow", "contact", "1", "email"),
        _ledger_row("zoho_crm", "contact", "3", "Email"),
        # Not writes that went out: a dry run, and one the destination refused.
        _ledger_row("zoho_crm", "lead", "4", "Phone", run_id="r3", dry_run=True),
        _ledger_row("zoho_crm", "lead", "5", "Phone", run_id="r3", status="rejected"),
    ]
    with engine.begin() as connection:
        connection.execute(sa.insert(PushLedger), rows)
    asked = pd.DataFrame(
        [("zoho_crm", "lead", str(n)) for n in range(1, 6)] + [("linkflow", "contact", "9")],
        columns=["source", "object", "source_id"],
    )

    with engine.connect() as connection:
        found = own_writes_of(connection, asked)
        nothing = own_writes_of(connection, asked.iloc[:0])

    assert _writes(found) == sorted(
        [
            ("linkflow", "contact", "9", (("email", "email of 9"),)),
            *(("zoho_crm", "lead", str(n), (("Email", f"Email of {n}"),)) for n in range(1, 6)),
            ("zoho_crm", "lead", "2", (("Phone", "Phone of 2"),)),
        ]
    )
    assert nothing.empty
    assert list(nothing.columns) == list(found.columns)


def _writes(frame: pd.DataFrame) -> list[tuple[str, str, str, tuple[tuple[str, Any], ...]]]:
    """Each write as its record and the fields it sent (in the order the ledger gives them)."""
    return sorted(
        (str(s), str(o), str(i), tuple(sorted(sent.items())))
        for s, o, i, sent in frame.loc[:, ["source", "object", "source_id", "sent"]].itertuples(index=False)
    )


def test_the_records_writes_are_read_through_the_record_index(sqlite_url: str) -> None:
    """Without statistics, SQLite (and PostgreSQL before its first ANALYZE) read the writes of a few
    records through the (destination, object, status, updated_at) index, every row of the destination
    in the written statuses: a rebuild reads its writes a slice of records at a time, so that walk
    went quadratic. The status is left to no index, and the record key leads."""
    engine = open_warehouse(sqlite_url)
    with engine.begin() as connection:
        connection.execute(sa.insert(PushLedger), [_ledger_row("zoho_crm", "lead", "1", "Email")])
    asked = pd.DataFrame([("zoho_crm", "lead", "1")], columns=["source", "object", "source_id"])

    def read() -> None:
        with engine.connect() as connection:
            own_writes_of(connection, asked)

    plans = query_plans(engine, read)
    assert plans
    assert all("USING INDEX ix_push_ledger_destination_record " in plan for plan in plans), plans
    assert table_scans(plans) == []
