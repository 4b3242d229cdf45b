"""Turning people into contact records, with the linking rule that makes the truth checkable.

A person's first record (the anchor) holds both their primary email and phone; every other record
holds at least one of the two, so all of a person's records connect through the anchor. Junk values
only ever replace an identifier in a record that still holds the other one. Ids are handed out in
order of creation, the way the real id sequences grow.
"""

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from connectors.emulator.accounts import CLICKFUNNELS_TAGS, CLICKSEND_LISTS
from connectors.emulator.dataset import (
    CLICKFUNNELS_CONTACTS,
    CLICKSEND_CONTACTS,
    DAY,
    LINKFLOW_CONTACTS,
    ZOHO_BIGIN_CONTACTS,
    ZOHO_CRM_CONTACTS,
    ZOHO_CRM_LEADS,
    Dataset,
    random_uuid,
    truth_key,
)
from connectors.emulator.households import (
    INITIAL_ONLY,
    MISSING_FIRST_NAME,
    NICKNAME_USE,
    WORK_EMAIL_INSTEAD,
)
from connectors.emulator.people import Person, render_email, render_phone
from connectors.emulator.rand import SandboxRandom
from connectors.emulator.records import (
    CLICKFUNNELS_WORKSPACE_ID,
    CLICKSEND_OPT_OUT_LIST_ID,
    ZOHO_BIGIN_CONTACT_FIELDS,
    ZOHO_BIGIN_ID_PREFIX,
    ZOHO_CONTACT_FIELDS,
    ZOHO_CRM_ID_PREFIX,
    ZOHO_LEAD_FIELDS,
    clickfunnels_contact,
    clicksend_contact,
    linkflow_contact,
    zoho_full_name,
    zoho_record,
    zoho_user,
)
from connectors.emulator.timefmt import (
    ZOHO_BIGIN_OFFSET,
    ZOHO_CRM_OFFSET,
    iso_ms_utc,
    shanghai_local,
    zoho_time,
)

Record = dict[str, Any]
Put = Callable[[str, Any, Record], None]

_SYSTEM_WEIGHTS = {
    "US": {"clickfunnels": 0.55, "clicksend": 0.5, "linkflow": 0.2, "zoho_crm": 0.55, "zoho_bigin": 0.35},
    "CN": {"clickfunnels": 0.35, "clicksend": 0.35, "linkflow": 0.9, "zoho_crm": 0.35, "zoho_bigin": 0.25},
}
_INVERSE_WEIGHTS = {
    region: tuple((name, 1.0 / weight) for name, weight in weights.items())
    for region, weights in _SYSTEM_WEIGHTS.items()
}
# How many systems a person is in: mostly one or two, one in twenty in all five.
_SYSTEM_COUNTS = (1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 5)
_LEAD_STATUSES = ("Not Contacted", "Attempted to Contact", "Contact in Future", "Contacted", "Junk Lead")
_LEAD_SOURCES = ("Advertisement", "Cold Call", "Web Download", "Trade Show", "Partner", "Chat")
_CF_TIME_ZONES = ("Pacific Time (US & Canada)", "Eastern Time (US & Canada)", "Central Time (US & Canada)")
_ID_FIELDS = {CLICKSEND_CONTACTS: "contact_id"}
_SEQUENCES = {
    CLICKFUNNELS_CONTACTS: "clickfunnels",
    CLICKSEND_CONTACTS: "clicksend",
    LINKFLOW_CONTACTS: "linkflow",
}


_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"


def public_id(rng: SandboxRandom) -> str:
    """A six-character public id like ClickFunnels' ``vQxYMj``."""
    number = rng.below(len(_ALPHABET) ** 6)
    letters = []
    for _ in range(6):
        number, digit = divmod(number, len(_ALPHABET))
        letters.append(_ALPHABET[digit])
    return "".join(letters)


class Placed(NamedTuple):
    table: str
    record_id: Any
    pid: int
    created: float


@dataclass(slots=True)
class _Draft:
    created: float
    order: int
    table: str
    pid: int | None
    record: Record
    converted_into: "_Draft | None" = None


