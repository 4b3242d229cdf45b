"""Reverse-sync planning: what is pushed, what is kept, how it is batched and how each row ends.

The echo tests apply a plan the way each destination stores what it is sent (Zoho and ClickFunnels
show numbers of their own country nationally, Zoho changes the case of emails and pads text) and plan
again: nothing may be left to send.
"""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.normalise.fields import extract_fields
from models.push.field_map import CANONICAL_FIELDS, FIELD_MAPS, PushConfig, destination_map
from models.push.plan import (
    OUTCOME_COLUMNS,
    PLAN_COLUMNS,
    STATES,
    RecordChange,
    RecordResult,
    SendableRows,
    batches,
    drop_settled,
    full_name,
    next_attempt_state,
    outcome_states,
    plan_creates,
    plan_updates,
    record_changes,
    split_batch,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
JANE = {
    "contact_id": "c1",
    "email": "jane@example.com",
    "phone": "+14155550123",
    "first_name": "Jane",
    "last_name": "Doe",
    "company": "Acme",
    "title": "CTO",
    "city": "Boston",
    "country": "United States",
}
WANG = {
    "contact_id": "c2",
    "email": "wang@example.cn",
    "phone": "+8613774202819",
    "first_name": "小明",
    "last_name": "王",
    "company": None,
    "title": None,
    "city": "上海",
    "country": None,
}


def golden(*contacts: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(
        [{name: c.get(name) for name in ("contact_id", *CANONICAL_FIELDS)} for c in contacts], dtype=object
    )


def targets(
    *rows: tuple[str, str, str, str, dict[str, Any]], modified_at: datetime | None = T0
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "destination": [r[0] for r in rows],
            "object": [r[1] for r in rows],
            "record_id": [r[2] for r in rows],
            "contact_id": [r[3] for r in rows],
            "payload": [r[4] for r in rows],
            "modified_at": pd.to_datetime([modified_at] * len(rows), utc=True),
        }
    )


def planned(plan: pd.DataFrame) -> dict[tuple[str, str], tuple[Any, Any, str]]:
    """(record_id, field) -> (before, after, reason) of the rows that would be sent."""
    ok = plan[plan["invalid_reason"].isna()]
    return {
        (r.record_id, r.field): (r.before_value, r.after_value, r.reason) for r in ok.itertuples(index=False)
    }


# ---------------------------------------------------------------------------------- safe by default


def test_empty_fields_are_filled_and_nothing_else() -> None:
    payload = {
        "Email": "jane@example.com",
        "Phone": None,
        "First_Name": "",
        "Last_Name": "Doe",
        "Title": "Chief Technology Officer",
        "Mailing_City": "   ",
    }
    plan = plan_updates(targets(("zoho_crm", "contact", "z1", "c1", payload)), golden(JANE), PushConfig())
    assert planned(plan) == {
        ("z1", "Phone"): (None, "+14155550123", "fill_empty"),
        ("z1", "First_Name"): ("", "Jane", "fill_empty"),
        ("z1", "Mailing_City"): ("   ", "Boston", "fill_empty"),
        ("z1", "Mailing_Country"): (None, "United States", "fill_empty"),
    }
    assert list(plan.columns) == list(PLAN_COLUMNS)


def test_a_non_empty_value_survives_unless_opted_in() -> None:
    payload = {"contact_id": 9, "list_id": 5, "first_name": "Janet", "last_name": "Doe", "email": "j@x.io"}
    rows = targets(("clicksend", "list_contact", "9", "c1", payload))
    default = planned(plan_updates(rows, golden(JANE), PushConfig()))
    assert ("9", "first_name") not in default
    opted = PushConfig(overwrite={("clicksend", "list_contact"): frozenset({"first_name"})})
    assert planned(plan_updates(rows, golden(JANE), opted))[("9", "first_name")] == (
        "Janet",
        "Jane",
        "overwrite_opt_in",
    )
    # Opting in for one destination says nothing about another.
    other = PushConfig(overwrite={("clickfunnels", "contact"): frozenset({"first_name"})})
    assert ("9", "first_name") not in planned(plan_updates(rows, golden(JANE), other))


def test_a_name_never_goes_to_a_record_whose_own_first_name_disagrees() -> None:
    """A household member's record that sits in Jane's contact (say it was linked before the household
    rule) is Mary's: Jane's last name must not be filled into it, nor her first name forced over Mary's."""
    payload = {"contact_id": 9, "list_id": 5, "first_name": "Mary", "last_name": "", "email": "j@x.io"}
    rows = targets(("clicksend", "list_contact", "9", "c1", payload))
    overwrite = PushConfig(overwrite={("clicksend", "list_contact"): frozenset({"first_name"})})
    plan = plan_updates(rows, golden(JANE), overwrite).set_index("field")
    for field in ("first_name", "last_name"):
        assert plan.loc[field, "invalid_reason"] == (
            "the record's first name 'Mary' is not the golden contact's 'Jane': "
            "names never move between people"
        )
    assert pd.isna(plan.loc["phone_number", "invalid_reason"])
    # Agreeing names (a short form) and the guard switched off both let the name through.
    agreeing = targets(("clicksend", "list_contact", "9", "c1", {**payload, "first_name": "J."}))
    assert ("9", "last_name") in planned(plan_updates(agreeing, golden(JANE), PushConfig()))
    assert ("9", "last_name") in planned(plan_updates(rows, golden(JANE), PushConfig(name_guard=False)))


def test_email_and_phone_are_never_overwritten_by_default() -> None:
    payload = {
        "email_address": "jane.old@example.com",
        "phone_number": "+1 212 555 0199",
        "first_name": "Jane",
    }
    rows = targets(("clickfunnels", "contact", "f1", "c1", payload))
    everything_else = frozenset({"first_name", "last_name"})
    config = PushConfig(overwrite={("clickfunnels", "contact"): everything_else})
    assert planned(plan_updates(rows, golden(JANE), config)) == {
        ("f1", "last_name"): (None, "Doe", "fill_empty")
    }
    opted = PushConfig(overwrite={("clickfunnels", "contact"): frozenset({"email", "phone"})})
    result = planned(plan_updates(rows, golden(JANE), opted))
    assert result[("f1", "email_address")][1:] == ("jane@example.com", "overwrite_opt_in")
    assert result[("f1", "phone_number")][1:] == ("+14155550123", "overwrite_opt_in")


def test_values_compare_in_normalised_form() -> None:
    payload = {
        "Email": "  Jane@EXAMPLE.com ",
        "Phone": "(415) 555-0123",
        "First_Name": " Jane ",
        "Last_Name": "Doe",
        "Title": "CTO",
        "Mailing_City": "Boston",
        "Mailing_Country": "US",
    }
    everything = frozenset(spec.canonical for spec in destination_map("zoho_crm", "contact").fields)
    config = PushConfig(overwrite={("zoho_crm", "contact"): everything})
    rows = targets(("zoho_crm", "contact", "z1", "c1", payload))
    assert planned(plan_updates(rows, golden(JANE), config)) == {}
    # Text is case-sensitive: a different case is a different value.
    lower = targets(("zoho_crm", "contact", "z1", "c1", {**payload, "First_Name": "jane"}))
    assert planned(plan_updates(lower, golden(JANE), config)) == {
        ("z1", "First_Name"): ("jane", "Jane", "overwrite_opt_in")
    }


def test_a_value_held_in_another_field_counts_as_held() -> None:
    payload = {"Email": None, "Secondary_Email": "JANE@example.com", "Phone": "", "Mobile": "+1 415-555-0123"}
    plan = plan_updates(targets(("zoho_crm", "lead", "l1", "c1", payload)), golden(JANE), PushConfig())
    assert {field for _, field in planned(plan)} == {
        "First_Name",
        "Last_Name",
        "Company",
        "Designation",
        "City",
        "Country",
    }


def test_golden_gaps_never_clear_a_field() -> None:
    payload = {"email": "x@example.com", "company": "Old Co", "title": "Boss", "city": None}
    bare = {"contact_id": "c1", "email": None, "phone": None}
    everything = frozenset(spec.canonical for spec in destination_map("linkflow", "contact").fields)
    config = PushConfig(overwrite={("linkflow", "contact"): everything})
    plan = plan_updates(targets(("linkflow", "contact", "7", "c1", payload)), golden(bare), config)
    assert plan.empty
    assert list(plan.columns) == list(PLAN_COLUMNS)


def test_records_of_unknown_contacts_and_the_opt_out_list_are_left_alone() -> None:
    empty = {"contact_id": 1, "list_id": 5, "first_name": ""}
    rows = targets(
        ("clicksend", "list_contact", "1", "gone", empty),
        ("clicksend", "list_contact", "2", "c1", {**empty, "list_id": 6, "list_name": "Opt-Out List"}),
        ("clicksend", "list_contact", "3", "c1", {**empty, "list_id": 7}),
        ("clicksend", "list_contact", "4", "c1", {**empty, "list_id": 8}),
    )
    plan = plan_updates(rows, golden(JANE), PushConfig(opt_out_lists=frozenset({"7"})))
    assert set(plan["record_id"]) == {"4"}
    assert set(plan["parent_id"]) == {"8"}


def test_zoho_records_awaiting_approval_are_left_alone() -> None:
    empty = {"Email": "jane@example.com", "Phone": None, "Last_Name": "Doe"}
    rows = targets(
        ("zoho_bigin", "contact", "b1", "c1", {**empty, "$approval_state": "approval_process_pending"}),
        ("zoho_bigin", "contact", "b2", "c1", {**empty, "$approval_state": "approved"}),
        ("zoho_crm", "contact", "z1", "c1", empty),  # read without the state: nothing says it waits
    )
    plan = plan_updates(rows, golden(JANE), PushConfig())
    assert set(plan["record_id"]) == {"b2", "z1"}


# ---------------------------------------------------------------------------------- formatting


def test_linkflow_gets_chinese_mobiles_without_the_country_code() -> None:
    rows = targets(
        ("linkflow", "contact", "1", "c2", {"id": 1, "mobilePhone": None}),
        ("linkflow", "contact", "2", "c1", {"id": 2, "mobilePhone": None}),
        # A record whose country is the US reads national digits as a US number: keep E.164.
        ("linkflow", "contact", "3", "c2", {"id": 3, "mobilePhone": None, "country": "United States"}),
    )
    result = planned(plan_updates(rows, golden(JANE, WANG), PushConfig()))
    assert result[("1", "mobilePhone")][1] == "13774202819"
    assert result[("2", "mobilePhone")][1] == "+14155550123"
    assert result[("3", "mobilePhone")][1] == "+8613774202819"
    assert result[("1", "name")][1] == "王小明"
    assert result[("2", "name")][1] == "Jane Doe"


def test_a_country_filled_by_the_same_plan_decides_how_the_phone_is_written() -> None:
    us_reader = PushConfig(regions={"linkflow": "US"})
    china = {**WANG, "country": "中国"}
    rows = targets(("linkflow", "contact", "1", "c2", {"id": 1, "mobilePhone": None, "country": None}))
    result = planned(plan_updates(rows, golden(china), us_reader))
    assert result[("1", "country")][1] == "中国"
    assert result[("1", "mobilePhone")][1] == "13774202819"
    assert planned(plan_updates(rows, golden(WANG), us_reader))[("1", "mobilePhone")][1] == "+8613774202819"


def test_clicksend_gets_country_codes_and_refuses_what_has_none() -> None:
    empty = {"contact_id": 1, "list_id": 5, "address_country": ""}
    rows = targets(
        ("clicksend", "list_contact", "1", "c1", empty), ("clicksend", "list_contact", "2", "c3", empty)
    )
    atlantis = {**JANE, "contact_id": "c3", "country": "Atlantis"}
    plan = plan_updates(rows, golden(JANE, atlantis), PushConfig())
    country = plan[plan["field"] == "address_country"].set_index("record_id")
    assert country.loc["1", "after_value"] == "US"
    assert country.loc["1", "invalid_reason"] is None
    assert country.loc["2", "invalid_reason"] == "no ISO 3166 code for this country"
    # The same country named another way is the same country: nothing to push.
    held = targets(("clicksend", "list_contact", "1", "c1", {**empty, "address_country": "US"}))
    assert "address_country" not in set(plan_updates(held, golden(JANE), PushConfig())["field"])


def test_values_longer_than_the_destination_takes_are_invalid() -> None:
    long_name = {**JANE, "first_name": "A" * 41}
    rows = targets(
        ("zoho_crm", "contact", "z1", "c1", {"First_Name": None}),
        ("clickfunnels", "contact", "f1", "c1", {"first_name": None}),
    )
    plan = plan_updates(rows, golden(long_name), PushConfig())
    first = plan[plan["canonical_field"] == "first_name"].set_index("destination")
    assert first.loc["zoho_crm", "invalid_reason"] == "longer than the destination's 40 characters"
    assert first.loc["clickfunnels", "invalid_reason"] is None
    assert all("First_Name" not in c.payload for c in record_changes(plan))


@pytest.mark.parametrize(
    ("first", "last", "name"),
    [
        ("Jane", "Doe", "Jane Doe"),
        ("Mary Ann", "Smith", "Mary Ann Smith"),
        ("小明", "王", "王小明"),
        ("Jane", None, "Jane"),
        (None, "Doe", None),
        ("Jan", "van Dyke", None),
        ("Mary Ann", None, None),
    ],
)
def test_full_name_reads_back_as_the_same_parts(
    first: str | None, last: str | None, name: str | None
) -> None:
    assert full_name(first, last) == name


# ---------------------------------------------------------------------------------- no echo

_REGION_OF = {"clickfunnels": "US", "clicksend": "US", "linkflow": "CN", "zoho_crm": "US", "zoho_bigin": "US"}


def _stored_phone(e164: str, region: str) -> str:
    number = phonenumbers.parse(e164)
    if phonenumbers.region_code_for_number(number) == region:
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def _store(destination: str, obj: str, payload: dict[str, Any], change: RecordChange) -> dict[str, Any]:
    """The payload after the destination stored the change its own way."""
    written = {k: v for k, v in change.payload.items() if k != "id"}
    stored = {**payload, **written}
    if destination in ("zoho_crm", "zoho_bigin", "clickfunnels"):
        region = extract_fields(destination, obj, stored).country_hint or _REGION_OF[destination]
        for spec in destination_map(destination, obj).fields:
            if spec.field not in written:
                continue
            value = written[spec.field]
            if spec.compare == "phone":
                stored[spec.field] = _stored_phone(value, region)
            elif spec.compare == "email" and destination != "clickfunnels":
                local, _, domain = value.partition("@")
                stored[spec.field] = f"{local.capitalize()}@{domain.upper()}"
            elif destination != "clickfunnels":
                stored[spec.field] = " " + value.replace(" ", "  ") + " "
    return stored


def apply(rows: pd.DataFrame, changes: list[RecordChange]) -> pd.DataFrame:
    by_record = {(c.destination, c.object, c.record_id): c for c in changes if not c.is_create}
    applied = rows.copy()
    applied["payload"] = [
        _store(r.destination, r.object, r.payload, by_record[key])
        if (key := (r.destination, r.object, str(r.record_id))) in by_record
        else r.payload
        for r in rows.itertuples(index=False)
    ]
    return applied


_EMAILS = st.sampled_from([None, "", "jane@example.com", " JANE@example.com", "other@example.com", "nope"])
_PHONES = st.sampled_from(
    [
        None,
        "",
        "+14155550123",
        "(415) 555-0123",
        "13774202819",
        "+86 137 7420 2819",
        "555-555-5555",
        13774202819,
    ]
)
_TEXT = st.sampled_from([None, "", "  ", "Jane", " jane ", "Doe", "王", "小明", "Acme", "x" * 300])
_NAMES = st.sampled_from([None, "", "Jane Doe", "王小明", "peter pan", "Jane"])
_COUNTRIES = st.sampled_from([None, "", "United States", "US", "中国", "China", "Atlantis"])
_EXTRA = {"Secondary_Email": _EMAILS, "Mobile": _PHONES, "Other_City": _TEXT, "Other_Country": _COUNTRIES}


@st.composite
def _payload(draw: st.DrawFn, key: tuple[str, str]) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    for spec in destination_map(*key).fields:
        strategy = {"email": _EMAILS, "phone": _PHONES, "country": _COUNTRIES}.get(spec.compare, _TEXT)
        payload[spec.field] = draw(_NAMES if spec.field == "name" else strategy)
    if key[0].startswith("zoho"):
        payload.update({name: draw(strategy) for name, strategy in _EXTRA.items()})
    if key[0] == "clicksend":
        payload["list_id"] = 5
    return payload


@st.composite
def _golden_row(draw: st.DrawFn, contact_id: str) -> dict[str, Any]:
    def pick(*options: Any) -> Any:
        return draw(st.sampled_from([None, *options]))

    return {
        "contact_id": contact_id,
        "email": pick("jane@example.com", "other@example.com"),
        "phone": pick("+14155550123", "+8613774202819", "+442079460958"),
        "first_name": pick("Jane", "Mary Ann", "小明", "A" * 50),
        "last_name": pick("Doe", "王", "van Dyke"),
        "company": pick("Acme", "Acme  Corp"),
        "title": pick("CTO"),
        "city": pick("Boston", "上海"),
        "country": pick("United States", "US", "中国", "France", "Atlantis"),
    }


@st.composite
def _scenario(draw: st.DrawFn) -> tuple[pd.DataFrame, pd.DataFrame, PushConfig]:
    contacts = [draw(_golden_row(f"c{i}")) for i in range(3)]
    rows = [
        (key[0], key[1], str(n), f"c{n % 3}", draw(_payload(key)))
        for key in sorted(FIELD_MAPS)
        for n in range(draw(st.integers(1, 3)))
    ]
    chosen = draw(st.frozensets(st.sampled_from([*CANONICAL_FIELDS, "full_name"])))
    overwrite = {
        key: chosen & {spec.canonical for spec in destination_map(*key).fields} for key in FIELD_MAPS
    }
    return targets(*rows), golden(*contacts), PushConfig(overwrite=overwrite)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_scenario())
