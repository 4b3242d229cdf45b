"""Bad data inside good answers, and bad answers: the sync keeps going, quarantines what has no
identity, keeps a reason for every unusable value, and fails a source that answers garbage with one
clear line while the other sources land.
"""

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from connectors.emulator import Emulator, running_emulator
from connectors.emulator.dataset import ZOHO_TABLES, truth_key
from models.warehouse.db import open_warehouse
from models.warehouse.tables import Contact, ContactIdentifier, ContactSource, Quarantine, RawRecord
from pipelines.runner import run_sync
from tests.pipelines.conftest import settings_for
from tests.pipelines.test_extract import emulator_ids, stored_ids
from tests.proof.garbage_server import BadAnswer, garbage_server

pytestmark = pytest.mark.slow

MEGABYTE = "M" * 1_000_000


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with running_emulator(seed=31, people=120) as emu:
        yield emu


def singletons(emu: Emulator, count: int) -> list[dict[str, Any]]:
    """Zoho records of people who live in no other system, so their golden fields are theirs alone."""
    holders = Counter(p for (_, obj, _), p in emu.dataset.truth.items() if obj not in ("sms", "event"))
    found = [
        record
        for table in ZOHO_TABLES
        for record_id, record in emu.dataset.tables[table].items()
        if holders[emu.dataset.truth.get(truth_key(table, record_id), -1)] == 1
    ]
    assert len(found) >= count, "the seed has too few single-record people"
    return found[:count]


def reasons_of(url: str, source_id: str) -> dict[str, tuple[str | None, str | None]]:
    """Field -> (normal form, reason) for one record's identifiers."""
    with open_warehouse(url).connect() as connection:
        rows = connection.execute(
            sa.select(ContactIdentifier.field, ContactIdentifier.value, ContactIdentifier.reason)
            .join(RawRecord, RawRecord.id == ContactIdentifier.raw_record_id)
            .where(RawRecord.source_id == source_id)
        )
        return {field: (value, reason) for field, value, reason in rows}


def golden_of(url: str, source_id: str) -> Any:
    with open_warehouse(url).connect() as connection:
        return connection.execute(
            sa.select(Contact)
            .join(ContactSource, ContactSource.contact_id == Contact.contact_id)
            .where(ContactSource.source_id == source_id)
        ).one()


def test_bad_values_do_not_stop_the_sync_and_each_lands_with_a_reason(
    emulator: Emulator, warehouse_url: str
) -> None:
    tables = emulator.dataset.tables
    emoji, html, number, huge, bad_email, bad_phones = singletons(emulator, 6)
    emoji.update(First_Name="😀🎉 Zoë", Last_Name="王小明")
    html.update(First_Name="<b>Ann</b><script>alert(1)</script>\x00\x07\x1b", Last_Name="O'Brien\r\n\t")
    number.update(First_Name=12345)
    huge.update(First_Name=MEGABYTE)
    bad_email.update(Email="not an email@@example..com")
    bad_phones.update(Phone="call me maybe", Mobile="+1 999 999 99999999999999")
    linkflow = next(iter(tables["linkflow/contact"].values()))
    linkflow.update(mobilePhone="12", name="张伟 👩‍💻")
    nameless_key, nameless = next(iter(tables["clicksend/list_contact"].items()))
    nameless["contact_id"] = None

    report = run_sync(settings_for(emulator, warehouse_url, contact_sync_push="off"))

    assert report.success, report.failures
    with open_warehouse(warehouse_url).connect() as connection:
        quarantined = connection.execute(
            sa.select(Quarantine.source, Quarantine.object, Quarantine.source_id, Quarantine.reason)
        ).all()
        unlinked = connection.execute(
            sa.select(ContactSource.source_id).where(ContactSource.contact_id.is_(None))
        ).all()
    assert [(s, o, i) for s, o, i, _ in quarantined] == [("clicksend", "list_contact", None)]
    assert "contact_id" in quarantined[0][3]
    assert unlinked == []

    assert (
        golden_of(warehouse_url, emoji["id"]).first_name,
        golden_of(warehouse_url, emoji["id"]).last_name,
    ) == (
        "😀🎉 Zoë",
        "王小明",
    )
    cleaned = golden_of(warehouse_url, html["id"])
    assert cleaned.first_name.startswith("<b>Ann</b>")
    assert cleaned.first_name.isprintable()  # control characters gone
    assert cleaned.last_name == "O'Brien"
    assert golden_of(warehouse_url, number["id"]).first_name == "12345"
    assert golden_of(warehouse_url, huge["id"]).first_name is None  # too long to be a name
    with open_warehouse(warehouse_url).connect() as connection:
        stored_huge = connection.execute(
            sa.select(RawRecord.payload).where(RawRecord.source_id == huge["id"])
        ).scalar_one()
    assert stored_huge["First_Name"] == MEGABYTE  # the raw record keeps what the API sent

    assert reasons_of(warehouse_url, bad_email["id"])["Email"] == (None, "invalid_syntax")
    phones = reasons_of(warehouse_url, bad_phones["id"])
    assert phones["Phone"] == (None, "unparseable")
    assert phones["Mobile"][0] is None
    assert phones["Mobile"][1]
    assert reasons_of(warehouse_url, str(linkflow["id"]))["mobilePhone"][1]
    expected = emulator_ids(emulator)
    expected[("clicksend", "list_contact")].remove(str(nameless_key))
    assert stored_ids(warehouse_url) == expected


