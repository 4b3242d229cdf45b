"""Read-only probes for ``contact-sync check``: one small question per fact a sync depends on.

Every probe is a GET of one small page (never a write) and answers in a form the pipelines layer can
judge without parsing text:

- the first request of a Maton app keeps a refusal as a ``Reply`` instead of raising, so the caller
  can tell the gateway's own refusals (its envelope ``{"error": {"message", "code"}}``: 401 for the
  key, 400 for a missing app connection, api-notes §1.2) from the app's;
- the account's country and time zone, where the API has them (Zoho ``/org`` ``country_code`` and
  ``time_zone``; ClickSend ``/account`` ``country`` and ``timezone``; ClickFunnels teams carry a Rails
  ``time_zone`` name and no country; Linkflow has no account endpoint);
- what the vendors leave open: whether Bigin honours ``If-Modified-Since`` and has ``/deleted``
  (api-notes §6.2), and Zoho's ``X-API-CREDITS-REMAINING``, sent once half of the day's credits are
  spent (api-notes §5.6).

A host that does not answer, a 5xx or 429 that outlasts the retries, and a 2xx of the wrong shape
raise ``ConnectorError`` as everywhere else, in the same one-line form the readers use.
"""

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from connectors.clickfunnels import ClickFunnelsClient
from connectors.clicksend import ClickSendClient
from connectors.http import HttpClient, describe_error
from connectors.linkflow import LinkflowClient
from connectors.times import instant_or_none, to_iso
from connectors.zoho import ZohoClient

REFUSALS: tuple[int, ...] = (400, 401, 403, 404)
"""Statuses the first request of a source reads rather than raises: who refused tells what to fix."""
CREDITS_HEADER = "x-api-credits-remaining"
CLICKSEND_MIN_LIMIT = 15
"""ClickSend's smallest page ("15 at minimum", api-notes §3.2)."""


@dataclass(frozen=True)
class Reply:
    """One probe's answer: status, decoded body (None when empty or a refusal that is not JSON),
    lower-cased headers, and the API's own error code and message for a refusal."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    code: str | None = None
    message: str = ""

    @property
    def refused(self) -> bool:
        return self.status >= 400

    def line(self) -> str:
        """``401 INVALID_TOKEN: message`` (status, then whatever the API said)."""
        said = f"{self.code}: {self.message}" if self.code and self.message else self.code or self.message
        return f"{self.status} {said}".strip()


@dataclass(frozen=True)
class AccountFacts:
    country: str | None = None
    time_zone: str | None = None


def ask(
    http: HttpClient,
    template: str,
    *,
    path_params: Mapping[str, str | int] | None = None,
    params: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    refusals: Collection[int] = (),
    shape: Callable[[Any], bool] | None = None,
    expected: str = "",
) -> Reply:
    """GET once (with the HTTP layer's retries); a 2xx body that fails ``shape`` raises ``expected``."""
    path = template.format(**{k: quote(str(v), safe="") for k, v in (path_params or {}).items()})
    response = http.request(
        "GET", template, path_params=path_params, params=params, headers=headers, accept=refusals
    )
    names = {name.lower(): value for name, value in response.headers.items()}
    if response.status_code >= 400:
        code, message = describe_error(response, http.redact)
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError):
            body = None
        return Reply(response.status_code, body, names, code, message)
    if response.status_code in (204, 304) or not response.content:
        return Reply(response.status_code, None, names)
    body = http.decode(response, "GET", path)
    if shape is not None and not shape(body):
        raise http.unexpected(response, "GET", path, expected)
    return Reply(response.status_code, body, names)


def refused_by_gateway(reply: Reply) -> bool:
    """Whether Maton itself refused (its envelope's ``code`` repeats the status), not the app behind it."""
    error = reply.body.get("error") if isinstance(reply.body, dict) else None
    return isinstance(error, dict) and str(error.get("code")) == str(reply.status)


def _text(value: object) -> str | None:
    text = "" if value is None else str(value).strip()
    return text or None


