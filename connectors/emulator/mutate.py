"""Changing the data while the emulator runs, the way the world changes between two syncs.

New people arrive (placed like generated ones, created now), records get edited (fields that are
not identifiers, so the truth stays true, with their modification time bumped), records get deleted
(never one whose loss would split a person's remaining records; Zoho deletions appear in
``/deleted``), events happen and messages go out. Queued messages reaching their final status count
as updates of history rows.
"""

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from connectors.emulator.accounts import CLICKSEND_SENDER
from connectors.emulator.activity import Activity, finish_message, messageable
from connectors.emulator.dataset import (
    CLICKFUNNELS_CONTACTS,
    CLICKSEND_CONTACTS,
    CLICKSEND_HISTORY,
    CLICKSEND_INBOUND,
    CLICKSEND_RECEIPTS,
    CONTACT_TABLES,
    LINKFLOW_CONTACTS,
    ZOHO_TABLES,
    truth_key,
)
from connectors.emulator.identifiers import record_identifiers
from connectors.emulator.people import make_person
from connectors.emulator.placement import Placer
from connectors.emulator.rand import SandboxRandom
from connectors.emulator.records import (
    CLICKSEND_OPT_OUT_LIST_ID,
    clicksend_contact,
    minified_user,
    zoho_colleague,
    zoho_full_name,
)
from connectors.emulator.state import EmulatorState
from connectors.emulator.store import Record
from connectors.emulator.timefmt import iso_ms_utc, shanghai_local, zoho_time
from connectors.emulator.zoho import bigin_modules, crm_modules
from connectors.emulator.zoho_writes import Module, delete_record

_WORDS = ("spring", "summer", "autumn", "winter", "launch", "webinar", "renewal")
_TITLES = ("Director", "Head of Growth", "Engineer", "Owner", "Partner", "Buyer")
_CITIES = ("Austin", "Denver", "Boston", "Shanghai", "Hangzhou", "Seattle")


@dataclass(frozen=True)
class MutationSummary:
    """What ``mutate`` changed, counted per table (``source/object``)."""

    new_people: int = 0
    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)
    events: int = 0
    messages: int = 0

    def describe(self) -> str:
        """One line, as the demo prints it: "5 new people (15 records), 10 records edited, 2 deleted,
        20 events, 10 messages"."""
        created, updated, deleted = (
            sum(counts.values()) for counts in (self.created, self.updated, self.deleted)
        )
        return (
            f"{self.new_people} new people ({created} records), {updated} records edited, {deleted} deleted, "
            f"{self.events} events, {self.messages} messages"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "new_people": self.new_people,
            "created": dict(self.created),
            "updated": dict(self.updated),
            "deleted": dict(self.deleted),
            "events": self.events,
            "messages": self.messages,
        }


def _zoho_modules() -> dict[str, Module]:
    return {module.table: module for module in (*crm_modules().values(), *bigin_modules().values())}


