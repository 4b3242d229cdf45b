"""`key_in`: one statement with one bound array, whatever the number of keys."""

import numpy as np
import sqlalchemy as sa

from models.warehouse.db import open_warehouse
from models.warehouse.key_lists import key_in
from models.warehouse.tables import Contact, ContactIdentifier, RawRecord, utcnow

#: More keys than SQLite's 32,766 bound parameters: a literal IN list of them could not run at all.
MANY = 40_000


def _seed(engine: sa.Engine) -> None:
    now = utcnow()
    with engine.begin() as connection:
        connection.execute(
            sa.insert(RawRecord),
            [
                {
                    "id": key,
                    "source": "zoho_crm",
                    "object": "contact",
                    "source_id": f"s{key}",
                    "payload": {},
                    "content_hash": "h",
                    "first_seen_at": now,
                    "last_seen_at": now,
                    "changed_at": now,
                }
                for key in range(1, 21)
            ],
        )
        connection.execute(
            sa.insert(ContactIdentifier),
            [
                {
                    "raw_record_id": key,
                    "kind": "email",
                    "field": "Email",
                    "raw_value": "x",
                    "value": f"v{key}",
                }
                for key in range(1, 21)
            ],
        )


def test_integer_and_text_keys_find_exactly_their_rows(warehouse_url: str) -> None:
    engine = open_warehouse(warehouse_url)
    _seed(engine)
    wanted = np.array([3, 7, 7, 19, 25], dtype=np.int64)  # numpy ints, a repeat, a key with no row
    with engine.connect() as connection:
        by_key = connection.execute(
            sa.select(RawRecord.id).where(key_in(connection, RawRecord.id, wanted)).order_by(RawRecord.id)
        ).scalars()
        assert list(by_key) == [3, 7, 19]
        by_value = connection.execute(
            sa.select(ContactIdentifier.raw_record_id)
            .where(
                ContactIdentifier.kind == "email",
                key_in(connection, ContactIdentifier.value, ["v2", "v20", "v200", "it's"]),
            )
            .order_by(ContactIdentifier.raw_record_id)
        ).scalars()
        assert list(by_value) == [2, 20]
        none = connection.execute(sa.select(RawRecord.id).where(key_in(connection, RawRecord.id, []))).all()
        assert none == []


def test_more_keys_than_a_statement_takes_parameters_in_one_statement(warehouse_url: str) -> None:
    engine = open_warehouse(warehouse_url)
    _seed(engine)
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    keys = [f"v{n}" for n in range(MANY)]
    with engine.connect() as connection:
        found = connection.execute(
            sa.select(sa.func.count()).where(key_in(connection, ContactIdentifier.value, keys))
        ).scalar_one()
        few = sa.select(sa.func.count()).where(key_in(connection, ContactIdentifier.value, keys[:3]))
        connection.execute(few).scalar_one()
    assert found == 20
    assert len(statements) == 2
    assert statements[0] == statements[1]  # the same text for 40,000 keys and 3: compiled once


def test_contact_ids_compare_as_text(warehouse_url: str) -> None:
    engine = open_warehouse(warehouse_url)
    now = utcnow()
    with engine.begin() as connection:
        connection.execute(
            sa.insert(Contact),
            [
                {"contact_id": f"C{n:04d}", "created_at": now, "updated_at": now, "source_count": 1}
                for n in range(5)
            ],
        )
    with engine.connect() as connection:
        found = connection.execute(
            sa.select(Contact.contact_id).where(
                key_in(connection, Contact.contact_id, ["C0001", "C0004", "1"])
            )
        ).scalars()
        assert sorted(found) == ["C0001", "C0004"]
