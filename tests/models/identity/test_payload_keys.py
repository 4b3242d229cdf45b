"""The full rebuild reads only the payload keys its readers look at, cut out by the database: what it
builds from those partial payloads (fields, contact points, issues, mapped fields, consent) equals what
it builds from the whole payloads, on the emulator's records and on odd ones, on SQLite and PostgreSQL."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

import models.identity.canonical as canonical
from connectors.emulator import running_emulator
from models.identity.canonical import _read_records, _slice, cut_payloads
from models.identity.consent import CONSENT_KEYS, statements
from models.identity.payload_keys import partial_keys, reader_keys
from models.identity.phases import CONTACT_OBJECTS, CanonicalConfig, extract_contact_records
from models.mappings import parse_mappings
from models.warehouse.db import open_warehouse
from models.warehouse.tables import PushLedger, RawRecord
from tests.models.identity.test_canonical_incremental import REGIONS
from tests.pipelines.test_extract import extract_all

MAPPINGS = parse_mappings(
    """
fields:
  - {name: plan, type: text, sources: {clicksend/list_contact: custom_1, linkflow/contact: props.attr2}}
  - name: seats
    type: number
    sources: {zoho_crm/lead: Seats, clickfunnels/contact: custom_attributes.seats}
  - {name: vip, type: boolean, sources: {zoho_bigin/contact: Vip}}
