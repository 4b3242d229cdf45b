"""Before reverse sync writes into a destination: what changed there since the extract, read once a
run, and the writes it holds back recorded in the ledger (`models.push.late_arrivals` says why)."""

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from connectors.clickfunnels import ClickFunnelsContactCursor
from connectors.clicksend import ClickSendListContactCursor
from connectors.errors import ConnectorError
from connectors.factory import Clients
from connectors.linkflow import LinkflowContactCursor
from connectors.stop import STOP
from connectors.times import parse_instant
from connectors.zoho import ZohoCursor
from models.push import ledger as push_ledger
from models.push.late_arrivals import ID_FIELDS, changed_since_extract, held_back, unguarded_updates
from models.push.plan import RecordChange, SendableRows
from models.warehouse.store import RawStore, StreamKey, payloads_by_source_id
from models.warehouse.tables import utcnow
from pipelines.clients import zoho_module


class Arrivals:
    """The records of a list, workspace, system or account changed since the extract, with the
    payloads the warehouse holds of them, read by id when a check needs them (an update's own record;
    every record when a create is checked) and kept for the run's later parts."""

    def __init__(self, engine: Engine, destination: str) -> None:
        self.engine, self.destination = engine, destination
        self.records: list[dict[str, Any]] = []
        self._object_of: dict[str, str] = {}
        self._stored: dict[str, Any] = {}

    def add(self, obj: str, found: list[dict[str, Any]]) -> None:
        """The records of ``obj`` the destination listed."""
        self.records.extend(found)
        self._object_of.update({str(record.get(ID_FIELDS[(self.destination, obj)])): obj for record in found})

    def ids(self) -> list[str]:
        """The ids of every record listed."""
        return list(self._object_of)

    def stored(self, ids: Iterable[str]) -> dict[str, Any]:
        """id -> stored payload of those of ``ids`` among these records the warehouse holds."""
        wanted = {str(i) for i in ids if str(i) in self._object_of}
        missing: dict[str, list[str]] = {}
        for record_id in sorted(wanted - self._stored.keys()):
            missing.setdefault(self._object_of[record_id], []).append(record_id)
        for obj, record_ids in missing.items():
            key = StreamKey(self.destination, obj)
            self._stored.update(dict.fromkeys(record_ids))
            self._stored.update(payloads_by_source_id(self.engine, key, record_ids))
        return {i: self._stored[i] for i in wanted if self._stored.get(i) is not None}


_Reader = Callable[[Clients, str, str, dict[str, Any], datetime | None], list[dict[str, Any]]]
"""(clients, object, list or workspace id, the extract's stored cursor, the instant to read from)
-> the records changed since."""

LOOK_SKEW = timedelta(minutes=2)
"""The look reads from the extract's start less this, for the vendor's clock against ours: a record
changed after the extract read it was changed after that. Linkflow's times are wall-clock in a zone
we can only guess, so its look goes back from the extract's watermark (a record's own time) by as
long as has passed since the extract started, plus this. Without a complete extract to go by, each
reads from the stored watermark less the extract's own lookback."""


class LateArrivals:
    """One destination's guard for a run: the recent records of each list (ClickSend), workspace
    (ClickFunnels), module (Zoho) or of the account (Linkflow, whose creates name a channel, not a
    container) are read before the first write into it and kept for the run's later parts, which then
    never mistake our own writes for someone else's."""

    def __init__(
        self, engine: Engine, clients: Clients, destination: str, obj: str, *, region: str | None
    ) -> None:
        self.engine, self.clients, self.region = engine, clients, region
        self.destination, self.obj = destination, obj
        self._arrived: dict[str, Arrivals | ConnectorError] = {}

    def without_held(
        self, changes: Sequence[RecordChange], rows: SendableRows, *, log: Callable[[str], None]
    ) -> tuple[list[RecordChange], dict[str, int]]:
        """``changes`` less those held back, and how many rows ended in each state. A create the
        destination gained the person for ends ``unchanged`` (the next run plans it again, as every
        row of this one); an update whose record someone changed since the extract (on a destination
        whose writes carry no condition) ends ``conflict``, as Zoho's 412 does, and is planned again
        from the next extract. Where the look fails, both wait for the next run: nothing goes out
        blind."""
        if (self.destination, self.obj) not in ID_FIELDS:
            return list(changes), {}
        creates = [change for change in changes if change.is_create]
        unguarded = unguarded_updates(self.destination, self.obj)
        updates = [change for change in changes if not change.is_create] if unguarded else []
        held: list[tuple[RecordChange, str, str]] = []  # (the change, its rows' state, why)
        for where in sorted({self._container(change) for change in (*creates, *updates)}):
            into = [change for change in creates if self._container(change) == where]
            over = [change for change in updates if self._container(change) == where]
            arrived = self._read(where)
            name = _place(self.destination, where)
            if isinstance(arrived, ConnectorError):
                why = f"could not be read for changes since the extract ({arrived}); planned again next run"
                held += [(c, "unchanged", f"not created: {name} {why}") for c in into]
                held += [(c, "unchanged", f"not written: {name} {why}") for c in over]
                continue
            records = arrived.records
            options = {"destination": self.destination, "obj": self.obj}
            # A create is checked against every record listed, an update against its own only.
            needed = arrived.ids() if into else [str(c.record_id) for c in over]
            stored = arrived.stored(needed)
            gained = held_back(into, records, stored, region=self.region, container=name, **options)
            held += [(c, "unchanged", gained[c.contact_id]) for c in into if c.contact_id in gained]
            moved = changed_since_extract(over, records, stored, **options)
            held += [(c, "conflict", moved[str(c.record_id)]) for c in over if str(c.record_id) in moved]
        if not held:
            return list(changes), {}
        marks: dict[tuple[str, str | None, int], list[int]] = {}
        for change, state, why in held:
            marks.setdefault((state, why, 0), []).extend(rows.ledger_id[rows.positions([change])].tolist())
        outcome = push_ledger.CallOutcome(marks=marks, new_ids={}, results={}, at=utcnow())
        push_ledger.record_call(self.engine, [outcome], checkpoint=STOP.check)
        for kind, wanted in (("creates", True), ("updates", False)):
            whys = [why for change, _, why in held if change.is_create is wanted]
            if whys:
                more = f"; {len(whys) - 1} more in the ledger" if len(whys) > 1 else ""
                line = f"{len(whys)} {kind} held back ({whys[0]}{more})"
                log(f"reverse sync {self.destination}/{self.obj}: {line}")
        counts: dict[str, int] = {}
        for (state, _, _), ids in marks.items():
            counts[state] = counts.get(state, 0) + len(ids)
        gone = {id(change) for change, _, _ in held}
        return [change for change in changes if id(change) not in gone], counts

    def _container(self, change: RecordChange) -> str:
        """Where a write lands, as far as what it can meet there goes: a ClickSend list, a
        ClickFunnels workspace (its parent); a Linkflow account or a Zoho system as a whole ("")."""
        return str(change.parent_id) if self.destination in ("clicksend", "clickfunnels") else ""

    def _read(self, where: str) -> Arrivals | ConnectorError:
        """The records of the list, workspace, account or system changed since the extract
        (`LOOK_SKEW` says from when), with the payloads the warehouse holds of them; the error
        instead when they cannot be read, which holds every write into it back. Both are read once a
        run, whatever its parts. In Zoho CRM both modules are read: the person added as a contact
        would be created again as a lead (one request more)."""
        if where not in self._arrived:
            arrived = Arrivals(self.engine, self.destination)
            try:
                for obj in _OBJECTS_MET.get((self.destination, self.obj), (self.obj,)):
                    key = StreamKey(self.destination, obj)
                    cursor = RawStore(self.engine).cursor(key) or {}
                    started = push_ledger.read_started(self.engine, self.destination, obj)
                    after = None if started is None else _aware(started) - LOOK_SKEW
                    arrived.add(obj, _READERS[self.destination](self.clients, obj, where, cursor, after))
            except ConnectorError as error:
                self._arrived[where] = error
            else:
                self._arrived[where] = arrived
        return self._arrived[where]


