"""The account-level objects each system has once: team and workspace, account and lists, the orgs.

Clients read these first (discovery, the country that tells them how to read phone numbers), so
they carry the fields the specs mark required, with sandbox values.
"""

from typing import Any

from connectors.emulator.identifiers import unknown_us_number
from connectors.emulator.records import (
    CLICKFUNNELS_TEAM_ID,
    CLICKFUNNELS_WORKSPACE_ID,
    CLICKSEND_OPT_OUT_LIST_ID,
    CLICKSEND_USER_ID,
)
from connectors.emulator.timefmt import iso_ms_utc

Record = dict[str, Any]

CLICKSEND_LISTS = (
    (3555278, "Customers"),
    (3555279, "Prospects"),
    (CLICKSEND_OPT_OUT_LIST_ID, "Opt-Out List"),
)
# The account's own dedicated number, from the pool no person owns.
CLICKSEND_SENDER = unknown_us_number(999_999)
CLICKFUNNELS_TAGS = (
    (20, "bRkQrc", "VIP", "#59b0a8"),
    (21, "pQxZmT", "Newsletter", "#e0a21b"),
    (22, "LmNbVc", "Buyer", "#3b6fd4"),
)


def clickfunnels_team(created: float) -> Record:
    return {
        "id": CLICKFUNNELS_TEAM_ID,
        "public_id": "vPNqAp",
        "name": "Sandbox Team",
        "time_zone": "Pacific Time (US & Canada)",
        "locale": "en",
        "created_at": iso_ms_utc(created),
        "updated_at": iso_ms_utc(created + 3600),
    }


def clickfunnels_workspace(created: float) -> Record:
    return {
        "id": CLICKFUNNELS_WORKSPACE_ID,
        "public_id": "JZqWGb",
        "team_id": CLICKFUNNELS_TEAM_ID,
        "name": "Sandbox Workspace",
        "subdomain": "sandbox",
        "created_at": iso_ms_utc(created + 60),
        "updated_at": iso_ms_utc(created + 120),
    }


def clickfunnels_tags() -> dict[int, Record]:
    return {
        tag_id: {"id": tag_id, "public_id": public_id, "name": name, "color": color}
        for tag_id, public_id, name, color in CLICKFUNNELS_TAGS
    }


def clicksend_account() -> Record:
    return {
        "user_id": CLICKSEND_USER_ID,
        "username": "sandbox@contact-sync.invalid",
        "user_email": "sandbox@contact-sync.invalid",
        "balance": 42.5,
        "user_phone": CLICKSEND_SENDER,
        "user_first_name": "Sandbox",
        "user_last_name": "Owner",
        "country": "US",
        "default_country_sms": "US",
        "timezone": "America/Chicago",
        "_currency": {"currency_name_short": "USD", "currency_prefix_d": "$"},
    }


def clicksend_lists() -> dict[int, Record]:
    """The account's lists; ``_contacts_count`` is filled in when served."""
    return {
        list_id: {
            "list_id": list_id,
            "list_name": name,
            "list_email_id": f"SANDBOX{list_id:X}",
            "_contacts_count": 0,
            "_import_in_progress": 0,
            "_optout_in_progress": 0,
        }
        for list_id, name in CLICKSEND_LISTS
    }


def zoho_org(prefix: str, name: str, zone: str, kind: str) -> Record:
    """An org with every field the v8 ``Org`` schema requires."""
    return {
        "id": f"{prefix}000000020005",
        "company_name": name,
        "domain_name": f"org{prefix}",
        "alias": None,
        "primary_email": "admin@sandbox.invalid",
        "primary_zuid": f"{prefix}01",
        "zgid": f"{prefix}02",
        "ezgid": f"{prefix}03",
        "zia_zgid": 0,
        "zia_portal_id": None,
        "phone": "555-555-5555",
        "mobile": None,
        "fax": None,
        "website": "https://sandbox.invalid",
        "employee_count": "10",
        "description": None,
        "street": None,
        "city": None,
        "state": None,
        "zip": None,
        "country": "United States",
        "country_code": "US",
        "currency": "US Dollar - USD",
        "currency_symbol": "$",
        "currency_locale": "en_US",
        "iso_code": "USD",
        "time_zone": zone,
        "photo_id": None,
        "mc_status": False,
        "gapps_enabled": False,
        "translation_enabled": False,
        "privacy_settings": False,
        "hipaa_compliance_enabled": False,
        "lite_users_enabled": False,
        "deletable_org_account": False,
        "oauth_presence": True,
        "call_icon": "default",
        "max_per_page": 200,
        "type": kind,
        "license_details": {
            "paid": True,
            "paid_type": "enterprise",
            "paid_expiry": "2030-01-01T00:00:00+00:00",
            "users_license_purchased": 10,
            "trial_type": None,
            "trial_expiry": None,
            "trial_action": "",
        },
        "hierarchy_preferences": {"type": "Role_Hierarchy", "strictly_reporting": False},
        "checkin_preferences": {"restricted_event_types": None},
    }
