"""Every vendor example answer kept under ``data/``, with where it was published.

Two kinds of source:

- **Spec examples** (``specs/*.yml|yaml|json``, the copies of ``../shared/specs``). The data file is the
  example's value written as JSON; ``sources`` names each place in a spec that shows the same value,
  as a JSON pointer, and ``test_provenance`` checks the file still equals every one of them.
- **Seed examples** (``../shared/seeds/*.txt``, the API documents the project started from). The
  data file is the seed's text from the first to the last line named, byte for byte. Some of that
  text is not JSON as printed: the transcription of seeds 000, 001 and 004 lost every quote, and
  Linkflow's document elides with ``...`` and leaves one value empty. ``repairs`` names the
  mechanical steps ``load`` applies, and nothing else is changed.
"""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data"
REPOSITORY = Path(__file__).resolve().parents[2]

_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_BARE = {"null", "true", "false", "[]", "{}", "{", "["}


def requote(text: str) -> str:
    """Put back the quotes a transcription dropped (``id: 412840,`` / ``name: 我的团队,``).

    Line by line: a key is what comes before the first ``": "``; a value stays bare when it is a JSON
    number, ``null``, ``true``, ``false``, an empty ``[]``/``{}`` or opens an object or array, and is
    quoted otherwise (so ``+18019234886`` becomes a string, ``2.005718`` a number). A separating comma
    at the end of a line stays a separator. Lines without a key (brackets) are kept.
    """
    out = []
    for line in text.splitlines():
        stripped = line.strip()
        key, sep, value = stripped.partition(": ")
        if not sep:
            out.append(stripped)
            continue
        comma = "," if value.endswith(",") else ""
        value = value.removesuffix(",")
        bare = value in _BARE or _NUMBER.fullmatch(value) is not None
        out.append(f"{json.dumps(key)}: {value if bare else json.dumps(value, ensure_ascii=False)}{comma}")
    return "\n".join(out)


def drop_elision(text: str) -> str:
    """Drop the lines that are only ``...`` ("and so on"), and the comma left before a closing bracket."""
    kept = "\n".join(line for line in text.splitlines() if line.strip() != "...")
    return re.sub(r",(\s*[\]}])", r"\1", kept)


def fill_empty(text: str) -> str:
    """A value printed as nothing (``"nickname": ,``) is read as ``null``."""
    return re.sub(r'(":\s*),', r"\1null,", text)


REPAIRS: dict[str, Callable[[str], str]] = {
    "requote": requote,
    "elision": drop_elision,
    "empty-value": fill_empty,
}


@dataclass(frozen=True)
class Example:
    """One published example answer."""

    file: str
    """Path under ``data/``."""
    endpoint: str
    """The request the vendor shows it as the answer to (method and path, as the product sends it)."""
    sources: tuple[str, ...]
    """``specs/<file>#<JSON pointer>`` or ``seeds/<file>:<first>-<last> (<section>)``."""
    repairs: tuple[str, ...] = ()

    @property
    def from_spec(self) -> bool:
        return self.sources[0].startswith("specs/")

    def text(self) -> str:
        return (DATA / self.file).read_text(encoding="utf-8")

    def load(self) -> Any:
        text = self.text()
        for name in self.repairs:
            text = REPAIRS[name](text)
        return json.loads(text)


def _response(spec: str, path: str, method: str, status: str) -> str:
    """The JSON pointer of an operation's example answer (``/`` in the path escaped as ``~1``)."""
    pointer = path.replace("/", "~1")
    return f"specs/{spec}#/paths/{pointer}/{method}/responses/{status}/content/application~1json/example"


def _cf_contact(path: str, method: str, status: str) -> str:
    return _response("clickfunnels-v2-contact.yml", path, method, status)


def _cf_workspace(path: str, method: str, status: str) -> str:
    return _response("clickfunnels-v2-workspace.yml", path, method, status)


def _clicksend(schema: str) -> str:
    return f"specs/clicksend-v3-openapi3-contact-sync-subset.yaml#/components/schemas/{schema}/example"


_LIST = "/workspaces/{workspace_id}/contacts"
_UPSERT = "/workspaces/{workspace_id}/contacts/upsert"
_CONTACT = "/contacts/{id}"
_WORKSPACES = "/teams/{team_id}/workspaces"
CF_SEED = "seeds/000_3d4132de08e05927.txt"
CS_SEED = "seeds/001_e930c2c70b241ef7.txt"
LF_SEED = "seeds/002_1ce322878aa81169.txt"
CRM_SEED = "seeds/003_2e86c55e65f00310.txt"
BIGIN_SEED = "seeds/004_5a7bec08cd322c04.txt"

