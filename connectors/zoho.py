"""Zoho CRM (v8) and Zoho Bigin (v2) records through Maton: one module, parameterised by product.

Streams
- ``zoho_crm/lead`` (``Leads`` with ``converted=both``: converted leads vanish from the default list,
  airbytehq/airbyte#39398), ``zoho_crm/contact`` and ``zoho_bigin/contact`` (``Contacts``).

How a read works, and why
- ``fields`` is mandatory and capped at 50 names, so each module reads a fixed list of about 30
  contact fields.
- Incremental reads send ``If-Modified-Since`` (the watermark minus a small lookback, and at least a
  second: Zoho does not say whether the boundary second is kept, so reading it again and skipping
  what was read is right both ways) with ``sort_by=Modified_Time&sort_order=asc``. 304 and 204 both
  mean "nothing changed" (PostHog/posthog#97243).
- ``page`` is valid only for the first 2,000 records (airbytehq/airbyte#30977); the paginator
  follows ``info.next_page_token`` whenever the answer carries one, as Airbyte's Bigin connector
  does, since a token continues after the last record served where a page number would shift when a
  record earlier in the order changes.
- A token chain ends early two ways, and the read goes on with a new chain in both: the token
  expired (400 ``EXPIRED_VALUE``, "The token given has expired"; tokens live 24 h), or the chain has
  listed as many records as one chain may (400 ``PAGINATION_LIMIT_EXCEEDED``, 100,000 records;
  both from the v7 get-records error table). The new chain asks from a second before the newest
  ``Modified_Time`` read (a ``Modified_Time`` slice) and skips what it already yielded. More records
  in one second than a chain can list cannot be sliced: the read reports it in one error line and
  goes on after that second (``_next_slice``).
- Each page's cursor holds the largest ``Modified_Time`` yielded so far, so resuming from any stored
  page re-reads at most the lookback window.
- Bigin's support for ``If-Modified-Since`` is undocumented. The first incremental read detects it:
  if the first page holds records older than the header, the header was ignored, and the reader falls
  back to ``sort_order=desc`` and stops at the watermark; the finding is kept in the cursor. In that
  mode the watermark only moves when the scan reaches it or the end.
- Bigin lists only approved records unless asked (``approved``, api-notes §6.2). Records awaiting
  approval are people too, so Bigin is read with ``approved=both`` and ``$approval_state``; the push
  planner never writes to a record that is not approved.
- Deletions come from ``/{module}/deleted`` (with ``If-Modified-Since``) as pages with
  ``deleted_ids``. Zoho keeps its entries 60 days (recycle bin) or 120 days (permanent deletions,
  v7 get-deleted-records), so a cursor whose deletion watermark is older than that cannot trust the
  feed (``ZohoCursor.feed_outlived``); ``read_full`` is the complete read that finds deletions
  instead. Bigin documents no feed at all: any answer that is not a list (404, a 400 reading
  ``deleted`` as a record id, 204) means "no feed", and its deletions come from periodic full reads.

Writes
- ``update`` (``PUT /{module}``) and ``upsert`` (``POST /{module}/upsert`` with
  ``duplicate_check_fields`` in the body, NangoHQ/integration-templates#488), at most 100 records per
  call. A 2xx can hide failed records (207 is mixed), so every record's own result is returned.
  An upsert is repeated after a lost answer only when every record carries a value of a
  duplicate-check field: a record without one is inserted, and inserted again by the repeat, so such
  a call fails ``AmbiguousWriteError`` instead, like any create whose outcome is unknown.
- ``If-Unmodified-Since`` protects records changed since they were read. Zoho refuses such a record
  with ``412`` ``ALREADY_MODIFIED`` (api-notes §5.7; the legacy ``RECORD_MODIFIED`` is read the same):
  a conflict, never retried as such. Whether it answers the refused records inside ``data[]`` or
  refuses the whole call is undocumented; a whole call refused is sorted out by reading the records
  back by id (``GET /{module}?ids=``) and sending the unchanged ones again with the same condition,
  so nothing is overwritten and every good record is still written (two requests more).
- A refusal of a write the HTTP layer repeated after a lost answer may be our own earlier attempt
  having landed: refused records are read back, and those holding what we sent are applied.
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any, Self

import httpx

from connectors.errors import FatalError
from connectors.http import HttpClient, describe_error, repeated_after_lost_answer
from connectors.paging import LoopGuard, Page
from connectors.times import instant_or_none, parse_instant, to_iso, utc_now
from connectors.writes import ALREADY_MODIFIED, CONFLICT_CODES, WriteResult

PER_PAGE = 200
DISCRETE_PAGE_LIMIT = 2000
"""Records reachable with ``page``; past it only ``page_token`` works (Zoho Kaizen #60)."""
MAX_WRITE_BATCH = 100
MAX_FIELDS = 50
EXPIRED_VALUE = "EXPIRED_VALUE"
"""A page token past its 24 hours (v7 get-records error table: "The token given has expired")."""
CHAIN_LIMIT = "PAGINATION_LIMIT_EXCEEDED"
"""A token chain past the records one chain may list (100,000; v7 get-records error table)."""
DELETED_FEED_RETENTION = timedelta(days=60)
"""``/deleted`` keeps recycle-bin entries 60 days and permanent ones 120 (v7 get-deleted-records);
the shorter bounds how far back the feed can be trusted."""
_FEED_MARGIN = timedelta(days=1)
"""Trust the feed a day less, so a clock difference or a long run never straddles the edge."""
_MAX_RESTARTS = 3
_SECOND = timedelta(seconds=1)
_RETRIABLE_RECORD_CODES = frozenset({"INTERNAL_ERROR", "TOO_MANY_REQUESTS"})
_CONFLICT_ROUNDS = 3
"""Whole-call refusals one write sorts out before calling the records still refused conflicts (a
record edited between our read-back and our resend refuses the call again)."""

_COMMON = (
    "First_Name",
    "Last_Name",
    "Full_Name",
    "Email",
    "Phone",
    "Mobile",
    "Owner",
    "Tag",
    "Email_Opt_Out",
    "Description",
    "Created_Time",
    "Modified_Time",
    "Created_By",
    "Modified_By",
)
# When and how a CRM record was unsubscribed (api-notes §5.5): the time an email opt-out was made.
_CONSENT = ("Unsubscribed_Time", "Unsubscribed_Mode")
LEAD_FIELDS: tuple[str, ...] = (
    *_COMMON,
    *_CONSENT,
    "Salutation",
    "Secondary_Email",
    "Fax",
    "Company",
    "Designation",
    "Website",
    "Lead_Source",
    "Lead_Status",
    "Industry",
    "Street",
    "City",
    "State",
    "Zip_Code",
    "Country",
    "Last_Activity_Time",
)
CRM_CONTACT_FIELDS: tuple[str, ...] = (
    *_COMMON,
    *_CONSENT,
    "Salutation",
    "Secondary_Email",
    "Home_Phone",
    "Other_Phone",
    "Fax",
    "Account_Name",
    "Title",
    "Department",
    "Lead_Source",
    "Date_of_Birth",
    "Mailing_Street",
    "Mailing_City",
    "Mailing_State",
    "Mailing_Zip",
    "Mailing_Country",
    "Last_Activity_Time",
)
BIGIN_CONTACT_FIELDS: tuple[str, ...] = (
    *_COMMON,
    "Home_Phone",
    "Account_Name",
    "Title",
    "Mailing_Street",
    "Mailing_City",
    "Mailing_State",
    "Mailing_Zip",
    "Mailing_Country",
    # Asked for by name, as NangoHQ/integration-templates' Bigin syncs do: with ``approved=both`` it
    # tells which records await approval.
    "$approval_state",
)


@dataclass(frozen=True)
class ZohoProduct:
    source: str
    prefix: str
    modules: Mapping[str, tuple[str, ...]]
    """Module API name -> the fields read from it."""
    list_params: Mapping[str, str]
    """Sent with every list request of the product."""
    documented_delete_feed: bool
    """Whether ``/{module}/deleted`` is documented; without it any answer but a list means "no feed"."""


def with_extra_fields(product: ZohoProduct, extra: Mapping[str, Sequence[str]]) -> ZohoProduct:
    """The product reading ``extra`` fields too (module -> API names), such as the account's custom
    fields a mappings file reads; list calls name every field they want (api-notes §5.1)."""
    modules = {
        module: tuple(dict.fromkeys((*names, *extra.get(module, ()))))
        for module, names in product.modules.items()
    }
    for module, names in modules.items():
        if len(names) > MAX_FIELDS:
            raise ValueError(f"{module}: Zoho accepts at most {MAX_FIELDS} fields, got {len(names)}")
    return replace(product, modules=modules)


CRM = ZohoProduct(
    "zoho_crm",
    "/crm/v8",
    {"Leads": LEAD_FIELDS, "Contacts": CRM_CONTACT_FIELDS},
    list_params={},
    documented_delete_feed=True,
)
BIGIN = ZohoProduct(
    "zoho_bigin",
    "/bigin/v2",
    {"Contacts": BIGIN_CONTACT_FIELDS},
    list_params={"approved": "both"},
    documented_delete_feed=False,
)


@dataclass(frozen=True)
class ZohoCursor:
    """Where a module's incremental read stands (all instants ISO 8601 UTC)."""

    modified_since: str | None = None
    """Largest ``Modified_Time`` among the rows stored."""
    deleted_since: str | None = None
    """Deletions up to this instant have been read."""
    deleted_feed: bool | None = None
    """False once ``/{module}/deleted`` answered that it does not exist; None until it answered a list."""
    honours_if_modified_since: bool | None = None
    """Whether the product filters by ``If-Modified-Since``; None until detected."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})

    def feed_outlived(self, now: datetime) -> bool:
        """Whether ``/deleted`` may already have dropped deletions made since ``deleted_since``, so
        only a complete read (``ZohoClient.read_full``) can find them."""
        if self.deleted_since is None:
            return False
        return now - parse_instant(self.deleted_since) >= DELETED_FEED_RETENTION - _FEED_MARGIN


class _PageTokenExpiredError(Exception):
    """Internal signal: the chain's page token is no longer valid."""


class _ChainLimitError(Exception):
    """Internal signal: the chain has listed as many records as one chain may."""


class _HeaderIgnoredError(Exception):
    """Internal signal: the first page holds records older than ``If-Modified-Since``."""


def _modified(record: Mapping[str, Any]) -> datetime | None:
    return instant_or_none(record.get("Modified_Time"))


def _times(records: Sequence[Mapping[str, Any]]) -> list[datetime]:
    return [t for t in map(_modified, records) if t is not None]


def _latest(current: datetime | None, records: Sequence[Mapping[str, Any]]) -> datetime | None:
    times = _times(records)
    if current is not None:
        times.append(current)
    return max(times, default=None)


class _Progress:
    """What one read has yielded, so a new chain's records already yielded are skipped.

    A record counts as yielded with its ``Modified_Time``: changed since, it is new again. An
    ascending read keeps only the newest second and the one before (``recent_only``), since its next
    chain starts a second before the newest; a descending one starts again from the top and keeps all.
    """

    def __init__(self, *, recent_only: bool) -> None:
        self.newest: datetime | None = None
        self._recent_only = recent_only
        self._yielded: dict[tuple[str, str], datetime | None] = {}
        self._reported: set[datetime] = set()

    def unseen(self, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in records if _yield_key(r) not in self._yielded]

    def add(self, records: Sequence[Mapping[str, Any]]) -> None:
        before = self.newest
        self.newest = _latest(self.newest, records)
        for record in records:
            self._yielded[_yield_key(record)] = _modified(record)
        if self._recent_only and self.newest is not None and self.newest != before:
            floor = self.newest - _SECOND
            self._yielded = {k: t for k, t in self._yielded.items() if t is None or t >= floor}

    def restart_from(self, start: datetime | None) -> datetime | None:
        return self.newest - _SECOND if self.newest is not None else start

    def count_at(self, moment: datetime) -> int:
        return sum(1 for t in self._yielded.values() if t == moment)

    def report(self, moment: datetime) -> bool:
        """True the first time a crowded second is reported."""
        if moment in self._reported:
            return False
        self._reported.add(moment)
        return True


def _yield_key(record: Mapping[str, Any]) -> tuple[str, str]:
    return str(record.get("id")), str(record.get("Modified_Time"))


class ZohoClient:
    """Reads and writes one Zoho product's records through its Maton route."""

    def __init__(
        self,
        http: HttpClient,
        product: ZohoProduct,
        *,
        lookback: timedelta = timedelta(minutes=5),
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        for module, names in product.modules.items():
            if len(names) > MAX_FIELDS:
                raise ValueError(f"{module}: Zoho accepts at most {MAX_FIELDS} fields, got {len(names)}")
        self.http = http
        self.product = product
        self.lookback = lookback
        self._now = now
        self._source = product.source

    def __repr__(self) -> str:
        return f"ZohoClient({self.product.source}, {self.http.base_url!r})"

    # ----------------------------------------------------------------- account

    def org_country(self) -> str | None:
        """``country_code`` of the org (the default phone region for this source)."""
        path = f"{self.product.prefix}/org"
        response = self.http.request("GET", path)
        body = self.http.decode(response, "GET", path)
        orgs = body.get("org") if isinstance(body, dict) else None
        if isinstance(orgs, list) and orgs and isinstance(orgs[0], dict):
            code = orgs[0].get("country_code")
            return str(code) if code else None
        return None

    def current_user_id(self) -> str | None:
        """The id of the user this connection acts as (``GET /users?type=CurrentUser``, Zoho CRM v8
        and Bigin v2 users API): every write we make shows it as the record's ``Modified_By``, so a
        record last modified by anyone else was edited by someone after us. None when the answer
        names no user; a refusal (say, a connection without the users scope) raises."""
        path = f"{self.product.prefix}/users"
        response = self.http.request("GET", path, params={"type": "CurrentUser"})
        body = self.http.decode(response, "GET", path) if response.content else None
        users = body.get("users") if isinstance(body, dict) else None
        if isinstance(users, list) and users and isinstance(users[0], dict) and users[0].get("id"):
            return str(users[0]["id"])
        return None

    def layouts(self, module: str) -> list[dict[str, Any]]:
        """A module's layouts (``GET /settings/layouts?module=``, Zoho CRM v8 layouts metadata), as
        the answer lists them: each with ``status`` and ``sections[].fields[]`` whose ``required`` says
        what an admin made mandatory there, which the API enforces on create too. Empty for a 204 or
        an answer without a list; a refusal (say, a connection without the settings scope) raises."""
        path = f"{self.product.prefix}/settings/layouts"
        response = self.http.request("GET", path, params={"module": module})
        body = self.http.decode(response, "GET", path) if response.content else None
        found = body.get("layouts") if isinstance(body, dict) else None
        return [item for item in found if isinstance(item, dict)] if isinstance(found, list) else []

    # ------------------------------------------------------------------- reads

    def read_leads(
        self, since: ZohoCursor | None = None, *, lookback: timedelta | None = None
    ) -> Iterator[Page[ZohoCursor]]:
        """Leads changed since the cursor (all of them without one), converted ones included."""
        return self.read("Leads", since, lookback=lookback)

    def read_contacts(
        self, since: ZohoCursor | None = None, *, lookback: timedelta | None = None
    ) -> Iterator[Page[ZohoCursor]]:
        return self.read("Contacts", since, lookback=lookback)

    def read_leads_window(self, start: datetime, end: datetime) -> Iterator[Page[ZohoCursor]]:
        """Leads modified in [start, end], for backfills; the pages' cursors are not for storing."""
        return self.read_window("Leads", start, end)

    def read_contacts_window(self, start: datetime, end: datetime) -> Iterator[Page[ZohoCursor]]:
        return self.read_window("Contacts", start, end)

    def read_leads_full(self, since: ZohoCursor | None = None) -> Iterator[Page[ZohoCursor]]:
        return self.read_full("Leads", since)

    def read_contacts_full(self, since: ZohoCursor | None = None) -> Iterator[Page[ZohoCursor]]:
        return self.read_full("Contacts", since)

    def read(
        self, module: str, since: ZohoCursor | None = None, *, lookback: timedelta | None = None
    ) -> Iterator[Page[ZohoCursor]]:
        """Records modified since the cursor, then the deletions since the cursor."""
        self._check_module(module)
        cursor = since or ZohoCursor()
        back = self._back(lookback)
        started = self._now()
        watermark = parse_instant(cursor.modified_since) if cursor.modified_since else None
        start = watermark - back if watermark else None
        for page in self._read_modified(module, cursor, start, None):
            cursor = page.cursor
            yield page
        if since is None or cursor.deleted_since is None:
            # A first full read holds no deleted records; deletions count from when it started.
            cursor = replace(cursor, deleted_since=to_iso(started - back))
            yield Page([], cursor)
            return
        yield from self._read_deleted(module, cursor, back, started)

    def modified_since(
        self, module: str, since: ZohoCursor | None, *, after: datetime | None = None
    ) -> list[dict[str, Any]]:
        """The module's records modified since ``after``, or else since the extract's cursor
        (lookback included), as the next extract will read them, without the deletion feed; every
        record without either. Reverse sync asks just before its first create: the create is an
        upsert on Email, which would write our fields over a record someone made with it meanwhile."""
        self._check_module(module)
        cursor = since or ZohoCursor()
        watermark = parse_instant(cursor.modified_since) if cursor.modified_since else None
        start = after if after is not None else watermark - self._back(None) if watermark else None
        return [
            record for page in self._read_modified(module, cursor, start, None) for record in page.records
        ]

    def read_full(self, module: str, since: ZohoCursor | None = None) -> Iterator[Page[ZohoCursor]]:
        """Every record, oldest first: a complete read whose end proves absence (the caller marks
        what it did not see as deleted). Deletions up to its start are then known, so the last page
        moves the deletion watermark there, whatever the feed still holds."""
        self._check_module(module)
        cursor = since or ZohoCursor()
        started = self._now()
        for page in self._read_ascending(module, cursor, None, None):
            cursor = page.cursor
            yield page
        yield Page([], replace(cursor, deleted_since=to_iso(started - self._back(None))))

    def read_window(self, module: str, start: datetime, end: datetime) -> Iterator[Page[ZohoCursor]]:
        self._check_module(module)
        yield from self._read_modified(module, ZohoCursor(), start, end)

    def _check_module(self, module: str) -> None:
        if module not in self.product.modules:
            known = sorted(self.product.modules)
            raise ValueError(f"{self._source} has no {module!r} stream; known: {known}")

    def _back(self, lookback: timedelta | None) -> timedelta:
        """How far before a watermark a read starts: the lookback, and at least a second, so the
        watermark's own second is read whether ``If-Modified-Since`` keeps it or not."""
        return max(self.lookback if lookback is None else lookback, _SECOND)

    def _read_modified(
        self, module: str, cursor: ZohoCursor, start: datetime | None, end: datetime | None
    ) -> Iterator[Page[ZohoCursor]]:
        if start is not None and cursor.honours_if_modified_since is False:
            yield from self._read_descending(module, cursor, start, end)
            return
        try:
            yield from self._read_ascending(module, cursor, start, end)
        except _HeaderIgnoredError:
            self.http.log.info(
                "%s %s ignores If-Modified-Since; reading newest first down to the watermark",
                self._source,
                module,
            )
            assert start is not None
            yield from self._read_descending(
                module, replace(cursor, honours_if_modified_since=False), start, end
            )

    def _read_ascending(
        self, module: str, cursor: ZohoCursor, start: datetime | None, end: datetime | None
    ) -> Iterator[Page[ZohoCursor]]:
        """Oldest first from ``start``, in as many chains as it takes (see ``_next_slice``)."""
        watermark = parse_instant(cursor.modified_since) if cursor.modified_since else None
        read = _Progress(recent_only=True)
        header = start
        restarts = 0
        first_page = True
        sliced = False
        while True:
            fresh = 0
            returned: list[datetime] = []
            ignored = False
            try:
                for page_records in self._chain(module, header, "asc"):
                    listed = page_records
                    if header is not None and any(t < header for t in _times(page_records)):
                        # Evidence for the header: a product that ignores it returns older records.
                        if first_page:
                            raise _HeaderIgnoredError
                        # A new chain of such a product starts from the beginning again; what lies
                        # before the header was read by the earlier chains. After a chain limit it
                        # would only list those again, up to the same limit.
                        ignored = True
                        if sliced:
                            break
                        listed = [r for r in page_records if (t := _modified(r)) is None or t >= header]
                    if first_page and start is not None:
                        cursor = replace(cursor, honours_if_modified_since=True)
                    first_page = False
                    returned += _times(listed)
                    records = read.unseen(listed)
                    done = False
                    if end is not None:
                        kept = [r for r in records if (t := _modified(r)) is None or t <= end]
                        done = len(kept) < len(records)
                        records = kept
                    fresh += len(records)
                    read.add(records)
                    watermark = _latest(watermark, records)
                    cursor = replace(cursor, modified_since=to_iso(watermark) if watermark else None)
                    yield Page(records, cursor)
                    if done:
                        return
                if not (ignored and sliced):
                    return
            except _PageTokenExpiredError:
                restarts = self._next_restart(module, restarts, progressed=bool(fresh))
                header = read.restart_from(start)
                self.http.log.warning(
                    "%s %s page token expired; restarting from %s",
                    self._source,
                    module,
                    to_iso(header) if header else "the beginning",
                )
                continue
            except _ChainLimitError:
                if not ignored:
                    header = self._next_slice(module, header, read, fresh, returned)
                    sliced = True
                    continue
            assert header is not None
            yield from self._newest_first_after_limit(module, cursor, header, end)
            return

    def _newest_first_after_limit(
        self, module: str, cursor: ZohoCursor, header: datetime, end: datetime | None
    ) -> Iterator[Page[ZohoCursor]]:
        """The rest of a read that went past a chain's records on a product ignoring If-Modified-Since
        (Bigin, where the vendor does not document the header): the chains so far listed the oldest
        records, every new chain would list them again, so what is newer than ``header`` is read
        newest first down to it. A first sync of a Bigin module of up to twice a chain's records
        completes in one run instead of failing at the first 100,000."""
        self.http.log.info(
            "%s %s ignores If-Modified-Since and went past the records one page-token chain may list; "
            "reading the rest newest first down to %s",
            self._source,
            module,
            to_iso(header),
        )
        yield from self._read_descending(
            module, replace(cursor, honours_if_modified_since=False), header, end
        )

    def _next_slice(
        self,
        module: str,
        header: datetime | None,
        read: "_Progress",
        fresh: int,
        returned: Sequence[datetime],
    ) -> datetime:
        """Where the chain after one that hit the chain limit starts.

        Normally a second before the newest ``Modified_Time`` read, the records already yielded being
        skipped. A chain that yielded nothing new listed only records already read; when they all
        share the newest second, more records share it than a chain can list, and those of that
        second past the ones read cannot be reached through ``If-Modified-Since`` at all. That is
        said in one error line (they are read when they change again), and the next chain starts at
        that second, then past it. The header moves forward at every such step, so the read cannot
        loop, whichever way Zoho treats the boundary.
        """
        newest = read.newest
        if newest is None:
            raise self._unsliceable(module)
        if fresh or header is None or header < newest - _SECOND:
            following = newest - _SECOND
            self.http.log.info(
                "%s %s went past the records one page-token chain may list; continuing from %s",
                self._source,
                module,
                to_iso(following),
            )
            return following
        if returned and all(t == newest for t in returned) and read.report(newest):
            self.http.log.error(
                "%s %s: more records share Modified_Time %s than one page-token chain may list; "
                "the %d read are kept, the rest of that second is skipped until those records change "
                "again (a full refresh meets the same limit)",
                self._source,
                module,
                to_iso(newest),
                read.count_at(newest),
            )
        return newest if header < newest else newest + _SECOND

    def _next_restart(self, module: str, restarts: int, *, progressed: bool) -> int:
        """Count a restart after an expired page token; a read that keeps expiring without reading
        anything new is given up rather than retried for ever."""
        restarts = 1 if progressed else restarts + 1
        if restarts > _MAX_RESTARTS:
            raise FatalError(
                self._source,
                "GET",
                f"{self.product.prefix}/{module}",
                code=EXPIRED_VALUE,
                message=f"page token expired {restarts} times without progress",
            ) from None
        return restarts

    def _unsliceable(self, module: str) -> FatalError:
        return FatalError(
            self._source,
            "GET",
            f"{self.product.prefix}/{module}",
            code=CHAIN_LIMIT,
            message="more records than one page-token chain may list, and If-Modified-Since is ignored, "
            "so the list cannot be read in Modified_Time slices",
        )

    def _read_descending(
        self, module: str, cursor: ZohoCursor, start: datetime, end: datetime | None
    ) -> Iterator[Page[ZohoCursor]]:
        """Newest first, down to ``start``.

        The pages carry the old cursor: until the scan reaches ``start`` nothing older is known to be
        read. A last, empty page carries the new watermark. An expired token starts the scan again
        from the newest record, skipping what it yielded; the chain limit cannot be sliced here, so
        more than a chain's records newer than ``start`` fail the read (what it read stays stored;
        the next run's scan meets the same limit).
        """
        newest = parse_instant(cursor.modified_since) if cursor.modified_since else None
        read = _Progress(recent_only=False)
        restarts = 0
        while True:
            fresh = 0
            try:
                for records in self._chain(module, None, "desc"):
                    kept = [
                        r
                        for r in read.unseen(records)
                        if (t := _modified(r)) is None or (t >= start and (end is None or t <= end))
                    ]
                    fresh += len(kept)
                    read.add(kept)
                    newest = _latest(newest, kept)
                    yield Page(kept, cursor)
                    if any(t < start for t in map(_modified, records) if t is not None):
                        break
                break
            except _PageTokenExpiredError:
                restarts = self._next_restart(module, restarts, progressed=bool(fresh))
                self.http.log.warning(
                    "%s %s page token expired; reading newest first again", self._source, module
                )
            except _ChainLimitError:
                raise self._unsliceable(module) from None
        yield Page([], replace(cursor, modified_since=to_iso(newest) if newest else cursor.modified_since))

    def _chain(
        self, module: str, modified_since: datetime | None, order: str
    ) -> Iterator[list[dict[str, Any]]]:
        """One pagination chain: ``page`` 1, then ``page_token`` whenever the answer gives one
        (``page`` + 1 otherwise, within the first 2,000 records); yields each page's records."""
        template = f"{self.product.prefix}/{{module}}"
        params: dict[str, Any] = {
            "fields": ",".join(self.product.modules[module]),
            "per_page": PER_PAGE,
            "sort_by": "Modified_Time",
            "sort_order": order,
            **self.product.list_params,
        }
        if module == "Leads":
            params["converted"] = "both"
        headers = {"If-Modified-Since": to_iso(modified_since)} if modified_since else {}
        guard = LoopGuard(self._source, "GET", template.format(module=module))
        page, token = 1, None
        while True:
            guard.check(f"token:{token}" if token else f"page:{page}")
            query = {**params, **({"page_token": token} if token else {"page": page})}
            response = self.http.request(
                "GET",
                template,
                path_params={"module": module},
                params=query,
                headers=headers,
                accept=(304, 400),
            )
            if response.status_code in (204, 304):
                return
            if response.status_code == 400:
                self._raise_chain_error(response, module, token)
            records, info = self._listing(response, template.format(module=module))
            yield records
            if not info.get("more_records") or not records:
                return
            token = info.get("next_page_token") or None
            if token is None and page * PER_PAGE >= DISCRETE_PAGE_LIMIT:
                raise FatalError(
                    self._source,
                    "GET",
                    template.format(module=module),
                    code="NO_PAGE_TOKEN",
                    message=f"more records after {page * PER_PAGE} but no next_page_token",
                )
            page += 1

    def _listing(self, response: httpx.Response, path: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """A list answer's records and ``info``.

        Zoho answers an empty result with 204, never with a 200 lacking ``data``; a 200 without a
        ``data`` array is an error envelope or a foreign answer (a proxy's), and reading it as "no
        records" would end the stream early and quietly move nothing. So it is an error.
        """
        body = self.http.decode(response, "GET", path)
        data = body.get("data") if isinstance(body, dict) else None
        info = (body.get("info") or {}) if isinstance(body, dict) else None
        if not isinstance(data, list) or not isinstance(info, dict):
            raise self.http.unexpected(response, "GET", path, "expected a data array and an info object")
        return [r for r in data if isinstance(r, dict)], info

    def _raise_chain_error(self, response: httpx.Response, module: str, token: str | None) -> None:
        """An expired token or the chain limit means "start a new chain"; any other 400 is fatal.

        Known by Zoho's documented codes only: a message may be reworded or translated, and a token
        refused for another reason will be refused again.
        """
        code, message = describe_error(response)
        if token and code == EXPIRED_VALUE:
            raise _PageTokenExpiredError
        if code == CHAIN_LIMIT:
            raise _ChainLimitError
        raise FatalError(
            self._source,
            "GET",
            f"{self.product.prefix}/{module}",
            status=400,
            code=code,
            message=self.http.redact(message),
        )

    def _read_deleted(
        self, module: str, cursor: ZohoCursor, back: timedelta, started: datetime
    ) -> Iterator[Page[ZohoCursor]]:
        """Deleted ids since the cursor; read to its end, the feed moves the deletion watermark to
        the newer of its newest entry and the start of this read (less the lookback)."""
        if cursor.deleted_feed is False:
            return
        template = f"{self.product.prefix}/{{module}}/deleted"
        path = template.format(module=module)
        since = parse_instant(cursor.deleted_since) - back if cursor.deleted_since else None
        headers = {"If-Modified-Since": to_iso(since)} if since else {}
        guard = LoopGuard(self._source, "GET", path)
        newest = max(parse_instant(cursor.deleted_since), started - back) if cursor.deleted_since else None
        documented = self.product.documented_delete_feed
        page = 1
        while True:
            guard.check(page)
            response = self.http.request(
                "GET",
                template,
                path_params={"module": module},
                params={"type": "all", "page": page, "per_page": PER_PAGE},
                headers=headers,
                accept=(304, 404) if documented else (304, 400, 404),
            )
            if response.status_code in (400, 404):
                self.http.log.info(
                    "%s %s has no delete feed (%d); not asking again, deletions come from full reads",
                    self._source,
                    module,
                    response.status_code,
                )
                yield Page([], replace(cursor, deleted_feed=False))
                return
            items: list[dict[str, Any]] = []
            info: dict[str, Any] = {}
            if response.status_code not in (204, 304):
                items, info = self._listing(response, path)
            ids = [str(i["id"]) for i in items if i.get("id") is not None]
            for item in items:
                moment = instant_or_none(item.get("deleted_time"))
                if moment is not None and (newest is None or moment > newest):
                    newest = moment
            last = not info.get("more_records") or not items
            # Without a documented feed only a list proves there is one.
            page_cursor = replace(cursor, deleted_feed=True) if documented or items else cursor
            if last:
                page_cursor = replace(page_cursor, deleted_since=to_iso(newest) if newest else None)
            yield Page([], page_cursor, deleted_ids=ids)
            if last:
                return
            page += 1

    # ------------------------------------------------------------------ writes

    def update(
        self,
        module: str,
        records: Sequence[Mapping[str, Any]],
        *,
        if_unmodified_since: datetime | None = None,
        trigger: Sequence[str] | None = None,
    ) -> list[WriteResult]:
        """``PUT /{module}``; every record carries its ``id``. Results are in input order."""
        if any(not r.get("id") for r in records):
            raise ValueError("every record of an update needs its 'id'")
        return self._write(
            "PUT",
            module=module,
            records=records,
            extra={},
            if_unmodified_since=if_unmodified_since,
            trigger=trigger,
        )

    def upsert(
        self,
        module: str,
        records: Sequence[Mapping[str, Any]],
        *,
        duplicate_check_fields: Sequence[str] = ("Email",),
        if_unmodified_since: datetime | None = None,
        trigger: Sequence[str] | None = None,
    ) -> list[WriteResult]:
        """``POST /{module}/upsert`` matching on ``duplicate_check_fields``. Results are in input order."""
        extra = {"duplicate_check_fields": list(duplicate_check_fields)}
        return self._write(
            "POST",
            module=module,
            records=records,
            extra=extra,
            if_unmodified_since=if_unmodified_since,
            trigger=trigger,
        )

    def delete(self, module: str, ids: Sequence[str]) -> list[WriteResult]:
        """``DELETE /{module}?ids=`` (to the recycle bin), at most 100 ids; results in input order."""
        if len(ids) > MAX_WRITE_BATCH:
            raise ValueError(f"Zoho takes at most {MAX_WRITE_BATCH} records per call, got {len(ids)}")
        if not ids:
            return []
        template = f"{self.product.prefix}/{{module}}"
        path = template.format(module=module)
        response = self.http.request(
            "DELETE",
            template,
            path_params={"module": module},
            params={"ids": ",".join(ids)},
            accept=(400,),
        )
        payload = self.http.decode(response, "DELETE", path) if response.content else None
        items = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(items, list) or len(items) != len(ids):
            code, message = describe_error(response)
            raise FatalError(
                self._source,
                "DELETE",
                path,
                status=response.status_code,
                code=code or "UNEXPECTED_RESPONSE",
                message=self.http.redact(message) or f"expected {len(ids)} results",
            )
        return [_result(item, {"id": record_id}) for item, record_id in zip(items, ids, strict=True)]

    def _write(
        self,
        method: str,
        *,
        module: str,
        records: Sequence[Mapping[str, Any]],
        extra: Mapping[str, Any],
        if_unmodified_since: datetime | None,
        trigger: Sequence[str] | None,
    ) -> list[WriteResult]:
        if len(records) > MAX_WRITE_BATCH:
            raise ValueError(f"Zoho takes at most {MAX_WRITE_BATCH} records per call, got {len(records)}")
        if not records:
            return []
        call = _WriteCall(method, module, extra, if_unmodified_since, trigger)
        answer = self._send_write(call, records)
        if if_unmodified_since is None:
            return (
                answer.results
                if answer.results is not None
                else [_refused(r, "refused with 412") for r in records]
            )
        return self._settle(call, records, answer, if_unmodified_since)

    def _send_write(self, call: "_WriteCall", records: Sequence[Mapping[str, Any]]) -> "_WriteAnswer":
        """One write call. ``results`` is None when Zoho refused the whole call with 412 and no
        per-record answer (one of the two shapes ``If-Unmodified-Since`` refusals may take)."""
        template = f"{self.product.prefix}/{{module}}" + ("/upsert" if call.method == "POST" else "")
        path = template.format(module=call.module)
        body: dict[str, Any] = {"data": [dict(r) for r in records], **call.extra}
        if call.trigger is not None:
            body["trigger"] = list(call.trigger)
        since = call.if_unmodified_since
        headers = {"If-Unmodified-Since": to_iso(since)} if since else {}
        response = self.http.request(
            call.method,
            template,
            path_params={"module": call.module},
            json_body=body,
            headers=headers,
            idempotent=_repeatable(call, records),
            accept=(400, 412),
        )
        repeated = repeated_after_lost_answer(response)
        payload: Any = None
        if response.content:
            payload = self.http.decode(response, call.method, path)
        items = payload.get("data") if isinstance(payload, dict) else None
        if isinstance(items, list) and len(items) == len(records):
            results = [_result(item, record) for item, record in zip(items, records, strict=True)]
            return _WriteAnswer(results, repeated)
        code, message = describe_error(response)
        if response.status_code == 412 and (code in CONFLICT_CODES or code is None):
            return _WriteAnswer(None, repeated)
        raise FatalError(
            self._source,
            call.method,
            path,
            status=response.status_code,
            code=code or "UNEXPECTED_RESPONSE",
            message=self.http.redact(message) or f"expected {len(records)} results",
        )

    def _settle(
        self,
        call: "_WriteCall",
        records: Sequence[Mapping[str, Any]],
        answer: "_WriteAnswer",
        since: datetime,
    ) -> list[WriteResult]:
        """Every record's own outcome of a conditional write, whichever shape Zoho refuses in.

        Per record: refused records are conflicts and the others are applied, as answered. A whole
        call refused (412, nothing written): the records are read back by id, those modified after
        ``since`` are conflicts, and the rest are sent again with the same condition, so a good record
        is still written now; that costs two requests more whatever the number of conflicts. When the
        answer came from a repeat after a lost answer, a refused record that holds what we sent was
        written by our own earlier attempt (which moved its ``Modified_Time``): it is applied, not a
        conflict.
        """
        final: dict[int, WriteResult] = {}
        pending = list(range(len(records)))
        rounds = 0
        while True:
            if answer.results is not None:
                final.update(zip(pending, answer.results, strict=True))
                if answer.repeated:
                    refused = [i for i, r in zip(pending, answer.results, strict=True) if r.conflict]
                    final.update(self._ours_after_all(call.module, records, refused))
                break
            rounds += 1
            resend = self._refused_call(
                call.module, records, pending, since=since, repeated=answer.repeated, final=final
            )
            if not resend:
                break
            if rounds > _CONFLICT_ROUNDS:
                final.update(
                    (i, _refused(records[i], f"refused {rounds} times in a row; changed while being written"))
                    for i in resend
                )
                break
            pending = resend
            answer = self._send_write(call, [records[i] for i in pending])
        return [final[i] for i in range(len(records))]

    def _refused_call(
        self,
        module: str,
        records: Sequence[Mapping[str, Any]],
        pending: list[int],
        *,
        since: datetime,
        repeated: bool,
        final: dict[int, WriteResult],
    ) -> list[int]:
        """Sort out a call refused as a whole: record the refused records' outcomes in ``final`` and
        return the records to send again. Nothing of the call was written, so nothing is lost."""
        named = [i for i in pending if records[i].get("id")]
        # A record without an id (an upsert) cannot be read back; it is left for the next run.
        final.update(
            (i, _refused(records[i], "refused with the rest of its call")) for i in pending if i not in named
        )
        if not named:
            return []
        if len(pending) == 1 and not repeated:  # the call's only record is the refused one
            final[named[0]] = _refused(records[named[0]], "changed at Zoho since it was read")
            return []
        current = self._read_back(module, [records[i] for i in named])
        resend = []
        for i in named:
            record_id = str(records[i]["id"])
            now = current.get(record_id)
            modified = _modified(now) if now is not None else None
            if now is not None and repeated and _holds(now, records[i]):
                final[i] = _applied(record_id, now)
            elif modified is not None and modified > since:
                final[i] = _refused(records[i], f"changed at Zoho since it was read ({to_iso(modified)})")
            else:
                resend.append(i)
        self.http.log.info(
            "%s %s: a write was refused as a whole by If-Unmodified-Since; %d of %d records changed "
            "since they were read, %d sent again",
            self._source,
            module,
            len(pending) - len(resend),
            len(pending),
            len(resend),
        )
        return resend

    def _ours_after_all(
        self, module: str, records: Sequence[Mapping[str, Any]], refused: list[int]
    ) -> dict[int, WriteResult]:
        """Refused records of a repeated write that hold what we sent: our earlier attempt landed."""
        named = [i for i in refused if records[i].get("id")]
        if not named:
            return {}
        current = self._read_back(module, [records[i] for i in named])
        landed = {
            i: _applied(str(records[i]["id"]), now)
            for i in named
            if (now := current.get(str(records[i]["id"]))) is not None and _holds(now, records[i])
        }
        if landed:
            self.http.log.info(
                "%s %s: %d records refused on a repeated write already hold what we sent; an earlier "
                "attempt whose answer was lost wrote them",
                self._source,
                module,
                len(landed),
            )
        return landed

    def _read_back(self, module: str, records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        """The records as Zoho holds them now, by id (``GET /{module}?ids=``, v8 spec), with
        ``Modified_Time`` and the fields written; at most 50 fields per call. A record not found is
        absent. An answer holding ids not asked for means the product ignores ``ids``: an error."""
        ids = list(dict.fromkeys(str(r["id"]) for r in records))
        stamps = ("Modified_Time", "Modified_By")
        names = [*stamps, *sorted({k for r in records for k in r} - {"id", *stamps})]
        template = f"{self.product.prefix}/{{module}}"
        path = template.format(module=module)
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(names), MAX_FIELDS):
            params: dict[str, Any] = {
                "ids": ",".join(ids),
                "fields": ",".join(names[start : start + MAX_FIELDS]),
            }
            if module == "Leads":
                params["converted"] = "both"
            response = self.http.request("GET", template, path_params={"module": module}, params=params)
            if response.status_code in (204, 304):
                continue
            listed, _info = self._listing(response, path)
            foreign = {str(r.get("id")) for r in listed} - set(ids)
            if foreign:
                raise FatalError(
                    self._source,
                    "GET",
                    path,
                    status=response.status_code,
                    code="IDS_IGNORED",
                    message=f"asked for {len(ids)} records by id and got {len(foreign)} others",
                )
            for record in listed:
                found.setdefault(str(record["id"]), {}).update(record)
        return found


def _repeatable(call: "_WriteCall", records: Sequence[Mapping[str, Any]]) -> bool:
    """Whether sending the call twice leaves what sending it once does: an update always; an upsert
    when every record names a duplicate-check value, so a repeat finds the record the first made."""
    if call.method != "POST":
        return True
    checks = list(call.extra.get("duplicate_check_fields") or ())
    return bool(checks) and all(
        any(record.get(name) not in (None, "") for name in checks) for record in records
    )


@dataclass(frozen=True)
class _WriteCall:
    """What every call of one write shares (a refused call is sent again with the same condition)."""

    method: str
    module: str
    extra: Mapping[str, Any]
    if_unmodified_since: datetime | None
    trigger: Sequence[str] | None


@dataclass(frozen=True)
class _WriteAnswer:
    results: list[WriteResult] | None
    """Per record, in input order; None when the whole call was refused with 412."""
    repeated: bool
    """Got by repeating the request after an attempt that may have been applied."""


def _refused(record: Mapping[str, Any], message: str) -> WriteResult:
    return WriteResult(_str(record.get("id")), False, ALREADY_MODIFIED, message)


def _applied(record_id: str, now: Mapping[str, Any]) -> WriteResult:
    details = {
        "id": record_id,
        "Modified_Time": now.get("Modified_Time"),
        "Modified_By": now.get("Modified_By"),
    }
    return WriteResult(
        record_id,
        True,
        message="written by an earlier attempt whose answer was lost (read back)",
        details=details,
        record=dict(details),
    )


def _holds(current: Mapping[str, Any], sent: Mapping[str, Any]) -> bool:
    """Whether a record read back holds every value we sent (a lookup by its name)."""
    return all(_same(current.get(field), value) for field, value in sent.items() if field != "id")


def _same(held: Any, sent: Any) -> bool:
    if held in (None, "", []) or sent in (None, "", []):
        return held in (None, "", []) and sent in (None, "", [])
    if isinstance(held, dict) and "name" in held:
        held = held["name"]
        sent = sent.get("name") if isinstance(sent, dict) else sent
    if isinstance(held, str) and isinstance(sent, str):
        return held.strip() == sent.strip()
    return bool(held == sent)


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def _result(item: Any, record: Mapping[str, Any]) -> WriteResult:
    if not isinstance(item, dict):
        return WriteResult(_str(record.get("id")), False, "UNEXPECTED_RESPONSE", repr(item)[:200])
    raw = item.get("details")
    details: dict[str, Any] = raw if isinstance(raw, dict) else {}
    ok = str(item.get("status", "")).lower() == "success"
    code = _str(item.get("code"))
    message = str(item.get("message") or "")
    if not ok and details.get("api_name"):
        # "required field not found" alone does not say which: the ledger's line names the field.
        message = f"{message} ({details['api_name']})"
    return WriteResult(
        record_id=_str(details.get("id") or record.get("id")),
        ok=ok,
        code=code,
        message=message,
        retriable=not ok and code in _RETRIABLE_RECORD_CODES,
        details=dict(details),
        action=_str(item.get("action")),
        record=dict(details) if ok else {},
    )
