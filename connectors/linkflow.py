"""Linkflow open API (``open.linkflowtech.com``): contacts and events, with its own token.

Times
- Linkflow writes wall-clock times without a zone (records, window bounds, the token's
  ``expiration``). Asia/Shanghai is a guess (api-notes §4.1), so nothing here depends on it being
  right: watermarks are the records' own ``lastUpdated`` values, compared and offset as wall-clock
  text in whatever zone the API writes; the only clock-made bound is the end of the last window, set
  so far ahead (UTC+14, the easternmost zone) that it lies in the API's future in any zone.
  ``detect_zone`` reads the zone from events, which carry both a wall time (``dateCreated``) and an
  instant (``eventDate``, epoch ms).

Auth
- ``GET /token`` with ``X-OpenApi-Key``/``X-OpenApi-Secret`` returns a token and an ``expiration``.
  The token is cached until shortly before then (read as Shanghai time), fetched again, and fetched
  once more on a 401 before the call fails. An ``expiration`` that reads as already past means the
  zone is wrong; the token is then kept a short while and renewed on a 401.

Streams
- ``linkflow/contact``: ``/v2/contacts_bulk/ids`` lists the ids updated in a time window
  (``minUpdateTime``/``maxUpdateTime`` to the second; windows are treated as half-open and
  overlap-free when split, and each run re-reads a lookback before the watermark), but refuses
  ``page*size > 10000`` (``500 B00030``). The order of the ids is undocumented, so a window whose last
  reachable page comes back full may hold more and is split in two, each half read again, oldest
  first. The ids of a complete window are then hydrated through ``/v2/contacts_bulk`` 100 at a time
  (it silently keeps only the first 100). The vendor's own example leaves ids out of that answer
  without a word, so an id missing once is asked for again, and one missing twice is retired
  (``deleted_ids``) only when ``/contacts/{id}/identities`` answers 404 ``B00008``. The cursor is the
  latest ``lastUpdated`` of the complete windows.
- ``linkflow/event``: ``/events/lite`` is a forward cursor on the event id (``lastMaxId``): the cursor
  is the largest id of a page wherever it stands in the page. The order is undocumented and the only
  example lists newest first (api-notes §4.2); see ``read_events``.

Writes
- ``update_contact``: ``PUT /v2/contacts/{id}``. ``identify``: ``POST /identifiers``, keyed by
  ``externalId`` on a channel, so repeating it is safe.
"""

import email.utils
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Self

from connectors.errors import FatalError, NotFoundError
from connectors.http import HttpClient
from connectors.paging import LoopGuard, Page
from connectors.times import LINKFLOW_FORMAT, LINKFLOW_TZ, from_linkflow, parse_wall, utc_now
from connectors.writes import WriteResult, write_one

ID_PAGE_CAP = 10_000
"""``page*size`` must stay at or below this (seed 002, error ``B00030``)."""
HYDRATE_BATCH = 100
EPOCH = "2000-01-01 00:00:00"
"""Lower bound of a first full read: the id listing can only be split between two bounds."""
AHEAD_OF_UTC = timedelta(hours=14)
"""UTC+14 (Kiribati's Line Islands) is the easternmost offset in use: UTC wall-clock time this far
ahead is in the future in every zone, so the last window reaches the API's present whatever its zone."""
BACKLOG_PAGE = 1000
"""Events read per contact are handed on in pages of about this many."""
ZONE_SAMPLE = 50
"""Events ``detect_zone`` compares (``dateCreated`` against ``eventDate``)."""
ZONE_STEP = timedelta(minutes=15)
ZONE_SLACK = timedelta(minutes=2)
"""Every zone's offset is a multiple of 15 minutes; an event recorded within 2 minutes of its
``eventDate`` shows it."""

EventsOrder = Literal["ascending", "descending", "newest_tail", "unknown"]

_ORDER_WORDS: dict[str, str] = {
    "ascending": "the oldest events above lastMaxId, oldest first (ascending)",
    "descending": "the oldest events above lastMaxId, listed newest first (descending)",
    "newest_tail": "only the NEWEST events above lastMaxId, newest first (newest_tail)",
    "unknown": "events whose order could not be told (unknown)",
}