"""
)
CONFIG = CanonicalConfig(regions=REGIONS, mappings=MAPPINGS)
_NOW = datetime(2026, 1, 1, tzinfo=UTC)

#: Per object, payloads with what sources get wrong: absent and null keys, numbers and booleans
#: where text belongs, nested objects and arrays, lookups flattened to plain values, huge integers,
#: floats written oddly, escapes, and consent keys present, null and absent.
ODD: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("clickfunnels", "contact"): [
        {"email_address": "a@x.com", "phone_number": 14155550123, "unsubscribed_at": None},
        {"email_address": ["a@x.com", "b@x.com"], "first_name": {"given": "Ann"}, "updated_at": 1.5e9},
        {
            "unsubscribed_at": "2025-01-02T03:04:05Z",
            "custom_attributes": {"seats": "12"},
            "last_name": "O\u2019Neil\n",
        },
        {"unsubscribed_at": "", "custom_attributes": "flat", "updated_at": "2025-13-40T00:00:00Z"},
        {},
    ],
    ("clicksend", "list_contact"): [
        {
            "email": "x@y.z",
            "phone_number": "+1 415 555 0100",
            "list_name": " Opt-Out List ",
            "date_added": 1.7e9,
        },
        {"phone_number": 12345678901234567890123, "custom_1": 7, "date_updated": "1700000000"},
        {"list_name": None, "date_added": "soon", "address_country": "Deutschland", "custom_1": "gold"},
        {"first_name": True, "last_name": False, "date_updated": 1e2},
    ],
    ("linkflow", "contact"): [
        {
            "name": "Wei Zhang",
            "mobilePhone": "13800138000",
            "props": {"attr2": "pro"},
            "lastUpdated": "2025-01-01 08:00:00",
        },
        {"name": None, "homePhone": [1, [2, {"x": None}]], "props": "flat", "email": "caf\u00e9@x.com"},
        {"name": "\u0001\u0002", "props": {"attr2": None}, "lastUpdated": 0},
    ],
    ("zoho_crm", "lead"): [
        {
            "Email": "l@x.com",
            "Email_Opt_Out": True,
            "Unsubscribed_Time": None,
            "Modified_Time": "2025-02-03T04:05:06+05:30",
        },
        {"Email_Opt_Out": "true", "Seats": "3.0", "Designation": None, "Title": "CTO", "Phone": -0.0},
        {"Email_Opt_Out": False, "Seats": 10**30, "City": "x" * 5000},
    ],
    ("zoho_crm", "contact"): [
        {"Account_Name": {"name": "Globex", "id": "1"}, "Mobile": "(415) 555-0101", "Email_Opt_Out": True},
        {"Account_Name": "Flat Co", "Secondary_Email": "s@x.com", "Unsubscribed_Time": "bad"},
        {"Email_Opt_Out": True, "Unsubscribed_Time": "2025-03-04T05:06:07Z"},
        {"Account_Name": None, "Other_City": "Paris", "Mailing_City": None},
    ],
    ("zoho_bigin", "contact"): [
        {"Account_Name": {"name": None}, "Vip": True, "Email_Opt_Out": True},
        {"Vip": [{"vip": True}], "Email": 5, "Modified_Time": "2025-01-01T00:00:00.123456Z"},
        {"Vip": "yes", "Home_Phone": "+44 20 7946 0958", "Asst_Phone": {"ext": 1}},
    ],
}


def _store(engine: Engine, payloads: dict[tuple[str, str], list[dict[str, Any]]]) -> None:
    rows = [
        {
            "source": source,
            "object": obj,
            "source_id": f"{obj}-{index}",
            "payload": payload,
            "content_hash": "",
            "first_seen_at": _NOW,
            "last_seen_at": _NOW,
            "changed_at": _NOW,
        }
        for (source, obj), found in payloads.items()
        for index, payload in enumerate(found)
    ]
    with engine.begin() as connection:
        connection.execute(sa.insert(RawRecord), rows)


def _built(raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, int, list[str], pd.DataFrame]:
    unreadable: list[str] = []
    records, points, issues = extract_contact_records(raw, REGIONS, MAPPINGS, unreadable)
    return records, points, issues, unreadable, statements(raw)


def _assert_same_reading(connection: Connection) -> None:
    partial = partial_keys(CONTACT_OBJECTS, MAPPINGS, connection.dialect.name)
    assert partial is not None
    cut, whole = _slice(connection, None, partial), _slice(connection, None, None)
    assert len(cut) == len(whole) > 0
    assert cut.drop(columns="payload").equals(whole.drop(columns="payload"))
    for got, expected in zip(_built(cut), _built(whole), strict=True):
        if isinstance(expected, pd.DataFrame):
            pd.testing.assert_frame_equal(got, expected)
        else:
            assert got == expected


def test_odd_payloads_read_the_same_cut_or_whole(warehouse_url: str) -> None:
    engine = open_warehouse(warehouse_url)
    _store(engine, ODD)
    with engine.connect() as connection:
        _assert_same_reading(connection)
        partial = partial_keys(CONTACT_OBJECTS, MAPPINGS, connection.dialect.name)
        assert partial is not None
        cut = _slice(connection, None, partial)
    # The partial payload holds the keys read and no other; presence is kept where it is read.
    first = cut.loc[cut["source"] == "clickfunnels", "payload"].tolist()
    assert "unsubscribed_at" in first[0]
    assert "unsubscribed_at" not in first[1]
    assert "tags" not in first[0]
    assert first[2]["custom_attributes"] == {"seats": "12"}


@pytest.fixture
def emulated(warehouse_url: str) -> Iterator[Engine]:
    with running_emulator(seed=5, people=80) as emulator:
        extract_all(emulator, warehouse_url)
        yield open_warehouse(warehouse_url)


def test_the_emulators_records_read_the_same_cut_or_whole(emulated: Engine) -> None:
    with emulated.connect() as connection:
        _assert_same_reading(connection)


def _wrote_last_names(connection: Connection, ours: str) -> pd.DataFrame:
    """Ledger rows as if we had written the last name of every third Zoho lead, each answer stamped
    with the record's time, half as the user who last modified it (``ours``), half as another; the
    records' source, object, source_id and whether the write was made as ``ours``."""
    leads = connection.execute(
        sa.select(RawRecord.source_id, RawRecord.source_modified_at, RawRecord.payload)
        .where(RawRecord.source == "zoho_crm", RawRecord.object == "lead")
        .order_by(RawRecord.id)
    ).all()
    rows, written = [], []
    for n, (source_id, modified_at, payload) in enumerate(leads[::3]):
        as_ours = n % 2 == 0
        rows.append(
            {
                "run_id": "r1",
                "destination": "zoho_crm",
                "object": "lead",
                "record_id": source_id,
                "contact_id": "C1",
                "field": "Last_Name",
                "after_value": payload["Last_Name"],
                "reason": "fill",
                "status": "sent",
                "attempts": 1,
                "dry_run": False,
                "created_at": _NOW,
                "updated_at": modified_at,
                "record_modified_at": modified_at - timedelta(days=1),
                "result_modified_at": modified_at,
                "written_by": ours if as_ours else "someone else",
            }
        )
        written.append(("zoho_crm", "lead", source_id, as_ours))
    connection.execute(sa.insert(PushLedger), rows)
    return pd.DataFrame(written, columns=["source", "object", "source_id", "as_ours"])