class _Slot(NamedTuple):
    kind: str
    option: Any
    created: float
    modified: float
    has_email: bool
    has_phone: bool
    anchor: bool


class Placer:
    """Collects records of people, then ``commit`` gives them ids and stores them with their truth."""

    def __init__(self, dataset: Dataset, rng: SandboxRandom) -> None:
        self.dataset = dataset
        self.rng = rng
        self._drafts: list[_Draft] = []
        self._builders: dict[str, tuple[str, Callable[[_Slot, Person], Record]]] = {
            "clickfunnels": (CLICKFUNNELS_CONTACTS, self._clickfunnels),
            "clicksend": (CLICKSEND_CONTACTS, self._clicksend),
            "linkflow": (LINKFLOW_CONTACTS, self._linkflow),
            "zoho_bigin": (ZOHO_BIGIN_CONTACTS, self._zoho),
            "crm_contact": (ZOHO_CRM_CONTACTS, self._zoho),
            "lead": (ZOHO_CRM_LEADS, self._zoho),
        }

    def place(self, person: Person, now: float, *, fresh: bool = False) -> None:
        """Put one person into one to five systems, all records linked through the anchor.

        ``fresh`` places a person who appeared just now: every record created and modified at ``now``.
        """
        rng = self.rng
        if fresh:
            person = dataclasses.replace(person, first_seen=now)
        household = None if person.household is None else self.dataset.households[person.household]
        for identifier in person.identifiers():
            # A household's shared landline or email names nobody in particular.
            if household is None or identifier != household.shared:
                self.dataset.identifiers[identifier] = person.pid
        # Weighted sampling without replacement (Efraimidis-Spirakis): the largest u ** (1/w) win.
        ranked = sorted((rng.random() ** inverse, name) for name, inverse in _INVERSE_WEIGHTS[person.region])
        systems = [name for _, name in ranked[-rng.pick(_SYSTEM_COUNTS) :]]
        if household is not None and household.kind == "shared_email" and person.member > 0:
            # ClickFunnels keeps one contact per email: the couple's address is the first member's there.
            systems = [name for name in systems if name != "clickfunnels"] or ["zoho_crm"]
        kinds = [slot for system in systems for slot in self._kinds(system)]
        for position, (kind, option) in enumerate(kinds):
            created = modified = now
            if not fresh:
                spread = min(60 * DAY, max(1.0, now - person.first_seen))
                created = min(now, person.first_seen + rng.random() * spread)
                modified = created if rng.random() < 0.3 else created + rng.random() * (now - created)
            has_email, has_phone = self._carry(kind, person, anchor=position == 0)
            slot = _Slot(kind, option, created, modified, has_email, has_phone, anchor=position == 0)
            self._draft(slot, person)

    def anonymous_clickfunnels_contact(self, created: float, now: float) -> None:
        """A visitor ClickFunnels tracks but hides from lists: it belongs to no person."""
        rng = self.rng
        record = clickfunnels_contact(
            0,
            public_id(rng),
            random_uuid(rng),
            workspace_id=CLICKFUNNELS_WORKSPACE_ID,
            created=created,
            anonymous=1,
        )
        record["updated_at"] = iso_ms_utc(min(now, created + rng.random() * DAY))
        self._drafts.append(_Draft(created, len(self._drafts), CLICKFUNNELS_CONTACTS, None, record))

    def commit(self, put: Put | None = None) -> list[Placed]:
        """Give ids in creation order and store records (through ``put`` when a server indexes them).

        Returns the records that belong to a person.
        """
        dataset, rng = self.dataset, self.rng
        self._drafts.sort(key=lambda draft: (draft.created, draft.order))
        placed: list[Placed] = []
        for draft in self._drafts:
            table = draft.table
            if table in _SEQUENCES:
                record_id: Any = dataset.allocate(_SEQUENCES[table], rng)
            else:
                record_id = dataset.zoho_id(table.partition("/")[0], rng)
            draft.record[_ID_FIELDS.get(table, "id")] = record_id
            if put is None:
                dataset.tables[table][record_id] = draft.record
            else:
                put(table, record_id, draft.record)
            if draft.pid is not None:
                dataset.truth[truth_key(table, record_id)] = draft.pid
                placed.append(Placed(table, record_id, draft.pid, draft.created))
        # Once every id is known: a converted lead names the contact it became (not an indexed field).
        for draft in self._drafts:
            if draft.converted_into is not None:
                contact = draft.converted_into.record
                draft.record["$converted_detail"] = {
                    "contact": {"name": contact["Full_Name"], "id": contact["id"]},
                    "converted_date": contact["Created_Time"],
                }
        self._drafts = []
        return placed

    def _kinds(self, system: str) -> list[tuple[str, Any]]:
        """The records a person gets in one system, with the duplicates real systems collect."""
        rng = self.rng
        if system == "zoho_crm":
            roll = rng.random()
            if roll < 0.5:
                kinds: list[tuple[str, Any]] = [("lead", False)]
            elif roll < 0.82:
                kinds = [("crm_contact", None)]
            else:
                kinds = [("crm_contact", None), ("lead", rng.random() < 0.6)]
            if rng.random() < 0.04:
                kinds.append(("lead", False))
            return kinds
        if system == "clicksend":
            list_id = CLICKSEND_LISTS[0][0] if rng.random() < 0.6 else CLICKSEND_LISTS[1][0]
            kinds = [("clicksend", list_id)]
            if rng.random() < 0.05:
                kinds.append(("clicksend", list_id))
            if rng.random() < 0.03:
                kinds.append(("clicksend", CLICKSEND_OPT_OUT_LIST_ID))
            return kinds
        return [(system, None)]

    def _carry(self, kind: str, person: Person, *, anchor: bool) -> tuple[bool, bool]:
        """Which of the primary email and phone a record holds, within what its system requires."""
        if anchor:
            return True, True
        roll = self.rng.random()
        if kind == "clickfunnels":
            return True, roll < 0.5
        if kind == "clicksend" or (kind == "linkflow" and person.region == "CN"):
            return roll < 0.4, True
        if roll < 0.4:
            return True, False
        if roll < 0.6:
            return False, True
        return True, True

    def _first_name(self, slot: _Slot, person: Person) -> str | None:
        """The first name this record carries: always the full one, unless the person's names vary
        (households mode), when it may be a nickname, an initial or missing (never on the anchor)."""
        if not person.name_variants:
            return person.first_name
        rng = self.rng
        if not slot.anchor and rng.random() < MISSING_FIRST_NAME:
            return None
        if person.nickname and rng.random() < NICKNAME_USE:
            return person.nickname
        if not slot.anchor and person.region == "US" and rng.random() < INITIAL_ONLY:
            return person.first_name[0] + "."
        return person.first_name

    def _email(self, slot: _Slot, person: Person) -> str:
        """The email a record carries: the person's own, or in households mode now and then their
        work email on a record that also holds their phone (so it still reaches the person)."""
        if (
            person.name_variants
            and person.work_email
            and not slot.anchor
            and slot.has_phone
            and self.rng.random() < WORK_EMAIL_INSTEAD
        ):
            return person.work_email
        return person.email

    def _draft(self, slot: _Slot, person: Person) -> None:
        table, build = self._builders[slot.kind]
        draft = _Draft(slot.created, len(self._drafts), table, person.pid, build(slot, person))
        if slot.kind == "lead" and slot.option:
            draft.record["$converted"] = True
            draft.converted_into = next(
                (d for d in reversed(self._drafts) if d.pid == person.pid and d.table == ZOHO_CRM_CONTACTS),
                None,
            )
        self._drafts.append(draft)

    def _clickfunnels(self, slot: _Slot, person: Person) -> Record:
        rng = self.rng
        record = clickfunnels_contact(
            0, public_id(rng), random_uuid(rng), workspace_id=CLICKFUNNELS_WORKSPACE_ID, created=slot.created
        )
        record["email_address"] = render_email(rng, self._email(slot, person), whitespace=False)
        record["first_name"] = self._first_name(slot, person)
        record["last_name"] = person.last_name
        roll = rng.random()
        if slot.has_phone:
            record["phone_number"] = render_phone(rng, person.phone, "clickfunnels")
        elif roll < 0.04:
            record["phone_number"] = "555-555-5555"
        elif roll < 0.05:
            record["phone_number"] = "N/A"
        if rng.random() < 0.6:
            record["time_zone"] = rng.pick(_CF_TIME_ZONES) if person.region == "US" else "Beijing"
        if rng.random() < 0.3:
            tag_id, tag_public_id, name, color = rng.pick(CLICKFUNNELS_TAGS)
            applied = iso_ms_utc(slot.created + rng.random() * (slot.modified - slot.created))
            tag = {
                "id": tag_id,
                "public_id": tag_public_id,
                "name": name,
                "color": color,
                "applied_at": applied,
            }
            record["tags"] = [tag]
        if person.company and rng.random() < 0.25:
            record["custom_attributes"] = {"company": person.company}
        if unsubscribes(person.pid, "clickfunnels"):
            # ClickFunnels stamps the unsubscribe and counts the contact inactive (api-notes §2.4).
            record["unsubscribed_at"] = iso_ms_utc(_midway(slot))
            record["is_active"] = False
        record["updated_at"] = iso_ms_utc(slot.modified)
        return record

    def _clicksend(self, slot: _Slot, person: Person) -> Record:
        rng = self.rng
        list_id = slot.option
        record = clicksend_contact(
            0, list_id, self.dataset.clicksend_lists[list_id]["list_name"], slot.created
        )
        record["phone_number"] = render_phone(rng, person.phone, "clicksend")
        if slot.has_email:
            record["email"] = render_email(rng, self._email(slot, person))
        elif rng.random() < 0.05:
            record["email"] = "noreply@example.com"
        record["first_name"] = self._first_name(slot, person) or ""
        record["last_name"] = person.last_name
        if person.company and rng.random() < 0.3:
            record["organization_name"] = person.company
        if rng.random() < 0.4:
            record["address_city"] = person.city
            record["address_state"] = person.state
        if rng.random() < 0.7:
            record["address_country"] = person.country_code
        record["date_updated"] = int(slot.modified)
        return record

    def _linkflow(self, slot: _Slot, person: Person) -> Record:
        rng = self.rng
        record = linkflow_contact(0, slot.created)
        if person.local_name and rng.random() < 0.6:
            record["name"] = person.local_name
            if person.name_variants and not slot.anchor and rng.random() < MISSING_FIRST_NAME:
                record["name"] = None
        else:
            first = self._first_name(slot, person)
            name = f"{first} {person.last_name}"
            if first is None:
                # Linkflow keeps one name field: a record without the first name has no name at all.
                record["name"] = None
            else:
                record["name"] = name.lower() if rng.random() < 0.3 else name
        if slot.has_phone:
            record["mobilePhone"] = render_phone(rng, person.phone, "linkflow")
            if person.mobile and rng.random() < 0.5:
                record["homePhone"] = render_phone(rng, person.mobile, "linkflow")
        elif rng.random() < 0.05:
            record["mobilePhone"] = "0000000000"
        if slot.has_email:
            record["email"] = render_email(rng, self._email(slot, person))
        record["gender"] = rng.pick(("male", "female", "unknown"))
        if person.company and rng.random() < 0.4:
            record["company"] = person.company
        if person.title and rng.random() < 0.3:
            record["title"] = person.title
        if rng.random() < 0.6:
            chinese = person.region == "CN" and rng.random() < 0.7
            record["city"] = person.local_city if chinese else person.city
            record["state"] = person.state
            record["country"] = ("中国" if chinese else "China") if person.region == "CN" else "United States"
        record["props"] = {"attr1": rng.pick(("单身", "已婚", "")), "attr2": 500 * rng.below(60)}
        record["ver"] = 1 + rng.below(8)
        record["lastUpdated"] = shanghai_local(slot.modified)
        return record

    def _zoho(self, slot: _Slot, person: Person) -> Record:
        rng = self.rng
        bigin = slot.kind == "zoho_bigin"
        prefix = ZOHO_BIGIN_ID_PREFIX if bigin else ZOHO_CRM_ID_PREFIX
        offset = ZOHO_BIGIN_OFFSET if bigin else ZOHO_CRM_OFFSET
        fields = {"lead": ZOHO_LEAD_FIELDS, "crm_contact": ZOHO_CONTACT_FIELDS}.get(
            slot.kind, ZOHO_BIGIN_CONTACT_FIELDS
        )
        record = zoho_record(fields, "", slot.created, offset, zoho_user(prefix))
        record["First_Name"] = self._first_name(slot, person)
        record["Last_Name"] = person.last_name
        record["Full_Name"] = zoho_full_name(record)
        email = self._email(slot, person) if slot.has_email else None
        if email is not None:
            record["Email"] = render_email(rng, email)
        if slot.has_phone:
            record["Phone"] = render_phone(rng, person.phone, "zoho")
            if person.mobile and rng.random() < 0.5:
                record["Mobile"] = render_phone(rng, person.mobile, "zoho")
        if not slot.anchor and slot.has_email and slot.has_phone:
            roll = rng.random()
            # Junk replaces one identifier only where the other still reaches the person; a work
            # email in place of their own reaches them through the phone alone.
            if email != person.email:
                pass
            elif roll < 0.05:
                record["Email"] = "test@test.com"
            elif roll < 0.09:
                record["Phone"] = "555-555-5555"
        if record["Mobile"] is None and rng.random() < 0.03:
            record["Mobile"] = "555-555-5555"
        if person.work_email and slot.has_email and not bigin and rng.random() < 0.3:
            record["Secondary_Email"] = person.work_email
        if slot.kind == "lead":
            self._lead_fields(record, person)
        else:
            self._contact_fields(record, person, "zoho_bigin" if bigin else "zoho_crm")
        _unsubscribe_zoho(record, slot, person, offset)
        stamp = zoho_time(slot.modified, offset)
        record["Modified_Time"] = stamp
        record["Last_Activity_Time"] = stamp
        return record

    def _lead_fields(self, record: Record, person: Person) -> None:
        rng = self.rng
        record["Company"] = person.company if rng.random() < 0.8 else None
        record["Designation"] = person.title if rng.random() < 0.4 else None
        record["Lead_Status"] = rng.pick(_LEAD_STATUSES)
        record["Lead_Source"] = rng.pick(_LEAD_SOURCES)
        if rng.random() < 0.5:
            record["City"], record["State"], record["Country"] = person.city, person.state, person.country

    def _contact_fields(self, record: Record, person: Person, app: str) -> None:
        rng = self.rng
        if person.company and rng.random() < 0.7:
            record["Account_Name"] = self.dataset.zoho_account(app, person.company)
        record["Title"] = person.title if rng.random() < 0.6 else None
        if rng.random() < 0.6:
            record["Mailing_City"] = person.city
            record["Mailing_State"] = person.state
            record["Mailing_Country"] = person.country
        if app == "zoho_crm":
            record["Lead_Source"] = rng.pick(_LEAD_SOURCES)


#: Share of people who unsubscribed from email in each system's records.
UNSUBSCRIBE_RATES = {"clickfunnels": 0.04, "lead": 0.03, "crm_contact": 0.03, "zoho_bigin": 0.03}


def unsubscribes(pid: object, kind: str) -> bool:
    """Whether a person's records of this kind carry an email opt-out. A hash of the person, not the
    dataset's random stream: adding consent left every other generated value as it was."""
    digest = hashlib.blake2b(f"{pid}:{kind}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < UNSUBSCRIBE_RATES.get(kind, 0.0)


def _unsubscribe_zoho(record: Record, slot: "_Slot", person: Person, offset: Any) -> None:
    """Zoho's opt-out: the flag, and in CRM when and how (Bigin keeps the flag alone)."""
    if unsubscribes(person.pid, slot.kind):
        record["Email_Opt_Out"] = True
        if "Unsubscribed_Time" in record:
            record["Unsubscribed_Mode"] = "Unsubscribe link"
            record["Unsubscribed_Time"] = zoho_time(_midway(slot), offset)


def _midway(slot: "_Slot") -> float:
    """When the person unsubscribed: between the record's creation and its last modification."""
    return slot.created + (slot.modified - slot.created) / 2
