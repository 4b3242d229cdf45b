"""Field extraction from raw payloads shaped as each source sends them (api-notes §2.4, §3.4, §4.3, §5.5,
§6.3), bad values included, and the batch form held equal to the per-record one."""

import math
import unicodedata
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.normalise.field_values import MAX_TEXT_LENGTH, clean_text, split_name
from models.normalise.fields import Issue, extract_fields, extract_frame, frame_from_payloads
from models.normalise.layouts import LAYOUTS, layout

ZOHO_LEAD = {
    "id": "4970762000000335415",
    "Owner": {"name": "Jean Lafleur", "id": "4970762000000326001", "email": "owner@example.com"},
    "Company": "Rangoni Of Florence",
    "First_Name": "Christopher",
    "Last_Name": "Maclead (Sample)",
    "Email": "christopher@example.com",
    "Secondary_Email": None,
    "Phone": "555-555-5555",
    "Mobile": "555-555-5555",
    "Fax": "555-555-0000",
    "City": "Middle Island",
    "Country": "United States",
    "Designation": "Buyer",
    "Modified_Time": "2021-08-03T14:49:11+03:00",
}
ZOHO_CONTACT = {
    "id": "7255024000000596045",
    "First_Name": "Ted",
    "Last_Name": "Watson",
    "Email": "support@bigin.com",
    "Secondary_Email": "ted@example.org",
    "Phone": "+1-555-0123",
    "Mobile": None,
    "Home_Phone": "(415) 555-2671",
    "Other_Phone": "020 7946 0958",
    "Asst_Phone": "13774202819",
    "Fax": "555-555-0000",
    "Account_Name": {"name": "Zylker", "id": "7255024000000596001"},
    "Title": "Support",
    "Mailing_City": "Shanghai",
    "Mailing_Country": "China",
    "Modified_Time": "2026-02-06T00:29:07-08:00",
}
LINKFLOW_CONTACT = {
    "id": 2865,
    "name": "peter pan",
    "mobilePhone": "13774202819",
    "homePhone": "025-83729999",
    "email": None,
    "country": "中国",
    "city": "上海",
    "title": None,
    "company": None,
    "lastUpdated": "2018-05-10 16:22:57",
}
CLICKSEND_CONTACT = {
    "contact_id": 1581565666,
    "phone_number": "+18019234886",
    "fax_number": "",
    "email": "john@example.com",
    "first_name": "John",
    "last_name": "Doe",
    "organization_name": "",
    "address_city": "",
    "address_country": "US",
    "date_updated": 1700003600,
}
CLICKFUNNELS_CONTACT = {
    "id": 24359,
    "email_address": "jane@example.com",
    "first_name": "Jane",
    "last_name": "Doe",
    "phone_number": "(224) 508-1342 x59891",
    "updated_at": "2026-01-09T15:28:08.075Z",
}


def test_zoho_lead() -> None:
    fields = extract_fields("zoho_crm", "lead", ZOHO_LEAD)
    assert (fields.first_name, fields.last_name) == ("Christopher", "Maclead (Sample)")
    assert (fields.company, fields.title, fields.city) == ("Rangoni Of Florence", "Buyer", "Middle Island")
    assert (fields.country, fields.country_hint) == ("United States", "US")
    assert fields.emails == (("Email", "christopher@example.com"),)
    # Every phone is kept, duplicates included; Fax is not a phone anyone answers.
    assert fields.phones == (("Phone", "555-555-5555"), ("Mobile", "555-555-5555"))
    assert fields.modified_at == datetime(2021, 8, 3, 11, 49, 11, tzinfo=UTC)
    assert fields.issues == ()


@pytest.mark.parametrize("source", ["zoho_crm", "zoho_bigin"])
def test_zoho_contact_reads_lookups_and_every_phone(source: str) -> None:
    fields = extract_fields(source, "contact", ZOHO_CONTACT)
    assert fields.company == "Zylker"
    assert (fields.title, fields.city, fields.country, fields.country_hint) == (
        "Support",
        "Shanghai",
        "China",
        "CN",
    )
    assert fields.emails == (("Email", "support@bigin.com"), ("Secondary_Email", "ted@example.org"))
    assert [name for name, _ in fields.phones] == ["Phone", "Home_Phone", "Other_Phone", "Asst_Phone"]
    assert fields.modified_at == datetime(2026, 2, 6, 8, 29, 7, tzinfo=UTC)


def test_flattened_lookup_is_taken_as_its_value() -> None:
    fields = extract_fields("zoho_crm", "contact", {**ZOHO_CONTACT, "Account_Name": "Zylker Inc"})
    assert fields.company == "Zylker Inc"