def test_a_second_cycle_after_our_push_plans_nothing(
    scenario: tuple[pd.DataFrame, pd.DataFrame, PushConfig],
) -> None:
    rows, gold, config = scenario
    plan = plan_updates(rows, gold, config)
    replan = plan_updates(apply(rows, record_changes(plan)), gold, config)
    refused = plan[plan["invalid_reason"].notna()]
    key = ["destination", "record_id", "field", "after_value", "invalid_reason"]
    assert replan[key].to_dict("records") == refused[key].to_dict("records")


def test_nothing_in_nothing_out() -> None:
    none = targets()
    plan = plan_updates(none, golden(JANE), PushConfig())
    assert plan.empty
    assert list(plan.columns) == list(PLAN_COLUMNS)
    assert record_changes(plan) == []
    assert list(outcome_states(plan, []).columns) == list(OUTCOME_COLUMNS)


def test_planning_is_pure_so_a_dry_run_plans_what_a_real_run_does() -> None:
    payload = {"Email": "Jane@example.com", "Phone": "", "First_Name": None}
    rows = targets(("zoho_bigin", "contact", "b1", "c1", payload))
    before = rows.copy(deep=True)
    first = plan_updates(rows, golden(JANE), PushConfig())
    pd.testing.assert_frame_equal(first, plan_updates(rows, golden(JANE), PushConfig()))
    assert rows["payload"].iloc[0] == before["payload"].iloc[0] == payload


