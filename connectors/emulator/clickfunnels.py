"""ClickFunnels 2.0 (``/clickfunnels/api/v2``): discovery, keyset-paged contacts, and contact writes.

Lists are bare arrays of exactly 20; ``after`` means "the next page in the current order", a keyset on
(sort value, id) where the sort value is read from the ``after`` contact as it is now, so a contact
updated between two page requests moves, as it would in a database-backed keyset. Only identified
contacts are listed. Errors are ``{"error": "..."}``.

The vendor's open questions play as ``state.behaviours`` sets them: with ``clickfunnels_after =
"id_filter"`` an ``after`` under ``sort_property=updated_at`` keeps only contacts with a larger id, in
the requested order; ``clickfunnels_repeat_workspace`` lists the workspace twice, as the spec's example.
"""

import re
from typing import Any
from urllib.parse import urlencode

from connectors.emulator.dataset import CLICKFUNNELS_CONTACTS, random_uuid
from connectors.emulator.gateway import check_key
from connectors.emulator.identifiers import record_identifiers
from connectors.emulator.placement import public_id
from connectors.emulator.rand import SandboxRandom
from connectors.emulator.records import CLICKFUNNELS_WRITABLE, clickfunnels_contact
from connectors.emulator.routing import (
    ApiError,
    MalformedRequestError,
    Request,
    Response,
    Route,
    empty_response,
    json_response,
    route,
)
from connectors.emulator.state import EmulatorState
from connectors.emulator.store import Record, keyset_page
from connectors.emulator.timefmt import iso_ms_utc

PAGE_SIZE = 20
_ENGAGEMENT = {"last_email_sent_at": None, "last_email_opened_at": None, "last_email_clicked_at": None}


def _fail(status: int, message: str) -> ApiError:
    return ApiError(json_response(status, {"error": message}))


def snake_case(key: str) -> str:
    """ClickFunnels' rule for custom attribute keys: ``'Favorite Food! x'`` becomes ``favorite_food_x``."""
    return re.sub(r"[^0-9a-z]+", "_", key.lower()).strip("_")


