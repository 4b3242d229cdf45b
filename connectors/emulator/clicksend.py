"""ClickSend v3 (``/clicksend/v3``): account, lists and their contacts, SMS history, inbound, receipts.

Every answer is the envelope ``{http_code, response_code, response_msg, data}``; lists page by number
with ``limit`` clamped to the documented 15..100 and ``next_page_url`` like ``"/?page=2"`` (null on
the last page). Contacts have no upsert and may repeat inside a list. ``updated_after`` is strict
(``date_updated > updated_after``); ``date_from``/``date_to`` on history are both inclusive.

The vendor's open questions play as ``state.behaviours`` sets them: inbound messages and receipts are
listed only for an account with an enabled POLL rule (``/automations/sms/inbound|receipts`` list the
rules), once per POLL rule; inbound items carry ``timestamp``, ``timestamp_send`` or both; history
answers the paginated envelope or, as the vendor's own example, a bare array.
"""

import heapq
import math
from collections.abc import Callable, Sequence
from typing import Any

from connectors.emulator.dataset import (
    CLICKSEND_CONTACTS,
    CLICKSEND_HISTORY,
    CLICKSEND_INBOUND,
    CLICKSEND_RECEIPTS,
)
from connectors.emulator.gateway import check_key
from connectors.emulator.identifiers import normal_phone, record_identifiers
from connectors.emulator.records import CLICKSEND_CONTACT_FIELDS, clicksend_contact
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
from connectors.emulator.store import Entry, Record, key_range, offset_page

MIN_LIMIT, DEFAULT_LIMIT, MAX_LIMIT = 15, 15, 100
_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_SERVER_ERROR",
    503: "SERVICE_UNAVAILABLE",
}
_STATUS_OF_CODE = {"FORBIDDEN": 403, "NOT_FOUND": 404, "BAD_REQUEST": 400}


def _repeated(entries: Sequence[Entry], times: int) -> Sequence[Entry]:
    """Each entry ``times`` times in a row: with several POLL rules ClickSend lists a message once
    per rule (v3 spec, ``GET /sms/inbound``); with none it lists nothing."""
    return entries if times == 1 else [entry for entry in entries for _ in range(times)]


def _inbound_rule(rule_id: int, name: str, action: str, address: str, enabled: int) -> Record:
    """One ``sms_inbound_rule`` with the fields of the v3 spec's schema."""
    return {
        "inbound_rule_id": rule_id,
        "dedicated_number": "*",
        "rule_name": name,
        "message_search_type": 0,
        "message_search_term": "",
        "action": action,
        "action_address": address,
        "body": None,
        "enabled": enabled,
        "webhook_type": "json" if action == "URL" else None,
    }


def _receipt_rule(rule_id: int, name: str, action: str, address: str, enabled: int) -> Record:
    """One ``sms_delivery_receipt_rule`` with the fields of the v3 spec's schema."""
    return {
        "receipt_rule_id": rule_id,
        "rule_name": name,
        "match_type": 0,
        "action": action,
        "action_address": address,
        "enabled": enabled,
    }


def envelope(
    status: int, code: str, message: str, data: Any, headers: Sequence[tuple[str, str]] = ()
) -> Response:
    payload = {"http_code": status, "response_code": code, "response_msg": message, "data": data}
    return json_response(status, payload, headers)


def _fail(status: int, message: str, code: str | None = None) -> ApiError:
    return ApiError(envelope(status, code or _CODES.get(status, "BAD_REQUEST"), message, None))