# ---------------------------------------------------------------------------------- changes and batches


def test_changes_carry_what_each_write_takes() -> None:
    rows = targets(
        ("zoho_crm", "lead", "z1", "c1", {"First_Name": None}),
        ("clicksend", "list_contact", "9", "c1", {"contact_id": 9, "list_id": 5, "first_name": None}),
    )
    changes = {c.destination: c for c in record_changes(plan_updates(rows, golden(JANE), PushConfig()))}
    zoho = changes["zoho_crm"]
    assert zoho.payload["id"] == "z1"
    assert zoho.payload["First_Name"] == "Jane"
    assert zoho.if_unmodified_since == T0
    clicksend = changes["clicksend"]
    assert "id" not in clicksend.payload
    assert (clicksend.record_id, clicksend.parent_id, clicksend.if_unmodified_since) == ("9", "5", None)


def _change(n: int, *, since: datetime | None = T0, create: bool = False) -> RecordChange:
    return RecordChange(
        destination="zoho_crm",
        object="contact",
        record_id=None if create else str(n),
        contact_id=f"c{n}",
        parent_id=None,
        payload={"First_Name": "x"},
        if_unmodified_since=None if since is None else since + timedelta(minutes=n),
    )


def test_zoho_batches_hold_at_most_100_records_and_never_mix_kinds() -> None:
    changes = [
        *(_change(n) for n in range(230)),
        *(_change(n, create=True) for n in range(1000, 1150)),
        *(_change(n, since=None) for n in range(2000, 2010)),
    ]
    found = batches(changes, "zoho_crm", "contact")
    assert [len(b.changes) for b in found] == [100, 50, 100, 100, 30, 10]
    assert sorted(c.contact_id for b in found for c in b.changes) == sorted(c.contact_id for c in changes)
    for batch in found:
        assert len({c.is_create for c in batch.changes}) == 1
        times = [c.if_unmodified_since for c in batch.changes]
        if batch.is_create or None in times:
            assert batch.if_unmodified_since is None
        else:
            assert batch.if_unmodified_since == max(t for t in times if t is not None)
    assert batches(changes, "zoho_bigin", "contact") == []


