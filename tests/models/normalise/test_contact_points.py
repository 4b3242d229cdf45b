"""From extracted contact points to identifiers and each record's primary email and phone."""

import pandas as pd

from models.normalise.contact_points import identifiers_of, normalise_contact_points, primaries
from models.normalise.fields import extract_frame, frame_from_payloads


def test_from_payloads_to_identifiers_and_primaries() -> None:
    payloads = [
        {
            "Email": "bad address",
            "Secondary_Email": " Ted@Example.org ",
            "Phone": "555-555-5555",
            "Mobile": "(415) 555-2671",
            "Home_Phone": "415.555.2671",
            "Mailing_Country": "United States",
        },
        {"Email": "li@example.cn", "Mobile": "13774202819", "Mailing_Country": "中国"},
        {"Email": None},
    ]
    extracted = extract_frame("zoho_crm", "contact", frame_from_payloads("zoho_crm", "contact", payloads))
    points = extracted.contact_points.rename(columns={"row": "record_key"})
    points["region"] = extracted.records["country_hint"].fillna("US").reindex(points["record_key"]).to_numpy()
    normalised = normalise_contact_points(points)

    assert normalised[["field", "value", "reason"]].to_dict("records") == [
        {"field": "Email", "value": None, "reason": "invalid_syntax"},
        {"field": "Secondary_Email", "value": "ted@example.org", "reason": None},
        {"field": "Phone", "value": None, "reason": "junk"},
        {"field": "Mobile", "value": "+14155552671", "reason": None},
        {"field": "Home_Phone", "value": "+14155552671", "reason": None},
        {"field": "Email", "value": "li@example.cn", "reason": None},
        {"field": "Mobile", "value": "+8613774202819", "reason": None},
    ]
    assert identifiers_of(normalised).to_dict("records") == [
        {"record_key": 0, "kind": "email", "value": "ted@example.org"},
        {"record_key": 0, "kind": "phone", "value": "+14155552671"},
        {"record_key": 1, "kind": "email", "value": "li@example.cn"},
        {"record_key": 1, "kind": "phone", "value": "+8613774202819"},
    ]
    assert primaries(normalised).to_dict("records") == [
        {"record_key": 0, "email": "ted@example.org", "phone": "+14155552671"},
        {"record_key": 1, "email": "li@example.cn", "phone": "+8613774202819"},
    ]


def test_primary_is_the_first_usable_by_position_whatever_the_row_order() -> None:
    normalised = pd.DataFrame(
        {
            "record_key": [7, 7, 7, 8],
            "kind": ["phone", "phone", "email", "phone"],
            "position": [2, 1, 0, 0],
            "value": ["+14155552671", "+8613774202819", None, None],
        }
    )
    assert primaries(normalised).to_dict("records") == [
        {"record_key": 7, "email": None, "phone": "+8613774202819"}
    ]


def test_a_junk_value_is_a_records_primary_only_when_it_holds_no_other() -> None:
    normalised = pd.DataFrame(
        {
            "record_key": [1, 1, 2],
            "kind": ["email", "email", "email"],
            "position": [0, 1, 0],
            "value": ["test@test.com", "ann@example.org", "test@test.com"],
        }
    )
    junk = normalised["value"].eq("test@test.com").to_numpy()
    assert primaries(normalised, junk)["email"].tolist() == ["ann@example.org", "test@test.com"]
    assert primaries(normalised)["email"].tolist() == ["test@test.com", "test@test.com"]
