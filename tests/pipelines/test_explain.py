"""`contact-sync explain` on a warehouse holding a household: the command a person runs to ask why."""

import pytest
from sqlalchemy.engine import Engine

from models.identity.canonical_incremental import build_canonical_incremental
from models.identity.checks import identifiers_belong_to_one_contact
from models.identity.phases import CanonicalConfig
from models.warehouse.db import open_warehouse
from models.warehouse.store import RawRow, RawStore, StreamKey
from pipelines.cli import main

REGIONS = {"linkflow": "CN", "clicksend": "US", "clickfunnels": "US", "zoho_crm": "US", "zoho_bigin": "US"}
CONFIG = CanonicalConfig(regions=REGIONS)
LANDLINE = "+1 415 555 0100"


def lead(record_id: str, first: str | None, email: str, phone: str = LANDLINE) -> RawRow:
    payload = {
        "id": record_id,
        "First_Name": first,
        "Last_Name": "Smith",
        "Email": email,
        "Phone": phone,
        "Modified_Time": "2026-12-01T10:00:00+00:00",
    }
    return RawRow(record_id, payload)


def contact_of(engine: Engine, source_id: str) -> str:
    with engine.connect() as connection:
        return str(
            connection.exec_driver_sql(
                "SELECT contact_id FROM contact_sources WHERE source_id = ?", (source_id,)
            ).scalar_one()
        )


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_explain_says_what_joins_a_person_and_which_household_member_was_kept_apart(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CONTACT_SYNC_DATABASE_URL", sqlite_url)
    engine = open_warehouse(sqlite_url)
    RawStore(engine).write_page(
        StreamKey("zoho_crm", "lead"),
        [lead("1", "John", "john@smith.example"), lead("2", "Mary", "mary@smith.example")],
    )
    RawStore(engine).write_page(StreamKey("zoho_crm", "contact"), [lead("3", "Johnny", "john@smith.example")])
    build_canonical_incremental(engine, CONFIG)
    john, mary = contact_of(engine, "1"), contact_of(engine, "2")
    assert john == contact_of(engine, "3")
    assert john != mary

    code, out, _ = run(capsys, "explain", john)
    assert code == 0
    assert f"contact {john}: 2 source record(s)" in out
    assert "email john@smith.example: zoho_crm/lead 1 (John), zoho_crm/contact 3 (Johnny)" in out
    assert "phone +14155550100: zoho_crm/lead 1 (John), zoho_crm/contact 3 (Johnny)" in out
    kept = f"zoho_crm/lead 2 (Mary) in {mary} shares phone +14155550100 with"
    assert f"{kept} zoho_crm/lead 1 (John): first names differ" in out
    assert f"{kept} zoho_crm/contact 3 (Johnny): first names differ" in out

    # The blocking check accepts a shared phone because each split has its refused link; without them
    # the same warehouse fails it.
    assert identifiers_belong_to_one_contact(engine).passed
    with engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM contact_link_decisions")
    failed = identifiers_belong_to_one_contact(engine)
    assert (failed.passed, failed.examples) == (False, ["phone +14155550100"])

    # A record key works too, and an unknown one is one line and a non-zero exit.
    assert run(capsys, "explain", "zoho_crm/lead/2")[1].startswith(f"contact {mary}: 1 source record(s)")
    code, out, err = run(capsys, "explain", "C999999")
    assert (code != 0, out, err.count("\n")) == (True, "", 1)
    assert "C999999" in err


def test_a_name_filled_in_later_rejudges_the_link(sqlite_url: str) -> None:
    """A record with no name on a shared landline belongs to nobody; once its first name says who it is,
    the next incremental run joins it to that person, as a full rebuild would."""
    engine = open_warehouse(sqlite_url)
    store = RawStore(engine)
    store.write_page(
        StreamKey("zoho_crm", "lead"),
        [lead("1", "John", "john@smith.example"), lead("2", "Mary", "mary@smith.example")],
    )
    store.write_page(StreamKey("zoho_bigin", "contact"), [lead("9", None, "home@smith.example")])
    build_canonical_incremental(engine, CONFIG)
    assert len({contact_of(engine, key) for key in ("1", "2", "9")}) == 3

    store.write_page(StreamKey("zoho_bigin", "contact"), [lead("9", "Mary", "home@smith.example")])
    report = build_canonical_incremental(engine, CONFIG)
    assert report.merges == 1
    assert contact_of(engine, "9") == contact_of(engine, "2") != contact_of(engine, "1")