def test_zoho_creates_with_and_without_an_email_never_share_a_call() -> None:
    """A call is repeated after a lost answer only when the upsert can find every record in it again
    by its Email: one record without would make the whole call unrepeatable."""
    changes = [
        replace(
            _change(n, create=True), payload={"Last_Name": "x", "Email": f"p{n}@example.org" if n % 3 else ""}
        )
        for n in range(150)
    ]
    found = batches(changes, "zoho_crm", "contact")
    assert [len(b.changes) for b in found] == [100, 50]
    assert [{bool(c.payload["Email"]) for c in b.changes} for b in found] == [{True}, {False}]


@pytest.mark.parametrize(
    "key", [("clickfunnels", "contact"), ("clicksend", "list_contact"), ("linkflow", "contact")]
)
def test_other_apis_take_one_record_per_call(key: tuple[str, str]) -> None:
    changes = [RecordChange(key[0], key[1], str(n), f"c{n}", "5", {"x": "y"}, None) for n in range(7)]
    found = batches(changes, *key)
    assert len(found) == 7
    assert all(len(b.changes) == 1 and b.if_unmodified_since is None for b in found)


def test_a_refused_batch_splits_down_to_single_records() -> None:
    (batch,) = batches([_change(n) for n in range(5)], "zoho_crm", "contact")
    left, right = split_batch(batch)
    assert [c.record_id for c in left.changes] == ["0", "1"]
    assert [c.record_id for c in right.changes] == ["2", "3", "4"]
    assert left.if_unmodified_since == T0 + timedelta(minutes=1)
    assert right.if_unmodified_since == T0 + timedelta(minutes=4)
    pending, singles = [batch], []
    while pending:
        current = pending.pop()
        if len(current.changes) == 1:
            singles.append(current)
        else:
            pending.extend(split_batch(current))
    assert sorted(c.record_id for b in singles for c in b.changes) == ["0", "1", "2", "3", "4"]
    with pytest.raises(ValueError, match="cannot be split"):
        split_batch(singles[0])


