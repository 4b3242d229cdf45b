"""Record shapes of the five APIs, field for field as the vendor specs and api-notes show them.

Every builder returns the complete stored form (all keys present, absent values as null or ""), so
a record made by the generator, by ``mutate`` or by a client's create looks the same on the wire.
"""

from typing import Any

from connectors.emulator.timefmt import iso_ms_utc, shanghai_local, zoho_time

Record = dict[str, Any]

CLICKFUNNELS_TEAM_ID = 412840
CLICKFUNNELS_WORKSPACE_ID = 435231
CLICKSEND_OPT_OUT_LIST_ID = 3555270
CLICKSEND_USER_ID = 672721

ZOHO_CRM_ID_PREFIX = "4970762"
ZOHO_BIGIN_ID_PREFIX = "7255024"

ZOHO_LEAD_FIELDS = (
    "Owner", "Company", "Salutation", "First_Name", "Last_Name", "Full_Name", "Email", "Secondary_Email",
    "Phone", "Mobile", "Fax", "Designation", "Email_Opt_Out", "Unsubscribed_Mode", "Unsubscribed_Time",
    "Lead_Status", "Lead_Source", "Street", "City",
    "State", "Zip_Code", "Country", "Tag", "Created_Time", "Modified_Time", "Last_Activity_Time",
    "Created_By", "Modified_By", "$converted", "$converted_detail", "$approval_state", "$state", "$editable",
    "$in_merge", "Customer_Plan",
)  # fmt: skip
ZOHO_CONTACT_FIELDS = (
    "Owner", "Account_Name", "Salutation", "First_Name", "Last_Name", "Full_Name", "Email", "Secondary_Email",
    "Phone", "Mobile", "Home_Phone", "Other_Phone", "Fax", "Title", "Department", "Email_Opt_Out",
    "Unsubscribed_Mode", "Unsubscribed_Time", "Lead_Source", "Mailing_Street", "Mailing_City",
    "Mailing_State", "Mailing_Zip", "Mailing_Country",
    "Date_of_Birth", "Tag", "Created_Time", "Modified_Time", "Last_Activity_Time", "Created_By",
    "Modified_By", "$approval_state", "$state", "$editable", "$in_merge", "Customer_Plan",
)  # fmt: skip
ZOHO_BIGIN_CONTACT_FIELDS = (
    "Owner", "Account_Name", "First_Name", "Last_Name", "Full_Name", "Email", "Phone", "Mobile", "Home_Phone",
    "Title", "Email_Opt_Out", "Mailing_Street", "Mailing_City", "Mailing_State", "Mailing_Zip",
    "Mailing_Country", "Tag", "Created_Time", "Modified_Time", "Last_Activity_Time", "Created_By",
    "Modified_By", "$approval_state", "$state", "$editable", "Customer_Plan",
)  # fmt: skip
# Fields the server owns: a write may not set them (Zoho ignores them in input).
ZOHO_READ_ONLY = frozenset(
    {
        "id", "Full_Name", "Created_Time", "Modified_Time", "Last_Activity_Time", "Created_By", "Modified_By",
        "Unsubscribed_Mode", "Unsubscribed_Time",
    }
)  # fmt: skip
# Zoho CRM keeps when and how a person unsubscribed beside Email_Opt_Out (api-notes §5.5); Bigin's
# contact shows Email_Opt_Out alone (§6.3), so only CRM records carry these.

LINKFLOW_CONTACT_FIELDS = (
    "name", "nickname", "userName", "gender", "dateOfBirthday", "avatar", "profilePhoto", "mobilePhone",
    "homePhone", "email", "country", "state", "street", "city", "postalCode", "comments", "title", "website",
    "company", "industry", "department", "idCard", "props",
)  # fmt: skip

CLICKSEND_CONTACT_FIELDS = (
    "phone_number", "first_name", "last_name", "email", "fax_number", "organization_name", "custom_1",
    "custom_2", "custom_3", "custom_4", "address_line_1", "address_line_2", "address_city", "address_state",
    "address_postal_code", "address_country",
)  # fmt: skip