class Mutator:
    """One ``mutate`` call: all changes stamped with the same ``now``, drawn from one seeded RNG."""

    def __init__(self, state: EmulatorState, seed: int) -> None:
        self.state = state
        self.rng = SandboxRandom(seed)
        self.now = state.now()
        self._modules = _zoho_modules()
        # Records created or changed by this call are not picked again, so counts mean distinct records.
        self._touched: set[tuple[str, Any]] = set()

    def run(self, *, new: int, updated: int, deleted: int, events: int, messages: int) -> MutationSummary:
        with self.state.lock:
            created = self._add_people(new)
            changed = self._update(updated)
            removed = self._delete(deleted)
            event_count = self._events(events)
            message_count = self._messages(messages)
        return MutationSummary(new, created, changed, removed, event_count, message_count)

    def _add_people(self, count: int) -> dict[str, int]:
        dataset = self.state.dataset
        placer = Placer(dataset, self.rng)
        for _ in range(count):
            dataset.people += 1
            placer.place(make_person(self.rng, dataset.people, self.now, self.now), self.now, fresh=True)
        tally: dict[str, int] = defaultdict(int)
        for placed in placer.commit(put=self.state.put):
            tally[placed.table] += 1
            self._touched.add((placed.table, placed.record_id))
        return dict(tally)

    def _pick_table(self, tables: tuple[str, ...]) -> str | None:
        sizes = [len(self.state.tables[table]) for table in tables]
        total = sum(sizes)
        if total == 0:
            return None
        roll = self.rng.random() * total
        for table, size in zip(tables, sizes, strict=True):
            roll -= size
            if roll < 0:
                return table
        return tables[-1]

    def _update(self, count: int) -> dict[str, int]:
        tally: dict[str, int] = defaultdict(int)
        queued = [
            message_id
            for message_id, row in self.state.tables[CLICKSEND_HISTORY].records.items()
            if row["status"] == "Queued"
        ]
        keys = {table: list(self.state.tables[table].records) for table in CONTACT_TABLES}
        attempts = count * 20
        while count > 0 and attempts > 0:
            attempts -= 1
            if queued and self.rng.random() < 0.3:
                self._deliver(queued.pop(self.rng.below(len(queued))))
                tally[CLICKSEND_HISTORY] += 1
                count -= 1
                continue
            table = self._pick_table(CONTACT_TABLES)
            if table is None:
                break
            record_id = keys[table][self.rng.below(len(keys[table]))]
            current = self.state.tables[table].get(record_id)
            if current is None or (table, record_id) in self._touched:
                continue
            self._touched.add((table, record_id))
            self.state.put(table, record_id, self._edited(table, current))
            tally[table] += 1
            count -= 1
        return dict(tally)

    def _deliver(self, message_id: str) -> None:
        history = dict(self.state.tables[CLICKSEND_HISTORY].records[message_id])
        receipt = finish_message(history, "Completed" if self.rng.random() < 0.9 else "Failed", self.now)
        self.state.put(CLICKSEND_HISTORY, message_id, history)
        self.state.put(CLICKSEND_RECEIPTS, message_id, receipt)
        person = self.state.dataset.truth.get(truth_key(CLICKSEND_HISTORY, message_id))
        if person is not None:
            self.state.dataset.truth[truth_key(CLICKSEND_RECEIPTS, message_id)] = person

    def _edited(self, table: str, current: Record) -> Record:
        """A copy with one non-identifying field changed by a person, the modification stamped."""
        rng, record = self.rng, dict(current)
        word = f"{rng.pick(_WORDS)}-{rng.below(1000)}"
        if table == CLICKFUNNELS_CONTACTS:
            record["custom_attributes"] = {**record["custom_attributes"], "last_campaign": word}
        elif table == CLICKSEND_CONTACTS:
            record["custom_1"] = word
        elif table == LINKFLOW_CONTACTS:
            record["title"] = rng.pick(_TITLES)
        else:
            field_name = "Lead_Status" if self._modules[table].is_leads else "Title"
            record[field_name] = rng.pick(_TITLES) if field_name == "Title" else "Contacted"
            record["Mailing_City" if "Mailing_City" in record else "City"] = rng.pick(_CITIES)
        _stamp_by_hand(table, record, self.now, self._modules)
        return record

    def _delete(self, count: int) -> dict[str, int]:
        tally: dict[str, int] = defaultdict(int)
        owners = self._records_by_person()
        keys = {table: list(self.state.tables[table].records) for table in CONTACT_TABLES}
        attempts = count * 20
        while count > 0 and attempts > 0:
            attempts -= 1
            table = self._pick_table(CONTACT_TABLES)
            if table is None:
                break
            record_id = keys[table][self.rng.below(len(keys[table]))]
            key = truth_key(table, record_id)
            person = self.state.dataset.truth.get(key)
            if record_id not in self.state.tables[table].records or person is None:
                continue
            if (table, record_id) in self._touched:
                continue
            remaining = [other for other in owners[person] if other != (table, record_id)]
            if not self._connected(remaining):
                continue
            owners[person] = remaining
            self._remove(table, record_id)
            tally[table] += 1
            count -= 1
        return dict(tally)

    def _remove(self, table: str, record_id: Any) -> None:
        if table in ZOHO_TABLES:
            delete_record(self.state, self._modules[table], record_id, self.now)
        else:
            self.state.tables[table].remove(record_id)
            self.state.forget(table, record_id)

    def _records_by_person(self) -> dict[int, list[tuple[str, Any]]]:
        tables = {table.partition("/")[::2]: table for table in CONTACT_TABLES}
        owners: dict[int, list[tuple[str, Any]]] = defaultdict(list)
        for (source, obj, source_id), person in self.state.dataset.truth.items():
            table = tables.get((source, obj))
            if table is not None:
                record_id: Any = source_id if table in ZOHO_TABLES else int(source_id)
                owners[person].append((table, record_id))
        return owners

    def _connected(self, records: list[tuple[str, Any]]) -> bool:
        """Whether these records still form one group through shared usable identifiers."""
        if len(records) <= 1:
            return True
        identifiers = []
        for table, record_id in records:
            record = self.state.tables[table].get(record_id)
            identifiers.append(set(record_identifiers(table, record)) if record else set())
        reached, frontier = {0}, [0]
        while frontier:
            current = frontier.pop()
            for other in range(len(records)):
                if other not in reached and identifiers[current] & identifiers[other]:
                    reached.add(other)
                    frontier.append(other)
        return len(reached) == len(records)

    def _events(self, count: int) -> int:
        contacts = list(self.state.tables[LINKFLOW_CONTACTS].records)
        activity = Activity(self.state.dataset, self.rng)
        for _ in range(count):
            if not contacts or self.rng.random() < 0.1:
                activity.anonymous_event(self.now)
                continue
            contact_id = contacts[self.rng.below(len(contacts))]
            person = self.state.dataset.truth.get(truth_key(LINKFLOW_CONTACTS, contact_id))
            activity.events_for(contact_id, person, now=self.now, count=1, since=self.now)
        return len(activity.commit(put=self.state.put))

    def _messages(self, count: int) -> int:
        table = self.state.tables[CLICKSEND_CONTACTS]
        contacts = [contact_id for contact_id, record in table.records.items() if messageable(record)]
        activity = Activity(self.state.dataset, self.rng)
        for _ in range(count):
            if not contacts or self.rng.random() < 0.05:
                activity.message_to_stranger(self.now, self.now)
                continue
            contact_id = contacts[self.rng.below(len(contacts))]
            person = self.state.dataset.truth.get(truth_key(CLICKSEND_CONTACTS, contact_id))
            activity.messages_for(contact_id, person, now=self.now, count=1, since=self.now)
        activity.commit(put=self.state.put)
        return count


