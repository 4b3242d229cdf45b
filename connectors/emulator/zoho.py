"""Zoho CRM v8 (Leads, Contacts) and Zoho Bigin v2 (Contacts) behind Maton.

Reads follow the v8 rules: ``fields`` required (at most 50), ``page`` only within the first 2,000
records, then ``page_token`` from ``info.next_page_token`` (given on every page that has more
records, valid ``zoho_page_token_ttl`` seconds and replaying the query it was issued for; expired,
400 ``EXPIRED_VALUE``), at most ``zoho_token_chain_limit`` records in one chain (then 400
``PAGINATION_LIMIT_EXCEEDED``), ``sort_by`` id, Created_Time or Modified_Time (default id, desc),
``If-Modified-Since`` at second resolution (inclusive or exclusive, per ``zoho_if_modified_since``)
with 304 when nothing matches and 204 for an empty module, converted Leads hidden unless
``converted=true|both``, records awaiting approval hidden unless ``approved=false|both``.
``/deleted`` keeps recycle-bin and permanent entries for their retention only. What Bigin does where
its documents are silent (``If-Modified-Since``, ``/deleted``, approvals) follows the ``Behaviours``.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors.emulator.dataset import (
    DAY,
    ZOHO_BIGIN_CONTACTS,
    ZOHO_CRM_CONTACTS,
    ZOHO_CRM_LEADS,
    deleted_table,
)
from connectors.emulator.gateway import check_key
from connectors.emulator.records import (
    ZOHO_BIGIN_CONTACT_FIELDS,
    ZOHO_BIGIN_ID_PREFIX,
    ZOHO_CONTACT_FIELDS,
    ZOHO_CRM_ID_PREFIX,
    ZOHO_LEAD_FIELDS,
    zoho_colleague,
    zoho_field_metadata,
    zoho_layout,
    zoho_user,
)
from connectors.emulator.routing import (
    ApiError,
    Request,
    Response,
    Route,
    empty_response,
    json_response,
    route,
)
from connectors.emulator.state import EmulatorState, Rejection
from connectors.emulator.store import Entry, Record, key_range, keyset_page, offset_page
from connectors.emulator.timefmt import ZOHO_BIGIN_OFFSET, ZOHO_CRM_OFFSET, parse_http_time, zoho_time
from connectors.emulator.zoho_writes import (
    ALREADY_MODIFIED,
    ALREADY_MODIFIED_MESSAGE,
    BATCH_LIMIT,
    Module,
    RecordWriteError,
    ZohoWriter,
    batch_status,
    layout_requirements,
)

MAX_FIELDS = 50
MAX_PER_PAGE = 200
DISCRETE_LIMIT = 2000
SORT_FIELDS = ("id", "Created_Time", "Modified_Time")
APPROVED_VALUES = ("true", "false", "both")
PENDING_APPROVAL = "approval_process_pending"
"""``$approval_state`` of a record awaiting approval (the value Zoho's v8 OAS examples show)."""
_TOKEN_CAP = 50_000


def zoho_error(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> Response:
    return json_response(
        status, {"code": code, "details": details or {}, "message": message, "status": "error"}
    )


def _fail(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> ApiError:
    return ApiError(zoho_error(status, code, message, details))


def _invalid(param: str, message: str = "invalid data", **details: Any) -> ApiError:
    return _fail(400, "INVALID_DATA", message, {"param_name": param, **details})


@dataclass(frozen=True)
class _Query:
    """Everything that decides a list's contents and order; a page token replays it exactly."""

    module: Module
    fields: tuple[str, ...]
    sort_by: str
    descending: bool
    per_page: int
    modified_since: str | None
    converted: str
    approved: str


@dataclass(frozen=True)
class _Token:
    query: _Query
    after: Entry
    page: int
    expires: float


def crm_modules() -> dict[str, Module]:
    return {
        "Leads": Module(
            "zoho_crm", "Leads", ZOHO_CRM_LEADS, ZOHO_LEAD_FIELDS, ZOHO_CRM_OFFSET, ZOHO_CRM_ID_PREFIX
        ),
        "Contacts": Module(
            "zoho_crm",
            "Contacts",
            ZOHO_CRM_CONTACTS,
            ZOHO_CONTACT_FIELDS,
            ZOHO_CRM_OFFSET,
            ZOHO_CRM_ID_PREFIX,
        ),
    }


def bigin_modules() -> dict[str, Module]:
    return {
        "Contacts": Module(
            "zoho_bigin",
            "Contacts",
            ZOHO_BIGIN_CONTACTS,
            ZOHO_BIGIN_CONTACT_FIELDS,
            ZOHO_BIGIN_OFFSET,
            ZOHO_BIGIN_ID_PREFIX,
        )
    }


class ZohoApi:
    via_gateway = True

    def __init__(self, state: EmulatorState, maton_key: str, *, bigin: bool) -> None:
        self.state = state
        self._maton_key = maton_key
        self.bigin = bigin
        self.name = "zoho_bigin" if bigin else "zoho_crm"
        self.prefix = "/zoho-bigin/bigin/v2" if bigin else "/zoho-crm/crm/v8"
        self.modules = bigin_modules() if bigin else crm_modules()
        self.offset = ZOHO_BIGIN_OFFSET if bigin else ZOHO_CRM_OFFSET
        self._tokens: dict[str, _Token] = {}

    def routes(self) -> list[Route]:
        return [
            route("GET", "/org", self.org),
            route("GET", "/users", self.users),
            route("GET", "/settings/fields", self.field_list),
            route("GET", "/settings/layouts", self.layout_list),
            route("GET", "/{module}/deleted", self.deleted),
            route("POST", "/{module}/upsert", self.upsert),
            route("GET", "/{module}/{record_id}", self.get_record),
            route("GET", "/{module}", self.list_records),
            route("POST", "/{module}", self.insert),
            route("PUT", "/{module}", self.update),
            route("DELETE", "/{module}", self.delete),
        ]

    def authorize(self, request: Request) -> Response | None:
        return check_key(request, self._maton_key)

    def unknown(self, request: Request) -> Response:
        return zoho_error(
            404, "INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one"
        )

    def error(self, status: int, message: str, retry_after: str | None = None) -> Response:
        codes = {400: "INVALID_DATA", 429: "TOO_MANY_REQUESTS", 500: "INTERNAL_ERROR", 503: "INTERNAL_ERROR"}
        response = zoho_error(status, codes.get(status, "INTERNAL_ERROR"), message)
        if retry_after:
            return Response(response.status, response.body, (*response.headers, ("Retry-After", retry_after)))
        return response

    def expire_page_tokens(self) -> None:
        self._tokens = {text: _Token(t.query, t.after, t.page, 0.0) for text, t in self._tokens.items()}

    def org(self, request: Request, params: dict[str, str]) -> Response:
        return json_response(200, {"org": [self.state.dataset.zoho_orgs[self.name]]})

    def users(self, request: Request, params: dict[str, str]) -> Response:
        """``GET /users?type=``: ``CurrentUser`` is the user the Maton connection acts as (the org's
        admin, who makes every API write); other types list the admin and the colleague who edits by
        hand (v8 users API shape: ``users`` with ``id``, ``full_name``, ``email``, then ``info``)."""
        prefix = ZOHO_BIGIN_ID_PREFIX if self.bigin else ZOHO_CRM_ID_PREFIX
        kind = request.arg("type") or "AllUsers"
        people = [zoho_user(prefix)] if kind == "CurrentUser" else [zoho_user(prefix), zoho_colleague(prefix)]
        users = [
            {
                "id": person["id"],
                "full_name": person["name"],
                "first_name": person["name"].split()[0],
                "last_name": person["name"].split()[-1],
                "email": person["email"],
                "status": "active",
                "confirm": True,
            }
            for person in people
        ]
        info = {"per_page": 200, "count": len(users), "page": 1, "more_records": False}
        return json_response(200, {"users": users, "info": info})

    def field_list(self, request: Request, params: dict[str, str]) -> Response:
        """``GET /settings/fields?module=``: the module's fields, the account's custom ones included."""
        module = self._module({"module": request.arg("module") or ""})
        return json_response(200, {"fields": zoho_field_metadata(module.fields, module.id_prefix)})

    def layout_list(self, request: Request, params: dict[str, str]) -> Response:
        """``GET /settings/layouts?module=``: the module's layouts, each with what it makes mandatory
        (`layout_requirements`); refused as a connection without the settings scope is, when
        ``Behaviours.zoho_layouts_readable`` is off."""
        if not self.state.behaviours.zoho_layouts_readable:
            return zoho_error(401, "OAUTH_SCOPE_MISMATCH", "invalid oauth scope to access this URL", {})
        module = self._module({"module": request.arg("module") or ""})
        layouts = [
            zoho_layout(name, number, module.fields, module.id_prefix, frozenset(required))
            for number, (name, required) in enumerate(layout_requirements(self.state, module).items())
        ]
        return json_response(200, {"layouts": layouts})

    def get_record(self, request: Request, params: dict[str, str]) -> Response:
        module = self._module(params)
        record = self.state.tables[module.table].get(params["record_id"])
        if record is None:
            return empty_response(204)
        return json_response(200, {"data": [self._shown(record)]})

    def _by_ids(self, request: Request, module: Module) -> Response:
        """``ids=a,b,c`` (v8 spec ``GET /{module}`` parameter ``ids``): those records, in the order
        asked, with the asked ``fields``; ids not found are left out, 204 when none is."""
        query = self._query(request, module)
        wanted = [part.strip() for part in (request.arg("ids") or "").split(",") if part.strip()]
        if not wanted:
            raise _invalid("ids")
        records = self.state.tables[module.table].records
        converted = {"false": False, "true": True}.get(query.converted)
        found = [
            records[i]
            for i in dict.fromkeys(wanted)
            if i in records and (converted is None or bool(records[i].get("$converted")) == converted)
        ]
        if not found:
            return empty_response(204)
        info = {"per_page": len(found), "count": len(found), "page": 1, "more_records": False}
        return json_response(200, {"data": [self._projected(r, query.fields) for r in found], "info": info})

    def list_records(self, request: Request, params: dict[str, str]) -> Response:
        module = self._module(params)
        if request.arg("ids") is not None:
            return self._by_ids(request, module)
        token_text = request.arg("page_token")
        after: Entry | None = None
        if token_text:
            if request.arg("page") is not None:
                raise _invalid("page", "page cannot be used with page_token")
            token = self._token(token_text, module)
            query, after, page = token.query, token.after, token.page + 1
        else:
            query = self._query(request, module)
            page = request.int_or("page", 1)
            if page < 1:
                raise _invalid("page")
            if page * query.per_page > DISCRETE_LIMIT:
                raise _fail(
                    400,
                    "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
                    "You can only get the first 2000 records without using page_token param",
                    {"limit": DISCRETE_LIMIT},
                )
        limit = self.state.behaviours.zoho_token_chain_limit
        if page * query.per_page > limit:
            raise _fail(
                400,
                "PAGINATION_LIMIT_EXCEEDED",
                f"You can only get the first {limit} records of a query; start a new one",
                {"limit": limit},
            )
        entries = self._view(query)
        if not entries:
            return empty_response(304 if query.modified_since is not None else 204)
        if after is not None:
            ids, more = keyset_page(entries, after, query.descending, query.per_page)
        else:
            offset = (page - 1) * query.per_page
            ids = offset_page(entries, offset, query.descending, query.per_page)
            more = offset + query.per_page < len(entries)
        if not ids:
            return empty_response(204)
        records = self.state.tables[module.table].records
        next_token, expiry = None, None
        if more:
            last = records[ids[-1]]
            next_token, expiry = self._issue(query, (last[query.sort_by], last["id"]), page)
        info = {
            "per_page": query.per_page,
            "count": len(ids),
            "page": page,
            "sort_by": query.sort_by,
            "sort_order": "desc" if query.descending else "asc",
            "more_records": more,
            "next_page_token": next_token,
            "previous_page_token": None,
            "page_token_expiry": expiry,
        }
        data = [self._projected(self._shown(records[record_id]), query.fields) for record_id in ids]
        return json_response(200, {"data": data, "info": info})

    def deleted(self, request: Request, params: dict[str, str]) -> Response:
        module = self._module(params)
        answer = self.state.behaviours.bigin_deleted if self.bigin else "feed"
        if answer == "missing_404":
            return self.unknown(request)
        if answer == "record_id_400":
            # The route ``/{module}/{id}`` reads ``deleted`` as an id it cannot parse.
            raise _fail(400, "INVALID_DATA", "the id given seems to be invalid", {"resource_path_index": 1})
        if answer == "empty_204":
            return empty_response(204)
        kind = request.arg("type") or "all"
        if kind not in ("all", "recycle", "permanent"):
            raise _invalid("type", supported_values=["all", "recycle", "permanent"])
        page, per_page = request.int_or("page", 1), request.int_or("per_page", MAX_PER_PAGE)
        if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
            raise _invalid("per_page" if page >= 1 else "page")
        since = self._modified_since(request, honoured=True)
        table = self.state.tables[deleted_table(module.table)]
        behaviours, now = self.state.behaviours, self.state.now()
        kept_since = {
            "recycle": zoho_time(now - behaviours.zoho_recycle_retention_days * DAY, self.offset),
            "permanent": zoho_time(now - behaviours.zoho_permanent_retention_days * DAY, self.offset),
        }

        def build() -> list[Entry]:
            entries = table.index("deleted_time")
            start, _ = key_range(entries, since, None)
            records = table.records
            return [
                entry
                for entry in entries[start:]
                if kind in ("all", records[entry[1]]["type"])
                and entry[0] >= kept_since[records[entry[1]]["type"]]
            ]

        entries = table.cached(("deleted", kind, since, *kept_since.values()), build)
        if not entries:
            return empty_response(304 if since is not None else 204)
        offset = (page - 1) * per_page
        ids = offset_page(entries, offset, True, per_page)
        if not ids:
            return empty_response(204)
        info = {
            "per_page": per_page,
            "count": len(ids),
            "page": page,
            "more_records": offset + per_page < len(entries),
        }
        return json_response(200, {"data": [table.records[i] for i in ids], "info": info})

    def insert(self, request: Request, params: dict[str, str]) -> Response:
        return self._write(request, params, "insert")

    def update(self, request: Request, params: dict[str, str]) -> Response:
        return self._write(request, params, "update")

    def upsert(self, request: Request, params: dict[str, str]) -> Response:
        return self._write(request, params, "upsert")

    def delete(self, request: Request, params: dict[str, str]) -> Response:
        module = self._module(params)
        ids = [part.strip() for part in (request.arg("ids") or "").split(",") if part.strip()]
        if not ids:
            raise _fail(
                400,
                "REQUIRED_PARAM_MISSING",
                "One of the expected parameter is missing",
                {"param_name": "ids"},
            )
        if len(ids) > BATCH_LIMIT:
            raise _fail(400, "LIMIT_EXCEEDED", "Record count exceeded", {"limit": BATCH_LIMIT})
        writer = ZohoWriter(self.state, module, None)
        results = []
        for record_id in ids:
            try:
                results.append(writer.delete(record_id))
                self.state.log_write(self.name, request.method, request.path, record_id, None)
            except RecordWriteError as failure:
                results.append(failure.result)
        return json_response(batch_status(results, 200), {"data": results})

    def _write(self, request: Request, params: dict[str, str], mode: str) -> Response:
        module = self._module(params)
        body = request.json()
        items = body.get("data") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise _fail(
                400,
                "REQUIRED_PARAM_MISSING",
                "One of the expected parameter is missing",
                {"param_name": "data"},
            )
        if len(items) > BATCH_LIMIT:
            raise _fail(400, "LIMIT_EXCEEDED", "Record count exceeded", {"limit": BATCH_LIMIT})
        unmodified_since = self._time_header(request, "If-Unmodified-Since")
        check_fields = body.get("duplicate_check_fields") or ["Email"]
        writer = ZohoWriter(self.state, module, unmodified_since)
        if self.state.behaviours.zoho_conflict == "whole_call" and writer.refused_record(
            items, mode, list(check_fields)
        ):
            # The envelope of Zoho's call-level errors; like those that name a parameter
            # (param_name), it names the header that refused the call, and no record.
            raise _fail(
                412, ALREADY_MODIFIED, ALREADY_MODIFIED_MESSAGE, {"header_name": "If-Unmodified-Since"}
            )
        refusal = self._refused_call(items)
        if refusal is not None:
            position, rejection = refusal
            raise _fail(
                400,
                rejection.code or "INVALID_DATA",
                rejection.message,
                {"json_path": f"$.data[{position}]"},
            )
        results = []
        for position, item in enumerate(items):
            try:
                if not isinstance(item, dict):
                    raise RecordWriteError(
                        "INVALID_DATA", "invalid data", {"json_path": f"$.data[{position}]"}
                    )
                if mode == "insert":
                    result = writer.insert(item, position)
                elif mode == "update":
                    result = writer.update(item, position)
                else:
                    result = writer.upsert(item, position, list(check_fields))
            except RecordWriteError as failure:
                results.append(failure.result)
                continue
            results.append(result)
            self.state.log_write(self.name, request.method, request.path, result["details"]["id"], item)
        return json_response(batch_status(results, 201 if mode == "insert" else 200), {"data": results})

    def _refused_call(self, items: list[Any]) -> tuple[int, Rejection] | None:
        """The first record whose rejection hook refuses the whole call, with its position."""
        for position, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            rejection = self.state.rejection(self.name, item.get("id"))
            if rejection is not None and rejection.whole_call:
                return position, rejection
        return None

    def _module(self, params: dict[str, str]) -> Module:
        module = self.modules.get(params["module"])
        if module is None:
            raise _fail(
                400, "INVALID_MODULE", "the module name given seems to be invalid", {"resource_path_index": 0}
            )
        return module

    def _query(self, request: Request, module: Module) -> _Query:
        fields_text = request.arg("fields")
        if not fields_text or not fields_text.strip():
            raise _fail(
                400,
                "REQUIRED_PARAM_MISSING",
                "One of the expected parameter is missing",
                {"param_name": "fields"},
            )
        fields = tuple(dict.fromkeys(name.strip() for name in fields_text.split(",") if name.strip()))
        if len(fields) > MAX_FIELDS:
            raise _fail(
                400,
                "LIMIT_EXCEEDED",
                "Max field limit exceeded",
                {"param_name": "fields", "limit": MAX_FIELDS},
            )
        sort_by = request.arg("sort_by") or "id"
        if sort_by not in SORT_FIELDS:
            raise _invalid("sort_by", supported_values=list(SORT_FIELDS))
        sort_order = request.arg("sort_order") or "desc"
        if sort_order not in ("asc", "desc"):
            raise _invalid("sort_order", supported_values=["asc", "desc"])
        per_page = request.int_or("per_page", MAX_PER_PAGE)
        if not 1 <= per_page <= MAX_PER_PAGE:
            raise _invalid("per_page", maximum=MAX_PER_PAGE)
        converted = (request.arg("converted") or "false").lower() if module.is_leads else "both"
        if converted not in ("false", "true", "both"):
            raise _invalid("converted", supported_values=["true", "false", "both"])
        approved = (request.arg("approved") or "true").lower()
        if approved not in APPROVED_VALUES:
            raise _invalid("approved", supported_values=list(APPROVED_VALUES))
        honoured = not self.bigin or self.state.behaviours.bigin_honours_if_modified_since
        since = self._modified_since(request, honoured=honoured)
        return _Query(module, fields, sort_by, sort_order == "desc", per_page, since, converted, approved)

    def _modified_since(self, request: Request, *, honoured: bool) -> str | None:
        """The header as the lowest ``Modified_Time`` (or ``deleted_time``) it keeps.

        Times have second resolution, so "after the given second" is "from the next second on".
        """
        if not honoured:
            return None
        text = self._time_header(request, "If-Modified-Since")
        if text is None or self.state.behaviours.zoho_if_modified_since == "inclusive":
            return text
        return zoho_time(datetime.fromisoformat(text).timestamp() + 1, self.offset)

    def _time_header(self, request: Request, name: str) -> str | None:
        """A time header rendered like the org's stored times, so it compares with them as text."""
        text = request.header(name)
        if not text:
            return None
        try:
            return zoho_time(parse_http_time(text, self.offset), self.offset)
        except ValueError:
            raise _fail(400, "INVALID_DATA", "invalid data", {"header_name": name}) from None

    def _view(self, query: _Query) -> list[Entry]:
        """The query's records as ``(sort key, id)`` in ascending order; cached until the next write."""
        table = self.state.tables[query.module.table]
        index = table.index(query.sort_by)
        share = self.state.behaviours.bigin_unapproved_share if self.bigin else 0.0
        # Which records to keep by approval (True: only those awaiting it); None keeps all.
        approval = {"true": False, "false": True}.get(query.approved)
        if not share and approval is False:
            approval = None
        if query.modified_since is None and query.converted == "both" and approval is None:
            return index
        wanted = {"false": False, "true": True}.get(query.converted)

        def build() -> list[Entry]:
            records = table.records
            if query.modified_since is None:
                entries = index
            else:
                by_time = table.index("Modified_Time")
                start, _ = key_range(by_time, query.modified_since, None)
                entries = sorted((records[i][query.sort_by], i) for _, i in by_time[start:])
            if wanted is not None:
                entries = [e for e in entries if bool(records[e[1]].get("$converted")) == wanted]
            if approval is not None:
                entries = [e for e in entries if _awaiting_approval(e[1], share) == approval]
            return entries

        view: list[Entry] = table.cached(
            ("view", query.sort_by, query.modified_since, query.converted, approval, share), build
        )
        return view

    def _shown(self, record: Record) -> Record:
        """The record as the API shows it now: awaiting approval when the behaviours say so."""
        share = self.state.behaviours.bigin_unapproved_share if self.bigin else 0.0
        if share and _awaiting_approval(record["id"], share):
            return {**record, "$approval_state": PENDING_APPROVAL}
        return record

    def _projected(self, record: Record, fields: tuple[str, ...]) -> Record:
        shown = {name: record[name] for name in fields if name in record and name != "id"}
        shown["id"] = record["id"]
        return shown

    def _issue(self, query: _Query, after: Entry, page: int) -> tuple[str, str]:
        expires = self.state.now() + self.state.zoho_page_token_ttl
        text = secrets.token_hex(24)
        if len(self._tokens) >= _TOKEN_CAP:
            self._tokens.pop(next(iter(self._tokens)))
        self._tokens[text] = _Token(query, after, page, expires)
        return text, zoho_time(expires, self.offset)

    def _token(self, text: str, module: Module) -> _Token:
        token = self._tokens.get(text)
        if token is None or token.query.module != module:
            raise _invalid("page_token", "invalid page token")
        if token.expires <= self.state.now():
            raise _fail(400, "EXPIRED_VALUE", "The token given has expired")
        return token


def _awaiting_approval(record_id: str, share: float) -> bool:
    """Whether a record is one of the ``share`` awaiting approval: a fixed draw per id, so the same
    records stay hidden for as long as the share is set."""
    draw = int.from_bytes(hashlib.sha256(str(record_id).encode()).digest()[:4], "big") / 2**32
    return draw < share