def test_wrong_typed_and_huge_identifiers_keep_a_reason(emulator: Emulator, sqlite_url: str) -> None:
    listed, huge, numeric = singletons(emulator, 3)
    listed.update(Email=["a@example.org", "b@example.org"])
    huge.update(Email=MEGABYTE + "@example.org")
    numeric.update(Phone={"number": "+14155550123"})

    report = run_sync(settings_for(emulator, sqlite_url, contact_sync_push="off"))

    assert report.success, report.failures
    assert reasons_of(sqlite_url, listed["id"]).get("Email", (None, None))[1]
    assert reasons_of(sqlite_url, huge["id"]).get("Email", (None, None))[1]
    assert reasons_of(sqlite_url, numeric["id"]).get("Phone", (None, None))[1]


# Reads answered 200 with something that is not JSON are tried 8 times; Retry-After: 0 keeps the
# attempts from waiting.
NO_WAIT = {"Retry-After": "0"}
BAD_ANSWERS = {
    "not_json": BadAnswer(200, "application/json", b"this is not json at all", NO_WAIT),
    "truncated_json": BadAnswer(
        200, "application/json", b'{"code": "200", "data": {"content": [{"id": 1', NO_WAIT
    ),
    "wrong_content_type": BadAnswer(200, "text/plain", b"OK", NO_WAIT),
    "proxy_html_page": BadAnswer(
        403, "text/html", b"<html><head><title>403 Forbidden</title></head><body><h1>nginx</h1></body></html>"
    ),
    "error_envelope_in_200": BadAnswer(
        200, "application/json", b'{"code": "B00500", "message": "system busy", "data": null}'
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_ANSWERS))
def test_a_source_answering_garbage_fails_alone_with_one_line(
    emulator: Emulator, sqlite_url: str, name: str
) -> None:
    with garbage_server(BAD_ANSWERS[name]) as url:
        settings = settings_for(emulator, sqlite_url, contact_sync_push="off", linkflow_base_url=url)
        report = run_sync(settings)

    assert not report.success
    assert report.failures, "the run failed without saying why"
    for line in report.failures:
        assert "\n" not in line, line
        assert len(line) < 400, line
        assert line.startswith("linkflow/"), line
    stored = stored_ids(sqlite_url)
    for (source, obj), ids in emulator_ids(emulator).items():
        if source != "linkflow":
            assert stored.get((source, obj)) == ids, (source, obj)
    assert ("linkflow", "contact") not in stored


def test_an_error_envelope_in_a_200_is_reported_with_the_apis_own_words(
    emulator: Emulator, sqlite_url: str
) -> None:
    with garbage_server(BAD_ANSWERS["error_envelope_in_200"]) as url:
        settings = settings_for(emulator, sqlite_url, contact_sync_push="off", linkflow_base_url=url)
        report = run_sync(settings, sources=("linkflow",))

    assert report.failures
    for line in report.failures:
        assert "no response" not in line, line
        assert "B00500" in line, line
        assert "system busy" in line, line