def test_linkflow_contact() -> None:
    fields = extract_fields("linkflow", "contact", LINKFLOW_CONTACT)
    assert (fields.first_name, fields.last_name) == ("peter", "pan")
    assert fields.phones == (("mobilePhone", "13774202819"), ("homePhone", "025-83729999"))
    assert fields.emails == ()
    assert (fields.country_hint, fields.city) == ("CN", "上海")
    # Shanghai wall time, UTC+8.
    assert fields.modified_at == datetime(2018, 5, 10, 8, 22, 57, tzinfo=UTC)


def test_linkflow_phone_sent_as_a_number_keeps_its_digits() -> None:
    fields = extract_fields("linkflow", "contact", {**LINKFLOW_CONTACT, "mobilePhone": 13774202819})
    assert fields.phones[0] == ("mobilePhone", "13774202819")
    as_float = extract_fields("linkflow", "contact", {**LINKFLOW_CONTACT, "mobilePhone": 13774202819.0})
    assert as_float.phones[0] == ("mobilePhone", "13774202819")


def test_clicksend_contact() -> None:
    fields = extract_fields("clicksend", "list_contact", CLICKSEND_CONTACT)
    assert (fields.first_name, fields.last_name, fields.company, fields.city) == ("John", "Doe", None, None)
    assert (fields.country, fields.country_hint) == ("US", "US")
    assert fields.phones == (("phone_number", "+18019234886"),)
    assert fields.modified_at == datetime(2023, 11, 14, 23, 13, 20, tzinfo=UTC)


def test_clickfunnels_contact_keeps_the_raw_phone() -> None:
    fields = extract_fields("clickfunnels", "contact", CLICKFUNNELS_CONTACT)
    assert fields.emails == (("email_address", "jane@example.com"),)
    assert fields.phones == (("phone_number", "(224) 508-1342 x59891"),)
    assert fields.country_hint is None
    assert fields.modified_at == datetime(2026, 1, 9, 15, 28, 8, 75000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "first", "last"),
    [
        ("peter pan", "peter", "pan"),
        ("Mary Ann Smith", "Mary Ann", "Smith"),
        ("Peter", "Peter", None),
        ("张伟", "伟", "张"),
        ("欧阳娜娜", "娜娜", "欧阳"),
        ("司马光", "光", "司马"),
        ("김민준", "민준", "김"),
        ("😀", "😀", None),
    ],
)
def test_split_name(name: str, first: str | None, last: str | None) -> None:
    assert split_name(name) == (first, last)


def test_bad_values_are_dropped_with_a_reason_and_never_crash() -> None:
    payload = {
        **ZOHO_LEAD,
        "First_Name": "x" * 1_000_000,
        "Last_Name": {"nested": True},
        "Company": True,
        "City": float("inf"),
        "Email": ["a@example.com"],
        "Mobile": float("nan"),
        "Modified_Time": "yesterday",
    }
    fields = extract_fields("zoho_crm", "lead", payload)
    assert (fields.first_name, fields.last_name, fields.company, fields.city) == (None, None, None, None)
    assert fields.emails == ()
    assert fields.phones == (("Phone", "555-555-5555"),)
    assert fields.modified_at is None
    assert set(fields.issues) == {
        Issue("First_Name", "too_long"),
        Issue("Last_Name", "wrong_type"),
        Issue("Company", "wrong_type"),
        Issue("City", "wrong_type"),
        Issue("Email", "wrong_type"),
        Issue("Modified_Time", "unparseable_time"),
    }


@pytest.mark.parametrize(
    ("value", "text", "reason"),
    [
        ("  Jane \t\n Doe  ", "Jane Doe", None),
        ("Ja\x00ne\x07", "Jane", None),
        ("bad\ud800surrogate", "badsurrogate", None),
        ("Zoe\u0308", "Zoë", None),
        ("王小明 😀", "王小明 😀", None),
        ("\u3000\u00a0", None, None),
        ("y" * (MAX_TEXT_LENGTH + 1), None, "too_long"),
        (42, "42", None),
        (4.5, "4.5", None),
        (False, None, "wrong_type"),
        (None, None, None),
        (float("nan"), None, None),
    ],
)
def test_clean_text(value: Any, text: str | None, reason: str | None) -> None:
    assert clean_text(value) == (text, reason)


def test_cleaned_text_is_nfc() -> None:
    text, _ = clean_text("Jose\u0301")
    assert text is not None
    assert unicodedata.is_normalized("NFC", text)


def test_unknown_source_object_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="no field layout for zoho_crm/deal"):
        layout("zoho_crm", "deal")


