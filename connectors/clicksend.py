"""ClickSend v3 contact lists and SMS through Maton (``/clicksend/v3/...``).

Every list endpoint answers the same envelope (``data.{current_page,last_page,next_page_url,data}``);
the readers follow it to the end with ``limit=100`` (the maximum; the default of 15 is why an old SDK
"only ever returned the oldest 15", ClickSend/clicksend-php#12).

Stream ``clicksend/list_contact``
- Contacts live only inside lists: every list (the opt-out list included, it is data too) and its
  contacts with ``updated_after`` = that list's watermark minus a lookback. Within a list the order is
  not by update time, so a list's watermark (the largest ``date_updated``) moves only with its last
  page. There is no delete feed: ``read_list_contacts_full`` reads every contact of every list, and
  the caller marks the contacts a complete scan did not see as deleted.

Stream ``clicksend/sms`` (three parts, told apart by ``Page.part`` because their ids overlap)
- ``history``: ``/sms/history`` by ``date_from``/``date_to`` (Unix seconds), ``order_by=date:asc``.
  A message's status changes after its send date (Queued, then Completed or Failed) and the filter is
  on the send date, so every run re-reads a trailing ``status_window`` behind the watermark. The v3
  spec's own example answers ``data`` as a bare array of messages with no paging fields: that is read
  as one page, the last, and said once in the log.
- ``inbound`` and ``receipt``: no date filter. The reader takes the newest pages first and stops at
  the first record older than the watermark minus the lookback. The order of these lists is not
  documented, so it is read off the first page; for an ascending list the pages are walked from the
  last one back. Their watermarks move when the scan stops. Inbound items carry ``timestamp`` (the
  ``inbound_sms`` schema) or only ``timestamp_send`` (the spec's ``/sms/inbound`` example): the first
  present is the item's time.
- ClickSend lists inbound messages and receipts only for an account with a POLL rule, and with
  several POLL rules "you will receive the inbound message multiple times" (v3 spec, ``GET
  /sms/inbound``): a run yields each ``message_id`` of these parts once. ``poll_rules`` tells whether
  the rules are there.
- All three parts key their records by ``message_id``; a receipt carries the id of the message it
  reports on, so the store must keep the part with the id.

Writes: there is no upsert. ``update_contact`` (``PUT``) is repeatable; ``create_contact`` (``POST``) is
not, and an ambiguous failure raises ``AmbiguousWriteError`` for the caller to look up first. The
opt-out list never receives writes.
"""

import itertools
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Self

from connectors.errors import FatalError
from connectors.http import HttpClient
from connectors.paging import LoopGuard, Page
from connectors.times import to_unix, utc_now
from connectors.writes import WriteResult, write_one

PREFIX = "/v3"
LIMIT = 100
OPT_OUT_LIST_NAME = "opt-out list"
INBOUND_TIME_KEYS = ("timestamp", "timestamp_send")
"""The ``inbound_sms`` schema's key first, then the one the spec's ``/sms/inbound`` example carries."""
RECEIPT_TIME_KEYS = ("timestamp",)


@dataclass(frozen=True)
class PollRules:
    """Whether the account has an enabled POLL rule for inbound SMS and for delivery receipts.

    Without one ClickSend lists nothing on ``/sms/inbound`` (resp. ``/sms/receipts``) (v3 spec). None
    when the account's answer cannot tell (the rules are not readable with these credentials, or the
    answer has an unknown shape).
    """

    inbound: bool | None
    receipts: bool | None


@dataclass(frozen=True)
class ClickSendListContactCursor:
    """Per list id, the largest ``date_updated`` stored (Unix seconds)."""

    updated_after: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"updated_after": dict(self.updated_after)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls({str(k): int(v) for k, v in (data.get("updated_after") or {}).items()})


@dataclass(frozen=True)
class ClickSendSmsCursor:
    """Largest ``date`` (history), ``timestamp`` (inbound, receipts) stored; Unix seconds."""

    history_date: int | None = None
    inbound_timestamp: int | None = None
    receipt_timestamp: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "history_date": self.history_date,
            "inbound_timestamp": self.inbound_timestamp,
            "receipt_timestamp": self.receipt_timestamp,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        def num(key: str) -> int | None:
            value = data.get(key)
            return None if value is None else int(value)

        return cls(num("history_date"), num("inbound_timestamp"), num("receipt_timestamp"))


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return None


def _stamp(record: Mapping[str, Any], keys: Sequence[str]) -> int | None:
    """The first of ``keys`` the record carries, as Unix seconds."""
    for key in keys:
        value = _int(record.get(key))
        if value is not None:
            return value
    return None


def _polls(rules: Sequence[Mapping[str, Any]]) -> bool:
    """Whether one rule is enabled with the POLL action (``enabled`` is 0 or 1 in the v3 spec)."""
    return any(
        str(rule.get("action", "")).strip().upper() == "POLL" and _int(rule.get("enabled", 1)) != 0
        for rule in rules
    )