# ---------------------------------------------------------------------------------- creates


def test_creates_only_where_opted_in_and_only_for_contacts_not_held() -> None:
    present = pd.DataFrame({"contact_id": ["c1"], "destination": ["zoho_bigin"], "object": ["contact"]})
    assert plan_creates(golden(JANE, WANG), present, PushConfig()).empty
    config = PushConfig(create_missing=frozenset({("zoho_bigin", "contact")}))
    plan = plan_creates(golden(JANE, WANG), present, config)
    assert set(plan["contact_id"]) == {"c2"}
    assert set(plan["reason"]) == {"create"}
    assert plan["record_id"].isna().all()
    (change,) = record_changes(plan)
    assert change.is_create
    assert change.payload == {
        "Email": "wang@example.cn",
        "Phone": "+8613774202819",
        "First_Name": "小明",
        "Last_Name": "王",
        "Mailing_City": "上海",
    }
    assert [len(b.changes) for b in batches([change], "zoho_bigin", "contact")] == [1]


def test_a_create_without_its_mandatory_fields_is_invalid() -> None:
    nameless = {**JANE, "contact_id": "c3", "last_name": None}
    phoneless = {**JANE, "contact_id": "c4", "phone": None, "email": None, "last_name": "Roe"}
    none = pd.DataFrame(columns=["contact_id", "destination", "object"])
    keys = frozenset({("zoho_crm", "lead"), ("clicksend", "list_contact"), ("clickfunnels", "contact")})
    config = PushConfig(create_missing=keys, create_parents={("clickfunnels", "contact"): "ws1"})
    plan = plan_creates(golden(JANE, nameless, phoneless), none, config)
    refusal: dict[tuple[str, str], set[str | None]] = {}
    for row in plan.itertuples(index=False):
        refusal.setdefault((row.destination, row.contact_id), set()).add(row.invalid_reason)
    assert refusal[("zoho_crm", "c1")] == {None}
    assert refusal[("zoho_crm", "c3")] == {"missing mandatory last_name"}
    assert refusal[("clickfunnels", "c1")] == {None}
    assert refusal[("clickfunnels", "c4")] == {"missing mandatory email"}
    # ClickSend needs a list to create into; none is configured.
    assert refusal[("clicksend", "c1")] == {"no parent configured for creates (PushConfig.create_parents)"}
    created = {(c.destination, c.contact_id): c for c in record_changes(plan)}
    assert set(created) == {
        ("zoho_crm", "c1"),
        ("zoho_crm", "c4"),
        ("clickfunnels", "c1"),
        ("clickfunnels", "c3"),
    }
    assert created[("clickfunnels", "c1")].parent_id == "ws1"
    assert created[("clickfunnels", "c1")].payload["email_address"] == "jane@example.com"


