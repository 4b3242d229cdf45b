"""Consent in reverse sync as plain data: opt-outs carried false -> true only, creates kept away."""

from datetime import UTC, datetime

import pandas as pd

from models.push.consent import CONSENT_REASON, guard_creates, plan_consent
from models.push.plan import PLAN_COLUMNS
from models.push.undo import plan_undo
from tests.models.push.test_undo import NO_LATER, SENT, current, written

MODIFIED = datetime(2026, 4, 1, tzinfo=UTC)


def targets(*rows: tuple[str, str, str, str, dict[str, object]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "destination": d,
                "object": o,
                "record_id": r,
                "contact_id": c,
                "payload": p,
                "modified_at": MODIFIED,
            }
            for d, o, r, c, p in rows
        ]
    )


GOLDEN = pd.DataFrame(
    {
        "contact_id": ["out", "in", "unknown"],
        "email_opt_out": [True, False, None],
        "sms_opt_out": [True, None, None],
    }
)


def test_an_opt_out_is_written_false_to_true_and_never_the_other_way() -> None:
    plan = plan_consent(
        targets(
            ("zoho_crm", "lead", "1", "out", {"Email_Opt_Out": False}),
            ("zoho_bigin", "contact", "2", "out", {"Email_Opt_Out": None}),
            ("zoho_crm", "contact", "3", "out", {"Email_Opt_Out": True}),  # holds it already
            ("zoho_crm", "lead", "4", "in", {"Email_Opt_Out": True}),  # never opted back in by us
            ("zoho_crm", "lead", "5", "unknown", {"Email_Opt_Out": False}),
            (
                "zoho_crm",
                "lead",
                "6",
                "out",
                {"Email_Opt_Out": False, "$approval_state": "approval_process_pending"},
            ),
            ("clickfunnels", "contact", "7", "out", {"unsubscribed_at": None}),  # holds no writable flag
        ),
        GOLDEN,
        PLAN_COLUMNS,
    )
    assert list(plan.columns) == list(PLAN_COLUMNS)
    assert sorted(plan["record_id"]) == ["1", "2"]
    assert set(plan["field"]) == {"Email_Opt_Out"}
    assert set(plan["after_value"]) == {True}
    assert set(plan["reason"]) == {CONSENT_REASON}
    assert set(plan["if_unmodified_since"]) == {pd.Timestamp(MODIFIED)}


def creates(*rows: tuple[str, str, str]) -> pd.DataFrame:
    """(destination, object, contact_id) create rows with one field each."""
    frame = pd.DataFrame(
        [
            {
                "destination": d,
                "object": o,
                "record_id": None,
                "contact_id": c,
                "parent_id": None,
                "field": "Email",
                "canonical_field": "email",
                "before_value": None,
                "after_value": "x@example.com",
                "reason": "create",
                "invalid_reason": None,
                "if_unmodified_since": pd.NaT,
            }
            for d, o, c in rows
        ],
        columns=list(PLAN_COLUMNS),
    )
    return frame.astype({"record_id": object, "invalid_reason": object})


def test_creates_never_reach_an_opted_out_channel_and_zoho_creates_carry_the_opt_out() -> None:
    plan = creates(
        ("clicksend", "list_contact", "out"),
        ("clickfunnels", "contact", "out"),
        ("linkflow", "contact", "out"),
        ("zoho_crm", "lead", "out"),
        ("clickfunnels", "contact", "in"),
        ("clicksend", "list_contact", "unknown"),
    )
    guarded = guard_creates(plan, GOLDEN, consent_push=True)
    reasons = {
        (r.destination, r.contact_id): r.invalid_reason for r in guarded.itertuples() if r.field == "Email"
    }
    assert reasons[("clicksend", "out")] == "opted out of sms: never created in clicksend/list_contact"
    assert reasons[("clickfunnels", "out")] == "opted out of email: never created in clickfunnels/contact"
    assert reasons[("linkflow", "out")] == "opted out of email and sms: never created in linkflow/contact"
    assert reasons[("zoho_crm", "out")] is None
    assert reasons[("clickfunnels", "in")] is None
    assert reasons[("clicksend", "unknown")] is None
    carried = guarded[guarded["field"] == "Email_Opt_Out"]
    assert list(zip(carried["destination"], carried["contact_id"], carried["after_value"], strict=True)) == [
        ("zoho_crm", "out", True)
    ]

    off = guard_creates(plan, GOLDEN, consent_push=False)
    zoho = off[(off["destination"] == "zoho_crm")]
    assert len(zoho) == 1
    assert "CONTACT_SYNC_CONSENT_PUSH=off" in zoho["invalid_reason"].iloc[0]


def test_undo_never_takes_an_opt_out_back() -> None:
    rows = written(
        {
            "destination": "zoho_crm",
            "object": "lead",
            "record_id": "9",
            "field": "Email_Opt_Out",
            "before_value": "False",
            "after_value": "True",
            "reason": CONSENT_REASON,
        }
    )
    now = current(("zoho_crm", "lead", "9", {"Email_Opt_Out": True}, SENT, False))
    plan = plan_undo(rows, NO_LATER, now)
    assert plan["action"].tolist() == ["keep"]
    assert "never taken back" in plan["keep_reason"].iloc[0]
