"""An outside edit made right after our reverse-sync write reaches the golden record; our write does not.

Each of the five systems holds records we fill in (a field their person's record elsewhere has). The
person's other record is the more recent, so it wins the last name; our write must not change that.
A person then edits the last name of some of the records we wrote, by hand, one second after our
write (or within the same second, where the API says who or which version), and the next sync must
take their new name into the golden record, while the records nobody edited keep losing to the
newer record.
"""

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from connectors.emulator import Emulator
from connectors.emulator.dataset import Dataset
from connectors.emulator.records import (
    ZOHO_BIGIN_CONTACT_FIELDS,
    ZOHO_BIGIN_ID_PREFIX,
    ZOHO_CRM_ID_PREFIX,
    ZOHO_LEAD_FIELDS,
    clickfunnels_contact,
    clicksend_contact,
    linkflow_contact,
    zoho_record,
    zoho_user,
)
from connectors.emulator.timefmt import ZOHO_BIGIN_OFFSET, ZOHO_CRM_OFFSET
from models.identity.canonical import build_canonical
from models.identity.canonical_incremental import build_canonical_incremental
from models.identity.phases import CanonicalConfig
from models.push.field_map import PushConfig
from models.warehouse.db import open_warehouse
from models.warehouse.store import RawStore
from models.warehouse.tables import Contact, PushLedger
from pipelines.clients import clients_for
from pipelines.extract import run_extract
from pipelines.reverse_sync import WRITABLE_STREAMS, opt_out_lists, own_zoho_users, push_destination
from pipelines.settings import SOURCES
from pipelines.streams import STREAMS
from tests.pipelines.conftest import settings_for
from tests.pipelines.test_canonical import REGIONS

DAY = 86_400.0
#: Where each system keeps the last name a person edits (Linkflow has one name: "first last").
LAST_NAME = {
    "clickfunnels/contact": "last_name",
    "clicksend/list_contact": "last_name",
    "linkflow/contact": "name",
    "zoho_crm/lead": "Last_Name",
    "zoho_bigin/contact": "Last_Name",
}
#: The edits: one second after our write in every system; within the same second where the API
#: still tells (Linkflow's ver, Zoho's Modified_By).
EDITS = [(table, 1.0) for table in LAST_NAME] + [
    ("linkflow/contact", 0.0),
    ("zoho_crm/lead", 0.0),
    ("zoho_bigin/contact", 0.0),
]


class People:
    """A small dataset: per person a record we fill in (``mine``) and their newer record elsewhere."""

    def __init__(self, now: datetime) -> None:
        self.dataset = Dataset.empty(seed=3, now=now)
        self.now = now.timestamp()
        self.mine: dict[str, tuple[str, str]] = {}  # email -> (table, record id)

    def person(self, table: str) -> str:
        number = self.dataset.people
        self.dataset.people += 1
        email = f"person{number}@outside.example.org"
        old, newer = self.now - 10 * DAY, self.now - DAY
        record_id = self._mine(table, number, email, old)
        self.mine[email] = (table, record_id)
        # The newer record: a ClickSend contact, or for a ClickSend target a Bigin contact; it holds
        # the field ours lacks (a phone for ClickFunnels, which keeps no city; a city elsewhere).
        if table == "clicksend/list_contact":
            self._bigin(number, email, newer, last=f"New{number}", city="Springfield")
        else:
            self._clicksend(number, email, newer, last=f"New{number}")
        self.dataset.identifiers[f"email:{email}"] = number
        return email

    def _mine(self, table: str, number: int, email: str, old: float) -> str:
        last = f"Old{number}"
        if table == "clickfunnels/contact":
            contact_id = self.dataset.allocate("clickfunnels")
            record = clickfunnels_contact(
                contact_id,
                f"pub{contact_id}",
                f"00000000-0000-4000-8000-{contact_id:012d}",
                workspace_id=self.dataset.clickfunnels_workspace["id"],
                created=old,
            )
            record.update(email_address=email, first_name="Ann", last_name=last)
            return self._put(table, contact_id, record, number)
        if table == "clicksend/list_contact":
            list_id, name = self._list()
            contact_id = self.dataset.allocate("clicksend")
            record = clicksend_contact(contact_id, list_id, name, old)
            record.update(email=email, first_name="Ann", last_name=last)
            return self._put(table, contact_id, record, number)
        if table == "linkflow/contact":
            contact_id = self.dataset.allocate("linkflow")
            record = linkflow_contact(contact_id, old)
            record.update(email=email, name=f"Ann {last}")
            return self._put(table, contact_id, record, number)
        bigin = table == "zoho_bigin/contact"
        app = "zoho_bigin" if bigin else "zoho_crm"
        fields = ZOHO_BIGIN_CONTACT_FIELDS if bigin else ZOHO_LEAD_FIELDS
        prefix = ZOHO_BIGIN_ID_PREFIX if bigin else ZOHO_CRM_ID_PREFIX
        offset = ZOHO_BIGIN_OFFSET if bigin else ZOHO_CRM_OFFSET
        record_id = self.dataset.zoho_id(app)
        record = zoho_record(fields, record_id, old, offset, zoho_user(prefix))
        record.update(Email=email, First_Name="Ann", Last_Name=last, Full_Name=f"Ann {last}")
        return self._put(table, record_id, record, number)

    def _clicksend(self, number: int, email: str, newer: float, *, last: str) -> None:
        list_id, name = self._list()
        contact_id = self.dataset.allocate("clicksend")
        record = clicksend_contact(contact_id, list_id, name, newer)
        record.update(
            email=email,
            first_name="Ann",
            last_name=last,
            phone_number=f"+1415555{number:04d}",
            address_city="Springfield",
        )
        self._put("clicksend/list_contact", contact_id, record, number)

    def _bigin(self, number: int, email: str, newer: float, *, last: str, city: str) -> None:
        record_id = self.dataset.zoho_id("zoho_bigin")
        owner = zoho_user(ZOHO_BIGIN_ID_PREFIX)
        record = zoho_record(ZOHO_BIGIN_CONTACT_FIELDS, record_id, newer, ZOHO_BIGIN_OFFSET, owner)
        record.update(
            Email=email, First_Name="Ann", Last_Name=last, Full_Name=f"Ann {last}", Mailing_City=city
        )
        self._put("zoho_bigin/contact", record_id, record, number)

    def _list(self) -> tuple[int, str]:
        lists = self.dataset.clicksend_lists.items()
        return next((i, str(item["list_name"])) for i, item in lists if item["list_name"] != "Opt-Out List")

    def _put(self, table: str, record_id: Any, record: dict[str, Any], number: int) -> str:
        self.dataset.tables[table][record_id] = record
        source, _, obj = table.partition("/")
        self.dataset.truth[(source, obj, str(record_id))] = number
        return str(record_id)