def _is_list(body: Any) -> bool:
    return isinstance(body, list)


# --------------------------------------------------------------------------------------- Zoho


def zoho_org(client: ZohoClient) -> Reply:
    """``GET /org``: the first request of a Zoho product (one credit), refusals kept."""
    return ask(
        client.http,
        f"{client.product.prefix}/org",
        refusals=REFUSALS,
        shape=lambda body: isinstance(body, dict) and isinstance(body.get("org"), list),
        expected="expected an org array",
    )


def zoho_account(reply: Reply) -> AccountFacts:
    orgs = reply.body.get("org") if isinstance(reply.body, dict) else None
    org = orgs[0] if isinstance(orgs, list) and orgs and isinstance(orgs[0], dict) else {}
    return AccountFacts(_text(org.get("country_code")), _text(org.get("time_zone")))


def zoho_sample(client: ZohoClient, module: str, *, size: int = 2) -> tuple[Reply, list[dict[str, Any]]]:
    """The ``size`` least recently modified records, asked exactly as a sync asks (same ``fields``)."""
    params: dict[str, Any] = {
        "fields": ",".join(client.product.modules[module]),
        "per_page": size,
        "sort_by": "Modified_Time",
        "sort_order": "asc",
    }
    if module == "Leads":
        params["converted"] = "both"
    return _zoho_page(client, module, params, {})


def _zoho_page(
    client: ZohoClient, module: str, params: Mapping[str, Any], headers: Mapping[str, str]
) -> tuple[Reply, list[dict[str, Any]]]:
    reply = ask(
        client.http,
        f"{client.product.prefix}/{{module}}",
        path_params={"module": module},
        params=params,
        headers=headers,
        shape=lambda body: isinstance(body, dict) and isinstance(body.get("data"), list),
        expected="expected a data array",
    )
    data = reply.body.get("data") if isinstance(reply.body, dict) else None
    return reply, [r for r in data or [] if isinstance(r, dict)]


def oldest_modified(records: Iterable[Mapping[str, Any]]) -> datetime | None:
    return min(filter(None, (instant_or_none(r.get("Modified_Time")) for r in records)), default=None)


def zoho_honours_if_modified_since(client: ZohoClient, module: str, oldest: datetime) -> tuple[Reply, bool]:
    """Ask for records modified since one second after the oldest one.

    A product that honours ``If-Modified-Since`` leaves that oldest record out (or answers 304); one
    that ignores the header lists it first again. Bigin does not document the header (api-notes §6.2).
    """
    since = oldest + timedelta(seconds=1)
    params = {"fields": "Modified_Time", "per_page": 1, "sort_by": "Modified_Time", "sort_order": "asc"}
    reply, records = _zoho_page(client, module, params, {"If-Modified-Since": to_iso(since)})
    first = oldest_modified(records[:1])
    return reply, first is None or first >= since


def zoho_deleted_feed(client: ZohoClient, module: str) -> tuple[Reply, bool]:
    """Whether ``/{module}/deleted`` answers a list; any other answer (404, 400 reading ``deleted`` as a
    record id, 204) means no feed (api-notes §6.2)."""
    reply = ask(
        client.http,
        f"{client.product.prefix}/{{module}}/deleted",
        path_params={"module": module},
        params={"type": "all", "page": 1, "per_page": 1},
        refusals=(400, 404, 405),
    )
    feed = reply.status == 200 and isinstance(reply.body, dict) and isinstance(reply.body.get("data"), list)
    return reply, feed


def credits_left(replies: Iterable[Reply]) -> int | None:
    """The lowest ``X-API-CREDITS-REMAINING`` among the answers, or None when none carried it."""
    values = []
    for reply in replies:
        try:
            values.append(int(reply.headers[CREDITS_HEADER]))
        except (KeyError, ValueError):
            continue
    return min(values, default=None)


# ---------------------------------------------------------------------------------- ClickSend


