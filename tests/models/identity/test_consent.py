"""The consent rule: what each record states, and how statements become a contact's golden consent."""

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.identity.consent import CONSENT_COLUMNS, decide, golden_consent, statements

JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)


def said(*rows: tuple[str, str, bool, datetime | None, str]) -> pd.DataFrame:
    """(contact_id, channel, opted_out, at, "source/object") rows as `decide` takes them."""
    frame = pd.DataFrame(
        [
            {
                "record_key": n,
                "contact_id": contact,
                "channel": channel,
                "opted_out": out,
                "at": at,
                "source": origin.split("/")[0],
                "object": origin.split("/")[1],
                "source_id": str(n),
            }
            for n, (contact, channel, out, at, origin) in enumerate(rows)
        ],
        columns=["record_key", "contact_id", "channel", "opted_out", "at", "source", "object", "source_id"],
    )
    frame["opted_out"] = frame["opted_out"].astype(bool)
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    return frame


def one(frame: pd.DataFrame, contact: str = "c") -> dict[str, Any]:
    row = frame.set_index("contact_id").loc[contact]
    return {name: (None if pd.isna(row[name]) else row[name]) for name in CONSENT_COLUMNS}


def verdict(*rows: tuple[str, str, bool, datetime | None, str]) -> dict[str, Any]:
    """The golden consent of contact "c" from these statements."""
    return one(decide(said(*rows), pd.Series(["c"])))


def test_an_opt_out_anywhere_wins_over_records_that_say_not_opted_out() -> None:
    result = verdict(
        ("c", "email", False, None, "zoho_crm/lead"),
        ("c", "email", True, FEB, "clickfunnels/contact"),
        ("c", "email", False, None, "zoho_bigin/contact"),
    )
    assert result["email_opt_out"] is True
    assert (result["email_opt_out_at"], result["email_opt_out_source"]) == (FEB, "clickfunnels/contact")
    assert result["sms_opt_out"] is None  # no source says anything of SMS


def test_the_earliest_opt_out_names_when_and_where_so_a_later_copy_changes_nothing() -> None:
    result = verdict(
        ("c", "email", True, MAR, "zoho_crm/contact"),
        ("c", "email", True, JAN, "clickfunnels/contact"),
    )
    assert (result["email_opt_out_at"], result["email_opt_out_source"]) == (JAN, "clickfunnels/contact")


@pytest.mark.parametrize(
    ("opt_in", "expected"),
    [(MAR, False), (FEB, True), (JAN, True)],
    ids=["later-opt-in-wins", "same-time-opt-out-wins", "earlier-opt-in-loses"],
)
def test_only_a_strictly_later_opt_in_on_the_same_channel_beats_an_opt_out(
    opt_in: datetime, expected: bool
) -> None:
    result = verdict(
        ("c", "email", True, FEB, "clickfunnels/contact"),
        ("c", "email", False, opt_in, "zoho_crm/lead"),
        ("c", "sms", True, JAN, "clicksend/list_contact"),
    )
    assert result["email_opt_out"] is expected
    assert result["sms_opt_out"] is True  # an opt-in on email says nothing of SMS
    if not expected:
        assert (result["email_opt_out_at"], result["email_opt_out_source"]) == (MAR, "zoho_crm/lead")


def test_an_opt_out_in_between_two_opt_ins_stands_only_when_it_is_the_latest() -> None:
    result = verdict(
        ("c", "email", True, JAN, "clickfunnels/contact"),
        ("c", "email", False, FEB, "zoho_crm/lead"),
        ("c", "email", True, MAR, "zoho_bigin/contact"),
    )
    # The January opt-out was overtaken; the March one stands and names itself.
    assert (result["email_opt_out"], result["email_opt_out_at"], result["email_opt_out_source"]) == (
        True,
        MAR,
        "zoho_bigin/contact",
    )


def test_an_opt_out_without_a_time_always_stands() -> None:
    result = verdict(
        ("c", "sms", True, None, "clicksend/list_contact"), ("c", "sms", False, MAR, "zoho_crm/lead")
    )
    assert (result["sms_opt_out"], result["sms_opt_out_at"]) == (True, None)


def test_no_statement_is_null_and_a_contact_without_records_is_still_answered() -> None:
    frame = decide(said(("a", "email", False, None, "zoho_crm/lead")), pd.Series(["a", "b"]))
    assert one(frame, "a")["email_opt_out"] is False
    assert one(frame, "a")["email_opt_out_source"] is None
    assert one(frame, "b") == dict.fromkeys(CONSENT_COLUMNS)