CLICKFUNNELS_WRITABLE = (
    "email_address", "first_name", "last_name", "phone_number", "time_zone", "fb_url", "twitter_url",
    "instagram_url", "linkedin_url", "website_url",
)  # fmt: skip


#: The emulated accounts' own custom fields: Zoho's (every module) and Linkflow's contact properties
#: (``/v2/contacts/meta/properties``: ``alias`` is the ``props`` key), for mappings files to map.
ZOHO_CUSTOM_FIELDS = {"Customer_Plan": ("Customer Plan", "picklist", ("Free", "Pro", "Enterprise"))}
#: attr1 and attr2 as in the vendor's own example (seed 002), which the generated contacts fill.
LINKFLOW_PROPERTIES = (
    {"label": "婚姻状态", "alias": "attr1", "dataType": "text", "id": 31},
    {"label": "薪水", "alias": "attr2", "dataType": "number", "id": 32},
    {"label": "套餐", "alias": "attr3", "dataType": "text", "id": 33},
)
_ZOHO_TYPES = {
    "Email": "email", "Secondary_Email": "email", "Phone": "phone", "Mobile": "phone", "Home_Phone": "phone",
    "Other_Phone": "phone", "Fax": "phone", "Email_Opt_Out": "boolean", "Created_Time": "datetime",
    "Modified_Time": "datetime", "Last_Activity_Time": "datetime", "Date_of_Birth": "date",
    "Owner": "ownerlookup", "Created_By": "ownerlookup", "Modified_By": "ownerlookup",
    "Account_Name": "lookup", "Lead_Source": "picklist", "Lead_Status": "picklist", "Salutation": "picklist",
    "Tag": "multiselectlookup",
}  # fmt: skip


def zoho_field_metadata(fields: tuple[str, ...], id_prefix: str) -> list[Record]:
    """A module's ``/settings/fields`` entries (api_name, label, data_type, custom_field), as Zoho lists
    them; the ``$`` properties are not fields."""
    listed = []
    for number, name in enumerate(fields, start=1):
        if name.startswith("$"):
            continue
        custom = ZOHO_CUSTOM_FIELDS.get(name)
        entry: Record = {
            "api_name": name,
            "field_label": custom[0] if custom else name.replace("_", " "),
            "data_type": custom[1] if custom else _ZOHO_TYPES.get(name, "text"),
            "custom_field": custom is not None,
            "system_mandatory": name == "Last_Name",
            "visible": True,
            "id": f"{id_prefix}000000{number:06d}",
        }
        if custom:
            entry["pick_list_values"] = [{"display_value": v, "actual_value": v} for v in custom[2]]
        listed.append(entry)
    return listed


def zoho_layout(
    name: str, number: int, fields: tuple[str, ...], id_prefix: str, required: frozenset[str]
) -> Record:
    """A module's layout ``name`` (``/settings/layouts``, v8 layouts metadata shape): every field in
    one section, ``required`` where the layout makes it mandatory. The owner is mandatory there as in
    Zoho's standard layouts, and Zoho fills it with the connection's user when a create leaves it out."""
    entries = []
    for entry in zoho_field_metadata(fields, id_prefix):
        field = entry["api_name"]
        settable = field not in ZOHO_READ_ONLY
        entries.append(
            {
                **entry,
                "required": field in required or field == "Owner",
                "read_only": not settable,
                "operation_type": {"api_create": settable, "api_update": settable},
                "default_value": None,
            }
        )
    section = {"api_name": "Record_Information", "display_label": "Record Information", "fields": entries}
    return {
        "id": f"{id_prefix}0000000910{55 + number}",
        "name": name,
        "api_name": f"{name}__s",
        "display_label": name,
        "status": "active",
        "visible": True,
        "sections": [section],
    }