def _clicksend_page(body: Any) -> bool:
    """The paginated envelope, or a bare array in ``data`` as the vendor's own history example has."""
    data = body.get("data") if isinstance(body, dict) else None
    return isinstance(data, list) or (isinstance(data, dict) and isinstance(data.get("data"), list))


def _clicksend_records(reply: Reply) -> list[dict[str, Any]]:
    data = reply.body.get("data") if isinstance(reply.body, dict) else None
    items = data.get("data") if isinstance(data, dict) else data
    return [r for r in items or [] if isinstance(r, dict)]


def clicksend_account_reply(client: ClickSendClient) -> Reply:
    """``GET /account``: the first request of ClickSend, refusals kept."""
    return ask(
        client.http,
        "/v3/account",
        refusals=REFUSALS,
        shape=lambda body: isinstance(body, dict) and isinstance(body.get("data"), dict),
        expected="expected the account in data",
    )


def clicksend_account(reply: Reply) -> AccountFacts:
    data = reply.body.get("data") if isinstance(reply.body, dict) else None
    account = data if isinstance(data, dict) else {}
    return AccountFacts(_text(account.get("country")), _text(account.get("timezone")))


def clicksend_page(
    client: ClickSendClient, template: str, path_params: Mapping[str, str | int] | None = None
) -> list[dict[str, Any]]:
    """The first, smallest page of a ClickSend list endpoint."""
    reply = ask(
        client.http,
        template,
        path_params=path_params,
        params={"page": 1, "limit": CLICKSEND_MIN_LIMIT},
        shape=_clicksend_page,
        expected="no data envelope",
    )
    return _clicksend_records(reply)


# ------------------------------------------------------------------------------- ClickFunnels


def clickfunnels_teams(client: ClickFunnelsClient) -> Reply:
    """``GET /teams``: the first request of ClickFunnels, refusals kept."""
    return ask(
        client.http, "/api/v2/teams", refusals=REFUSALS, shape=_is_list, expected="expected a JSON array"
    )


def clickfunnels_account(reply: Reply) -> AccountFacts:
    """ClickFunnels names no country; a team has a Rails time-zone name (api-notes §2.3)."""
    teams = reply.body if isinstance(reply.body, list) else []
    team = teams[0] if teams and isinstance(teams[0], dict) else {}
    return AccountFacts(None, _text(team.get("time_zone")))


def clickfunnels_contacts(client: ClickFunnelsClient, workspace_id: str) -> int:
    """Contacts on the first page of a workspace (the page size is fixed at 20)."""
    reply = ask(
        client.http,
        "/api/v2/workspaces/{id}/contacts",
        path_params={"id": workspace_id},
        shape=_is_list,
        expected="expected a JSON array",
    )
    return len(reply.body or [])


# ----------------------------------------------------------------------------------- Linkflow


def linkflow_token(client: LinkflowClient) -> None:
    """Fetch a token now: proves the key and secret, or raises Linkflow's refusal (path ``/token``)."""
    if client.http.auth is not None:
        client.http.auth.headers()


def linkflow_page(client: LinkflowClient, template: str, params: Mapping[str, Any]) -> int:
    """Items in one small page of a Linkflow list endpoint (bare arrays, api-notes §4.2)."""
    reply = ask(client.http, template, params=params, shape=_is_list, expected="expected a JSON array")
    return len(reply.body or [])


def zoho_field_list(client: ZohoClient, module: str) -> Any:
    """A Zoho module's field metadata (``GET /settings/fields?module=``), the answer's body."""
    return ask(
        client.http,
        f"{client.product.prefix}/settings/fields",
        params={"module": module},
        shape=lambda body: isinstance(body, dict) and isinstance(body.get("fields"), list),
        expected="expected a fields array",
    ).body


def linkflow_properties(client: LinkflowClient) -> Any:
    """Linkflow's contact custom properties (``GET /v2/contacts/meta/properties``, api-notes §4)."""
    return ask(
        client.http, "/v2/contacts/meta/properties", shape=_is_list, expected="expected a JSON array"
    ).body
