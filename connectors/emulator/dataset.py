"""The emulator's data model: the stored records of the five systems and the truth about them.

``Dataset.truth`` maps every contact record, and every activity row whose person is known, to the
person it belongs to. The server shares the dicts held here, so a Dataset always shows the live state.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connectors.emulator import accounts
from connectors.emulator.rand import SandboxRandom
from connectors.emulator.records import ZOHO_BIGIN_ID_PREFIX, ZOHO_CRM_ID_PREFIX
from connectors.emulator.timefmt import zoho_time

Record = dict[str, Any]
TruthKey = tuple[str, str, str]

DAY = 86_400.0

CLICKFUNNELS_CONTACTS = "clickfunnels/contact"
CLICKSEND_CONTACTS = "clicksend/list_contact"
CLICKSEND_HISTORY = "clicksend/sms_history"
CLICKSEND_INBOUND = "clicksend/sms_inbound"
CLICKSEND_RECEIPTS = "clicksend/sms_receipt"
LINKFLOW_CONTACTS = "linkflow/contact"
LINKFLOW_EVENTS = "linkflow/event"
ZOHO_CRM_LEADS = "zoho_crm/lead"
ZOHO_CRM_CONTACTS = "zoho_crm/contact"
ZOHO_BIGIN_CONTACTS = "zoho_bigin/contact"
ZOHO_TABLES = (ZOHO_CRM_LEADS, ZOHO_CRM_CONTACTS, ZOHO_BIGIN_CONTACTS)
CONTACT_TABLES = (CLICKFUNNELS_CONTACTS, CLICKSEND_CONTACTS, LINKFLOW_CONTACTS, *ZOHO_TABLES)
ALL_TABLES = (*CONTACT_TABLES, CLICKSEND_HISTORY, CLICKSEND_INBOUND, CLICKSEND_RECEIPTS, LINKFLOW_EVENTS)

_ID_STARTS = {
    "clickfunnels": 1_087_091_000,
    "clicksend": 1_581_565_000,
    "linkflow": 2_865,
    "linkflow_event": 1_126_000,
    "zoho_crm": 335_000,
    "zoho_bigin": 596_000,
}


def deleted_table(table: str) -> str:
    """Name of the table that keeps a Zoho module's deleted-record entries."""
    return f"{table}.deleted"


def truth_key(table: str, record_id: object) -> TruthKey:
    """Truth key of a stored row: SMS history, inbound and receipts all count as ``clicksend/sms``."""
    source, _, obj = table.partition("/")
    if source == "clicksend" and obj.startswith("sms"):
        obj = "sms"
    return source, obj, str(record_id)


@dataclass(frozen=True)
class Household:
    """People who share one identifier (households mode of ``generate_dataset``).

    kind: ``landline`` (two or three people, one fixed line) or ``shared_email`` (a couple's address).
    members: their person ids, the first being the household's head.
    shared: the identifier they share, as ``phone:+E164`` or ``email:address`` (matching form).
    """

    hid: int
    kind: str
    members: tuple[int, ...]
    shared: str


@dataclass
class Dataset:
    """Everything the emulator serves, by table name (``source/object``), plus the truth.

    ``truth`` names the person behind every contact record and known activity row; ``households``
    lists the people who share a landline or an email (empty unless generated with households).
    """

    seed: int
    now: datetime
    people: int
    tables: dict[str, dict[Any, Record]]
    truth: dict[TruthKey, int]
    identifiers: dict[str, int]
    clickfunnels_team: Record
    clickfunnels_workspace: Record
    clickfunnels_tags: dict[int, Record]
    clicksend_account: Record
    clicksend_lists: dict[int, Record]
    zoho_orgs: dict[str, Record]
    zoho_accounts: dict[tuple[str, str], str] = field(default_factory=dict)
    linkflow_identities: dict[tuple[str, str], int] = field(default_factory=dict)
    next_ids: dict[str, int] = field(default_factory=lambda: dict(_ID_STARTS))
    households: dict[int, Household] = field(default_factory=dict)

    @classmethod
    def empty(cls, seed: int, now: datetime) -> "Dataset":
        created = now.timestamp() - 900 * DAY
        tables: dict[str, dict[Any, Record]] = {name: {} for name in ALL_TABLES}
        for table in ZOHO_TABLES:
            tables[deleted_table(table)] = {}
        return cls(
            seed=seed,
            now=now,
            people=0,
            tables=tables,
            truth={},
            identifiers={},
            clickfunnels_team=accounts.clickfunnels_team(created),
            clickfunnels_workspace=accounts.clickfunnels_workspace(created),
            clickfunnels_tags=accounts.clickfunnels_tags(),
            clicksend_account=accounts.clicksend_account(),
            clicksend_lists=accounts.clicksend_lists(),
            zoho_orgs={
                "zoho_crm": accounts.zoho_org(ZOHO_CRM_ID_PREFIX, "Sandbox CRM Inc.", "EST", "Production"),
                "zoho_bigin": accounts.zoho_org(ZOHO_BIGIN_ID_PREFIX, "Sandbox Bigin LLC", "PST", "Bigin"),
            },
        )

    def allocate(self, sequence: str, rng: SandboxRandom | None = None) -> int:
        """The next id of a sequence; with an rng, leaves the small gaps real id sequences have."""
        value = self.next_ids[sequence]
        self.next_ids[sequence] = value + (1 if rng is None else 1 + rng.below(7))
        return value

    def zoho_id(self, app: str, rng: SandboxRandom | None = None) -> str:
        """A 19-digit Zoho id; CRM Leads and Contacts share one sequence, as they do in Zoho."""
        prefix = ZOHO_CRM_ID_PREFIX if app == "zoho_crm" else ZOHO_BIGIN_ID_PREFIX
        return f"{prefix}{self.allocate(app, rng):012d}"

    def zoho_account(self, app: str, name: str) -> Record:
        """The ``Account_Name`` lookup of a company, creating the account id on first use."""
        key = (app, name)
        if key not in self.zoho_accounts:
            self.zoho_accounts[key] = self.zoho_id(app)
        return {"name": name, "id": self.zoho_accounts[key]}

    def person_of(self, identifiers: Iterable[str]) -> int | None:
        """The person owning the first known usable identifier, for records clients create."""
        for identifier in identifiers:
            person = self.identifiers.get(identifier)
            if person is not None:
                return person
        return None


def random_uuid(rng: SandboxRandom) -> str:
    text = f"{rng.getrandbits(128):032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def deleted_entry(record_id: str, name: str, *, kind: str, when: float, offset: Any, owner: Record) -> Record:
    """An item of Zoho's ``/deleted`` feed (the v8 ``Deleted_Record`` schema)."""
    user = {"name": owner["name"], "id": owner["id"]}
    return {
        "id": record_id,
        "display_name": name,
        "type": kind,
        "deleted_by": user,
        "created_by": user,
        "deleted_time": zoho_time(when, offset),
    }
