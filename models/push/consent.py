"""Reverse sync of consent: opt-outs carried to the systems that hold them, and kept out of creates.

Consent moves in the restrictive direction only. A Zoho CRM lead or contact, or a Bigin contact, whose
golden contact opted out of email gets ``Email_Opt_Out: true`` when it shows false (or nothing); a
record that shows true is never written, so reverse sync never opts anybody back in. The write is a
plan row like any other (reason ``consent_opt_out``), recorded in the ledger, sent with the record's
``If-Unmodified-Since``, and read back on the next extract as an opt-out that changes nothing (the
earliest opt-out decides, `models.identity.consent`), so it does not echo. `PushConfig.consent_push`
off plans none of these rows.

A create never puts an opted-out person into a system that reaches them on that channel: ClickSend
lists send SMS; ClickFunnels sends email; Linkflow sends both and holds no consent field to carry the
opt-out. Such creates are planned with ``invalid_reason`` naming the opt-out, so the ledger says why.
Zoho keeps ``Email_Opt_Out`` itself: a create there carries the opt-out in the same call when consent
push is on, and is refused like the others when it is off.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from models.push.field_map import Key

CONSENT_FIELD = "Email_Opt_Out"
"""Zoho CRM and Bigin's email opt-out checkbox (api-notes §5.5, §6.3)."""
CONSENT_REASON = "consent_opt_out"

#: Destinations that hold an email opt-out, and the field it is written to.
CONSENT_FIELDS: Mapping[Key, str] = {
    ("zoho_crm", "lead"): CONSENT_FIELD,
    ("zoho_crm", "contact"): CONSENT_FIELD,
    ("zoho_bigin", "contact"): CONSENT_FIELD,
}

#: The channels on which a destination reaches the people created in it, for those that cannot hold
#: the opt-out.
CREATE_CHANNELS: Mapping[Key, tuple[str, ...]] = {
    ("clicksend", "list_contact"): ("sms",),
    ("clickfunnels", "contact"): ("email",),
    ("linkflow", "contact"): ("email", "sms"),
}


def plan_consent(targets: pd.DataFrame, golden: pd.DataFrame, plan_columns: tuple[str, ...]) -> pd.DataFrame:
    """``Email_Opt_Out`` false → true rows (``plan_columns``) for the targets whose contact opted out.

    targets: destination, object, record_id, contact_id, payload, modified_at (as `plan_updates` takes).
    golden: contact_id and email_opt_out.
    """
    empty = pd.DataFrame({name: pd.Series(dtype=object) for name in plan_columns})
    empty = empty.astype({"if_unmodified_since": pd.DatetimeTZDtype("us", "UTC")})
    mine = targets[
        [(d, o) in CONSENT_FIELDS for d, o in zip(targets["destination"], targets["object"], strict=True)]
    ]
    if mine.empty or "email_opt_out" not in golden:
        return empty
    opted = set(golden.loc[golden["email_opt_out"].eq(True).to_numpy(), "contact_id"].astype(str))
    payloads = mine["payload"]
    holds = payloads.map(lambda p: p.get(CONSENT_FIELD) is True).astype(bool)
    approved = payloads.map(lambda p: p.get("$approval_state") in (None, "approved")).astype(bool)
    chosen = mine[(mine["contact_id"].astype(str).isin(opted) & ~holds & approved).to_numpy()]
    if chosen.empty:
        return empty
    before = chosen["payload"].map(lambda p: p.get(CONSENT_FIELD))
    count = len(chosen)
    frame = pd.DataFrame(
        {
            "destination": chosen["destination"].to_numpy(dtype=object),
            "object": chosen["object"].to_numpy(dtype=object),
            "record_id": chosen["record_id"].astype(str).to_numpy(dtype=object),
            "contact_id": chosen["contact_id"].astype(str).to_numpy(dtype=object),
            "parent_id": np.full(count, None, dtype=object),
            "field": np.full(count, CONSENT_FIELD, dtype=object),
            "canonical_field": np.full(count, "email_opt_out", dtype=object),
            "before_value": before.to_numpy(dtype=object),
            "after_value": np.full(count, True, dtype=object),
            "reason": np.full(count, CONSENT_REASON, dtype=object),
            "invalid_reason": np.full(count, None, dtype=object),
        }
    )
    frame["if_unmodified_since"] = (
        pd.to_datetime(chosen["modified_at"], utc=True).astype(pd.DatetimeTZDtype("us", "UTC")).to_numpy()
    )
    return frame.loc[:, list(plan_columns)]


def guard_creates(plan: pd.DataFrame, golden: pd.DataFrame, *, consent_push: bool) -> pd.DataFrame:
    """``plan`` with the creates of opted-out people refused (``invalid_reason``) where the destination
    reaches them on that channel, and, where it holds the opt-out itself (Zoho) while consent push is
    on, an ``Email_Opt_Out: true`` row added to the create instead.

    golden: contact_id, email_opt_out, sms_opt_out of the contacts planned.
    """
    creates = plan["record_id"].isna().to_numpy()
    if not creates.any() or not {"email_opt_out", "sms_opt_out"} <= set(golden):
        return plan
    flags = golden.assign(contact_id=golden["contact_id"].astype(str)).drop_duplicates("contact_id")
    flags = flags.set_index("contact_id")
    contact = plan["contact_id"].astype(str)
    key = plan["destination"].astype(str) + "/" + plan["object"].astype(str)

    def opted(channel: str) -> np.ndarray[Any, np.dtype[np.bool_]]:
        held = contact.map(flags[f"{channel}_opt_out"].eq(True)).fillna(False).to_numpy(dtype=bool)
        return held & creates

    def reaching(channel: str) -> np.ndarray[Any, np.dtype[np.bool_]]:
        names = [f"{d}/{o}" for (d, o), channels in CREATE_CHANNELS.items() if channel in channels]
        return key.isin(names).to_numpy()

    holds = key.isin([f"{d}/{o}" for d, o in CONSENT_FIELDS]).to_numpy()
    email, sms = opted("email"), opted("sms")
    no_email = email & (reaching("email") | (holds & (not consent_push)))
    no_sms = sms & reaching("sms")
    channels = np.select([no_email & no_sms, no_email, no_sms], ["email and sms", "email", "sms"], "")
    refused = no_email | no_sms
    plan = plan.copy()
    reason = "opted out of " + pd.Series(channels, index=plan.index) + ": never created in " + key
    if not consent_push:
        off = " (CONTACT_SYNC_CONSENT_PUSH=off: the opt-out cannot go with it)"
        reason = reason.where(~holds, reason + off)
    plan.loc[refused, "invalid_reason"] = reason[refused]
    carry = email & holds & consent_push
    if carry.any():
        extra = plan[carry].drop_duplicates(["destination", "object", "contact_id"]).copy()
        extra["field"] = CONSENT_FIELD
        extra["canonical_field"] = "email_opt_out"
        extra["before_value"] = None
        extra["after_value"] = True
        extra["reason"] = "create"
        plan = pd.concat([plan, extra], ignore_index=True)
    return plan
