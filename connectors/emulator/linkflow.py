"""Linkflow open API (``/linkflow``): token auth, contacts, update-time id windows, the event cursor.

Times are wall-clock strings without a zone. Records are stored in Shanghai time; answers render
``dateCreated``/``lastUpdated`` and the token's ``expiration`` in ``Behaviours.linkflow_zone``, and
window bounds are read in that zone. ``/v2/contacts_bulk/ids`` windows are
``minUpdateTime <= lastUpdated < maxUpdateTime`` (dates or date-times), ids ascending, and refuse
``page*size > 10000`` with HTTP 500 ``B00030`` as documented. ``/events/lite`` plays the three
orders of ``Behaviours.linkflow_events_order`` and ``/v2/contacts_bulk`` leaves an existing id out of
a share of its answers (``linkflow_bulk_omission_rate``). Error bodies are
``{"code": "B000xx", "message": ...}``; that field naming is a guess (see README).
"""

import bisect
import hmac
import secrets
import threading
from datetime import tzinfo
from typing import Any

from connectors.emulator.dataset import LINKFLOW_CONTACTS, LINKFLOW_EVENTS
from connectors.emulator.identifiers import record_identifiers
from connectors.emulator.rand import SandboxRandom
from connectors.emulator.records import LINKFLOW_CONTACT_FIELDS, LINKFLOW_PROPERTIES, linkflow_contact
from connectors.emulator.routing import (
    ApiError,
    MalformedRequestError,
    Request,
    Response,
    Route,
    json_response,
    route,
)
from connectors.emulator.state import EmulatorState
from connectors.emulator.store import Entry, Record, key_range, keyset_page, offset_page
from connectors.emulator.timefmt import (
    SHANGHAI,
    local_text,
    parse_local_text,
    parse_shanghai_local,
    shanghai_local,
    zone_named,
)

BULK_IDS_LIMIT = 10_000
BULK_FETCH_LIMIT = 100
DEFAULT_SIZE = 200
_AUTH_PATH = "/linkflow/token"
_RECORD_TIMES = ("dateCreated", "lastUpdated")


def _fail(status: int, code: str, message: str) -> ApiError:
    return ApiError(json_response(status, {"code": code, "message": message}))


def _not_found() -> ApiError:
    return _fail(404, "B00008", "没有找到此ID的联系人 (contact not found)")


