"""What a sync left in the warehouse, in a form two warehouses can be compared by.

Contact ids and timestamps differ between two runs by design, so contacts are keyed by the set of
source records they hold: two warehouses agree when the same records form the same contacts with the
same golden fields.
"""

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from models.warehouse.db import open_warehouse
from models.warehouse.tables import Contact, ContactSource, RawRecord

RecordKey = tuple[str, str, str]
GOLDEN_FIELDS = ("email", "phone", "first_name", "last_name", "company", "title", "city", "country")


@dataclass(frozen=True)
class WarehouseSnapshot:
    raw: frozenset[tuple[str, str, str, str, bool]]
    clusters: frozenset[frozenset[RecordKey]]
    golden: dict[frozenset[RecordKey], tuple[Any, ...]]


def snapshot(url: str) -> WarehouseSnapshot:
    """Raw ids with content hashes, the contacts as record sets, and each contact's golden fields."""
    with open_warehouse(url).connect() as connection:
        raw = frozenset(
            (source, obj, source_id, content_hash, deleted_at is None)
            for source, obj, source_id, content_hash, deleted_at in connection.execute(
                sa.select(
                    RawRecord.source,
                    RawRecord.object,
                    RawRecord.source_id,
                    RawRecord.content_hash,
                    RawRecord.deleted_at,
                )
            )
        )
        members: dict[str, set[RecordKey]] = defaultdict(set)
        for contact_id, source, obj, source_id in connection.execute(
            sa.select(
                ContactSource.contact_id, ContactSource.source, ContactSource.object, ContactSource.source_id
            ).where(ContactSource.contact_id.is_not(None))
        ):
            members[str(contact_id)].add((source, obj, source_id))
        columns = [getattr(Contact, name) for name in GOLDEN_FIELDS]
        fields = {
            row[0]: tuple(row[1:])
            for row in connection.execute(sa.select(Contact.contact_id, *columns, Contact.source_count))
        }
    golden = {frozenset(records): fields[contact_id] for contact_id, records in members.items()}
    return WarehouseSnapshot(raw=raw, clusters=frozenset(golden), golden=golden)


def assert_same_warehouse(actual: WarehouseSnapshot, expected: WarehouseSnapshot) -> None:
    """Field by field, so a failure names what differs rather than dumping two large sets."""
    assert expected.raw, "the reference warehouse is empty"
    assert actual.raw - expected.raw == set(), "rows the reference does not have"
    assert expected.raw - actual.raw == set(), "rows missing or with different content"
    assert actual.clusters == expected.clusters, "contacts are grouped differently"
    different = {k: (actual.golden[k], v) for k, v in expected.golden.items() if actual.golden[k] != v}
    assert different == {}, "golden fields differ (actual, expected)"
