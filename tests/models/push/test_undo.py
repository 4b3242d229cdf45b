"""The undo plan as plain data: what goes back, what is deleted, what is kept and why."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from models.push.undo import WRITTEN_COLUMNS, plan_undo

SENT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def written(*rows: dict[str, Any]) -> pd.DataFrame:
    base = {
        "run_id": "r1",
        "parent_id": None,
        "contact_id": "c1",
        "before_value": None,
        "reason": "fill_empty",
        "sent_at": SENT,
    }
    frame = pd.DataFrame([{**base, "ledger_id": i + 1, **row} for i, row in enumerate(rows)], dtype=object)
    return frame.loc[:, list(WRITTEN_COLUMNS)]


def current(*rows: tuple[str, str, str, dict[str, Any], datetime, bool]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "destination": d,
                "object": o,
                "record_id": r,
                "payload": p,
                "last_seen_at": seen,
                "modified_at": seen,
                "deleted": gone,
            }
            for d, o, r, p, seen, gone in rows
        ]
    )


NO_LATER = pd.DataFrame(columns=["destination", "object", "record_id", "field", "run_id"])
LATER = SENT + timedelta(minutes=5)


def test_fields_go_back_unless_changed_since_or_written_again() -> None:
    rows = written(
        {
            "destination": "clicksend",
            "object": "list_contact",
            "record_id": "1",
            "field": "first_name",
            "after_value": "Ann",
        },
        {
            "destination": "clicksend",
            "object": "list_contact",
            "record_id": "2",
            "field": "first_name",
            "after_value": "Bob",
        },
        {
            "destination": "clicksend",
            "object": "list_contact",
            "record_id": "3",
            "field": "first_name",
            "after_value": "Cy",
        },
        {
            "destination": "zoho_crm",
            "object": "lead",
            "record_id": "9",
            "field": "Title",
            "after_value": "CEO",
            "before_value": "",
        },
    )
    now = current(
        ("clicksend", "list_contact", "1", {"first_name": " Ann ", "list_id": 7}, LATER, False),
        ("clicksend", "list_contact", "2", {"first_name": "Robert", "list_id": 7}, LATER, False),
        ("clicksend", "list_contact", "3", {"first_name": "Cy", "list_id": 7}, LATER, False),
    )
    later = pd.DataFrame(
        [
            {
                "destination": "clicksend",
                "object": "list_contact",
                "record_id": "3",
                "field": "first_name",
                "run_id": "r2",
            }
        ]
    )
    plan = plan_undo(rows, later, now).set_index("record_id")
    assert plan.loc["1", "action"] == "restore"
    assert plan.loc["1", "restore_value"] == ""  # ClickSend keeps empty fields as ""
    assert plan.loc["1", "parent_id"] == "7"  # from the payload when the ledger lacks it
    assert plan.loc["2", "keep_reason"] == "changed at the destination since it was written"
    assert plan.loc["3", "keep_reason"] == "written again by run r2; undo that run first"
    # Never read since: restored, guarded by the time of our own write.
    assert plan.loc["9", "action"] == "restore"
    assert plan.loc["9", "restore_value"] is None
    assert plan.loc["9", "if_unmodified_since"] == SENT


def test_created_records_are_deleted_whole_or_kept_whole() -> None:
    rows = written(
        {
            "destination": "zoho_bigin",
            "object": "contact",
            "record_id": "z1",
            "field": "Last_Name",
            "after_value": "Roe",
            "reason": "create",
        },
        {
            "destination": "zoho_bigin",
            "object": "contact",
            "record_id": "z2",
            "field": "Last_Name",
            "after_value": "Doe",
            "reason": "create",
        },
        {
            "destination": "zoho_bigin",
            "object": "contact",
            "record_id": "z2",
            "field": "Email",
            "after_value": "d@example.com",
            "reason": "create",
        },
        {
            "destination": "linkflow",
            "object": "contact",
            "record_id": "5",
            "field": "name",
            "after_value": "Li Lei",
            "reason": "create",
        },
    )
    now = current(
        ("zoho_bigin", "contact", "z1", {"Last_Name": "Roe"}, LATER, False),
        ("zoho_bigin", "contact", "z2", {"Last_Name": "Doe", "Email": "other@example.com"}, LATER, False),
    )
    plan = plan_undo(rows, NO_LATER, now)
    actions = dict(zip(zip(plan["record_id"], plan["field"], strict=True), plan["action"], strict=True))
    assert actions[("z1", "Last_Name")] == "delete"
    assert actions[("z2", "Last_Name")] == "keep"  # its email changed, so the record stays whole
    assert actions[("5", "name")] == "keep"
    reasons = set(plan["keep_reason"].dropna())
    assert "linkflow has no delete in its API; remove it by hand" in reasons


def test_mapped_fields_are_read_back_by_their_nested_path() -> None:
    rows = written(
        {
            "destination": "clickfunnels",
            "object": "contact",
            "record_id": "1",
            "field": "custom_attributes.plan",
            "after_value": "pro",
        },
        {
            "destination": "clickfunnels",
            "object": "contact",
            "record_id": "2",
            "field": "custom_attributes.plan",
            "after_value": "pro",
        },
    )
    now = current(
        ("clickfunnels", "contact", "1", {"custom_attributes": {"plan": "pro"}}, LATER, False),
        ("clickfunnels", "contact", "2", {"custom_attributes": {"plan": "free"}}, LATER, False),
    )
    plan = plan_undo(rows, NO_LATER, now).set_index("record_id")
    assert plan.loc["1", "action"] == "restore"
    assert plan.loc["2", "keep_reason"] == "changed at the destination since it was written"