def test_frame_outputs() -> None:
    payloads = [ZOHO_CONTACT, {**ZOHO_CONTACT, "Email": None, "Modified_Time": 12}, {"First_Name": "Solo"}]
    result = extract_frame("zoho_crm", "contact", frame_from_payloads("zoho_crm", "contact", payloads))
    assert result.records.index.tolist() == [0, 1, 2]
    assert str(result.records["modified_at"].dtype) == "datetime64[us, UTC]"
    assert result.records["modified_at"].isna().tolist() == [False, True, True]
    assert result.records["first_name"].tolist() == ["Ted", "Ted", "Solo"]
    points = result.contact_points
    assert points.columns.tolist() == ["row", "kind", "field", "position", "raw"]
    assert points.loc[points["row"] == 1, "field"].tolist() == [
        "Secondary_Email",
        "Phone",
        "Home_Phone",
        "Other_Phone",
        "Asst_Phone",
    ]
    assert points.loc[points["row"] == 1, "position"].tolist() == [1, 0, 2, 3, 4]
    assert result.issues.to_dict("records") == [{"row": 1, "field": "Modified_Time", "reason": "wrong_type"}]


def test_frame_reads_sql_style_columns_with_missing_paths() -> None:
    columns = pd.DataFrame(
        {
            "name": ["张伟", None],
            "mobilePhone": [13774202819, None],
            "lastUpdated": ["2018-05-10 16:22:57", None],
        },
        index=[101, 102],
    )
    result = extract_frame("linkflow", "contact", columns)
    assert result.records.loc[101, ["first_name", "last_name"]].tolist() == ["伟", "张"]
    assert result.contact_points.to_dict("records") == [
        {"row": 101, "kind": "phone", "field": "mobilePhone", "position": 0, "raw": "13774202819"}
    ]
    assert result.records.loc[102].drop("modified_at").isna().all()


def _same(left: Any, right: Any) -> bool:
    if left is None or (isinstance(left, float) and math.isnan(left)):
        return right is None or (isinstance(right, float) and math.isnan(right))
    return bool(left == right)


_ODD_VALUES = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.sampled_from(["x" * 2000, "  A  b ", "\x00", "王", {"name": "Acme"}, ["a"], {"a": 1}]),
)
_TIMES = st.one_of(
    _ODD_VALUES,
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
        lambda d: d.strftime("%Y-%m-%d %H:%M:%S")
    ),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
        lambda d: d.isoformat(timespec="milliseconds") + "Z"
    ),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
        lambda d: d.isoformat(timespec="seconds") + "+05:30"
    ),
    st.from_regex(r"\A\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d{3})?(Z|[+-]\d\d:\d\d)?\Z"),
    st.integers(-(10**12), 10**12),
)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(LAYOUTS)), st.data())
def test_frame_equals_per_record(source_object: tuple[str, str], data: st.DataObject) -> None:
    spec = layout(*source_object)
    payloads = []
    for _ in range(data.draw(st.integers(1, 8))):
        payload: dict[str, Any] = {}
        for path in spec.paths:
            value = data.draw(_TIMES if path == spec.modified_at else _ODD_VALUES)
            head, _, tail = path.partition(".")
            payload[head] = {tail: value} if tail else value
        payloads.append(payload)
    result = extract_frame(*source_object, frame_from_payloads(*source_object, payloads))
    for row, payload in enumerate(payloads):
        one = extract_fields(*source_object, payload)
        record = result.records.loc[row]
        for name in ("first_name", "last_name", "company", "title", "city", "country", "country_hint"):
            assert _same(getattr(one, name), record[name]), name
        frame_time = record["modified_at"]
        assert (one.modified_at is None) == pd.isna(frame_time)
        if one.modified_at is not None:
            assert frame_time.to_pydatetime() == one.modified_at
        mine = result.contact_points[result.contact_points["row"] == row]
        assert (
            tuple(
                zip(
                    mine.loc[mine["kind"] == "email", "field"],
                    mine.loc[mine["kind"] == "email", "raw"],
                    strict=True,
                )
            )
            == one.emails
        )
        assert (
            tuple(
                zip(
                    mine.loc[mine["kind"] == "phone", "field"],
                    mine.loc[mine["kind"] == "phone", "raw"],
                    strict=True,
                )
            )
            == one.phones
        )
        issues = result.issues[result.issues["row"] == row]
        assert sorted(zip(issues["field"], issues["reason"], strict=True)) == sorted(one.issues)


def test_frame_of_no_rows() -> None:
    result = extract_frame("clickfunnels", "contact", pd.DataFrame(index=pd.RangeIndex(0)))
    assert result.records.empty
    assert result.contact_points.empty
    assert result.issues.empty
    assert np.asarray(result.records.columns).tolist()[-1] == "modified_at"


def test_frame_columns_read_each_path_as_one_record_does() -> None:
    """Plain keys are read straight, dotted ones walked; a payload that is no object reads as itself
    (as a flattened lookup does), a missing key as None."""
    payloads: list[Any] = [
        {"Account_Name": {"name": "Globex"}, "First_Name": "Ann"},
        {"Account_Name": "Flat Co"},
        {},
        "not an object",
    ]
    columns = frame_from_payloads("zoho_crm", "contact", payloads)
    assert columns["Account_Name.name"].tolist() == ["Globex", "Flat Co", None, "not an object"]
    assert columns["First_Name"].tolist() == ["Ann", None, None, "not an object"]