# ---------------------------------------------------------------------------------- ledger


def _two_records_plan() -> tuple[pd.DataFrame, list[RecordChange]]:
    rows = targets(
        ("zoho_crm", "contact", "z1", "c1", {"First_Name": None, "Title": None}),
        ("zoho_crm", "contact", "z2", "c1", {"First_Name": None, "Title": None}),
        ("zoho_crm", "contact", "z3", "c1", {"First_Name": None}),
        ("zoho_crm", "contact", "z4", "c1", {"First_Name": None}),
    )
    plan = plan_updates(rows, golden({**JANE, "title": "T" * 101}), PushConfig())
    return plan, record_changes(plan)


def test_every_plan_row_ends_in_exactly_one_state() -> None:
    plan, changes = _two_records_plan()
    by_id = {c.record_id: c for c in changes}
    results = [
        RecordResult.of(by_id["z1"], ok=True),
        RecordResult.of(by_id["z2"], ok=False, code="INVALID_DATA", message="bad"),
        RecordResult.of(by_id["z3"], ok=False, code="RECORD_MODIFIED", conflict=True),
    ]
    outcome = outcome_states(plan, results)
    assert list(outcome.columns) == list(OUTCOME_COLUMNS)
    assert len(outcome) == len(plan)
    states = {(r.record_id, r.field): r.state for r in outcome.itertuples(index=False)}
    assert len(states) == len(outcome)
    by_record = {"z1": "sent", "z2": "rejected", "z3": "conflict", "z4": "unchanged"}
    for (record_id, field), state in states.items():
        assert state == ("invalid" if field == "Title" else by_record[record_id])
    assert {field for record_id, field in states if record_id == "z1"} == {
        "Email",
        "First_Name",
        "Last_Name",
        "Title",
        "Phone",
        "Mailing_City",
        "Mailing_Country",
    }
    rejected = outcome[outcome["state"] == "rejected"]
    assert set(rejected["code"]) == {"INVALID_DATA"}
    assert outcome.loc[outcome["state"] == "unchanged", "code"].isna().all()


