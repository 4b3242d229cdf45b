"""Before reverse sync creates into a ClickSend list: what the list gained since the extract, read once
a run, and the creates it holds back recorded in the ledger (`models.push.late_arrivals` says why)."""

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.engine import Engine

from connectors.clicksend import ClickSendListContactCursor
from connectors.errors import ConnectorError
from connectors.factory import Clients
from connectors.stop import STOP
from models.push import ledger as push_ledger
from models.push.late_arrivals import UNMATCHED_CREATES, held_back
from models.push.plan import RecordChange, SendableRows
from models.warehouse.store import RawStore, StreamKey, payloads_by_source_id
from models.warehouse.tables import utcnow

#: How a ClickSend list contact names itself, in its listing and in the warehouse's source ids.
CLICKSEND_ID = "contact_id"

Arrivals = tuple[list[dict[str, Any]], dict[str, Any]]
"""A list's contacts updated since the extract, and the payloads the warehouse holds of them by id."""


class LateArrivals:
    """One destination's guard for a run: each list's recent contacts are read before the first create
    into it and kept for the run's later parts, which then never mistake our own creates for someone
    else's."""

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
        if (self.destination, self.obj) not in UNMATCHED_CREATES or not creates:
            return list(changes), 0
        reasons: dict[str, str] = {}
        for list_id in sorted({str(change.parent_id) for change in creates}):
            into = [change for change in creates if str(change.parent_id) == list_id]
            arrived = self._read(list_id)
            if isinstance(arrived, ConnectorError):
                why = (
                    f"not created: list {list_id} could not be read for contacts added since the "
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
                    id_field=CLICKSEND_ID,
                    region=self.region,
                    container=f"list {list_id}",
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

    def _read(self, list_id: str) -> Arrivals | ConnectorError:
        """The list's contacts updated since the extract's watermark for it (lookback included), with
        the payloads the warehouse holds of them; the error instead when they cannot be read, which
        holds every create into the list back. Both are read once a run, whatever its parts."""
        if list_id not in self._arrived:
            client = self.clients.clicksend
            if client is None:
                raise RuntimeError("clicksend: no client to read the list with")
            key = StreamKey(self.destination, self.obj)
            cursor = RawStore(self.engine).cursor(key)
            watermark = ClickSendListContactCursor.from_json(cursor or {}).updated_after.get(list_id)
            try:
                records = list(client.list_contacts_since(list_id, watermark))
            except ConnectorError as error:
                self._arrived[list_id] = error
            else:
                ids = [str(record.get(CLICKSEND_ID)) for record in records]
                self._arrived[list_id] = (records, payloads_by_source_id(self.engine, key, ids))
        return self._arrived[list_id]