def _wall(text: str) -> datetime:
    """A Linkflow wall-clock time as a naive datetime: no zone is assumed; raises ValueError."""
    return parse_wall(text)


def _wall_text(moment: datetime) -> str:
    return moment.strftime(LINKFLOW_FORMAT)


def _latest_updated(current: str | None, records: Sequence[Mapping[str, Any]]) -> str | None:
    """The latest of ``current`` and the records' ``lastUpdated`` (unreadable values are skipped)."""
    best = _wall(current) if current else None
    for record in records:
        value = record.get("lastUpdated")
        try:
            moment = _wall(value) if isinstance(value, str) else None
        except ValueError:
            moment = None
        if moment is not None and (best is None or moment > best):
            best = moment
    return _wall_text(best) if best is not None else None


def _event_id(event: Mapping[str, Any]) -> int | None:
    value = event.get("id")
    if isinstance(value, bool):
        return None
    try:
        return int(value) if isinstance(value, int | str) else None
    except ValueError:
        return None


def _offset_text(offset: timedelta) -> str:
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


@dataclass(frozen=True)
class LinkflowContactCursor:
    """``updated_until``: the latest ``lastUpdated`` read, as the API wrote it (``yyyy-MM-dd HH:mm:ss``
    wall-clock time in the API's zone); every update up to it is read."""

    updated_until: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})


@dataclass(frozen=True)
class LinkflowEventCursor:
    """The largest event id stored."""

    last_max_id: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(last_max_id=int(data.get("last_max_id") or 0))


@dataclass
class _Hydration:
    """What hydrating a read's ids took, for its one summary line."""

    asked_again: int = 0
    found_again: int = 0
    retired: int = 0
    unread: list[int] = field(default_factory=list)


def _event_gap(event: Mapping[str, Any]) -> timedelta | None:
    """``dateCreated`` (wall-clock) minus ``eventDate`` (epoch ms, as UTC wall-clock)."""
    created, happened = event.get("dateCreated"), event.get("eventDate")
    if not isinstance(created, str) or isinstance(happened, bool) or not isinstance(happened, int | float):
        return None
    try:
        return _wall(created) - datetime.fromtimestamp(happened / 1000, UTC).replace(tzinfo=None)
    except (ValueError, OverflowError, OSError):
        return None


