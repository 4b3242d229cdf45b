"""Linkflow open API (``open.linkflowtech.com``): contacts and events, with its own token.

Auth
- ``GET /token`` with ``X-OpenApi-Key``/``X-OpenApi-Secret`` returns a token and an ``expiration``
  written as Shanghai local time without a zone. The token is cached until shortly before then,
  fetched again, and fetched once more on a 401 before the call fails.

Streams
- ``linkflow/contact``: ``/v2/contacts_bulk/ids`` lists the ids updated in a time window
  (``minUpdateTime``/``maxUpdateTime``, Shanghai time to the second; windows are treated as
  half-open and overlap-free when split, and each run re-reads a lookback), but refuses
  ``page*size > 10000`` (``500 B00030``). The order of the ids is undocumented, so a window whose last
  reachable page comes back full may hold more and is split in two, each half read again, oldest
  first. The ids of a complete window are then hydrated through ``/v2/contacts_bulk``
  100 at a time (it silently keeps only the first 100); ids missing from the answer were deleted or
  merged away and are reported as ``deleted_ids``. The cursor is the end of the last complete window.
- ``linkflow/event``: ``/events/lite`` is a forward cursor on the event id (``lastMaxId``); only new
  events are seen, which is what an activity log needs.

Writes
- ``update_contact``: ``PUT /v2/contacts/{id}``. ``identify``: ``POST /identifiers``, keyed by
  ``externalId`` on a channel, so repeating it is safe.
"""

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from typing import Any, Self

from connectors.errors import FatalError
from connectors.http import HttpClient
from connectors.paging import LoopGuard, Page
from connectors.times import from_linkflow, to_linkflow, utc_now
from connectors.writes import WriteResult, write_one

ID_PAGE_CAP = 10_000
"""``page*size`` must stay at or below this (seed 002, error ``B00030``)."""
HYDRATE_BATCH = 100
EPOCH = "2000-01-01 00:00:00"
"""Lower bound of a first full read: the id listing can only be split between two bounds."""


@dataclass(frozen=True)
class LinkflowContactCursor:
    """``updated_until``: Linkflow local time (``yyyy-MM-dd HH:mm:ss``) up to which windows are complete."""

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
        self.fetches = 0

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
        try:
            self._expires = from_linkflow(expiration) if isinstance(expiration, str) else None
        except ValueError:
            self._expires = None
        if self._expires is None:
            # Unknown lifetime: keep it a short while rather than forever; a 401 refreshes it anyway.
            self._expires = self._now() + self._margin * 2
        self._http.log.debug("token fetched; expires %s", self._expires.isoformat())


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
        """``id_cap`` is the API's ``page*size`` limit; tests lower it to split windows on small data."""
        if id_cap % id_page_size or id_cap > ID_PAGE_CAP:
            raise ValueError(f"id_page_size must divide id_cap <= {ID_PAGE_CAP}, got {id_page_size}/{id_cap}")
        self.http = http
        self.id_page_size = id_page_size
        self.id_cap = id_cap
        self.event_page_size = event_page_size
        self.lookback = lookback
        self._now = now
        self._source = http.source

    def __repr__(self) -> str:
        return f"LinkflowClient({self.http.base_url!r})"

    # ----------------------------------------------------------------- contacts

    def read_contacts(
        self, since: LinkflowContactCursor | None = None, *, lookback: timedelta | None = None
    ) -> Iterator[Page[LinkflowContactCursor]]:
        """Contacts updated since the cursor (all of them without one), up to now."""
        back = self.lookback if lookback is None else lookback
        committed = since or LinkflowContactCursor()
        if committed.updated_until:
            start = from_linkflow(committed.updated_until) - back
        else:
            start = from_linkflow(EPOCH)
        # The upper bound is exclusive (``lastUpdated < maxUpdateTime``): end after the current second.
        yield from self._read_windows(start, self._now() + timedelta(seconds=1), committed)

    def read_contacts_window(self, start: datetime, end: datetime) -> Iterator[Page[LinkflowContactCursor]]:
        """Contacts updated in [start, end), for backfills (to the second; the API excludes the end)."""
        yield from self._read_windows(start, end, LinkflowContactCursor())

    def _read_windows(
        self, start: datetime, end: datetime, committed: LinkflowContactCursor
    ) -> Iterator[Page[LinkflowContactCursor]]:
        """Complete windows oldest first; a page's cursor is the end of the last complete window."""
        stack = [(from_linkflow(to_linkflow(start)), from_linkflow(to_linkflow(end)))]
        while stack:
            a, b = stack.pop()
            ids = self._ids_in_window(a, b)
            if ids is None:
                if b - a <= timedelta(seconds=1):
                    raise FatalError(
                        self._source,
                        "GET",
                        "/v2/contacts_bulk/ids",
                        code="WINDOW_TOO_DENSE",
                        message=f"over {self.id_cap} contacts updated in {to_linkflow(a)}..{to_linkflow(b)}",
                    )
                mid = (a + (b - a) / 2).replace(microsecond=0)
                self.http.log.info(
                    "window %s..%s holds over %d ids; splitting it",
                    to_linkflow(a),
                    to_linkflow(b),
                    self.id_cap,
                )
                stack.extend([(mid, b), (a, mid)])
                continue
            done = LinkflowContactCursor(to_linkflow(b))
            if not ids:
                yield Page([], done)
            else:
                yield from self._hydrate(ids, committed, done)
            committed = done

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
                    "minUpdateTime": to_linkflow(start),
                    "maxUpdateTime": to_linkflow(end),
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
        self, ids: Sequence[int], committed: LinkflowContactCursor, done: LinkflowContactCursor
    ) -> Iterator[Page[LinkflowContactCursor]]:
        """Full records for one window's ids; only the last batch may carry the window's end."""
        template = "/v2/contacts_bulk"
        for offset in range(0, len(ids), HYDRATE_BATCH):
            batch = ids[offset : offset + HYDRATE_BATCH]
            response = self.http.request(
                "GET", template, params={"ids": ",".join(map(str, batch)), "needOpenId": 1}
            )
            body = self.http.decode(response, "GET", template)
            if not isinstance(body, list):
                raise self.http.unexpected(response, "GET", template, "expected a JSON array of contacts")
            records = [r for r in body if isinstance(r, dict)]
            found = {str(r.get("id")) for r in records}
            last = offset + HYDRATE_BATCH >= len(ids)
            yield Page(
                records,
                done if last else committed,
                deleted_ids=[str(i) for i in batch if str(i) not in found],
            )

    # ------------------------------------------------------------------- events

    def read_events(self, since: LinkflowEventCursor | None = None) -> Iterator[Page[LinkflowEventCursor]]:
        """Events with an id above the cursor, in id order, until an empty or short page."""
        template = "/events/lite"
        last = (since or LinkflowEventCursor()).last_max_id
        guard = LoopGuard(self._source, "GET", template)
        while True:
            guard.check(last)
            response = self.http.request(
                "GET", template, params={"lastMaxId": last, "size": self.event_page_size}
            )
            events = self.http.decode(response, "GET", template)
            if not isinstance(events, list):
                raise self.http.unexpected(response, "GET", template, "expected a JSON array of events")
            records = [e for e in events if isinstance(e, dict)]
            if not records:
                return
            last = max([last, *(int(e["id"]) for e in records if e.get("id") is not None)])
            yield Page(records, LinkflowEventCursor(last))
            if len(records) < self.event_page_size:
                return

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
