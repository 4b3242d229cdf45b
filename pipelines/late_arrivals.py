"""Before reverse sync creates into a destination: what it gained since the extract, read once a run,
and the creates it holds back recorded in the ledger (`models.push.late_arrivals` says why)."""

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.engine import Engine

from connectors.clickfunnels import ClickFunnelsContactCursor
from connectors.clicksend import ClickSendListContactCursor
from connectors.errors import ConnectorError
from connectors.factory import Clients
from connectors.linkflow import LinkflowContactCursor
from connectors.stop import STOP
from connectors.zoho import ZohoCursor
from models.push import ledger as push_ledger
from models.push.late_arrivals import GUARDED_CREATES, held_back
from models.push.plan import RecordChange, SendableRows
from models.warehouse.store import RawStore, StreamKey, payloads_by_source_id
from models.warehouse.tables import utcnow
from pipelines.clients import zoho_module

Arrivals = tuple[list[dict[str, Any]], dict[str, Any]]
"""A list's or account's contacts updated since the extract, and the payloads the warehouse holds of
them by id."""


_Reader = Callable[[Clients, str, str, dict[str, Any]], list[dict[str, Any]]]
"""(clients, object, list or workspace id, the extract's stored cursor) -> the records gained since."""


class LateArrivals:
    """One destination's guard for a run: the recent records of each list (ClickSend), workspace
    (ClickFunnels), module (Zoho) or of the account (Linkflow, whose creates name a channel, not a
    container) are read before the first create into it and kept for the run's later parts, which then
    never mistake our own creates for someone else's."""

    def __init__(
        self, engine: Engine, clients: Clients, destination: str, obj: str, *, region: str | None
    ) -> None:
        self.engine, self.clients, self.region = engine, clients, region
        self.destination, self.obj = destination, obj
        self._arrived: dict[str, Arrivals | ConnectorError] = {}

    def without_held(
        self, changes: Sequence[RecordChange], rows: SendableRows, *, log: Callable[[str], None]
    ) -> tuple[list[RecordChange], int]:
        """``changes`` less the creates held back, whose rows end ``unchanged`` with the reason (the
        next run plans them again, as every row of this one); and how many rows that was."""
        creates = [change for change in changes if change.is_create]
        if (self.destination, self.obj) not in GUARDED_CREATES or not creates:
            return list(changes), 0
        reasons: dict[str, str] = {}
        for where in sorted({self._container(change) for change in creates}):
            into = [change for change in creates if self._container(change) == where]
            arrived = self._read(where)
            name = _place(self.destination, where)
            if isinstance(arrived, ConnectorError):
                why = (
                    f"not created: {name} could not be read for contacts added since the "
                    f"extract ({arrived}); planned again next run"
                )
                reasons.update(dict.fromkeys((change.contact_id for change in into), why))
                continue
            records, stored = arrived
            reasons.update(
                held_back(
                    into,
                    records,
                    stored,
                    destination=self.destination,
                    obj=self.obj,
                    region=self.region,
                    container=name,
                )
            )
        if not reasons:
            return list(changes), 0
        held = [change for change in creates if change.contact_id in reasons]
        marks: dict[tuple[str, str | None, int], list[int]] = {}
        for change in held:
            ids = rows.ledger_id[rows.positions([change])].tolist()
            marks.setdefault(("unchanged", reasons[change.contact_id], 0), []).extend(ids)
        outcome = push_ledger.CallOutcome(marks=marks, new_ids={}, results={}, at=utcnow())
        push_ledger.record_call(self.engine, [outcome], checkpoint=STOP.check)
        log(
            f"reverse sync {self.destination}/{self.obj}: {len(held)} creates held back "
            f"({next(iter(reasons.values()))}"
            + (f"; {len(held) - 1} more in the ledger" if len(held) > 1 else "")
            + ")"
        )
        kept = [change for change in changes if not (change.is_create and change.contact_id in reasons)]
        return kept, sum(len(ids) for ids in marks.values())

    def _container(self, change: RecordChange) -> str:
        """Where a create lands, as far as what it can meet there goes: a ClickSend list, a
        ClickFunnels workspace (its parent); a Linkflow account or a Zoho system as a whole ("")."""
        return str(change.parent_id) if self.destination in ("clicksend", "clickfunnels") else ""

    def _read(self, where: str) -> Arrivals | ConnectorError:
        """The records of the list, workspace, account or system updated since the extract's
        watermark for them, lookback included, with the payloads the warehouse holds of them; the
        error instead when they cannot be read, which holds every create into it back. Both are read
        once a run, whatever its parts. In Zoho CRM both modules are read: the person added as a
        contact would be created again as a lead (one request more)."""
        if where not in self._arrived:
            records: list[dict[str, Any]] = []
            stored: dict[str, Any] = {}
            try:
                for obj in _OBJECTS_MET.get((self.destination, self.obj), (self.obj,)):
                    key = StreamKey(self.destination, obj)
                    cursor = RawStore(self.engine).cursor(key) or {}
                    found = _READERS[self.destination](self.clients, obj, where, cursor)
                    ids = [str(record.get(GUARDED_CREATES[(self.destination, obj)])) for record in found]
                    records.extend(found)
                    stored.update(payloads_by_source_id(self.engine, key, ids))
            except ConnectorError as error:
                self._arrived[where] = error
            else:
                self._arrived[where] = (records, stored)
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


def _clicksend(clients: Clients, obj: str, where: str, cursor: dict[str, Any]) -> list[dict[str, Any]]:
    watermark = ClickSendListContactCursor.from_json(cursor).updated_after.get(where)
    return list(_client(clients, "clicksend").list_contacts_since(where, watermark))


def _clickfunnels(clients: Clients, obj: str, where: str, cursor: dict[str, Any]) -> list[dict[str, Any]]:
    mark = ClickFunnelsContactCursor.from_json(cursor).updated_at.get(where)
    return list(_client(clients, "clickfunnels").contacts_since(where, mark))


def _linkflow(clients: Clients, obj: str, where: str, cursor: dict[str, Any]) -> list[dict[str, Any]]:
    since = LinkflowContactCursor.from_json(cursor)
    return list(_client(clients, "linkflow").contacts_since(since if since.updated_until else None))


def _zoho(destination: str) -> _Reader:
    def read(clients: Clients, obj: str, where: str, cursor: dict[str, Any]) -> list[dict[str, Any]]:
        since = ZohoCursor.from_json(cursor)
        return list(_client(clients, destination).modified_since(zoho_module(obj), since))

    return read


_READERS: dict[str, _Reader] = {
    "clicksend": _clicksend,
    "clickfunnels": _clickfunnels,
    "linkflow": _linkflow,
    "zoho_crm": _zoho("zoho_crm"),
    "zoho_bigin": _zoho("zoho_bigin"),
}