class LinkflowApi:
    name = "linkflow"
    prefix = "/linkflow"
    via_gateway = False

    def __init__(self, state: EmulatorState, key: str, secret: str) -> None:
        self.state = state
        self._key = key
        self._secret = secret
        self._tokens: dict[str, float] = {}
        self._token_uses: dict[str, int] = {}
        self._calls_per_token: int | None = None
        self._tokens_lock = threading.Lock()
        # Bulk omissions: the share is exact (every fourth answer at 0.25), the id left out is drawn.
        self._omission_due = 0.0
        self._omission_rng = SandboxRandom(state.dataset.seed)

    def routes(self) -> list[Route]:
        return [
            route("GET", "/token", self.token),
            route("GET", "/contacts", self.contacts),
            route("GET", "/contacts/{contact_id}/events", self.contact_events),
            route("GET", "/contacts/{contact_id}/identities", self.identities),
            route("GET", "/v2/contacts/meta/properties", self.properties),
            route("GET", "/v2/contacts", self.find_contacts),
            route("PUT", "/v2/contacts/{contact_id}", self.update_contact),
            route("GET", "/v2/contacts_bulk", self.bulk_contacts),
            route("GET", "/v2/contacts_bulk/ids", self.bulk_ids),
            route("GET", "/identifiers", self.get_identifier),
            route("POST", "/identifiers", self.identify),
            route("GET", "/events/lite", self.events_lite),
        ]

    def authorize(self, request: Request) -> Response | None:
        if request.path.rstrip("/") == _AUTH_PATH:
            return None
        token = request.header("x-openapi-token") or ""
        with self._tokens_lock:
            expiry = self._tokens.get(token)
            if expiry is not None and self._calls_per_token is not None:
                uses = self._token_uses.get(token, 0) + 1
                self._token_uses[token] = uses
                if uses > self._calls_per_token:
                    expiry = self._tokens[token] = 0.0
        if expiry is None or expiry <= self.state.now():
            return json_response(401, {"code": "B00401", "message": "token invalid or expired"})
        return None

    def unknown(self, request: Request) -> Response:
        return json_response(404, {"code": "B00404", "message": "Not Found"})

    def error(self, status: int, message: str, retry_after: str | None = None) -> Response:
        headers = (("Retry-After", retry_after),) if retry_after else ()
        return json_response(status, {"code": f"B00{status}", "message": message}, headers)

    def expire_tokens(self) -> None:
        with self._tokens_lock:
            self._tokens = dict.fromkeys(self._tokens, 0.0)

    def expire_tokens_after(self, calls: int | None) -> None:
        """Each token serves ``calls`` calls and dies on the next (None: tokens live out their time).

        Counted at the auth check, so the expiry lands on a call in flight exactly as often as asked,
        whatever the machine's load; a test that expired tokens from a timer raced the client's retry.
        """
        with self._tokens_lock:
            self._calls_per_token = calls
            self._token_uses.clear()

    def token(self, request: Request, params: dict[str, str]) -> Response:
        key = (request.header("x-openapi-key") or "").encode()
        secret = (request.header("x-openapi-secret") or "").encode()
        if not (
            hmac.compare_digest(key, self._key.encode())
            and hmac.compare_digest(secret, self._secret.encode())
        ):
            raise _fail(401, "B00401", "invalid app key or secret")
        token = secrets.token_urlsafe(32)
        expiry = self.state.now() + self.state.linkflow_token_ttl
        with self._tokens_lock:
            self._tokens[token] = expiry
        return json_response(200, {"expiration": local_text(expiry, self._zone()), "token": token})

    def contacts(self, request: Request, params: dict[str, str]) -> Response:
        page, size = request.int_or("page", 0), request.int_or("size", DEFAULT_SIZE)
        if page < 0 or size < 1:
            raise MalformedRequestError("page must be >= 0 and size >= 1")
        table = self.state.tables[LINKFLOW_CONTACTS]
        ids = offset_page(table.index("id"), page * size, False, size)
        return json_response(200, [self._shown(request, table.records[i]) for i in ids])

    def properties(self, request: Request, params: dict[str, str]) -> Response:
        """The tenant's custom contact properties: ``alias`` is the key under a contact's ``props``."""
        return json_response(200, list(LINKFLOW_PROPERTIES))

    def find_contacts(self, request: Request, params: dict[str, str]) -> Response:
        email, mobile = request.arg("email"), request.arg("mobilePhone")
        if not email and not mobile:
            raise _fail(500, "B00030", "电子邮箱和手机号两个字段至少存在一个 (email or mobilePhone required)")
        table = self.state.tables[LINKFLOW_CONTACTS]
        matches: set[int] | None = None
        if email:
            matches = set(table.group("email", email.strip().lower()))
        if mobile:
            by_phone = table.group("mobile", mobile.strip())
            matches = set(by_phone) if matches is None else matches & by_phone
        return json_response(200, [self._shown(request, table.records[i]) for i in sorted(matches or ())])

    def bulk_contacts(self, request: Request, params: dict[str, str]) -> Response:
        try:
            wanted = [int(part) for part in (request.arg("ids") or "").split(",") if part.strip()]
        except ValueError:
            raise MalformedRequestError("ids must be a comma-separated list of integers") from None
        # Documented: "如超过则只取前100个id的数据" - more than 100 ids silently keeps the first 100.
        table = self.state.tables[LINKFLOW_CONTACTS]
        found = [table.records[i] for i in wanted[:BULK_FETCH_LIMIT] if i in table.records]
        rate = self.state.behaviours.linkflow_bulk_omission_rate
        if rate and found:
            self._omission_due += rate
            if self._omission_due >= 1:
                self._omission_due -= 1
                found.pop(self._omission_rng.below(len(found)))
        return json_response(200, [self._shown(request, record) for record in found])

    def bulk_ids(self, request: Request, params: dict[str, str]) -> Response:
        page, size = request.int_arg("page"), request.int_arg("size")
        if page is None or size is None:
            raise MalformedRequestError("page and size are required")
        if page < 0 or size < 1:
            raise MalformedRequestError("page must be >= 0 and size >= 1")
        if page * size > BULK_IDS_LIMIT:
            raise _fail(500, "B00030", "page*size必须小于等于10000 (page*size must be <= 10000)")
        low, high = self._time_arg(request, "minUpdateTime"), self._time_arg(request, "maxUpdateTime")
        table = self.state.tables[LINKFLOW_CONTACTS]
        entries: list[Entry] = table.index("id")
        if low is not None or high is not None:

            def build() -> list[Entry]:
                updated = table.index("lastUpdated")
                start, stop = key_range(updated, low, high)
                return sorted((record_id, record_id) for _, record_id in updated[start:stop])

            entries = table.cached(("window", low, high), build)
        return json_response(200, offset_page(entries, page * size, False, size))

    def update_contact(self, request: Request, params: dict[str, str]) -> Response:
        current = self._contact(params["contact_id"])
        self._check_rejection(current)
        record = self._merged(current, self._body(request))
        self.state.put(LINKFLOW_CONTACTS, record["id"], record)
        self.state.log_write(self.name, request.method, request.path, record["id"], request.json())
        return json_response(200, self._zoned(record))

    def identify(self, request: Request, params: dict[str, str]) -> Response:
        body = self._body(request)
        channel = body.get("channel")
        external_id = body.get("externalId")
        channel_id = channel.get("channelId") if isinstance(channel, dict) else None
        if not external_id or not channel_id:
            raise _fail(500, "B00030", "externalId and channel.channelId are required")
        identities = self.state.dataset.linkflow_identities
        known = identities.get((str(channel_id), str(external_id)))
        if known is not None and known in self.state.tables[LINKFLOW_CONTACTS].records:
            current = self.state.tables[LINKFLOW_CONTACTS].records[known]
            self._check_rejection(current)
            record = self._merged(current, body)
            created = False
        elif (holder := self._shared_holder(body)) is not None:
            current = self.state.tables[LINKFLOW_CONTACTS].records[holder]
            self._check_rejection(current)
            record = self._merged(current, body)
            identities[(str(channel_id), str(external_id))] = holder
            created = False
        else:
            contact_id = self.state.dataset.allocate("linkflow")
            record = self._merged(linkflow_contact(contact_id, self.state.now()), body)
            identities[(str(channel_id), str(external_id))] = contact_id
            created = True
        self.state.put(LINKFLOW_CONTACTS, record["id"], record)
        if created:
            self.state.attribute(
                LINKFLOW_CONTACTS, record["id"], record_identifiers(LINKFLOW_CONTACTS, record)
            )
        self.state.log_write(self.name, request.method, request.path, record["id"], body)
        return json_response(200, self._zoned(record))

    def _shared_holder(self, body: dict[str, Any]) -> Any:
        """Under ``linkflow_identify_shared=merge``: the contact a new identity joins because it holds
        the email or mobile sent (the lowest id of them), else None."""
        if self.state.behaviours.linkflow_identify_shared != "merge":
            return None
        table = self.state.tables[LINKFLOW_CONTACTS]
        email, mobile = body.get("email"), body.get("mobilePhone")
        holders = set()
        if isinstance(email, str) and email.strip():
            holders |= table.group("email", email.strip().lower())
        if isinstance(mobile, str) and mobile.strip():
            holders |= table.group("mobile", mobile.strip())
        return min(holders) if holders else None

    def get_identifier(self, request: Request, params: dict[str, str]) -> Response:
        key = (request.arg("channelId") or "", request.arg("externalId") or "")
        contact_id = self.state.dataset.linkflow_identities.get(key)
        if contact_id is None:
            raise _not_found()
        return json_response(200, self._zoned(self._contact(str(contact_id))))

    def identities(self, request: Request, params: dict[str, str]) -> Response:
        contact = self._contact(params["contact_id"])
        found = [
            {
                "contactId": contact["id"],
                "externalId": external_id,
                "isActive": True,
                "channel": {"channelId": channel_id, "channelType": "UDC", "status": "ACTIVE"},
            }
            for (channel_id, external_id), contact_id in self.state.dataset.linkflow_identities.items()
            if contact_id == contact["id"]
        ]
        return json_response(200, found)

    def events_lite(self, request: Request, params: dict[str, str]) -> Response:
        last_max_id = request.int_arg("lastMaxId")
        if last_max_id is None:
            raise MalformedRequestError("lastMaxId is required (0 on the first call)")
        size = request.int_or("size", DEFAULT_SIZE)
        if size < 1:
            raise MalformedRequestError("size must be >= 1")
        table = self.state.tables[LINKFLOW_EVENTS]
        entries = table.index("id")
        order = self.state.behaviours.linkflow_events_order
        if order == "newest_tail":
            # The ``size`` newest events above lastMaxId, newest first: older ones cannot be paged to.
            above = bisect.bisect_right(entries, (last_max_id, last_max_id))
            ids = [record_id for _, record_id in reversed(entries[max(above, len(entries) - size) :])]
        else:
            ids, _ = keyset_page(entries, (last_max_id, last_max_id), False, size)
            if order == "descending":
                ids.reverse()
        return json_response(200, [self._zoned(table.records[i]) for i in ids])

    def contact_events(self, request: Request, params: dict[str, str]) -> Response:
        """A contact's events, newest first; any contact id is accepted (visitors' events too)."""
        try:
            contact_id = int(params["contact_id"])
        except ValueError:
            raise _not_found() from None
        page, size = request.int_or("page", 0), request.int_or("size", DEFAULT_SIZE)
        if page < 0 or size < 1:
            raise MalformedRequestError("page must be >= 0 and size >= 1")
        table = self.state.tables[LINKFLOW_EVENTS]
        ids = sorted(table.group("contact", contact_id), reverse=True)[page * size : (page + 1) * size]
        return json_response(200, [self._zoned(table.records[i]) for i in ids])

    def _time_arg(self, request: Request, name: str) -> str | None:
        """A window bound in the stored format, so it compares with ``lastUpdated`` as text."""
        text = request.arg(name)
        if not text:
            return None
        try:
            return shanghai_local(parse_local_text(text, self._zone()))
        except ValueError:
            raise MalformedRequestError(f"{name} must be yyyy-MM-dd or yyyy-MM-dd HH:mm:ss") from None

    def _contact(self, raw_id: str) -> Record:
        try:
            record = self.state.tables[LINKFLOW_CONTACTS].get(int(raw_id))
        except ValueError:
            record = None
        if record is None:
            raise _not_found()
        return record

    def _shown(self, request: Request, record: Record) -> Record:
        shown = self._zoned(record)
        return {**shown, "openIds": []} if request.arg("needOpenId") == "1" else shown

    def _zone(self) -> tzinfo:
        return zone_named(self.state.behaviours.linkflow_zone)

    def _zoned(self, record: Record) -> Record:
        """The record as the API shows it: its stored Shanghai times rendered in the account's zone."""
        zone = self._zone()
        if zone is SHANGHAI:
            return record
        shown = dict(record)
        for name in _RECORD_TIMES:
            if isinstance(shown.get(name), str):
                shown[name] = local_text(parse_shanghai_local(shown[name]), zone)
        return shown

    def _body(self, request: Request) -> dict[str, Any]:
        body = request.json()
        if not isinstance(body, dict):
            raise MalformedRequestError("the body must be a JSON object")
        return body

    def _merged(self, current: Record, body: dict[str, Any]) -> Record:
        """The contact with the body's fields applied (``props`` merged key by key, or replaced whole
        as ``linkflow_props`` says), a new version."""
        record = dict(current)
        for name in LINKFLOW_CONTACT_FIELDS:
            if name in body and name != "props":
                record[name] = body[name]
        if isinstance(body.get("props"), dict):
            kept = current.get("props") or {} if self.state.behaviours.linkflow_props == "merge" else {}
            record["props"] = {**kept, **body["props"]}
        record["lastUpdated"] = shanghai_local(self.state.now())
        record["ver"] = int(current.get("ver") or 0) + 1
        return record

    def _check_rejection(self, record: Record) -> None:
        rejection = self.state.rejection(self.name, record["id"])
        if rejection is not None:
            raise _fail(500, rejection.code or "B00030", rejection.message)
