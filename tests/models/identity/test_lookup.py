"""Finding golden contacts back: what `contact-sync show` asks the warehouse, on SQLite and PostgreSQL.

Three Zoho leads resolved for real: two share an email on the blocklist (so they stay two people),
one is alone. Merge history is then written by hand to hold chains and a cycle, which resolution
never makes but a lookup must survive.
"""

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models.identity.canonical import build_canonical
from models.identity.linking import IdentityConfig
from models.identity.lookup import contact_story, find_contacts, golden_sample, records_per_source
from models.identity.phases import CanonicalConfig
from models.warehouse.db import open_warehouse
from models.warehouse.store import RawRow, RawStore, StreamKey
from models.warehouse.tables import Contact, ContactMerge

SHARED = "front.desk@acme.example"
LEADS = {
    "101": {"Email": SHARED, "Phone": "+14155550101", "Last_Name": "Ames"},
    "102": {"Email": f"  {SHARED.upper()} ", "Phone": "(415) 555-0102", "Last_Name": "Boyd"},
    "103": {"Email": "cora@example.com", "Secondary_Email": "cora.w@example.org", "Last_Name": "Wu"},
}


@pytest.fixture
def engine(warehouse_url: str) -> Engine:
    engine = open_warehouse(warehouse_url)
    modified = datetime(2026, 1, 5, tzinfo=UTC)
    rows = [
        RawRow(lead_id, {"id": lead_id, "Modified_Time": modified.isoformat(), **fields}, modified)
        for lead_id, fields in LEADS.items()
    ]
    RawStore(engine).write_page(StreamKey("zoho_crm", "lead"), rows)
    identity = IdentityConfig(blocklist_emails=frozenset({SHARED}))
    build_canonical(engine, CanonicalConfig(regions={"zoho_crm": "US"}, identity=identity))
    return engine


def contact_of(engine: Engine, email: str | None = None, phone: str | None = None) -> str:
    column, value = (Contact.email, email) if email else (Contact.phone, phone)
    with engine.connect() as connection:
        return str(connection.execute(sa.select(Contact.contact_id).where(column == value)).scalar_one())


def merges(engine: Engine, *pairs: tuple[str, str]) -> None:
    when = datetime(2026, 2, 1, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(
            sa.insert(ContactMerge).values(kind="merge"),
            [{"old_contact_id": a, "new_contact_id": b, "merged_at": when} for a, b in pairs],
        )


def test_emails_and_phones_are_found_in_their_normal_form_even_when_not_chosen(engine: Engine) -> None:
    cora = contact_of(engine, email="cora@example.com")
    ames = contact_of(engine, phone="+14155550101")
    boyd = contact_of(engine, phone="+14155550102")
    found = find_contacts(engine, "  Cora.W@Example.ORG", ["US"])  # a secondary email of her record
    assert (found.kind, found.value, found.contact_ids) == ("email", "cora.w@example.org", (cora,))
    found = find_contacts(engine, "415.555.0101", ["CN", "US"])  # read with each region in turn
    assert (found.kind, found.value, found.contact_ids) == ("phone", "+14155550101", (ames,))
    # A blocklisted email links no one: both people hold it, so the lookup cannot choose.
    assert find_contacts(engine, SHARED, ["US"]).contact_ids == tuple(sorted((ames, boyd)))
    assert find_contacts(engine, "nobody@example.com", ["US"]).contact_ids == ()
    unusable = find_contacts(engine, "111-111-1111", ["US"])
    assert (unusable.value, unusable.reason, unusable.contact_ids) == (None, "junk", ())
    assert records_per_source(engine, ("zoho_crm", "linkflow")) == {"linkflow": 0, "zoho_crm": 3}


def test_a_merged_away_id_leads_along_its_merges_to_the_survivor(engine: Engine) -> None:
    cora = contact_of(engine, email="cora@example.com")
    merges(engine, ("c_000000000090", "c_000000000080"), ("c_000000000080", cora))
    found = find_contacts(engine, "c_000000000090", [])
    assert found.contact_ids == (cora,)
    assert [(m.old_contact_id, m.new_contact_id) for m in found.merged] == [
        ("c_000000000090", "c_000000000080"),
        ("c_000000000080", cora),
    ]
    story = contact_story(engine, cora)
    assert story is not None
    assert story.former_ids == ("c_000000000080", "c_000000000090")
    assert [(h.old_contact_id, h.new_contact_id) for h in story.history] == [
        ("c_000000000090", "c_000000000080"),
        ("c_000000000080", cora),
    ]
    assert [(r.source, r.object, r.source_id) for r in story.records] == [("zoho_crm", "lead", "103")]
    assert {f.field: (f.value, f.source_id, f.rule) for f in story.fields}["last_name"] == (
        "Wu",
        "103",
        "most_recent",
    )

    merges(engine, ("c_000000000070", "c_000000000071"), ("c_000000000071", "c_000000000070"))
    lost = find_contacts(engine, "c_000000000070", [])  # a cycle ends, leading nowhere
    assert (lost.contact_ids, len(lost.merged)) == ((), 1)
    assert contact_story(engine, "c_000000000070") is None


def test_the_sample_is_the_newest_contacts_then_by_id_across_shared_times(warehouse_url: str) -> None:
    """Read one time at a time through the (updated_at, contact_id) index, the sample is what one
    ORDER BY updated_at DESC, contact_id gives: across times, and within a time shared by many."""
    engine = open_warehouse(warehouse_url)
    times = [datetime(2026, 1, day, tzinfo=UTC) for day in (1, 2, 3)]
    rows = [
        {"contact_id": f"C{n:03d}", "created_at": times[0], "updated_at": times[n % 3], "source_count": 1}
        for n in (17, 3, 8, 12, 1, 5, 9, 14, 2, 11, 4, 6, 20, 7)
    ]
    with engine.begin() as connection:
        connection.execute(sa.insert(Contact), rows)
        ordered = connection.execute(
            sa.select(Contact.contact_id).order_by(Contact.updated_at.desc(), Contact.contact_id)
        ).scalars()
        expected = list(ordered)
    for limit in (1, 4, 5, 10, 30):
        assert [row["contact_id"] for row in golden_sample(engine, limit)] == expected[:limit]