_USERS = {
    prefix: {"name": "Sandbox Admin", "id": f"{prefix}000000326001", "email": "admin@sandbox.invalid"}
    for prefix in (ZOHO_CRM_ID_PREFIX, ZOHO_BIGIN_ID_PREFIX)
}
_COLLEAGUES = {
    prefix: {"name": "Sandbox Colleague", "id": f"{prefix}000000326017", "email": "sales@sandbox.invalid"}
    for prefix in (ZOHO_CRM_ID_PREFIX, ZOHO_BIGIN_ID_PREFIX)
}
_MINIFIED = {
    user["id"]: {"name": user["name"], "id": user["id"]} for user in (*_USERS.values(), *_COLLEAGUES.values())
}


def zoho_user(prefix: str) -> Record:
    """The org's admin: the user the API connection acts as, who owns everything and made the
    generated records; every write through the API is made as this user."""
    return _USERS[prefix]


def zoho_colleague(prefix: str) -> Record:
    """A second user of the org, who edits records by hand in Zoho's own UI (``Emulator.edit`` and
    ``mutate``): a record this user modified last was not modified by the connection."""
    return _COLLEAGUES[prefix]


def minified_user(user: Record) -> Record:
    return _MINIFIED[user["id"]]


def clickfunnels_contact(
    contact_id: int,
    public_id: str,
    uuid: str,
    *,
    workspace_id: int,
    created: float,
    anonymous: int | None = None,
) -> Record:
    stamp = iso_ms_utc(created)
    return {
        "id": contact_id,
        "public_id": public_id,
        "workspace_id": workspace_id,
        "anonymous": anonymous,
        "email_address": None,
        "first_name": None,
        "last_name": None,
        "phone_number": None,
        "time_zone": None,
        "uuid": uuid,
        "unsubscribed_at": None,
        "last_notification_email_sent_at": None,
        "email_suppression_reason": None,
        "is_active": anonymous is None,
        "fb_url": None,
        "twitter_url": None,
        "instagram_url": None,
        "linkedin_url": None,
        "website_url": None,
        "created_at": stamp,
        "updated_at": stamp,
        "tags": [],
        "custom_attributes": {},
        "visits": {"first_visit": None, "last_visit": None, "last_visit_with_utm": None},
    }


def clicksend_contact(contact_id: int, list_id: int, list_name: str, created: float) -> Record:
    record: Record = {"contact_id": contact_id, "list_id": list_id}
    record.update(dict.fromkeys(CLICKSEND_CONTACT_FIELDS, ""))
    record["date_added"] = int(created)
    record["date_updated"] = int(created)
    record["_list_name"] = list_name
    return record


def linkflow_contact(contact_id: int, created: float) -> Record:
    stamp = shanghai_local(created)
    record: Record = {"id": contact_id, "dateCreated": stamp, "lastUpdated": stamp, "ver": 1}
    record["anonymousId"] = None
    record.update(dict.fromkeys(LINKFLOW_CONTACT_FIELDS))
    record["gender"] = "unknown"
    record["props"] = {}
    record["utm"] = {}
    record["isAnonymous"] = False
    return record


def zoho_record(
    fields: tuple[str, ...], record_id: str, created: float, offset: Any, owner: Record
) -> Record:
    """A Zoho record with every field of its module, as Zoho returns nulls for empty fields."""
    stamp = zoho_time(created, offset)
    record: Record = dict.fromkeys(fields)
    record["id"] = record_id
    # Lookups are shared, never changed in place: writes replace a field's value as a whole.
    record["Owner"] = owner
    record["Created_By"] = record["Modified_By"] = minified_user(owner)
    record["Created_Time"] = stamp
    record["Modified_Time"] = stamp
    record["Last_Activity_Time"] = stamp
    record["Email_Opt_Out"] = False
    record["Tag"] = []
    record["$approval_state"] = "approved"
    record["$state"] = "save"
    record["$editable"] = True
    if "$in_merge" in record:
        record["$in_merge"] = False
    if "$converted" in record:
        record["$converted"] = False
        record["$converted_detail"] = {}
    return record


def zoho_full_name(record: Record) -> str:
    return " ".join(part for part in (record.get("First_Name"), record.get("Last_Name")) if part)
