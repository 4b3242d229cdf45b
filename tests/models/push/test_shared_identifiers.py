"""Shared identifiers in reverse sync as plain data: junk values dropped from the golden contacts, and
creates refused when their email or phone would match another person's record."""

import pandas as pd

from models.push.plan import PLAN_COLUMNS
from models.push.shared_identifiers import (
    HOLDER_COLUMNS,
    Refuser,
    refuse_shared_creates,
    refuse_shared_updates,
    sent_creates,
    without_junk,
)


def create_rows(*contacts: tuple[str, str | None, str | None]) -> pd.DataFrame:
    """A Linkflow create plan: per contact an email row, a mobile row and a name row."""
    rows = []
    for contact_id, email, phone in contacts:
        for canonical, field, value in (
            ("email", "email", email),
            ("phone", "mobilePhone", phone and phone.removeprefix("+86")),
            ("full_name", "name", f"Person {contact_id}"),
        ):
            if value is None:
                continue
            row = dict.fromkeys(PLAN_COLUMNS)
            row |= {
                "destination": "linkflow",
                "object": "contact",
                "contact_id": contact_id,
                "field": field,
                "canonical_field": canonical,
                "after_value": value,
                "reason": "create",
            }
            rows.append(row)
    return pd.DataFrame(rows, columns=list(PLAN_COLUMNS))


def golden(*contacts: tuple[str, str | None, str | None]) -> pd.DataFrame:
    return pd.DataFrame(contacts, columns=["contact_id", "email", "phone"])


NOBODY = pd.DataFrame(columns=HOLDER_COLUMNS)
NONE_SENT = sent_creates([])
PEOPLE = (
    ("c1", "ann@example.org", "+8613800000001"),
    ("c2", "home@example.org", "+8613800000002"),
    ("c3", "home@example.org", "+8613800000003"),
    ("c4", "dan@example.org", "+8613800000004"),
)


def refusals(plan: pd.DataFrame) -> dict[str, set[str]]:
    """contact -> the reasons its rows carry."""
    refused = plan[plan["invalid_reason"].notna().to_numpy()]
    return {str(c): set(group["invalid_reason"]) for c, group in refused.groupby("contact_id")}


def test_junk_values_are_dropped_from_the_golden_contacts_only() -> None:
    suppressed = pd.DataFrame({"kind": ["email", "phone"], "value": ["test@test.com", "+15555555555"]})
    people = golden(("a", "test@test.com", "+15555555555"), ("b", "b@example.org", "+15550000001"))
    kept = without_junk(people, suppressed)
    assert kept["email"].tolist() == [None, "b@example.org"]
    assert kept["phone"].tolist() == [None, "+15550000001"]
    assert people["email"].tolist() == ["test@test.com", "b@example.org"], "the input is left alone"
    # A phone value that happens to equal a junk email's text is not dropped: kinds are apart.
    crossed = pd.DataFrame({"kind": ["email"], "value": ["+15550000001"]})
    assert without_junk(people, crossed)["phone"].tolist() == people["phone"].tolist()


def test_creates_nobody_shares_all_go() -> None:
    plan = create_rows(PEOPLE[0], PEOPLE[3])
    kept = refuse_shared_creates(plan, golden(*PEOPLE), NOBODY, NONE_SENT, ("email", "phone"))
    assert kept["invalid_reason"].isna().all()


def test_a_create_whose_value_another_contacts_record_holds_is_refused_whole() -> None:
    plan = create_rows(PEOPLE[0], PEOPLE[3])
    held = pd.DataFrame(
        [
            ("phone", "+8613800000001", "901", "c9"),  # another person's record holds c1's mobile
            ("email", "dan@example.org", "902", "c4"),  # c4's own record (a read-back create): no refusal
        ],
        columns=HOLDER_COLUMNS,
    )
    kept = refuse_shared_creates(plan, golden(*PEOPLE), held, NONE_SENT, ("email", "phone"))
    assert refusals(kept) == {
        "c1": {
            "its phone is held by record 901 of golden contact c9: a create matched on it would update "
            "that record"
        }
    }
    assert len(kept[kept["contact_id"].eq("c1")]) == 3, "every row of the create, not the phone's alone"
    assert kept.drop(columns="invalid_reason").equals(plan.drop(columns="invalid_reason"))


def test_a_quarantined_record_holding_the_value_refuses_the_create_too() -> None:
    held = pd.DataFrame([("email", "ann@example.org", "903", None)], columns=HOLDER_COLUMNS)
    kept = refuse_shared_creates(create_rows(PEOPLE[0]), golden(*PEOPLE), held, NONE_SENT, ("email",))
    assert refusals(kept) == {
        "c1": {
            "its email is held by record 903 of no golden contact (quarantined): a create matched on it "
            "would update that record"
        }
    }


def test_only_the_fields_the_destination_matches_on_count() -> None:
    held = pd.DataFrame([("phone", "+8613800000001", "901", "c9")], columns=HOLDER_COLUMNS)
    kept = refuse_shared_creates(create_rows(PEOPLE[0]), golden(*PEOPLE), held, NONE_SENT, ("email",))
    assert kept["invalid_reason"].isna().all(), "a destination matching on email alone ignores the phone"