@given(st.lists(st.sampled_from(["ok", "rejected", "conflict", "missing"]), min_size=4, max_size=4))
@settings(max_examples=30, deadline=None)
def test_states_cover_every_row_whatever_the_results(kinds: list[str]) -> None:
    plan, changes = _two_records_plan()
    results = [
        RecordResult.of(
            change, ok=kind == "ok", conflict=kind == "conflict", code=None if kind == "ok" else "E"
        )
        for change, kind in zip(changes, kinds, strict=True)
        if kind != "missing"
    ]
    outcome = outcome_states(plan, results)
    assert len(outcome) == len(plan)
    assert set(outcome["state"]) <= set(STATES) - {"parked"}
    assert (outcome["state"] == "invalid").sum() == plan["invalid_reason"].notna().sum()


@given(
    st.lists(st.sampled_from(["ok", "rejected", "conflict", "missing"]), min_size=4, max_size=4),
    st.sets(st.integers(min_value=0, max_value=3), min_size=1),
)
@settings(max_examples=40, deadline=None)
def test_sendable_rows_give_each_batch_the_states_outcome_states_gives(
    kinds: list[str], sent: set[int]
) -> None:
    plan, changes = _two_records_plan()
    plan = plan.assign(ledger_id=range(100, 100 + len(plan)))
    batch = [changes[i] for i in sorted(sent)]
    results = [
        RecordResult.of(
            change, ok=kind == "ok", conflict=kind == "conflict", code=None if kind == "ok" else "E"
        )
        for change, kind in zip(changes, kinds, strict=True)
        if kind != "missing" and change in batch
    ]
    rows = SendableRows.of(plan)
    positions = rows.positions(batch)
    ids = {change.record_id for change in batch}
    expected = plan[plan["invalid_reason"].isna() & plan["record_id"].isin(ids)]
    assert sorted(rows.ledger_id[positions].tolist()) == sorted(expected["ledger_id"])
    reference = outcome_states(expected.drop(columns="ledger_id"), results)
    want = dict(zip(expected["ledger_id"], reference["state"], strict=True))
    got = {int(rows.ledger_id[o.position]): o.state for o in rows.outcomes(positions, results)}
    assert got == want