#: The objects a create into one of these could duplicate the person in: Zoho CRM's leads and contacts
#: are one system (a contact is not created again as a lead), and their ids never collide.
_OBJECTS_MET = {("zoho_crm", "lead"): ("lead", "contact"), ("zoho_crm", "contact"): ("contact", "lead")}


def _place(destination: str, where: str) -> str:
    """How a reason names where the person arrived."""
    if destination == "clicksend":
        return f"list {where}"
    if destination == "clickfunnels":
        return f"workspace {where}"
    if destination == "linkflow":
        return "Linkflow"
    return "Zoho CRM" if destination == "zoho_crm" else "Zoho Bigin"


def _client(clients: Clients, destination: str) -> Any:
    client = getattr(clients, destination)
    if client is None:
        raise RuntimeError(f"{destination}: no client to read what it gained since the extract")
    return client


def _clicksend(
    clients: Clients, obj: str, where: str, cursor: dict[str, Any], after: datetime | None
) -> list[dict[str, Any]]:
    watermark = ClickSendListContactCursor.from_json(cursor).updated_after.get(where)
    return list(_client(clients, "clicksend").list_contacts_since(where, watermark, after=after))


def _clickfunnels(
    clients: Clients, obj: str, where: str, cursor: dict[str, Any], after: datetime | None
) -> list[dict[str, Any]]:
    stored = ClickFunnelsContactCursor.from_json(cursor)
    top = stored.newest_at_start.get(where)
    if after is not None and top is not None:
        # Both bound what changed after the extract read it; the later one reads less (the skew's
        # minutes before the extract, re-read for nothing when the workspace was busy).
        after = max(after, parse_instant(top))
    return list(
        _client(clients, "clickfunnels").contacts_since(where, stored.updated_at.get(where), after=after)
    )


def _linkflow(
    clients: Clients, obj: str, where: str, cursor: dict[str, Any], after: datetime | None
) -> list[dict[str, Any]]:
    since = LinkflowContactCursor.from_json(cursor)
    if not since.updated_until:
        return list(_client(clients, "linkflow").contacts_since(None))
    # The watermark is a record's own time, no later than the API's present: whatever changed after
    # the extract started, changed at most this long before that present (durations know no zone).
    back = None if after is None else utcnow() - after
    return list(_client(clients, "linkflow").contacts_since(since, lookback=back))


def _zoho(destination: str) -> _Reader:
    def read(
        clients: Clients, obj: str, where: str, cursor: dict[str, Any], after: datetime | None
    ) -> list[dict[str, Any]]:
        since = ZohoCursor.from_json(cursor)
        return list(_client(clients, destination).modified_since(zoho_module(obj), since, after=after))

    return read


_READERS: dict[str, _Reader] = {
    "clicksend": _clicksend,
    "clickfunnels": _clickfunnels,
    "linkflow": _linkflow,
    "zoho_crm": _zoho("zoho_crm"),
    "zoho_bigin": _zoho("zoho_bigin"),
}


def _aware(moment: datetime) -> datetime:
    """``moment`` as UTC where the warehouse handed it back without a zone (SQLite)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