#: What a person's edit may not set: ids, the times and users the system stamps, Linkflow's version.
_SYSTEM_FIELDS = frozenset(
    {"id", "contact_id", "list_id", "ver", "dateCreated", "lastUpdated", "created_at", "updated_at"}
    | {"date_added", "date_updated", "Created_Time", "Modified_Time", "Last_Activity_Time"}
    | {"Created_By", "Modified_By", "Full_Name"}
)


def edit_by_hand(
    state: EmulatorState, table: str, record_id: Any, fields: dict[str, Any], *, when: float | None = None
) -> Record:
    """A person's edit of one contact record in the vendor's own UI, at ``when`` (default now).

    The fields are set as given and the record is stamped the way each API shows an edit: the
    modification time moves, Linkflow's ``ver`` goes up by one and Zoho's ``Modified_By`` names a
    colleague, not the user the API connection acts as. It is not a client's write, so it stays out
    of the write log; the truth is left as it is (edit identifiers at your own risk).
    """
    if table not in CONTACT_TABLES:
        raise ValueError(f"unknown contact table {table!r}; expected one of {list(CONTACT_TABLES)}")
    with state.lock:
        current = state.tables[table].get(record_id)
        if current is None:
            raise ValueError(f"{table} has no record {record_id!r}")
        unknown = sorted(name for name in fields if name not in current or name in _SYSTEM_FIELDS)
        if unknown:
            raise ValueError(f"{table} records have no editable field {', '.join(unknown)}")
        record = {**current, **fields}
        if table in ZOHO_TABLES and {"First_Name", "Last_Name"} & set(fields):
            record["Full_Name"] = zoho_full_name(record)
        _stamp_by_hand(table, record, state.now() if when is None else when, _zoho_modules())
        state.put(table, record_id, record)
        return record


