"""Before reverse sync creates into a ClickSend list or a Linkflow account: what it gained since the
extract, read once a run, and the creates it holds back recorded in the ledger
(`models.push.late_arrivals` says why)."""

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.engine import Engine

from connectors.clicksend import ClickSendListContactCursor
from connectors.errors import ConnectorError
from connectors.factory import Clients
from connectors.linkflow import LinkflowContactCursor
from connectors.stop import STOP
from models.push import ledger as push_ledger
from models.push.late_arrivals import GUARDED_CREATES, held_back
from models.push.plan import RecordChange, SendableRows
from models.warehouse.store import RawStore, StreamKey, payloads_by_source_id
from models.warehouse.tables import utcnow

Arrivals = tuple[list[dict[str, Any]], dict[str, Any]]
"""A list's or account's contacts updated since the extract, and the payloads the warehouse holds of
them by id."""


class LateArrivals:
    """One destination's guard for a run: the recent contacts of each list (ClickSend) or of the account
    (Linkflow, whose creates name a channel, not a container) are read before the first create into it
    and kept for the run's later parts, which then never mistake our own creates for someone else's."""

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
            name = f"list {where}" if where else "Linkflow"
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
        """Where a create lands as far as what it can meet there goes: a ClickSend list; a Linkflow
        account as a whole ("")."""
        return str(change.parent_id) if self.destination == "clicksend" else ""

    def _read(self, where: str) -> Arrivals | ConnectorError:
        """The contacts of the list (or account) updated since the extract's watermark for it, lookback
        included, with the payloads the warehouse holds of them; the error instead when they cannot
        be read, which holds every create into it back. Both are read once a run, whatever its
        parts."""
        if where not in self._arrived:
            key = StreamKey(self.destination, self.obj)
            cursor = RawStore(self.engine).cursor(key) or {}
            try:
                records = self._recent(where, cursor)
            except ConnectorError as error:
                self._arrived[where] = error
            else:
                ids = [str(record.get(GUARDED_CREATES[(self.destination, self.obj)])) for record in records]
                self._arrived[where] = (records, payloads_by_source_id(self.engine, key, ids))
        return self._arrived[where]

    def _recent(self, where: str, cursor: dict[str, Any]) -> list[dict[str, Any]]:
        if self.destination == "clicksend":
            if self.clients.clicksend is None:
                raise RuntimeError("clicksend: no client to read the list with")
            watermark = ClickSendListContactCursor.from_json(cursor).updated_after.get(where)
            return self.clients.clicksend.list_contacts_since(where, watermark)
        if self.clients.linkflow is None:
            raise RuntimeError("linkflow: no client to read the contacts with")
        since = LinkflowContactCursor.from_json(cursor)
        return self.clients.linkflow.contacts_since(since if since.updated_until else None)
