"""Linkflow events and ClickSend messages: the activity the pipeline attaches to golden contacts.

Event ids grow with event time, because ``/events/lite`` is a forward cursor on id. Messages go to
list contacts' numbers (so their person is known) and a few to numbers nobody owns; replies arrive
as inbound messages and final statuses as delivery receipts.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connectors.emulator.accounts import CLICKSEND_SENDER
from connectors.emulator.dataset import (
    CLICKSEND_CONTACTS,
    CLICKSEND_HISTORY,
    CLICKSEND_INBOUND,
    CLICKSEND_RECEIPTS,
    LINKFLOW_CONTACTS,
    LINKFLOW_EVENTS,
    Dataset,
    random_uuid,
    truth_key,
)
from connectors.emulator.identifiers import unknown_us_number
from connectors.emulator.rand import SandboxRandom
from connectors.emulator.records import CLICKSEND_OPT_OUT_LIST_ID, CLICKSEND_USER_ID
from connectors.emulator.timefmt import parse_shanghai_local, shanghai_local

Record = dict[str, Any]
Put = Callable[[str, Any, Record], None]

# Anonymous visitors' contact ids: a range no served contact uses.
ANONYMOUS_CONTACT_BASE = 90_000_000

_EVENT_NAMES = (
    "WEBSITE__PAGE_VIEW", "WEBSITE__PAGE_VIEW", "WEBSITE__PAGE_VIEW", "WEBSITE__FORM_SUBMIT",
    "SHORTURL__DWZ_REDIRECT", "WECHAT__SUBSCRIBE", "UDE_ORDER_PAID",
)  # fmt: skip
_SMS_BODIES = (
    "Hi {name}, your order has shipped.", "Reminder: your appointment is tomorrow at 10am.",
    "{name}, 20% off this weekend only. Reply STOP to opt out.", "Your verification code is 4821.",
    "Thanks for your purchase, {name}!",
)  # fmt: skip
_REPLIES = ("Thanks!", "STOP", "Can you call me?", "OK", "Which store?", "收到,谢谢")
_FINAL_STATUSES = {
    "Completed": ("201", "Success: Message received on handset.", None),
    "Failed": ("301", "Delivery Failure", "301"),
}


@dataclass(slots=True)
class _Row:
    when: float
    order: int
    table: str
    pid: int | None
    record: Record


def messageable(contact: Record) -> bool:
    """Nobody sends campaigns to the opt-out list."""
    return bool(contact["list_id"] != CLICKSEND_OPT_OUT_LIST_ID)


class Activity:
    """Collects activity rows, then ``commit`` stores them (events numbered in time order)."""

    def __init__(self, dataset: Dataset, rng: SandboxRandom) -> None:
        self.dataset = dataset
        self.rng = rng
        self._events: list[_Row] = []
        self._messages: list[_Row] = []

    def events_for(
        self, contact_id: int, pid: int | None, *, now: float, count: int, since: float | None = None
    ) -> None:
        """``count`` events of a served Linkflow contact between ``since`` (default: its creation) and now."""
        contact = self.dataset.tables[LINKFLOW_CONTACTS][contact_id]
        start = since if since is not None else parse_shanghai_local(contact["dateCreated"])
        for _ in range(count):
            when = start + self.rng.random() * max(0.0, now - start)
            self._events.append(
                _Row(when, len(self._events), LINKFLOW_EVENTS, pid, self._event(contact_id, when))
            )

    def anonymous_event(self, when: float) -> None:
        """An event of a visitor nobody identified: its contact is not served and its person unknown."""
        contact_id = ANONYMOUS_CONTACT_BASE + self.rng.below(1_000_000)
        self._events.append(
            _Row(when, len(self._events), LINKFLOW_EVENTS, None, self._event(contact_id, when))
        )

    def messages_for(
        self, contact_id: int, pid: int | None, *, now: float, count: int, since: float | None = None
    ) -> None:
        """``count`` messages to a list contact's number between ``since`` (default: when added) and now."""
        contact = self.dataset.tables[CLICKSEND_CONTACTS][contact_id]
        start = since if since is not None else float(contact["date_added"])
        for _ in range(count):
            when = start + self.rng.random() * max(0.0, now - start)
            self._outbound(contact["phone_number"], contact, pid, when, now)

    def message_to_stranger(self, when: float, now: float) -> None:
        self._outbound(unknown_us_number(self.rng.below(10_000)), None, None, when, now)

    def commit(self, put: Put | None = None) -> list[tuple[str, Any]]:
        """Store the rows (through ``put`` when a server indexes them); returns (table, id) of each."""
        dataset, rng = self.dataset, self.rng
        rows: list[tuple[_Row, Any]] = []
        self._events.sort(key=lambda row: (row.when, row.order))
        for row in self._events:
            event_id = dataset.allocate("linkflow_event", rng)
            row.record["id"] = event_id
            rows.append((row, event_id))
        rows.extend((row, row.record["message_id"]) for row in self._messages)
        for row, record_id in rows:
            if put is None:
                dataset.tables[row.table][record_id] = row.record
            else:
                put(row.table, record_id, row.record)
            if row.pid is not None:
                dataset.truth[truth_key(row.table, record_id)] = row.pid
        self._events, self._messages = [], []
        return [(row.table, record_id) for row, record_id in rows]

    def _event(self, contact_id: int, when: float) -> Record:
        rng = self.rng
        stamp = shanghai_local(when)
        name = rng.pick(_EVENT_NAMES)
        web = name.startswith("WEBSITE")
        return {
            "id": 0,
            "dateCreated": stamp,
            "lastUpdated": stamp,
            "ver": 1,
            "contactId": contact_id,
            "contactIdentityId": 313_000 + rng.below(100_000),
            "anonymousId": random_uuid(rng),
            "eventDate": int(when * 1000),
            "channelId": "sandbox-web" if web else "udc_sandbox",
            "channelName": "官网" if web else "Sandbox",
            "event": name,
            "os": rng.pick(("iOS", "Android", "Windows", "Mac OS X")),
            "browser": rng.pick(("微信", "Chrome", "Safari")),
            "ip": f"117.62.{rng.below(256)}.{rng.below(256)}",
            "triggerFlow": True,
            "attr1": f"page-{rng.below(40)}",
            "attr2": f"https://sandbox.invalid/p/{rng.below(1000)}",
            "attr3": "",
            "utm": {},
        }

    def _outbound(self, to: str, contact: Record | None, pid: int | None, when: float, now: float) -> None:
        rng = self.rng
        roll = rng.random()
        if now - when < 600:
            status = "Queued"
        elif roll < 0.88:
            status = "Completed"
        elif roll < 0.97:
            status = "Failed"
        else:
            status = "Cancelled"
        first = contact["first_name"] if contact else None
        body = rng.pick(_SMS_BODIES).format(name=first or "there")
        history = {
            "direction": "out",
            "date": int(when),
            "to": to,
            "body": body,
            "status": status,
            "from": CLICKSEND_SENDER,
            "schedule": str(int(when)),
            "status_code": None,
            "status_text": None,
            "error_code": None,
            "error_text": None,
            "message_id": random_uuid(rng).upper(),
            "message_parts": 1,
            "message_price": "0.0713",
            "from_email": None,
            # The v3 spec types these two as strings on history rows (integers on contacts).
            "list_id": str(contact["list_id"]) if contact else None,
            "custom_string": "",
            "contact_id": str(contact["contact_id"]) if contact else None,
            "user_id": CLICKSEND_USER_ID,
            "subaccount_id": CLICKSEND_USER_ID + 1,
            "country": "US" if to.startswith("+1") else "CN",
            "carrier": rng.pick(("Verizon", "AT&T", "T-Mobile", "China Mobile")),
            "first_name": first,
            "last_name": contact["last_name"] if contact else None,
            "_api_username": self.dataset.clicksend_account["username"],
        }
        self._messages.append(_Row(when, len(self._messages), CLICKSEND_HISTORY, pid, history))
        if status in _FINAL_STATUSES:
            receipt = finish_message(history, status, when + 5 + rng.random() * 120)
            self._messages.append(_Row(when, len(self._messages), CLICKSEND_RECEIPTS, pid, receipt))
        if status == "Completed" and contact is not None and rng.random() < 0.2:
            self._reply(history, pid, int(when + 60 + rng.random() * 7200))

    def _reply(self, history: Record, pid: int | None, when: int) -> None:
        rng = self.rng
        reply = rng.pick(_REPLIES)
        inbound = {
            "timestamp": when,
            "from": history["to"],
            "body": reply,
            "original_body": history["body"],
            "original_message_id": history["message_id"],
            "to": CLICKSEND_SENDER,
            "custom_string": "",
            "message_id": random_uuid(rng).upper(),
            "_keyword": reply.split()[0].lower(),
        }
        self._messages.append(_Row(when, len(self._messages), CLICKSEND_INBOUND, pid, inbound))


def finish_message(history: Record, status: str, when: float) -> Record:
    """Move a sent message to a final status and return the delivery receipt ClickSend files for it."""
    code, text, error = _FINAL_STATUSES[status]
    history.update(
        status=status,
        status_code=code,
        status_text=text,
        error_code=error,
        error_text=text if error else None,
    )
    return {
        "timestamp_send": history["date"],
        "timestamp": int(when),
        "message_id": history["message_id"],
        "status_code": int(code),
        "status_text": text,
        "error_code": int(error) if error else None,
        "error_text": history["error_text"],
        "custom_string": history["custom_string"],
        "subaccount_id": history["subaccount_id"],
        "message_type": "sms",
    }