def test_two_creates_sharing_a_value_send_the_first_contact_only() -> None:
    plan = create_rows(PEOPLE[1], PEOPLE[2], PEOPLE[0])
    kept = refuse_shared_creates(plan, golden(*PEOPLE), NOBODY, NONE_SENT, ("email", "phone"))
    assert refusals(kept) == {"c3": {"its email is also in this run's create for golden contact c2"}}


def test_a_create_sent_earlier_and_not_read_back_refuses_another_contacts_create() -> None:
    plan = create_rows(PEOPLE[1], PEOPLE[3])
    sent = sent_creates([("c7", "email", "home@example.org"), ("c4", "email", "dan@example.org")])
    kept = refuse_shared_creates(plan, golden(*PEOPLE), NOBODY, sent, ("email", "phone"))
    assert refusals(kept) == {
        "c2": {
            "its email went in a create for golden contact c7 not read back yet: a create matched on it "
            "would update that record"
        }
    }


def test_a_refused_create_does_not_hold_back_another_sharing_a_value_with_it() -> None:
    # c2 and c3 share an email; c2's mobile is held elsewhere, so c2 is not created and c3 may be.
    held = pd.DataFrame([("phone", "+8613800000002", "905", "c9")], columns=HOLDER_COLUMNS)
    kept = refuse_shared_creates(
        create_rows(PEOPLE[1], PEOPLE[2]), golden(*PEOPLE), held, NONE_SENT, ("email", "phone")
    )
    assert set(refusals(kept)) == {"c2"}


def test_updates_and_creates_already_refused_are_left_alone() -> None:
    plan = create_rows(PEOPLE[1], PEOPLE[2])
    plan.loc[plan["contact_id"].eq("c2"), "invalid_reason"] = "missing mandatory email"
    update = plan.iloc[[0]].assign(record_id="77", contact_id="c5", reason="fill_empty", invalid_reason=None)
    plan = pd.concat([plan, update], ignore_index=True)
    held = pd.DataFrame([("email", "home@example.org", "906", "c9")], columns=HOLDER_COLUMNS)
    kept = refuse_shared_creates(plan, golden(*PEOPLE), held, NONE_SENT, ("email",))
    assert refusals(kept)["c2"] == {"missing mandatory email"}
    assert "c5" not in refusals(kept)
    assert "c3" in refusals(kept)


def test_an_update_writing_a_value_another_contacts_record_holds_is_refused_alone() -> None:
    plan = create_rows(PEOPLE[1], PEOPLE[2]).assign(record_id=["11", "11", "11", "12", "12", "12"])
    plan["reason"] = "fill_empty"
    held = pd.DataFrame(
        [
            ("email", "home@example.org", "12", "c3"),  # c3's own record: no refusal for c3
            ("phone", "+8613800000002", "99", "c9"),
        ],
        columns=HOLDER_COLUMNS,
    )
    kept = refuse_shared_updates(plan, golden(*PEOPLE), held, ("email", "phone"), "it may merge")
    reasons = kept.set_index(["contact_id", "field"])["invalid_reason"].to_dict()
    assert reasons == {
        ("c2", "email"): "its email is held by record 12 of golden contact c3: it may merge",
        ("c2", "mobilePhone"): "its phone is held by record 99 of golden contact c9: it may merge",
        ("c2", "name"): None,
        ("c3", "email"): None,
        ("c3", "mobilePhone"): None,
        ("c3", "name"): None,
    }


def test_each_refusal_names_the_contact_whose_moving_plans_the_create_again() -> None:
    """The ledger keeps a refusal as its reason; the next plan takes the create up again when the
    contact the reason names moves (`models.push.ledger.refused_for`), so every wording must name it."""
    held = pd.DataFrame(
        [("phone", "+8613800000001", "901", "c9"), ("email", "dan@example.org", "903", None)],
        columns=HOLDER_COLUMNS,
    )
    sent = sent_creates([("c7", "email", "home@example.org")])
    plan = create_rows(*PEOPLE)
    kept = refuse_shared_creates(plan, golden(*PEOPLE), held, sent, ("email", "phone"))
    named = {contact: {Refuser.of(r) for r in reasons} for contact, reasons in refusals(kept).items()}
    assert named == {
        "c1": {Refuser("901", "c9")},
        "c2": {Refuser(None, "c7")},
        "c3": {Refuser(None, "c7")},
        "c4": {Refuser("903", None)},  # its record is quarantined: linked to no contact
    }
    alongside = refuse_shared_creates(
        create_rows(PEOPLE[1], PEOPLE[2]), golden(*PEOPLE), NOBODY, NONE_SENT, ("email",)
    )
    assert {Refuser.of(r) for r in refusals(alongside)["c3"]} == {Refuser(None, "c2")}
    assert Refuser.of("missing email: linkflow/contact needs an email or a mobile") is None