class ClickFunnelsApi:
    name = "clickfunnels"
    prefix = "/clickfunnels/api/v2"
    via_gateway = True

    def __init__(self, state: EmulatorState, maton_key: str) -> None:
        self.state = state
        self._maton_key = maton_key
        self._rng = SandboxRandom(state.dataset.seed + 1)

    def routes(self) -> list[Route]:
        return [
            route("GET", "/teams", self.teams),
            route("GET", "/teams/{team_id}/workspaces", self.workspaces),
            route("GET", "/workspaces/{workspace_id}", self.workspace),
            route("GET", "/workspaces/{workspace_id}/contacts", self.list_contacts),
            route("POST", "/workspaces/{workspace_id}/contacts", self.create_contact),
            route("POST", "/workspaces/{workspace_id}/contacts/upsert", self.upsert_contact),
            route("GET", "/contacts/{contact_id}", self.get_contact),
            route("PUT", "/contacts/{contact_id}", self.update_contact),
            route("DELETE", "/contacts/{contact_id}", self.delete_contact),
        ]

    def authorize(self, request: Request) -> Response | None:
        refused = check_key(request, self._maton_key)
        if refused is None and not request.header("user-agent"):
            # ClickFunnels' edge refuses requests without a User-Agent (api-notes §1.1).
            return json_response(403, {"error": "Forbidden: a User-Agent header is required"})
        return refused

    def unknown(self, request: Request) -> Response:
        return json_response(404, {"error": "Not found: Record missing"})

    def error(self, status: int, message: str, retry_after: str | None = None) -> Response:
        text = f"Bad request: {message}" if status == 400 else message
        return json_response(status, {"error": text}, (("Retry-After", retry_after),) if retry_after else ())

    def teams(self, request: Request, params: dict[str, str]) -> Response:
        return json_response(200, [self.state.dataset.clickfunnels_team])

    def workspaces(self, request: Request, params: dict[str, str]) -> Response:
        if params["team_id"] != str(self.state.dataset.clickfunnels_team["id"]):
            raise _fail(404, "Not found: Record missing")
        workspace = self.state.dataset.clickfunnels_workspace
        if self.state.behaviours.clickfunnels_repeat_workspace:
            # The Workspace API's own example lists one id twice, with two public ids.
            return json_response(200, [workspace, {**workspace, "public_id": "SuvKfc"}])
        return json_response(200, [workspace])

    def workspace(self, request: Request, params: dict[str, str]) -> Response:
        return json_response(200, self._workspace(params))

    def list_contacts(self, request: Request, params: dict[str, str]) -> Response:
        self._workspace(params)
        table = self.state.tables[CLICKFUNNELS_CONTACTS]
        sort_property = request.arg("sort_property") or "id"
        sort_order = request.arg("sort_order") or "asc"
        if sort_property not in ("id", "updated_at") or sort_order not in ("asc", "desc"):
            raise MalformedRequestError("sort_property must be id or updated_at and sort_order asc or desc")
        entries = self._filtered(request, sort_property)
        after_id = request.int_arg("after")
        after: tuple[Any, int] | None = None
        if after_id is not None:
            if sort_property == "id":
                after = (after_id, after_id)
            elif self.state.behaviours.clickfunnels_after == "id_filter":
                entries = [entry for entry in entries if entry[1] > after_id]
            else:
                anchor = table.get(after_id)
                if anchor is None:
                    raise _fail(404, "Not found: Record missing")
                after = (anchor["updated_at"], after_id)
        ids, more = keyset_page(entries, after, sort_order == "desc", PAGE_SIZE)
        expand = "email_engagement" in request.query.get("expand[]", [])
        body = [self._shown(table.records[record_id], expand) for record_id in ids]
        headers: list[tuple[str, str]] = []
        if more and ids:
            query = {name: values for name, values in request.query.items() if name != "after"}
            query["after"] = [str(ids[-1])]
            host = request.header("host") or "127.0.0.1"
            link = f"http://{host}{request.path}?{urlencode(query, doseq=True, safe='[],')}"
            headers = [("Pagination-Next", str(ids[-1])), ("Link", f'<{link}>; rel="next"')]
        return json_response(200, body, headers)

    def get_contact(self, request: Request, params: dict[str, str]) -> Response:
        expand = "email_engagement" in request.query.get("expand[]", [])
        return json_response(200, self._shown(self._contact(params), expand))

    def create_contact(self, request: Request, params: dict[str, str]) -> Response:
        self._workspace(params)
        payload = self._payload(request)
        self._require_email(payload)
        if self._by_email(payload["email_address"]) is not None:
            raise _fail(422, "Email address has already been taken")
        return self._store(request, self._apply(self._new_contact(), payload, skip_empty=False), status=201)

    def upsert_contact(self, request: Request, params: dict[str, str]) -> Response:
        self._workspace(params)
        payload = self._payload(request)
        self._require_email(payload)
        existing = self._by_email(payload["email_address"])
        if existing is None:
            return self._store(
                request, self._apply(self._new_contact(), payload, skip_empty=False), status=201
            )
        self._check_rejection(existing)
        return self._store(request, self._apply(existing, payload, skip_empty=True), status=200)

    def update_contact(self, request: Request, params: dict[str, str]) -> Response:
        record = self._contact(params)
        payload = self._payload(request)
        self._check_rejection(record)
        if "email_address" in payload:
            self._require_email(payload)
            other = self._by_email(payload["email_address"])
            if other is not None and other["id"] != record["id"]:
                raise _fail(422, "Email address has already been taken")
        return self._store(request, self._apply(record, payload, skip_empty=False), status=200)

    def delete_contact(self, request: Request, params: dict[str, str]) -> Response:
        record = self._contact(params)
        self._check_rejection(record)
        self.state.tables[CLICKFUNNELS_CONTACTS].remove(record["id"])
        self.state.forget(CLICKFUNNELS_CONTACTS, record["id"])
        self.state.log_write(self.name, request.method, request.path, record["id"], None)
        return empty_response(204)

    def _workspace(self, params: dict[str, str]) -> Record:
        workspace = self.state.dataset.clickfunnels_workspace
        if params["workspace_id"] not in (str(workspace["id"]), workspace["public_id"]):
            raise _fail(404, "Not found: Record missing")
        return workspace

    def _contact(self, params: dict[str, str]) -> Record:
        try:
            contact_id = int(params["contact_id"])
        except ValueError:
            raise _fail(404, "Not found: Record missing") from None
        record = self.state.tables[CLICKFUNNELS_CONTACTS].get(contact_id)
        if record is None:
            raise _fail(404, "Not found: Record missing")
        return record

    def _filtered(self, request: Request, sort_property: str) -> list[tuple[Any, int]]:
        """The contacts the ``filter[...]`` parameters select (AND across, OR within), in sort order."""
        table = self.state.tables[CLICKFUNNELS_CONTACTS]
        emails = request.arg("filter[email_address]")
        ids = request.arg("filter[id]")
        tags = request.arg("filter[tag_ids]")
        active = request.arg("filter[is_active]")
        if emails is None and ids is None and tags is None and active is None:
            return table.index(sort_property)
        candidates: set[int] | None = None
        if emails is not None:
            candidates = set().union(*(table.group("email", e.strip().lower()) for e in emails.split(",")))
        if ids is not None:
            try:
                wanted = {int(part) for part in ids.split(",") if part.strip()}
            except ValueError:
                raise MalformedRequestError("filter[id] must be a list of ids") from None
            candidates = wanted if candidates is None else candidates & wanted
        pool = candidates if candidates is not None else set(table.records)
        selected = []
        for record_id in pool:
            record = table.records.get(record_id)
            if record is None or record["anonymous"] is not None:
                continue
            if tags is not None and not {str(tag["id"]) for tag in record["tags"]} & set(tags.split(",")):
                continue
            if active is not None and record["is_active"] != (active.lower() == "true"):
                continue
            selected.append((record[sort_property], record_id))
        selected.sort()
        return selected

    def _shown(self, record: Record, expand: bool) -> Record:
        return {**record, "email_engagement": dict(_ENGAGEMENT)} if expand else record

    def _payload(self, request: Request) -> dict[str, Any]:
        body = request.json()
        contact = body.get("contact") if isinstance(body, dict) else None
        if not isinstance(contact, dict):
            raise MalformedRequestError("param is missing or the value is empty: contact")
        return contact

    def _require_email(self, payload: dict[str, Any]) -> None:
        email = payload.get("email_address")
        if not isinstance(email, str) or not email.strip():
            raise _fail(422, "Email address can't be blank")
        if "@" not in email:
            raise _fail(422, "Email address is invalid")

    def _by_email(self, email: str) -> Record | None:
        """The identified contact holding this email (case-insensitive); the oldest if several do."""
        table = self.state.tables[CLICKFUNNELS_CONTACTS]
        ids = sorted(table.group("email", email.strip().lower()))
        return table.records[ids[0]] if ids else None

    def _check_rejection(self, record: Record) -> None:
        rejection = self.state.rejection(self.name, record["id"])
        if rejection is not None:
            raise _fail(422, rejection.message)

    def _new_contact(self) -> Record:
        now = self.state.now()
        contact_id = self.state.dataset.allocate("clickfunnels")
        workspace_id = self.state.dataset.clickfunnels_workspace["id"]
        return clickfunnels_contact(
            contact_id, public_id(self._rng), random_uuid(self._rng), workspace_id=workspace_id, created=now
        )

    def _apply(self, current: Record, payload: dict[str, Any], *, skip_empty: bool) -> Record:
        """The contact with the payload applied; upsert (``skip_empty``) never clears a value.

        Works on a copy, so a payload refused halfway leaves the stored contact as it was.
        """
        record = dict(current)
        for field in CLICKFUNNELS_WRITABLE:
            if field in payload:
                value = payload[field]
                if skip_empty and value in (None, ""):
                    continue
                record[field] = value
        if "tag_ids" in payload and not (skip_empty and not payload["tag_ids"]):
            record["tags"] = self._tags(record, payload["tag_ids"])
        attributes = payload.get("custom_attributes")
        if isinstance(attributes, dict):
            merged = dict(record["custom_attributes"])
            for key, value in attributes.items():
                name = snake_case(str(key))
                if not name:
                    raise MalformedRequestError("custom attribute keys must not be empty")
                if name in record and name != "custom_attributes":
                    raise _fail(422, f"Custom attribute {name!r} collides with a contact property")
                if skip_empty and value in (None, ""):
                    continue
                merged[name] = "" if value is None else str(value)
            record["custom_attributes"] = merged
        return record

    def _tags(self, record: Record, tag_ids: Any) -> list[Record]:
        known = self.state.dataset.clickfunnels_tags
        if not isinstance(tag_ids, list) or any(tag_id not in known for tag_id in tag_ids):
            raise _fail(422, "Tag ids contain unknown tags")
        applied = {tag["id"]: tag["applied_at"] for tag in record["tags"]}
        now = iso_ms_utc(self.state.now())
        return [{**known[tag_id], "applied_at": applied.get(tag_id, now)} for tag_id in tag_ids]

    def _store(self, request: Request, record: Record, *, status: int) -> Response:
        record["updated_at"] = iso_ms_utc(self.state.now())
        self.state.put(CLICKFUNNELS_CONTACTS, record["id"], record)
        if status == 201:
            self.state.attribute(
                CLICKFUNNELS_CONTACTS, record["id"], record_identifiers(CLICKFUNNELS_CONTACTS, record)
            )
        self.state.log_write(self.name, request.method, request.path, record["id"], self._payload(request))
        return json_response(status, record)