class ClickSendApi:
    name = "clicksend"
    prefix = "/clicksend/v3"
    via_gateway = True

    def __init__(self, state: EmulatorState, maton_key: str) -> None:
        self.state = state
        self._maton_key = maton_key

    def routes(self) -> list[Route]:
        return [
            route("GET", "/account", self.account),
            route("GET", "/lists", self.lists),
            route("GET", "/lists/{list_id}", self.one_list),
            route("GET", "/lists/{list_id}/contacts", self.list_contacts),
            route("POST", "/lists/{list_id}/contacts", self.create_contact),
            route("GET", "/lists/{list_id}/contacts/{contact_id}", self.get_contact),
            route("PUT", "/lists/{list_id}/contacts/{contact_id}", self.update_contact),
            route("DELETE", "/lists/{list_id}/contacts/{contact_id}", self.delete_contact),
            route("GET", "/sms/history", self.history),
            route("GET", "/sms/inbound", self.inbound),
            route("GET", "/sms/receipts", self.receipts),
            route("GET", "/automations/sms/inbound", self.inbound_rules),
            route("GET", "/automations/sms/receipts", self.receipt_rules),
        ]

    def authorize(self, request: Request) -> Response | None:
        return check_key(request, self._maton_key)

    def unknown(self, request: Request) -> Response:
        return envelope(404, "NOT_FOUND", "Resource not found.", None)

    def error(self, status: int, message: str, retry_after: str | None = None) -> Response:
        headers = (("Retry-After", retry_after),) if retry_after else ()
        return envelope(status, _CODES.get(status, "BAD_REQUEST"), message, None, headers)

    def account(self, request: Request, params: dict[str, str]) -> Response:
        return envelope(200, "SUCCESS", "Here's your account", self.state.dataset.clicksend_account)

    def lists(self, request: Request, params: dict[str, str]) -> Response:
        lists = sorted(self.state.dataset.clicksend_lists)
        entries = [(list_id, list_id) for list_id in lists]
        data = self._page(request, entries, False, self._list)
        base = f"http://{request.header('host') or '127.0.0.1'}{request.path}"
        data.update(
            first_page_url=f"{base}?page=1",
            last_page_url=f"{base}?page={data['last_page']}",
            path=base,
            links=[
                {
                    "url": f"{base}?page={page}",
                    "label": str(page),
                    "page": page,
                    "active": page == data["current_page"],
                }
                for page in range(1, data["last_page"] + 1)
            ],
        )
        return envelope(200, "SUCCESS", "Here are your contact lists.", data)

    def one_list(self, request: Request, params: dict[str, str]) -> Response:
        return envelope(200, "SUCCESS", "Here is your list.", self._list(self._list_id(params)))

    def list_contacts(self, request: Request, params: dict[str, str]) -> Response:
        list_id = self._list_id(params)
        updated_after = request.int_arg("updated_after")
        table = self.state.tables[CLICKSEND_CONTACTS]

        def build() -> list[Entry]:
            if updated_after is None:
                return sorted((contact_id, contact_id) for contact_id in table.group("list", list_id))
            # Through the date_updated index (times are whole seconds, so "> t" is ">= t + 1"): the
            # listing costs the contacts changed since, not every contact of the list.
            records, updated = table.records, table.index("date_updated")
            start, stop = key_range(updated, updated_after + 1, None)
            return sorted(
                (contact_id, contact_id)
                for _, contact_id in updated[start:stop]
                if records[contact_id]["list_id"] == list_id
            )

        entries = table.cached(("list", list_id, updated_after), build)
        data = self._page(request, entries, False, table.records.__getitem__)
        return envelope(200, "SUCCESS", "Here are your contacts.", data)

    def get_contact(self, request: Request, params: dict[str, str]) -> Response:
        return envelope(200, "SUCCESS", "Here is your contact.", self._contact(params))

    def create_contact(self, request: Request, params: dict[str, str]) -> Response:
        list_id = self._list_id(params)
        fields = self._fields(request)
        if not any(fields.get(name) for name in ("phone_number", "email", "fax_number")):
            raise _fail(400, "phone_number, email or fax_number is required.")
        now = self.state.now()
        contact_id = self.state.dataset.allocate("clicksend")
        list_name = self.state.dataset.clicksend_lists[list_id]["list_name"]
        record = clicksend_contact(contact_id, list_id, list_name, now)
        record.update(fields)
        self.state.put(CLICKSEND_CONTACTS, contact_id, record)
        self.state.attribute(CLICKSEND_CONTACTS, contact_id, record_identifiers(CLICKSEND_CONTACTS, record))
        self.state.log_write(self.name, request.method, request.path, contact_id, request.json())
        return envelope(200, "SUCCESS", "New contact has been created.", record)

    def update_contact(self, request: Request, params: dict[str, str]) -> Response:
        current = self._contact(params)
        self._check_rejection(current)
        record = {**current, **self._fields(request), "date_updated": int(self.state.now())}
        self.state.put(CLICKSEND_CONTACTS, record["contact_id"], record)
        self.state.log_write(self.name, request.method, request.path, record["contact_id"], request.json())
        return envelope(200, "SUCCESS", "Contact #{} has been updated.".format(record["contact_id"]), record)

    def delete_contact(self, request: Request, params: dict[str, str]) -> Response:
        record = self._contact(params)
        self._check_rejection(record)
        self.state.tables[CLICKSEND_CONTACTS].remove(record["contact_id"])
        self.state.forget(CLICKSEND_CONTACTS, record["contact_id"])
        self.state.log_write(self.name, request.method, request.path, record["contact_id"], None)
        return envelope(200, "SUCCESS", "Contact #{} has been deleted.".format(record["contact_id"]), record)

    def history(self, request: Request, params: dict[str, str]) -> Response:
        order = request.arg("order_by") or "date:asc"
        if order not in ("date:asc", "date:desc"):
            raise MalformedRequestError("order_by must be date:asc or date:desc")
        date_from = request.int_arg("date_from")
        date_to = request.int_arg("date_to")
        table = self.state.tables[CLICKSEND_HISTORY]
        entries = table.index("date")
        show: Callable[[Any], Record] = table.records.__getitem__
        if self.state.behaviours.clicksend_history_inbound:
            inbound = self.state.tables[CLICKSEND_INBOUND]
            entries = list(heapq.merge(entries, inbound.index("timestamp")))
            show = self._history_item
        bounds = key_range(entries, date_from, None if date_to is None else date_to + 1)
        descending = order == "date:desc"
        if self.state.behaviours.clicksend_history_shape == "bare_array":
            # The v3 spec's own example: ``status`` for ``http_code`` and every message of the window
            # in ``data``, with no paging fields (api-notes §3.2).
            start, stop = bounds
            ids = offset_page(entries, 0, descending, stop - start, bounds)
            payload = {
                "status": 200,
                "response_code": "SUCCESS",
                "response_msg": "Here are your history.",
                "data": [show(message_id) for message_id in ids],
            }
            return json_response(200, payload)
        data = self._page(request, entries, descending, show, bounds)
        return envelope(200, "SUCCESS", "Here is your history.", data)

    def _history_item(self, message_id: str) -> Record:
        """A message as ``/sms/history`` lists it: a sent one as stored, a received one
        (``clicksend_history_inbound``) in the history shape with ``direction: in``."""
        history = self.state.tables[CLICKSEND_HISTORY].records
        if message_id in history:
            return history[message_id]
        inbound = self.state.tables[CLICKSEND_INBOUND].records[message_id]
        return {
            "direction": "in",
            "date": inbound["timestamp"],
            "to": inbound["to"],
            "from": inbound["from"],
            "body": inbound["body"],
            "status": "Received",
            "message_id": inbound["message_id"],
            "custom_string": inbound.get("custom_string", ""),
        }

    def inbound(self, request: Request, params: dict[str, str]) -> Response:
        behaviours = self.state.behaviours
        table = self.state.tables[CLICKSEND_INBOUND]
        rules = behaviours.clicksend_poll_rules if behaviours.clicksend_inbound_poll else 0
        data = self._page(request, _repeated(table.index("timestamp"), rules), True, self._inbound_item)
        return envelope(200, "SUCCESS", "Here are your inbound messages.", data)

    def receipts(self, request: Request, params: dict[str, str]) -> Response:
        behaviours = self.state.behaviours
        table = self.state.tables[CLICKSEND_RECEIPTS]
        rules = behaviours.clicksend_poll_rules if behaviours.clicksend_receipts_poll else 0
        data = self._page(
            request, _repeated(table.index("timestamp"), rules), True, table.records.__getitem__
        )
        return envelope(200, "SUCCESS", "Here are your delivery receipts.", data)

    def inbound_rules(self, request: Request, params: dict[str, str]) -> Response:
        """The account's inbound SMS rules: a URL rule, a disabled POLL rule, and the POLL rules in play."""
        behaviours = self.state.behaviours
        polls = behaviours.clicksend_poll_rules if behaviours.clicksend_inbound_poll else 0
        rules = [
            _inbound_rule(1, "Forward replies", "URL", "https://example.com/hooks/sms", 1),
            _inbound_rule(2, "Old poll", "POLL", "", 0),
            *(_inbound_rule(10 + n, f"Poll {n + 1}", "POLL", "", 1) for n in range(polls)),
        ]
        return envelope(200, "SUCCESS", "Your list of inbound rules.", self._rules_page(request, rules, True))

    def receipt_rules(self, request: Request, params: dict[str, str]) -> Response:
        """The account's delivery receipt rules, built the same way as the inbound ones."""
        behaviours = self.state.behaviours
        polls = behaviours.clicksend_poll_rules if behaviours.clicksend_receipts_poll else 0
        rules = [
            _receipt_rule(5, "Mail failures", "EMAIL_FIXED", "ops@example.com", 1),
            _receipt_rule(6, "Old poll", "POLL", "", 0),
            *(_receipt_rule(10 + n, f"Poll {n + 1}", "POLL", "", 1) for n in range(polls)),
        ]
        return envelope(
            200, "SUCCESS", "Your list of rule incoming sms receipt.", self._rules_page(request, rules, False)
        )

    def _rules_page(self, request: Request, rules: list[Record], links: bool) -> dict[str, Any]:
        entries = [(index, index) for index in range(len(rules))]
        data = self._page(request, entries, False, rules.__getitem__)
        if links:  # the inbound list carries the Laravel links, as in the v3 spec's example
            base = f"http://{request.header('host') or '127.0.0.1'}{request.path}"
            data.update(
                first_page_url=f"{base}?page=1",
                last_page_url=f"{base}?page={data['last_page']}",
                path=base,
                links=[],
            )
        return data

    def _inbound_item(self, message_id: str) -> Record:
        """An inbound message with the time key(s) ``clicksend_inbound_time`` chooses."""
        record = self.state.tables[CLICKSEND_INBOUND].records[message_id]
        shape = self.state.behaviours.clicksend_inbound_time
        if shape == "timestamp":
            return record
        item = {"timestamp_send": record["timestamp"], **record}
        if shape == "timestamp_send":
            del item["timestamp"]
        return item

    def _page(
        self,
        request: Request,
        entries: Sequence[Entry],
        descending: bool,
        show: Callable[[Any], Record],
        bounds: tuple[int, int] | None = None,
    ) -> dict[str, Any]:
        """One numbered page in ClickSend's pagination envelope."""
        page = request.int_or("page", 1)
        limit = request.int_or("limit", DEFAULT_LIMIT)
        if page < 1:
            raise MalformedRequestError("page must be 1 or more")
        limit = min(MAX_LIMIT, max(MIN_LIMIT, limit))
        start, stop = bounds if bounds is not None else (0, len(entries))
        total = stop - start
        last_page = max(1, math.ceil(total / limit))
        offset = (page - 1) * limit
        items = [show(key) for key in offset_page(entries, offset, descending, limit, (start, stop))]
        return {
            "total": total,
            "per_page": limit,
            "current_page": page,
            "last_page": last_page,
            "next_page_url": f"/?page={page + 1}" if page < last_page else None,
            "prev_page_url": f"/?page={page - 1}" if page > 1 else None,
            "from": offset + 1 if items else None,
            "to": offset + len(items) if items else None,
            "data": items,
        }

    def _list(self, list_id: int) -> Record:
        count = len(self.state.tables[CLICKSEND_CONTACTS].group("list", list_id))
        return {**self.state.dataset.clicksend_lists[list_id], "_contacts_count": count}

    def _list_id(self, params: dict[str, str]) -> int:
        try:
            list_id = int(params["list_id"])
        except ValueError:
            raise _fail(404, "Your list was not found.") from None
        if list_id not in self.state.dataset.clicksend_lists:
            raise _fail(404, "Your list was not found.")
        return list_id

    def _contact(self, params: dict[str, str]) -> Record:
        list_id = self._list_id(params)
        try:
            contact_id = int(params["contact_id"])
        except ValueError:
            raise _fail(404, "Your contact was not found.") from None
        record = self.state.tables[CLICKSEND_CONTACTS].get(contact_id)
        if record is None or record["list_id"] != list_id:
            raise _fail(404, "Your contact was not found.")
        return record

    def _fields(self, request: Request) -> dict[str, Any]:
        """The contact fields of a write, phone numbers read in the account's country and stored E.164."""
        body = request.json()
        if not isinstance(body, dict):
            raise MalformedRequestError("the body must be a JSON object of contact fields")
        fields = {name: body[name] for name in CLICKSEND_CONTACT_FIELDS if name in body}
        for name in ("phone_number", "fax_number"):
            value = fields.get(name)
            if value:
                number = normal_phone(str(value), self.state.dataset.clicksend_account["country"])
                if number is None:
                    raise _fail(400, f"Invalid {name}: {value}")
                fields[name] = number
        return {name: "" if value is None else value for name, value in fields.items()}

    def _check_rejection(self, record: Record) -> None:
        rejection = self.state.rejection(self.name, record["contact_id"])
        if rejection is not None:
            code = rejection.code or "BAD_REQUEST"
            raise _fail(_STATUS_OF_CODE.get(code, 400), rejection.message, code)
