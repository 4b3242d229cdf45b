"""How many source records link to a golden contact, per source, kept current by each canonical run.

The ``canonical/contacts`` materialization plots this number per source across runs. Counting it
means joining every contact_sources row to its raw record, which grows with the warehouse: at a
million records it costs a sizeable share of an incremental run's whole budget. So each run stores
it in stream_state (canonical / contacts / sources) in the same transaction as its results: a full
rebuild counts everything, an incremental run adds what its own records moved (the records it
re-resolved and the deleted ones are the only rows of contact_sources it writes).

What is counted is the contact_sources rows with a contact: only live records get one (a full rebuild
reads live records only; an incremental run deletes the rows of deleted ones), so right after a run
it equals `models.identity.lookup.records_per_source`, which tests pin.
"""

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from models.warehouse.key_lists import key_in
from models.warehouse.store import StreamKey, read_cursor, store_cursor
from models.warehouse.tables import ContactSource, utcnow

KEY = StreamKey("canonical", "contacts", "sources")


def linked_per_source(connection: Connection, record_keys: Iterable[int] | None = None) -> dict[str, int]:
    """contact_sources rows with a contact, per source: of ``record_keys`` (one statement, an index probe
    per key: `models.warehouse.key_lists`), or of the whole table when None."""
    query = (
        sa.select(ContactSource.source, sa.func.count())
        .where(ContactSource.contact_id.is_not(None))
        .group_by(ContactSource.source)
    )
    if record_keys is None:
        return {str(source): int(n) for source, n in connection.execute(query).all()}
    keys = sorted({int(key) for key in record_keys})
    if not keys:
        return {}
    rows = connection.execute(query.where(key_in(connection, ContactSource.raw_record_id, keys))).all()
    return {str(source): int(n) for source, n in rows}


def stored(connection: Connection) -> dict[str, int] | None:
    """The counts the last canonical run stored; None before any run stored them."""
    cursor = read_cursor(connection, KEY)
    if not cursor or not isinstance(cursor.get("linked"), dict):
        return None
    return {str(source): int(n) for source, n in cursor["linked"].items()}


def forget(connection: Connection) -> None:
    """Before a full rebuild: what it replaces is no longer counted, so a rebuild that dies before it
    stores its own counts leaves none, and the next run counts everything again."""
    store_cursor(connection, KEY, {"linked": None}, utcnow())


def store_counted(connection: Connection) -> None:
    """Count every linked record and store it (a full rebuild, or a warehouse without counts yet)."""
    _store(connection, linked_per_source(connection))


def store_moved(connection: Connection, before: dict[str, int], after: dict[str, int]) -> None:
    """The stored counts moved by what an incremental run's records counted before and after its writes
    (``before`` read before them, in the same transaction); counted whole when none is stored yet."""
    current = stored(connection)
    if current is None:
        store_counted(connection)
        return
    for source in {*before, *after}:
        current[source] = current.get(source, 0) + after.get(source, 0) - before.get(source, 0)
    _store(connection, {source: n for source, n in current.items() if n})


def _store(connection: Connection, counts: dict[str, int]) -> None:
    store_cursor(connection, KEY, {"linked": dict(sorted(counts.items()))}, utcnow())