def _stamp_by_hand(table: str, record: Record, now: float, modules: dict[str, Module]) -> None:
    """Stamp a person's edit on ``record`` in place: its modification time, Linkflow's next version,
    Zoho's ``Modified_By`` (the colleague)."""
    if table == CLICKFUNNELS_CONTACTS:
        record["updated_at"] = iso_ms_utc(now)
    elif table == CLICKSEND_CONTACTS:
        record["date_updated"] = int(now)
    elif table == LINKFLOW_CONTACTS:
        record["lastUpdated"] = shanghai_local(now)
        record["ver"] = int(record.get("ver") or 0) + 1
    else:
        module = modules[table]
        record["Modified_Time"] = record["Last_Activity_Time"] = zoho_time(now, module.offset)
        record["Modified_By"] = minified_user(zoho_colleague(module.id_prefix))


def sms_opt_out(state: EmulatorState, phone: str, *, when: float | None = None) -> Record:
    """A person texts STOP: ClickSend adds their number to the account's opt-out list (api-notes §3.4),
    a list contact like any other, read through ``/lists/{opt_out_list_id}/contacts``."""
    with state.lock:
        moment = state.now() if when is None else when
        contact_id = state.dataset.allocate("clicksend")
        list_name = state.dataset.clicksend_lists[CLICKSEND_OPT_OUT_LIST_ID]["list_name"]
        record = clicksend_contact(contact_id, CLICKSEND_OPT_OUT_LIST_ID, list_name, moment)
        record["phone_number"] = phone
        state.put(CLICKSEND_CONTACTS, contact_id, record)
        state.attribute(CLICKSEND_CONTACTS, contact_id, record_identifiers(CLICKSEND_CONTACTS, record))
        return record


def sms_received(state: EmulatorState, phone: str, body: str, *, when: float | None = None) -> Record:
    """A person texts the account's number: an inbound message (``/sms/inbound``, and in history too
    where ``clicksend_history_inbound`` says so) with a new ``message_id``."""
    with state.lock:
        moment = int(state.now() if when is None else when)
        inbound = state.tables[CLICKSEND_INBOUND]
        # Named by the number and how many messages came before, so two emulators that received the
        # same texts name them alike.
        message_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"inbound:{phone}:{len(inbound.records)}")).upper()
        record = {
            "timestamp": moment,
            "from": phone,
            "body": body,
            "original_body": None,
            "original_message_id": None,
            "to": CLICKSEND_SENDER,
            "custom_string": "",
            "message_id": message_id,
            "_keyword": body.split(maxsplit=1)[0].lower() if body.split() else "",
        }
        state.put(CLICKSEND_INBOUND, record["message_id"], record)
        return record


def sms_opt_in(state: EmulatorState, phone: str) -> int:
    """A person texts START: their number leaves the opt-out list. Returns how many entries went."""
    with state.lock:
        table = state.tables[CLICKSEND_CONTACTS]
        gone = [
            contact_id
            for contact_id, record in list(table.records.items())
            if record.get("list_id") == CLICKSEND_OPT_OUT_LIST_ID and record.get("phone_number") == phone
        ]
        for contact_id in gone:
            table.remove(contact_id)
            state.forget(CLICKSEND_CONTACTS, contact_id)
        return len(gone)