EXAMPLES: dict[str, Example] = {
    # ClickFunnels 2.0 (through Maton: /clickfunnels/api/v2)
    "cf_teams": Example(
        "clickfunnels/teams.txt",
        "GET /api/v2/teams",
        (f"{CF_SEED}:67-77 (GET /clickfunnels/api/v2/teams, 响应)",),
        ("requote",),
    ),
    "cf_workspaces_seed": Example(
        "clickfunnels/workspaces.txt",
        "GET /api/v2/teams/{team_id}/workspaces",
        (f"{CF_SEED}:84-94 (GET /clickfunnels/api/v2/teams/{{team_id}}/workspaces, 响应)",),
        ("requote",),
    ),
    "cf_workspaces_spec": Example(
        "clickfunnels/workspaces.json",
        "GET /api/v2/teams/{team_id}/workspaces",
        (_cf_workspace(_WORKSPACES, "get", "200"),),
    ),
    "cf_contacts_spec": Example(
        "clickfunnels/contacts.json",
        "GET /api/v2/workspaces/{workspace_id}/contacts",
        (_cf_contact(_LIST, "get", "200"),),
    ),
    "cf_contacts_seed": Example(
        "clickfunnels/contacts.txt",
        "GET /api/v2/workspaces/{workspace_id}/contacts?filter[email_address]=user@example.com",
        (f"{CF_SEED}:104-120 (GET .../contacts?filter[emailaddress]=user@example.com, 响应)",),
        ("requote",),
    ),
    "cf_contact": Example(
        "clickfunnels/contact.json",
        "POST /api/v2/workspaces/{workspace_id}/contacts/upsert, PUT /api/v2/contacts/{id}",
        (
            _cf_contact(_UPSERT, "post", "200"),
            _cf_contact(_UPSERT, "post", "201"),
            _cf_contact(_CONTACT, "put", "200"),
        ),
    ),
    "cf_error_unauthorized": Example(
        "clickfunnels/error_401.json",
        "any ClickFunnels call with a bad key",
        (
            _cf_contact(_LIST, "get", "401"),
            _cf_contact(_UPSERT, "post", "401"),
            _cf_contact(_CONTACT, "put", "401"),
            _cf_contact(_CONTACT, "delete", "401"),
            _cf_workspace(_WORKSPACES, "get", "401"),
        ),
    ),
    "cf_error_not_found": Example(
        "clickfunnels/error_404.json",
        "a ClickFunnels call on a missing record or parent",
        (
            _cf_contact(_LIST, "get", "404"),
            _cf_contact(_UPSERT, "post", "404"),
            _cf_contact(_CONTACT, "put", "404"),
            _cf_contact(_CONTACT, "delete", "404"),
            _cf_workspace(_WORKSPACES, "get", "404"),
        ),
    ),
    "cf_error_bad_request": Example(
        "clickfunnels/error_400.json",
        "POST .../contacts/upsert, PUT /api/v2/contacts/{id} with a body that is not JSON",
        (_cf_contact(_UPSERT, "post", "400"), _cf_contact(_CONTACT, "put", "400")),
    ),
    "cf_error_unprocessable": Example(
        "clickfunnels/error_422.json",
        "GET /api/v2/workspaces/{workspace_id}/contacts with a bad stored_filter_id",
        (_cf_contact(_LIST, "get", "422"),),
    ),
    # ClickSend v3 (through Maton: /clicksend/v3)
    "cs_account": Example(
        "clicksend/account.txt",
        "GET /v3/account",
        (f"{CS_SEED}:162-182 (账户 / 获取账户信息, 响应)",),
        ("requote",),
    ),
    "cs_lists": Example("clicksend/lists.json", "GET /v3/lists", (_clicksend("view-lists"),)),
    "cs_list_contacts": Example(
        "clicksend/list_contacts.json",
        "GET /v3/lists/{list_id}/contacts",
        (_clicksend("view-list-contacts"),),
    ),
    "cs_create_contact": Example(
        "clicksend/create_contact.json",
        "POST /v3/lists/{list_id}/contacts",
        (_clicksend("create-new-contact"),),
    ),
    "cs_update_contact": Example(
        "clicksend/update_contact.json",
        "PUT /v3/lists/{list_id}/contacts/{contact_id}",
        (_clicksend("update-contact"),),
    ),
    "cs_delete_contact": Example(
        "clicksend/delete_contact.json",
        "DELETE /v3/lists/{list_id}/contacts/{contact_id}",
        (_clicksend("delete-contact"),),
    ),
    "cs_sms_history": Example(
        "clicksend/sms_history.json", "GET /v3/sms/history", (_clicksend("view-sms-history"),)
    ),
    "cs_sms_inbound": Example(
        "clicksend/sms_inbound.json", "GET /v3/sms/inbound", (_clicksend("view-inbound-sms"),)
    ),
    "cs_sms_receipts": Example(
        "clicksend/sms_receipts.json", "GET /v3/sms/receipts", (_clicksend("view-sms-receipts"),)
    ),
    # Linkflow open API (its own host)
    "lf_token": Example(
        "linkflow/token.txt", "GET /token", (f"{LF_SEED}:30-33 (通过App Key和App Secret获取Access Token)",)
    ),
    "lf_bulk_ids": Example(
        "linkflow/contacts_bulk_ids.txt",
        "GET /v2/contacts_bulk/ids?page=0&size=5&minUpdateTime=2017-01-01&maxUpdateTime=2018-01-01",
        (f"{LF_SEED}:585-591 (批量获取联系人ID)",),
    ),
    "lf_bulk": Example(
        "linkflow/contacts_bulk.txt",
        "GET /v2/contacts_bulk?ids=1,3,5,7,8&needOpenId=1",
        (f"{LF_SEED}:399-554 (批量获取联系人详情)",),
    ),
    "lf_events_lite": Example(
        "linkflow/events_lite.txt",
        "GET /events/lite",
        (f"{LF_SEED}:1247-1312 (游标获取所有事件)",),
        ("elision",),
    ),
    "lf_contact_events": Example(
        "linkflow/contact_events.txt",
        "GET /contacts/{contactId}/events",
        (f"{LF_SEED}:1152-1217 (获取联系人事件)",),
        ("elision",),
    ),
    "lf_identities": Example(
        "linkflow/contact_identities.txt",
        "GET /contacts/{id}/identities",
        (f"{LF_SEED}:999-1037 (获取联系人渠道帐号列表)",),
    ),
    "lf_update_contact": Example(
        "linkflow/update_contact.txt",
        "PUT /v2/contacts/1",
        (f"{LF_SEED}:659-677 (更新联系人)",),
        ("elision",),
    ),
    "lf_identify": Example(
        "linkflow/identify.txt",
        "POST /identifiers",
        (f"{LF_SEED}:163-181 (识别联系人)",),
        ("elision", "empty-value"),
    ),
    # Zoho CRM v8 and Bigin v2 (through Maton: /zoho-crm/crm/v8, /zoho-bigin/bigin/v2)
    "crm_leads": Example(
        "zoho/crm_leads.txt",
        "GET /crm/v8/Leads?fields=First_Name,Last_Name,Email,Phone,Company",
        (f"{CRM_SEED}:113-133 (示例 - 列出潜在客户, 响应)",),
    ),
    "crm_org": Example("zoho/crm_org.txt", "GET /crm/v8/org", (f"{CRM_SEED}:359-359 (组织详情, 响应)",)),
    "crm_insert": Example(
        "zoho/crm_insert.txt",
        "POST /crm/v8/Leads (insert; the same per-record shape answers an upsert)",
        (f"{CRM_SEED}:202-223 (示例 - 创建潜在客户, 响应)",),
    ),
    "crm_update": Example(
        "zoho/crm_update.txt", "PUT /crm/v8/Leads", (f"{CRM_SEED}:282-303 (更新记录, 响应)",)
    ),
    "crm_delete": Example(
        "zoho/crm_delete.txt",
        "DELETE /crm/v8/Leads?ids=7243485000000619001",
        (f"{CRM_SEED}:319-330 (删除记录, 响应)",),
    ),
    "bigin_contacts": Example(
        "zoho/bigin_contacts.txt",
        "GET /bigin/v2/Contacts?fields=First_Name,Last_Name,Email,Phone",
        (f"{BIGIN_SEED}:82-97 (示例 - 列出联系人, 响应)",),
        ("requote",),
    ),
}


def load(name: str) -> Any:
    """The parsed answer of example ``name``."""
    return EXAMPLES[name].load()