class LinkflowToken:
    """The ``X-OpenApi-Token`` auth: cached, refreshed before ``expiration`` and on a 401."""

    def __init__(
        self,
        app_key: str,
        app_secret: str,
        *,
        margin: timedelta = timedelta(minutes=5),
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._key = app_key
        self._secret = app_secret
        self._margin = margin
        self._now = now
        self._token: str | None = None
        self._expires: datetime | None = None
        self._lock = threading.Lock()
        self._http: HttpClient | None = None
        self._zone_warned = False
        self.fetches = 0
        self.expiration_lead: timedelta | None = None
        """The last ``expiration`` (wall-clock) minus the answer's ``Date`` (UTC): the zone's offset
        plus the token's lifetime, neither of which is documented, so it cannot tell either alone."""

    def __repr__(self) -> str:
        return f"LinkflowToken(expires={self._expires})"

    def bind(self, http: HttpClient) -> None:
        self._http = http

    def headers(self) -> Mapping[str, str]:
        with self._lock:
            if self._token is None or (
                self._expires is not None and self._now() >= self._expires - self._margin
            ):
                self._fetch()
            assert self._token is not None
            return {"X-OpenApi-Token": self._token}

    def refresh(self) -> bool:
        with self._lock:
            self._fetch()
        return True

    def secrets(self) -> Sequence[str]:
        return [s for s in (self._key, self._secret, self._token) if s]

    def _fetch(self) -> None:
        if self._http is None:
            raise RuntimeError("LinkflowToken.bind() was not called")
        response = self._http.request(
            "GET",
            "/token",
            headers={"X-OpenApi-Key": self._key, "X-OpenApi-Secret": self._secret},
            authenticate=False,
        )
        body = self._http.decode(response, "GET", "/token")
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise FatalError(
                self._http.source,
                "GET",
                "/token",
                status=response.status_code,
                code="NO_TOKEN",
                message="the token response carried no token",
            )
        self._token = token
        self.fetches += 1
        expiration = body.get("expiration")
        self._expires = self._expiry(expiration if isinstance(expiration, str) else None)
        self.expiration_lead = _lead(expiration, response.headers.get("Date"))
        self._http.log.debug("token fetched; expires %s", self._expires.isoformat())

    def _expiry(self, expiration: str | None) -> datetime:
        """When to fetch a new token: ``expiration`` read as Shanghai time, if that is believable.

        An API does not hand out a token that has already expired, so an ``expiration`` that reads
        as past means its zone lies west of Shanghai: the true lifetime cannot be told, and the token
        is kept a short while (a 401 renews it sooner if need be).
        """
        now = self._now()
        try:
            expires = from_linkflow(expiration) if expiration else None
        except ValueError:
            expires = None
        if expires is not None and expires <= now and self._http is not None and not self._zone_warned:
            self._zone_warned = True
            self._http.log.warning(
                "linkflow: token expiration %s reads as already past in Asia/Shanghai time, so the API "
                "writes times in another zone; keeping each token %d minutes and renewing it on a 401",
                expiration,
                int(self._margin.total_seconds() * 2 // 60),
            )
        if expires is None or expires <= now:
            return now + self._margin * 2
        return expires


def _lead(expiration: object, date_header: str | None) -> timedelta | None:
    """``expiration`` minus the answer's ``Date``, both as wall-clock times (None if either is unreadable)."""
    if not isinstance(expiration, str) or not date_header:
        return None
    try:
        issued = email.utils.parsedate_to_datetime(date_header)
        return _wall(expiration) - issued.astimezone(UTC).replace(tzinfo=None)
    except (TypeError, ValueError, IndexError):
        return None


class LinkflowClient:
    """Reads contacts and events, writes contacts."""

    def __init__(
        self,
        http: HttpClient,
        *,
        id_page_size: int = 1000,
        id_cap: int = ID_PAGE_CAP,
        event_page_size: int = 200,
        lookback: timedelta = timedelta(minutes=10),
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        """``id_cap`` is the API's ``page*size`` limit; tests lower it to split windows on small data.

        ``event_page_size`` must be at least 2: telling the event orders apart needs two events.
        """
        if id_cap % id_page_size or id_cap > ID_PAGE_CAP:
            raise ValueError(f"id_page_size must divide id_cap <= {ID_PAGE_CAP}, got {id_page_size}/{id_cap}")
        if event_page_size < 2:
            raise ValueError(f"event_page_size must be at least 2, got {event_page_size}")
        self.http = http
        self.id_page_size = id_page_size
        self.id_cap = id_cap
        self.event_page_size = event_page_size
        self.lookback = lookback
        self._now = now
        self._source = http.source
        self._events_order: EventsOrder | None = None

    def __repr__(self) -> str:
        return f"LinkflowClient({self.http.base_url!r})"

    # ----------------------------------------------------------------- contacts

    def read_contacts(
        self, since: LinkflowContactCursor | None = None, *, lookback: timedelta | None = None
    ) -> Iterator[Page[LinkflowContactCursor]]:
        """Contacts updated since the cursor (all of them without one), up to now.

        The start is the watermark (a record's own ``lastUpdated``) less the lookback, in the API's
        wall-clock time; no zone enters, so a wrong guess of it cannot open a gap.
        """
        back = self.lookback if lookback is None else lookback
        committed = since or LinkflowContactCursor()
        start = _wall(committed.updated_until) - back if committed.updated_until else _wall(EPOCH)
        yield from self._read_windows(start, self._beyond_now(), committed)

    def contacts_since(
        self, since: LinkflowContactCursor | None, *, lookback: timedelta | None = None
    ) -> list[dict[str, Any]]:
        """The contacts updated since the extract's cursor less ``lookback`` (else the extract's
        own), as the next extract will read them; every contact without one. Reverse sync asks just
        before its first write: whether identify joins a contact someone added meanwhile with the
        email or mobile is left open by the documents, so a create could make the person twice, and
        an update carries no condition."""
        return [record for page in self.read_contacts(since, lookback=lookback) for record in page.records]

    def read_contacts_window(self, start: datetime, end: datetime) -> Iterator[Page[LinkflowContactCursor]]:
        """Contacts updated in [start, end), for backfills (to the second; the API excludes the end).

        The instants are turned into Linkflow wall-clock time as Shanghai time: if the account's zone
        differs, the window read is shifted by the difference (a backfill moves no cursor).
        """
        first, last = (moment.astimezone(LINKFLOW_TZ).replace(tzinfo=None) for moment in (start, end))
        yield from self._read_windows(first, last, LinkflowContactCursor())

    def _beyond_now(self) -> datetime:
        """A wall-clock time ahead of the API's present in any zone (the end of the last window)."""
        return (self._now().astimezone(UTC) + AHEAD_OF_UTC + timedelta(seconds=1)).replace(
            tzinfo=None, microsecond=0
        )

    def _windows(self, start: datetime, end: datetime) -> Iterator[list[int]]:
        """The ids updated in each complete window of [start, end), oldest window first."""
        stack = [(start.replace(microsecond=0), end.replace(microsecond=0))]
        while stack:
            a, b = stack.pop()
            ids = self._ids_in_window(a, b)
            if ids is not None:
                yield ids
                continue
            if b - a <= timedelta(seconds=1):
                raise FatalError(
                    self._source,
                    "GET",
                    "/v2/contacts_bulk/ids",
                    code="WINDOW_TOO_DENSE",
                    message=f"over {self.id_cap} contacts updated in {_wall_text(a)}..{_wall_text(b)}",
                )
            mid = (a + (b - a) / 2).replace(microsecond=0)
            self.http.log.info(
                "window %s..%s holds over %d ids; splitting it", _wall_text(a), _wall_text(b), self.id_cap
            )
            stack.extend([(mid, b), (a, mid)])

    def _read_windows(
        self, start: datetime, end: datetime, committed: LinkflowContactCursor
    ) -> Iterator[Page[LinkflowContactCursor]]:
        """Complete windows oldest first; a page's cursor is the latest ``lastUpdated`` of the
        complete windows before it (its own, once its window is complete).

        A contact that is listed and alive but that ``/v2/contacts_bulk`` will not give holds the
        cursor where it was, so the next run reads its window again. Pages expect the ids of the
        windows listed so far: the API tells no total, but each window's listing is one.
        """
        summary = _Hydration()
        held: LinkflowContactCursor | None = None
        listed = 0
        for ids in self._windows(start, end):
            listed += len(ids)
            if not ids:
                yield Page([], held or committed, expected=listed)
                continue
            window_latest = committed.updated_until
            for offset in range(0, len(ids), HYDRATE_BATCH):
                records, gone, unread = self._hydrate(ids[offset : offset + HYDRATE_BATCH], summary)
                window_latest = _latest_updated(window_latest, records)
                if unread and held is None:
                    held = committed
                if offset + HYDRATE_BATCH >= len(ids):
                    committed = LinkflowContactCursor(window_latest)
                yield Page(records, held or committed, deleted_ids=gone, expected=listed)
        self._say_hydration(summary)

    def _ids_in_window(self, start: datetime, end: datetime) -> list[int] | None:
        """All ids updated in the window, or None when it holds more than the cap can reach."""
        template = "/v2/contacts_bulk/ids"
        guard = LoopGuard(self._source, "GET", template)
        ids: dict[int, None] = {}
        last_page = self.id_cap // self.id_page_size - 1
        for page in range(last_page + 1):
            guard.check(page)
            response = self.http.request(
                "GET",
                template,
                params={
                    "page": page,
                    "size": self.id_page_size,
                    "minUpdateTime": _wall_text(start),
                    "maxUpdateTime": _wall_text(end),
                },
            )
            batch = self.http.decode(response, "GET", template)
            if not isinstance(batch, list):
                raise self.http.unexpected(response, "GET", template, "expected a JSON array of ids")
            ids.update((int(i), None) for i in batch)
            if len(batch) < self.id_page_size:
                return list(ids)
            if page == last_page:
                return None
        return list(ids)

    def _hydrate(
        self, batch: Sequence[int], summary: _Hydration
    ) -> tuple[list[dict[str, Any]], list[str], list[int]]:
        """(records, ids confirmed gone, ids alive but not given) for up to 100 ids.

        The vendor's example asks for ``1,3,5,7,8`` and answers 1, 3 and 5 (api-notes §4.2): an
        omission may be transient, an id index lagging the store, or a filter. So the ids left out are
        asked for again in one more call, and an id missing twice is retired only when its
        identities answer 404 ``B00008`` (contact not found).
        """
        records = self._bulk(batch)
        found = {str(r.get("id")) for r in records}
        missing = [i for i in batch if str(i) not in found]
        if not missing:
            return records, [], []
        summary.asked_again += len(missing)
        again = self._bulk(missing)
        records.extend(again)
        found.update(str(r.get("id")) for r in again)
        still = [i for i in missing if str(i) not in found]
        summary.found_again += len(missing) - len(still)
        gone = [str(i) for i in still if self._contact_gone(i)]
        unread = [i for i in still if str(i) not in gone]
        summary.retired += len(gone)
        summary.unread.extend(unread)
        return records, gone, unread

    def _bulk(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        template = "/v2/contacts_bulk"
        response = self.http.request(
            "GET", template, params={"ids": ",".join(map(str, ids)), "needOpenId": 1}
        )
        body = self.http.decode(response, "GET", template)
        if not isinstance(body, list):
            raise self.http.unexpected(response, "GET", template, "expected a JSON array of contacts")
        return [r for r in body if isinstance(r, dict)]

    def _contact_gone(self, contact_id: int) -> bool:
        """Whether ``/contacts/{id}/identities`` says the contact does not exist (404 ``B00008``)."""
        try:
            self.http.request("GET", "/contacts/{id}/identities", path_params={"id": contact_id})
        except NotFoundError as exc:
            if exc.code in (None, "B00008"):
                return True
            raise
        return False

    def _say_hydration(self, summary: _Hydration) -> None:
        if not summary.asked_again:
            return
        unread = summary.unread
        self.http.log.warning(
            "linkflow/contact: /v2/contacts_bulk left out %d listed ids: %d came on a second ask, "
            "%d confirmed gone (identities 404) and retired%s",
            summary.asked_again,
            summary.found_again,
            summary.retired,
            (
                f", {len(unread)} alive but not given (e.g. {unread[0]}): not retired, and the cursor "
                "stays before them so the next run reads them again"
                if unread
                else ""
            ),
        )

    # ------------------------------------------------------------------- events

    def read_events(self, since: LinkflowEventCursor | None = None) -> Iterator[Page[LinkflowEventCursor]]:
        """Events with an id above the cursor, until an empty or short page.

        ``/events/lite`` gives ``size`` events above ``lastMaxId``; which ones is undocumented
        (api-notes §4.2): the oldest, ascending; the oldest, listed newest first; or the newest,
        newest first (a tail). The cursor is the largest id on a page wherever it stands, which is
        right for the first two. Only a full page can hide a backlog, so the first full page is
        probed (``_probe``). Under a tail, the events between the cursor and the page are read per
        contact (``_read_backlog``) before the page's largest id becomes the cursor.
        """
        template = "/events/lite"
        last = (since or LinkflowEventCursor()).last_max_id
        guard = LoopGuard(self._source, "GET", template)
        while True:
            guard.check(last)
            records = self._events_page(last, self.event_page_size)
            ids = [i for i in map(_event_id, records) if i is not None]
            if not records:
                return
            top = max([last, *ids])
            full = len(records) >= self.event_page_size
            if full and self._events_order is None:
                self._events_order = self._probe(last, ids)
                if self._events_order in ("ascending", "descending"):
                    self.http.log.info(
                        "linkflow/event: /events/lite answers %s: paging on the largest id of each page",
                        _ORDER_WORDS[self._events_order],
                    )
            if full and self._events_order in ("newest_tail", "unknown"):
                yield from self._read_backlog(last, records, ids)
                yield Page(records, LinkflowEventCursor(top))
                return
            yield Page(records, LinkflowEventCursor(top))
            if not full:
                return
            last = top

    def detect_events_order(self) -> EventsOrder:
        """Which of the three orders ``/events/lite`` follows, in two small reads (``unknown`` with
        fewer than two events). Read-only; for ``contact-sync check``."""
        records = self._events_page(0, 2)
        ids = [i for i in map(_event_id, records) if i is not None]
        if len(ids) < 2:
            return "unknown"
        return self._probe(0, ids)

    def _probe(self, last: int, ids: Sequence[int]) -> EventsOrder:
        """Tell the orders apart after a full page ``ids`` above ``last``: ask ``size=1`` from ``last``.

        Oldest-first answers the page's smallest id; a tail answers its newest event, the page's
        largest id or one that arrived since. (The probe api-notes §4.2 suggests, asking again from the
        page's smallest id, answers the same under a tail as under oldest-first when no event lies
        above the page, and an event arriving between the two calls makes a tail look like a backlog
        that goes on; this one does not depend on either.)
        """
        if len(ids) < 2:
            return "unknown"
        first = [i for i in map(_event_id, self._events_page(last, 1)) if i is not None]
        if not first:
            return "unknown"
        if first[0] == min(ids):
            return "ascending" if ids[0] < ids[-1] else "descending"
        if first[0] >= max(ids):
            return "newest_tail"
        return "unknown"

    def _events_page(self, last: int, size: int) -> list[dict[str, Any]]:
        template = "/events/lite"
        response = self.http.request("GET", template, params={"lastMaxId": last, "size": size})
        events = self.http.decode(response, "GET", template)
        if not isinstance(events, list):
            raise self.http.unexpected(response, "GET", template, "expected a JSON array of events")
        return [e for e in events if isinstance(e, dict)]

    def _read_backlog(
        self, last: int, tail: Sequence[dict[str, Any]], tail_ids: Sequence[int]
    ) -> Iterator[Page[LinkflowEventCursor]]:
        """Events above ``last`` that a tail page hides, read per contact; the cursor stays at ``last``.

        Which contacts: every contact the id listing serves (all update windows since ``EPOCH``), and
        those of the tail's events. A contact's events can arrive without its ``lastUpdated`` moving,
        so no narrower set is safe. The cost is one request per contact, more for a contact with over
        ``size`` new events, plus the listing (one request per 1,000 contacts): at 5 requests a second,
        about an hour per 18,000 contacts. Events of a visitor whose contact the listing does not
        serve and whose events all lie in the backlog cannot be reached by any documented endpoint.
        """
        floor = min(tail_ids, default=last)
        seen = set(tail_ids)
        contacts = {cid for ids in self._windows(_wall(EPOCH), self._beyond_now()) for cid in ids}
        contacts.update(
            int(c) for e in tail if isinstance(c := e.get("contactId"), int) and not isinstance(c, bool)
        )
        batch: list[dict[str, Any]] = []
        requests = found = 0
        for contact_id in sorted(contacts):
            events, calls = self._contact_events(contact_id, last)
            requests += calls
            for event in events:
                event_id = _event_id(event)
                if event_id is None or event_id in seen:
                    continue
                seen.add(event_id)
                batch.append(event)
                found += 1
            if len(batch) >= BACKLOG_PAGE:
                yield Page(batch, LinkflowEventCursor(last))
                batch = []
        if batch:
            yield Page(batch, LinkflowEventCursor(last))
        self.http.log.warning(
            "linkflow/event: /events/lite answers %s: a full page hides the events between id %d and "
            "%d, so they were read per contact: %d contacts, %d requests, %d events; events of visitors "
            "the contact listing does not serve cannot be reached this way",
            _ORDER_WORDS[self._events_order or "unknown"],
            last,
            floor,
            len(contacts),
            requests,
            found,
        )

    def _contact_events(self, contact_id: int, last: int) -> tuple[list[dict[str, Any]], int]:
        """A contact's events above ``last``, and the requests that took.

        Pages run until a short one, or until a page listed newest first reaches ``last`` (the
        emulator lists newest first; the documentation does not say, so any other order reads on).
        """
        template = "/contacts/{contactId}/events"
        guard = LoopGuard(self._source, "GET", template)
        kept: list[dict[str, Any]] = []
        page = 0
        while True:
            response = self.http.request(
                "GET",
                template,
                path_params={"contactId": contact_id},
                params={"page": page, "size": self.event_page_size},
            )
            body = self.http.decode(response, "GET", template)
            if not isinstance(body, list):
                raise self.http.unexpected(response, "GET", template, "expected a JSON array of events")
            records = [e for e in body if isinstance(e, dict)]
            ids = [i for i in map(_event_id, records) if i is not None]
            kept.extend(e for e in records if (i := _event_id(e)) is not None and i > last)
            if len(records) < self.event_page_size:
                return kept, page + 1
            guard.check(ids[0] if ids else page)
            if ids and ids == sorted(ids, reverse=True) and ids[-1] <= last:
                return kept, page + 1
            page += 1

    # --------------------------------------------------------------------- zone

    def detect_zone(self) -> str | None:
        """The offset of the API's wall-clock times (``UTC+08:00``), or None when it cannot be told.

        Events carry ``dateCreated``, the wall-clock time Linkflow recorded them, and ``eventDate``,
        the instant they happened (epoch ms; api-notes §4.3). For an event recorded as it happens
        the two differ by the zone's offset, give or take seconds. The offset is read when most of
        the sampled events agree on one within 2 minutes of a 15-minute step (an hour's spread is
        allowed for daylight saving; the newest event's offset is given). The token's ``expiration``
        against the answer's ``Date`` is the offset plus the token's lifetime; the lifetime is
        undocumented, so the token alone tells nothing, but as a lifetime is positive it refuses an
        offset at or beyond that lead. No events, no agreement or a contradiction: None. Read-only:
        one request (and the token).
        """
        aligned: list[tuple[int, timedelta]] = []
        usable = 0
        for event in self._events_page(0, ZONE_SAMPLE):
            gap = _event_gap(event)
            event_id = _event_id(event)
            if gap is None or event_id is None:
                continue
            usable += 1
            offset = round(gap / ZONE_STEP) * ZONE_STEP
            if abs(gap - offset) <= ZONE_SLACK and abs(offset) <= AHEAD_OF_UTC:
                aligned.append((event_id, offset))
        if not aligned or len(aligned) * 2 <= usable:
            return None
        offsets = [offset for _, offset in aligned]
        if max(offsets) - min(offsets) > timedelta(hours=1):
            return None
        offset = max(aligned)[1]
        lead = self.http.auth.expiration_lead if isinstance(self.http.auth, LinkflowToken) else None
        if lead is not None and lead <= offset:
            return None
        return _offset_text(offset)

    # ------------------------------------------------------------------- writes

    def update_contact(self, contact_id: int | str, changes: Mapping[str, Any]) -> WriteResult:
        """``PUT /v2/contacts/{id}`` with the fields to change."""
        body = {**changes, "id": int(contact_id)}
        return write_one(
            str(contact_id),
            lambda: self.http.request(
                "PUT", "/v2/contacts/{id}", path_params={"id": contact_id}, json_body=body
            ),
        )

    def identify(
        self,
        external_id: str,
        channel_id: str,
        changes: Mapping[str, Any],
        *,
        channel_name: str | None = None,
    ) -> WriteResult:
        """``POST /identifiers``: create or update the contact known as ``external_id`` on a channel."""
        channel = {"channelId": channel_id, **({"name": channel_name} if channel_name else {})}
        body = {**changes, "externalId": external_id, "channel": channel}
        return write_one(
            None,
            lambda: self.http.request("POST", "/identifiers", json_body=body, idempotent=True),
        )