def test_records_we_wrote_are_judged_on_their_whole_payloads(
    emulated: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each slice judges our writes to its records while it holds their payloads, on the whole ones:
    the cut ones lack ``Modified_By``, which tells a write made as us from someone's later edit."""
    with emulated.begin() as connection:
        ours = connection.execute(
            sa.select(RawRecord.payload).where(RawRecord.source == "zoho_crm").limit(1)
        ).scalar_one()["Modified_By"]["id"]
        written = _wrote_last_names(connection, ours)
    monkeypatch.setattr(canonical, "LOAD_CHUNK", 50)
    cut = _read_records(emulated, CONFIG, [], expected=4 * len(written))
    monkeypatch.setattr(canonical, "partial_keys", lambda *_: None)
    whole = _read_records(emulated, CONFIG, [], expected=4 * len(written))
    for name in ("records", "points", "consent"):
        pd.testing.assert_frame_equal(getattr(cut, name), getattr(whole, name))
    assert cut.issues == whole.issues
    judged = cut.records.merge(written, on=["source", "object", "source_id"], how="left")
    discounted = judged["person_modified_at"] < pd.to_datetime(judged["modified_at"], utc=True)
    assert len(written) > 4
    assert discounted.tolist() == judged["as_ours"].eq(True).tolist()
    echoed = judged["echoes"].map(lambda names: "last_name" in names)
    assert echoed.tolist() == judged["as_ours"].notna().tolist()


def test_a_sqlite_payload_that_is_not_strict_json_reads_its_slice_whole(sqlite_url: str) -> None:
    engine = open_warehouse(sqlite_url)
    _store(
        engine, {("clicksend", "list_contact"): [{"email": "n@x.com", "custom_1": 1.0}, {"email": "m@x.com"}]}
    )
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE raw_records SET payload = replace(payload, '1.0', 'NaN')"))
    with engine.connect() as connection:
        partial = partial_keys(CONTACT_OBJECTS, MAPPINGS, "sqlite")
        assert partial is not None
        raw = _slice(connection, None, partial)
    assert [p["email"] for p in raw["payload"]] == ["n@x.com", "m@x.com"]
    assert raw["payload"][0]["custom_1"] != raw["payload"][0]["custom_1"]  # NaN, read by Python


def test_keys_are_each_paths_first_segment_with_consent_and_mapped_fields() -> None:
    keys = reader_keys("zoho_bigin", "contact", MAPPINGS)
    assert "Account_Name" in keys
    assert "Account_Name.name" not in keys
    assert "Vip" in keys
    assert set(CONSENT_KEYS[("zoho_bigin", "contact")]) <= set(keys)
    assert len(keys) == len(set(keys))
    assert "custom_attributes" in reader_keys("clickfunnels", "contact", MAPPINGS)
    assert "custom_attributes" not in reader_keys("clickfunnels", "contact", None)


def test_payloads_are_read_whole_once_we_wrote_most_records() -> None:
    """Each record we wrote is read twice when payloads are cut (cut, then whole for survivorship):
    past half of them, one whole read is cheaper."""
    assert cut_payloads(0, 0)
    assert cut_payloads(50, 100)
    assert not cut_payloads(51, 100)
    assert not cut_payloads(1, 0)