def test_sendable_rows_find_a_create_by_its_contact() -> None:
    present = pd.DataFrame(columns=["contact_id", "destination", "object"])
    config = PushConfig(create_missing=frozenset({("zoho_crm", "contact")}))
    plan = plan_creates(golden(JANE), present, config)
    plan = plan.assign(ledger_id=range(len(plan)))
    [change] = record_changes(plan)
    rows = SendableRows.of(plan)
    positions = rows.positions([change])
    assert sorted(rows.ledger_id[positions].tolist()) == sorted(
        plan.loc[plan["invalid_reason"].isna(), "ledger_id"]
    )
    [state] = {o.state for o in rows.outcomes(positions, [RecordResult.of(change, ok=True, new_id="z9")])}
    assert state == "sent"


def test_two_results_for_one_record_are_refused() -> None:
    plan, changes = _two_records_plan()
    with pytest.raises(ValueError, match="more than one result"):
        outcome_states(plan, [RecordResult.of(changes[0], ok=True), RecordResult.of(changes[0], ok=False)])


def test_a_rejected_row_is_parked_after_max_attempts() -> None:
    assert [next_attempt_state(n, "rejected", 3) for n in range(4)] == [
        "rejected",
        "rejected",
        "parked",
        "parked",
    ]
    assert next_attempt_state(0, "rejected", 1) == "parked"
    for state in ("sent", "invalid", "conflict", "unchanged"):
        assert next_attempt_state(5, state, 3) == state


def test_parked_rows_are_not_planned_again_until_the_value_changes() -> None:
    plan, _ = _two_records_plan()
    parked = plan[(plan["record_id"] == "z2") & (plan["field"] == "First_Name")]
    kept = drop_settled(plan, parked)
    assert len(kept) == len(plan) - 1
    assert not ((kept["record_id"] == "z2") & (kept["field"] == "First_Name")).any()
    changed = parked.assign(after_value="Janet")
    assert len(drop_settled(plan, changed)) == len(plan)


def _ledger_of(plan: pd.DataFrame, status: str) -> pd.DataFrame:
    columns = ["destination", "object", "record_id", "contact_id", "field", "after_value"]
    return plan[columns].assign(status=status)


def test_a_value_refused_as_invalid_settles_only_a_row_refused_again() -> None:
    plan, _ = _two_records_plan()
    refused = plan.assign(invalid_reason="its email is held by record z9 of golden contact c9")
    ledger = _ledger_of(refused, "invalid")
    # Still refused: nothing is recorded again.
    assert drop_settled(refused, ledger).empty
    # The circumstances changed (the other record let the value go): every row that may goes out.
    kept = drop_settled(plan, ledger)
    assert len(kept) == plan["invalid_reason"].isna().sum() > 0
    assert kept["invalid_reason"].isna().all()
    # Parked and undone rows settle their value whatever the plan says of it now.
    assert drop_settled(plan, _ledger_of(plan, "parked")).empty
    assert drop_settled(plan, _ledger_of(plan, "undone")).empty


def test_a_create_refused_before_goes_out_whole_once_it_may() -> None:
    config = PushConfig(create_missing=frozenset({("zoho_crm", "lead")}))
    none = pd.DataFrame(columns=["contact_id", "destination", "object"])
    nameless = {**JANE, "last_name": None}
    refused = plan_creates(golden(nameless), none, config)
    assert set(refused["invalid_reason"]) == {"missing mandatory last_name"}
    ledger = _ledger_of(refused, "invalid")
    assert drop_settled(plan_creates(golden(nameless), none, config), ledger).empty
    # The contact gains a last name: the create carries every field, not only the new one.
    (change,) = record_changes(drop_settled(plan_creates(golden(JANE), none, config), ledger))
    assert change.payload["Email"] == "jane@example.com"
    assert change.payload["Last_Name"] == "Doe"
    assert set(change.payload) == {spec.field for spec in destination_map("zoho_crm", "lead").fields}


def test_a_parked_create_is_sent_whole_when_one_of_its_values_changes() -> None:
    config = PushConfig(create_missing=frozenset({("zoho_crm", "lead")}))
    none = pd.DataFrame(columns=["contact_id", "destination", "object"])
    ledger = _ledger_of(plan_creates(golden(JANE), none, config), "parked")
    assert drop_settled(plan_creates(golden(JANE), none, config), ledger).empty
    moved = {**JANE, "city": "Chicago"}
    (change,) = record_changes(drop_settled(plan_creates(golden(moved), none, config), ledger))
    assert change.payload["City"] == "Chicago"
    assert change.payload["Email"] == "jane@example.com"