def _first_of_each(records: Sequence[dict[str, Any]], seen: set[str]) -> list[dict[str, Any]]:
    """The records whose ``message_id`` is not in ``seen`` (which learns them): several POLL rules
    list one message several times, within a page and across pages. Records without an id are kept
    for the store to quarantine."""
    fresh = []
    for record in records:
        message_id = record.get("message_id")
        if message_id is not None:
            if str(message_id) in seen:
                continue
            seen.add(str(message_id))
        fresh.append(record)
    return fresh


def is_opt_out_list(contact_list: Mapping[str, Any]) -> bool:
    """Every account has an "Opt-Out List"; contacts must never be pushed into it."""
    return str(contact_list.get("list_name", "")).strip().lower() == OPT_OUT_LIST_NAME


class ClickSendClient:
    """Reads lists, list contacts and SMS; writes list contacts."""

    def __init__(
        self,
        http: HttpClient,
        *,
        lookback: timedelta = timedelta(minutes=10),
        status_window: timedelta = timedelta(hours=72),
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.http = http
        self.lookback = lookback
        self.status_window = status_window
        self._now = now
        self._source = http.source
        self._opt_out_ids: set[str] | None = None
        self._bare_said: set[str] = set()

    def __repr__(self) -> str:
        return f"ClickSendClient({self.http.base_url!r})"

    # ----------------------------------------------------------------- paging

    def _pages(
        self,
        template: str,
        params: Mapping[str, Any] | None = None,
        path_params: Mapping[str, Any] | None = None,
        *,
        first_page: int = 1,
        step: int = 1,
        lowest: int = 1,
    ) -> Generator[tuple[list[dict[str, Any]], int, int, int | None]]:
        """(records, page, last_page, total) per page, walking ``step`` pages at a time from
        ``first_page`` (backwards down to ``lowest`` when ``step`` is negative); ``total`` is the
        envelope's count of everything the listing holds (None when it gives none)."""
        path = template.format(**(path_params or {}))
        guard = LoopGuard(self._source, "GET", path)
        page = first_page
        while page >= lowest:
            guard.check(page)
            response = self.http.request(
                "GET",
                template,
                path_params=path_params,
                params={**(params or {}), "page": page, "limit": LIMIT},
            )
            body = self.http.decode(response, "GET", path)
            envelope = body.get("data") if isinstance(body, dict) else None
            if isinstance(envelope, list):
                # The v3 spec's /sms/history example: the rows without the paging envelope.
                if path not in self._bare_said:
                    self._bare_said.add(path)
                    self.http.log.warning(
                        "%s GET %s answered a bare array without paging fields (as the v3 spec's own "
                        "example); reading it as one page, the last",
                        self._source,
                        path,
                    )
                rows = [r for r in envelope if isinstance(r, dict)]
                yield rows, page, page, len(rows)
                return
            if not isinstance(envelope, dict):
                raise self.http.unexpected(response, "GET", path, "no data envelope")
            records = [r for r in envelope.get("data") or [] if isinstance(r, dict)]
            last = _int(envelope.get("last_page")) or 1
            yield records, page, last, _int(envelope.get("total"))
            if step > 0 and (page >= last or not envelope.get("next_page_url") or not records):
                return
            page += step

    # ---------------------------------------------------------------- account

    def account_country(self) -> str | None:
        """The account's ``country`` (the default phone region for this source)."""
        path = f"{PREFIX}/account"
        body = self.http.decode(self.http.request("GET", path), "GET", path)
        data = body.get("data") if isinstance(body, dict) else None
        country = data.get("country") if isinstance(data, dict) else None
        return str(country) if country else None

    def poll_rules(self) -> PollRules:
        """Read-only: whether inbound SMS and delivery receipts have an enabled POLL rule.

        Reads ``/automations/sms/inbound`` and ``/automations/sms/receipts`` (v3 spec: paginated
        envelopes of rules with ``action`` and ``enabled``). Bad credentials raise; a list the
        credentials may not read, or cannot be read as rules, gives None for that part.
        """
        found: list[bool | None] = []
        for path in (f"{PREFIX}/automations/sms/inbound", f"{PREFIX}/automations/sms/receipts"):
            try:
                found.append(_polls([r for records, *_ in self._pages(path) for r in records]))
            except FatalError as exc:
                # 403: these credentials may not read the rules; 404: no such list; 2xx: not rules.
                unknowable = exc.status is not None and (exc.status in (403, 404) or 200 <= exc.status < 300)
                if not unknowable:
                    raise
                found.append(None)
        return PollRules(inbound=found[0], receipts=found[1])

    # ------------------------------------------------------------------ lists

    def lists(self) -> list[dict[str, Any]]:
        """Every contact list of the account (a few pages at most)."""
        found = [r for records, *_ in self._pages(f"{PREFIX}/lists") for r in records]
        self._opt_out_ids = {str(r.get("list_id")) for r in found if is_opt_out_list(r)}
        return found

    def read_list_contacts(
        self, since: ClickSendListContactCursor | None = None, *, lookback: timedelta | None = None
    ) -> Iterator[Page[ClickSendListContactCursor]]:
        """Contacts of every list updated since that list's watermark (all of them without one)."""
        back = int((self.lookback if lookback is None else lookback).total_seconds())
        return self._list_contact_pages(
            since, lambda mark: {"updated_after": max(0, mark - back)} if mark is not None else {}
        )

    def list_contacts_since(
        self, list_id: str | int, watermark: int | None, *, after: datetime | None = None
    ) -> list[dict[str, Any]]:
        """The contacts of one list updated after ``after``, or else after ``watermark`` (a list's
        `ClickSendListContactCursor` entry) minus the lookback, as the next extract will read them;
        every contact of the list without either. Reverse sync asks just before it writes into the
        list: ClickSend has no upsert to match a create to a contact, so one someone added since the
        extract would be made twice, and no condition on an update, which would overwrite an edit."""
        back = int(self.lookback.total_seconds())
        if after is not None:
            params = {"updated_after": int(after.timestamp())}
        else:
            params = {} if watermark is None else {"updated_after": max(0, watermark - back)}
        template = f"{PREFIX}/lists/{{list_id}}/contacts"
        pages = self._pages(template, params, {"list_id": str(list_id)})
        return [record for records, *_ in pages for record in records]

    def read_list_contacts_full(
        self, since: ClickSendListContactCursor | None = None
    ) -> Iterator[Page[ClickSendListContactCursor]]:
        """Every contact of every list: the API has no delete feed, so a contact a complete scan does
        not see was deleted. Each list's watermark still moves to the newest ``date_updated`` seen."""
        return self._list_contact_pages(since, lambda _mark: {})

    def _list_contact_pages(
        self,
        since: ClickSendListContactCursor | None,
        params_for: Callable[[int | None], dict[str, Any]],
    ) -> Iterator[Page[ClickSendListContactCursor]]:
        """Per list, the contacts ``params_for(watermark)`` selects; the list's watermark (the largest
        ``date_updated``) moves with its last page, as the order within a list is not by update time.
        Pages expect the records of the lists done plus the ``total`` of the list being read."""
        cursor = since or ClickSendListContactCursor()
        template = f"{PREFIX}/lists/{{list_id}}/contacts"
        done = 0
        for contact_list in self.lists():
            list_id = str(contact_list.get("list_id"))
            mark = cursor.updated_after.get(list_id)
            newest = mark
            read = 0
            for records, _, _, total in self._pages(template, params_for(mark), {"list_id": list_id}):
                # ClickSend's Contact model names its list (docs/Contact.md, api-notes §3.4); where a
                # listing leaves the name out it is filled from the list being read, so a stored
                # contact says by itself whether it sits on the opt-out list (an SMS opt-out).
                for record in records:
                    if not record.get("list_name"):
                        record["list_name"] = contact_list.get("list_name")
                stamps = [s for s in (_int(r.get("date_updated")) for r in records) if s is not None]
                newest = max([*stamps, *([newest] if newest is not None else [])], default=None)
                read += len(records)
                yield Page(records, cursor, expected=done + max(total or 0, read))
            done += read
            if newest is not None:
                cursor = ClickSendListContactCursor({**cursor.updated_after, list_id: newest})
            yield Page([], cursor, expected=done)

    # -------------------------------------------------------------------- sms

    def read_sms(
        self, since: ClickSendSmsCursor | None = None, *, lookback: timedelta | None = None
    ) -> Iterator[Page[ClickSendSmsCursor]]:
        """History (with the trailing status window), then inbound messages, then receipts."""
        cursor = since or ClickSendSmsCursor()
        back = self.lookback if lookback is None else lookback
        end = self._now()
        start = None
        if cursor.history_date is not None:
            start = cursor.history_date - int((self.status_window + back).total_seconds())
        for page in self._history(start, to_unix(end), cursor):
            cursor = page.cursor
            yield page
        for part, path, keys, attr in (
            ("inbound", f"{PREFIX}/sms/inbound", INBOUND_TIME_KEYS, "inbound_timestamp"),
            ("receipt", f"{PREFIX}/sms/receipts", RECEIPT_TIME_KEYS, "receipt_timestamp"),
        ):
            mark = getattr(cursor, attr)
            stop = None if mark is None else mark - int(back.total_seconds())
            newest = mark
            seen: set[str] = set()
            for records in self._newest_first(path, keys, stop):
                fresh = _first_of_each(records, seen)
                stamps = [s for s in (_stamp(r, keys) for r in fresh) if s is not None]
                newest = max([*stamps, *([newest] if newest is not None else [])], default=None)
                yield Page(fresh, cursor, part=part)
            if mark is None and not seen:
                self.http.log.info(
                    "%s GET %s listed nothing; ClickSend lists these only for an account with an "
                    "enabled POLL rule (contact-sync check tells)",
                    self._source,
                    path,
                )
            cursor = replace(cursor, **{attr: newest})
            yield Page([], cursor, part=part)

    def read_sms_history_window(self, start: datetime, end: datetime) -> Iterator[Page[ClickSendSmsCursor]]:
        """Sent messages dated in [start, end], for backfills."""
        yield from self._history(to_unix(start), to_unix(end), ClickSendSmsCursor())

    def _history(
        self, date_from: int | None, date_to: int, cursor: ClickSendSmsCursor
    ) -> Iterator[Page[ClickSendSmsCursor]]:
        params: dict[str, Any] = {"order_by": "date:asc", "date_to": date_to}
        if date_from is not None:
            params["date_from"] = max(0, date_from)
        newest = cursor.history_date
        for records, _, _, total in self._pages(f"{PREFIX}/sms/history", params):
            stamps = [s for s in (_int(r.get("date")) for r in records) if s is not None]
            newest = max([*stamps, *([newest] if newest is not None else [])], default=None)
            cursor = replace(cursor, history_date=newest)
            yield Page(records, cursor, part="history", expected=total)

    def _newest_first(
        self, path: str, keys: Sequence[str], stop: int | None
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages newest first until a record older than ``stop``; reads the order off page 1."""
        pages = self._pages(path)
        records, _, last, _ = next(pages)
        stamps = [s for s in (_stamp(r, keys) for r in records) if s is not None]
        newest_first: Iterator[list[dict[str, Any]]]
        if len(stamps) > 1 and stamps[0] < stamps[-1] and last > 1:
            pages.close()
            # Walk back from the last page; page 1, already in hand, comes last.
            walk = (r for r, *_ in self._pages(path, first_page=last, step=-1, lowest=2))
            newest_first = itertools.chain(walk, [records])
        else:
            newest_first = itertools.chain([records], (r for r, *_ in pages))
        for page in newest_first:
            kept = [r for r in page if stop is None or (_stamp(r, keys) or 0) >= stop]
            yield kept
            if len(kept) < len(page):
                return

    # ----------------------------------------------------------------- writes

    def _refuse_opt_out(self, list_id: str | int) -> None:
        if self._opt_out_ids is None:
            self.lists()
        if str(list_id) in (self._opt_out_ids or set()):
            raise ValueError(f"list {list_id} is the opt-out list; contacts are never written to it")

    def update_contact(
        self, list_id: str | int, contact_id: str | int, changes: Mapping[str, Any]
    ) -> WriteResult:
        """``PUT /lists/{list_id}/contacts/{contact_id}`` with the fields to change."""
        self._refuse_opt_out(list_id)
        return write_one(
            str(contact_id),
            lambda: self.http.request(
                "PUT",
                f"{PREFIX}/lists/{{list_id}}/contacts/{{contact_id}}",
                path_params={"list_id": list_id, "contact_id": contact_id},
                json_body=dict(changes),
            ),
            id_of=_contact_id,
            record_of=_contact,
        )

    def create_contact(self, list_id: str | int, contact: Mapping[str, Any]) -> WriteResult:
        """``POST /lists/{list_id}/contacts``; never repeated after an ambiguous failure."""
        self._refuse_opt_out(list_id)
        return write_one(
            None,
            lambda: self.http.request(
                "POST",
                f"{PREFIX}/lists/{{list_id}}/contacts",
                path_params={"list_id": list_id},
                json_body=dict(contact),
                idempotent=False,
            ),
            id_of=_contact_id,
            record_of=_contact,
        )

    def delete_contact(self, list_id: str | int, contact_id: str | int) -> WriteResult:
        """``DELETE /lists/{list_id}/contacts/{contact_id}``."""
        return write_one(
            str(contact_id),
            lambda: self.http.request(
                "DELETE",
                f"{PREFIX}/lists/{{list_id}}/contacts/{{contact_id}}",
                path_params={"list_id": list_id, "contact_id": contact_id},
                idempotent=True,
            ),
            id_of=_contact_id,
            record_of=_contact,
        )


def _contact(body: Any) -> object:
    """The contact a write answers with, inside the envelope's ``data`` (with its ``date_updated``)."""
    return body.get("data") if isinstance(body, dict) else None


def _contact_id(body: Any) -> object:
    data = _contact(body)
    return data.get("contact_id") if isinstance(data, dict) else None