def golden_last_names(url: str) -> dict[str, str]:
    with open_warehouse(url).connect() as connection:
        rows = connection.execute(sa.select(Contact.email, Contact.last_name)).all()
    return {str(email): str(last) for email, last in rows}


def sync(emu: Emulator, url: str, run_id: str, *, push: bool = True) -> None:
    """One cycle as `contact-sync sync` runs it (extract, incremental canonical, reverse sync with the
    Zoho user learned once), called in process without Dagster to keep the test cheap."""
    engine = open_warehouse(url)
    with clients_for(settings_for(emu, url), SOURCES) as clients:
        for stream in STREAMS:
            run_extract(stream, clients, RawStore(engine), run_id=run_id)
        build_canonical_incremental(engine, CanonicalConfig(regions=REGIONS), run_id=run_id)
        if not push:
            return
        users = own_zoho_users(clients, SOURCES, log=lambda _line: None)
        config = PushConfig(opt_out_lists=opt_out_lists(clients))
        for stream in WRITABLE_STREAMS:
            report = push_destination(
                stream,
                engine,
                clients,
                config,
                run_id=run_id,
                dry_run=False,
                own_user=users.get(stream.source),
            )
            assert report.rejected + report.conflict == 0, (stream.name, report)


def test_an_outside_edit_right_after_our_write_reaches_the_golden_record(sqlite_url: str) -> None:
    people = People(datetime.now(UTC) - timedelta(hours=1))
    edited = {people.person(table): (table, after) for table, after in EDITS}
    untouched = [people.person(table) for table in LAST_NAME]
    with Emulator(dataset=people.dataset) as emu:
        sync(emu, sqlite_url, "first")
        moments = {(w.app, str(w.record_id)): w.time for w in emu.writes()}
        for email in [*edited, *untouched]:
            table, record_id = people.mine[email]
            assert (table.partition("/")[0], record_id) in moments, f"{table} {record_id} was not written"

        # A person edits the last name by hand, one second (or no time at all) after our write.
        for email, (table, after) in edited.items():
            record_id = people.mine[email][1]
            at = moments[(table.partition("/")[0], record_id)] + timedelta(seconds=after)
            time.sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()))
            number = email.removeprefix("person").partition("@")[0]
            value = f"Ann Edited{number}" if table == "linkflow/contact" else f"Edited{number}"
            answer = httpx.post(
                f"{emu.base_url}/_admin/edit",
                json={
                    "table": table,
                    "id": record_id,
                    "fields": {LAST_NAME[table]: value},
                    "at": at.isoformat(),
                },
                timeout=10,
            )
            assert answer.status_code == 200, answer.text

        sync(emu, sqlite_url, "second", push=False)  # the golden record is what this is about

    expected = {
        **{email: f"Edited{email.removeprefix('person').partition('@')[0]}" for email in edited},
        # Our writes alone never make a record "newer": the person's newer record keeps the name.
        **{email: f"New{email.removeprefix('person').partition('@')[0]}" for email in untouched},
    }
    assert {email: golden_last_names(sqlite_url)[email] for email in expected} == expected  # incremental
    build_canonical(open_warehouse(sqlite_url), CanonicalConfig(regions=REGIONS))
    assert {email: golden_last_names(sqlite_url)[email] for email in expected} == expected  # full rebuild

    # The ledger kept what each answer said: the stamp everywhere, Linkflow's version, Zoho's user.
    with open_warehouse(sqlite_url).connect() as connection:
        sent = connection.execute(
            sa.select(
                PushLedger.destination,
                PushLedger.result_modified_at,
                PushLedger.result_version,
                PushLedger.written_by,
            ).where(PushLedger.status == "sent")
        ).all()
    assert sent
    assert all(row.result_modified_at is not None for row in sent)
    assert all(row.result_version is not None for row in sent if row.destination == "linkflow")
    zoho = {row.written_by for row in sent if row.destination.startswith("zoho")}
    assert zoho == {zoho_user(ZOHO_CRM_ID_PREFIX)["id"], zoho_user(ZOHO_BIGIN_ID_PREFIX)["id"]}