def test_each_system_states_consent_as_its_api_shows_it() -> None:
    raw = pd.DataFrame(
        [
            (1, "clickfunnels", "contact", {"unsubscribed_at": "2026-02-01T00:00:00.000Z"}),
            (2, "clickfunnels", "contact", {"unsubscribed_at": None}),
            (3, "clickfunnels", "contact", {}),  # a payload without the key says nothing
            (4, "clicksend", "list_contact", {"list_name": "Opt-Out List", "date_added": 1767225600}),
            (5, "clicksend", "list_contact", {"list_name": "Customers", "date_added": 1767225600}),
            (
                6,
                "zoho_crm",
                "lead",
                {"Email_Opt_Out": True, "Unsubscribed_Time": "2026-03-01T05:30:00+05:30"},
            ),
            (
                7,
                "zoho_crm",
                "contact",
                {"Email_Opt_Out": False, "Modified_Time": "2026-03-01T00:00:00+00:00"},
            ),
            (
                8,
                "zoho_bigin",
                "contact",
                {"Email_Opt_Out": True, "Modified_Time": "2026-02-01T00:00:00-08:00"},
            ),
            (9, "linkflow", "contact", {"email": "x@example.com"}),
        ],
        columns=["record_key", "source", "object", "payload"],
    )
    got = {
        int(r.record_key): (r.channel, bool(r.opted_out), None if pd.isna(r.at) else r.at.to_pydatetime())
        for r in statements(raw).itertuples()
    }
    assert got == {
        1: ("email", True, FEB),
        2: ("email", False, None),
        4: ("sms", True, JAN),
        6: ("email", True, datetime(2026, 3, 1, tzinfo=UTC)),
        7: ("email", False, None),
        8: ("email", True, datetime(2026, 2, 1, 8, tzinfo=UTC)),
    }


# ----------------------------------------------------------------------------------- properties

TIMES = st.one_of(st.none(), st.sampled_from([JAN, FEB, MAR]))
STATEMENT = st.tuples(
    st.sampled_from(["a", "b", "c"]),
    st.sampled_from(["email", "sms"]),
    st.booleans(),
    TIMES,
    st.sampled_from(
        ["clickfunnels/contact", "zoho_crm/lead", "zoho_bigin/contact", "clicksend/list_contact"]
    ),
)


def canonical(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    ordered = frame.sort_values("contact_id").reset_index(drop=True)
    return [tuple(None if pd.isna(v) else v for v in row) for row in ordered.itertuples(index=False)]


@settings(max_examples=30, deadline=None)
@given(st.lists(STATEMENT, max_size=12), st.randoms(use_true_random=False))
def test_the_order_of_the_records_never_matters(rows: list[Any], random: Any) -> None:
    frame = said(*rows)
    shuffled = frame.sample(frac=1, random_state=random.randrange(2**32)).reset_index(drop=True)
    contacts = pd.Series(["a", "b", "c"])
    assert canonical(decide(frame, contacts)) == canonical(decide(shuffled, contacts))


@settings(max_examples=30, deadline=None)
@given(st.lists(STATEMENT, max_size=12))
def test_deciding_a_few_contacts_alone_gives_what_deciding_all_gives(rows: list[Any]) -> None:
    """What an incremental resolution relies on: a contact's consent depends on its records only."""
    frame = said(*rows)
    everyone = decide(frame, pd.Series(["a", "b", "c"]))
    alone = decide(frame[frame["contact_id"] == "b"], pd.Series(["b"]))
    assert canonical(alone) == canonical(everyone[everyone["contact_id"] == "b"])


@settings(max_examples=30, deadline=None)
@given(st.lists(STATEMENT, max_size=12))
def test_an_opt_out_stands_exactly_when_no_opt_in_is_later_than_every_opt_out(rows: list[Any]) -> None:
    """The rule restated one contact at a time, in plain Python, against the set-based one."""
    result = decide(said(*rows), pd.Series(["a", "b", "c"])).set_index("contact_id")
    for contact in ("a", "b", "c"):
        for channel in ("email", "sms"):
            mine = [r for r in rows if r[0] == contact and r[1] == channel]
            outs = [r[3] for r in mine if r[2]]
            ins = [r[3] for r in mine if not r[2] and r[3] is not None]
            stands = any(at is None or not ins or at >= max(ins) for at in outs)
            expected = True if stands else (False if mine else None)
            value = result.loc[contact, f"{channel}_opt_out"]
            assert (None if pd.isna(value) else value) == expected


def test_golden_consent_reads_each_contacts_records_from_their_payloads() -> None:
    people = pd.DataFrame(
        {
            "record_key": [1, 2, 3],
            "contact_id": ["x", "x", "y"],
            "source": ["clickfunnels", "zoho_crm", "linkflow"],
            "object": ["contact", "lead", "contact"],
            "source_id": ["10", "20", "30"],
        }
    )
    raw = pd.DataFrame(
        {
            "record_key": [1, 2, 3],
            "payload": [{"unsubscribed_at": "2026-01-01T00:00:00Z"}, {"Email_Opt_Out": False}, {}],
        }
    )
    result = golden_consent(people, raw).set_index("contact_id")
    assert result.loc["x", "email_opt_out"] is True
    assert result.loc["x", "email_opt_out_source"] == "clickfunnels/contact"
    assert result.loc["y", "email_opt_out"] is None
