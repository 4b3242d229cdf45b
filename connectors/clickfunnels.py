"""ClickFunnels 2.0 contacts through Maton (``/clickfunnels/api/v2/...``).

Stream ``clickfunnels/contact``
- Workspaces come from the configuration, or from ``/teams`` then ``/teams/{id}/workspaces``; each id
  is read once (the Workspace API's own example lists one id twice).
- Lists are bare arrays of at most 20 records (fixed); the next page is ``after=<Pagination-Next>``
  (a keyset cursor that also follows the current sort). No page size or updated-since filter exists.
- Incremental reads sort by ``updated_at`` descending and stop at the watermark minus a lookback. As
  the newest rows come first, the pages carry the previous cursor until the scan reaches the watermark
  or the end; only then does a last, empty page carry the new watermark. A crash mid-scan therefore
  re-reads from the top, and loses nothing.
- The docs say ``after`` is "the next page in the current order", but not whether, with
  ``sort_property=updated_at``, it continues that order or only keeps ids above it. A page that breaks
  the order (a record newer than the previous page's last, or one read already) shows the latter;
  the scan then would skip or loop, so the client says so in one log line and reads the workspace
  whole in id order (where both readings agree) for the rest of its life (one run).
- ``read_contacts_full`` scans by ``id`` (the API's default order): the one way to learn which
  contacts were deleted, since the list has no delete signal (only a webhook has).
- The list hides anonymous and GDPR-redacted contacts by default.

Writes
- ``upsert_contact``: ``POST /workspaces/{id}/contacts/upsert`` matches on ``email_address``; it cannot
  clear a field (empty values are ignored), so repeating it is safe.
- ``update_contact``: ``PUT /contacts/{id}``; clears fields. ``tag_ids`` replaces every tag, so it is
  sent only when passed explicitly.
"""

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Self

from connectors.http import HttpClient
from connectors.paging import LoopGuard, Page
from connectors.times import instant_or_none, parse_instant, to_iso
from connectors.writes import WriteResult, write_one

PREFIX = "/api/v2"
PAGE_SIZE = 20


@dataclass(frozen=True)
class ClickFunnelsContactCursor:
    """Per workspace id, the largest ``updated_at`` stored (ISO 8601 UTC), and ``newest_at_start``: the
    newest ``updated_at`` on the first page of the last newest-first scan, read as the scan began.

    No record can be changed after the scan read it and carry an earlier ``updated_at`` than that
    (the vendor stamps a change with its present, which was past it then), so a reader of what
    changed since the extract (reverse sync's look before its writes) can start there, with no
    allowance for the clocks. The largest ``updated_at`` is no such bound: a scan in id order reads
    records changed while it ran. Scans in id order leave ``newest_at_start`` as it was."""

    updated_at: dict[str, str] = field(default_factory=dict)
    newest_at_start: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        started = {"newest_at_start": dict(self.newest_at_start)} if self.newest_at_start else {}
        return {"updated_at": dict(self.updated_at), **started}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            {str(k): str(v) for k, v in (data.get("updated_at") or {}).items()},
            {str(k): str(v) for k, v in (data.get("newest_at_start") or {}).items()},
        )

    def with_workspace(
        self, workspace_id: str, value: str | None, *, newest_at_start: str | None = None
    ) -> "ClickFunnelsContactCursor":
        marks = self.updated_at if value is None else {**self.updated_at, workspace_id: value}
        starts = dict(self.newest_at_start)
        if newest_at_start is not None:
            starts[workspace_id] = newest_at_start
        return ClickFunnelsContactCursor(marks, starts)


def _updated(record: Mapping[str, Any]) -> datetime | None:
    return instant_or_none(record.get("updated_at"))


class _OrderBrokenError(Exception):
    """A page under ``sort_property=updated_at`` did not continue the order: ``after`` filters ids."""


def _newest(current: datetime | None, records: Sequence[Mapping[str, Any]]) -> datetime | None:
    return max(
        [t for t in map(_updated, records) if t is not None] + ([current] if current else []), default=None
    )


class ClickFunnelsClient:
    """Reads and writes contacts of one ClickFunnels account."""

    def __init__(
        self,
        http: HttpClient,
        *,
        workspace_ids: Sequence[str | int] = (),
        lookback: timedelta = timedelta(minutes=5),
    ) -> None:
        self.http = http
        self._configured = list(dict.fromkeys(str(w) for w in workspace_ids))
        self._discovered: list[str] | None = None
        self.lookback = lookback
        self._source = http.source
        # Set once a page showed that ``after`` under ``sort_property=updated_at`` filters ids.
        self._after_filters_ids = False
        #: Per workspace, the newest ``updated_at`` on the first page of its running newest-first scan.
        self._top_at_start: dict[str, datetime] = {}

    def __repr__(self) -> str:
        return f"ClickFunnelsClient({self.http.base_url!r}, workspaces={self._configured or 'discover'})"

    # -------------------------------------------------------------- discovery

    def workspace_ids(self) -> list[str]:
        """The configured workspaces, or every workspace of every team the key can see."""
        if self._configured:
            return list(self._configured)
        if self._discovered is None:
            found: dict[str, None] = {}
            for team in self._get_list(f"{PREFIX}/teams"):
                for workspace in self._get_list(f"{PREFIX}/teams/{{id}}/workspaces", {"id": team["id"]}):
                    found[str(workspace["id"])] = None
            self._discovered = list(found)
        return list(self._discovered)

    def _get_list(
        self, template: str, path_params: Mapping[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every item of a keyset-paginated list endpoint."""
        yield from (r for page in self._pages(template, path_params or {}, {}) for r in page)

    def _pages(
        self, template: str, path_params: Mapping[str, Any], params: Mapping[str, Any]
    ) -> Iterator[list[dict[str, Any]]]:
        path = template.format(**path_params)
        guard = LoopGuard(self._source, "GET", path)
        after: str | None = None
        while True:
            query = {**params, **({"after": after} if after is not None else {})}
            response = self.http.request("GET", template, path_params=path_params, params=query)
            body = self.http.decode(response, "GET", path)
            if not isinstance(body, list):
                raise self.http.unexpected(response, "GET", path, "expected a JSON array")
            records = [r for r in body if isinstance(r, dict)]
            yield records
            after = response.headers.get("Pagination-Next")
            if not after or not records:
                return
            guard.check(after)

    # ------------------------------------------------------------------ reads

    def read_contacts(
        self, since: ClickFunnelsContactCursor | None = None, *, lookback: timedelta | None = None
    ) -> Iterator[Page[ClickFunnelsContactCursor]]:
        """Contacts updated since the cursor, newest first, per workspace."""
        back = self.lookback if lookback is None else lookback
        cursor = since or ClickFunnelsContactCursor()
        for workspace in self.workspace_ids():
            mark = cursor.updated_at.get(workspace)
            stop = parse_instant(mark) - back if mark else None
            newest = parse_instant(mark) if mark else None
            self._top_at_start.pop(workspace, None)
            for records in self._scan_desc(workspace, stop, None):
                newest = _newest(newest, records)
                yield Page(records, cursor)
            top = self._top_at_start.pop(workspace, None)
            cursor = cursor.with_workspace(
                workspace,
                to_iso(newest) if newest else None,
                newest_at_start=None if top is None else to_iso(top),
            )
            yield Page([], cursor)

    def contacts_since(
        self, workspace_id: str | int, mark: str | None, *, after: datetime | None = None
    ) -> list[dict[str, Any]]:
        """A workspace's contacts updated since ``after``, or else since ``mark`` (its
        `ClickFunnelsContactCursor` entry) less the lookback, newest first, as the next extract will
        read them; every contact without either. Reverse sync asks just before its first write: a
        create is an upsert on the email, which would write our fields over a contact someone made
        with it meanwhile, and an update carries no condition, so it would overwrite an edit."""
        stop = after if after is not None else parse_instant(mark) - self.lookback if mark else None
        pages = self._scan_desc(str(workspace_id), stop, None)
        return [r for records in pages for r in records if stop is None or (_updated(r) or stop) >= stop]

    def read_contacts_window(
        self, start: datetime, end: datetime
    ) -> Iterator[Page[ClickFunnelsContactCursor]]:
        """Contacts whose ``updated_at`` is in [start, end], for backfills (scans down from the newest)."""
        for workspace in self.workspace_ids():
            for records in self._scan_desc(workspace, start, end):
                yield Page(records, ClickFunnelsContactCursor())

    def _scan_desc(
        self, workspace: str, stop: datetime | None, end: datetime | None
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages newest first, without records newer than ``end``, until one older than ``stop``.

        Where ``after`` turns out to filter ids rather than continue the order, the workspace is read
        whole in id order instead: an incremental read (no ``end``) yields every contact (the store's
        content hashes leave the unchanged ones alone), a window read those in [stop, end].
        """

        def within(record: Mapping[str, Any]) -> bool:
            moment = _updated(record)
            return end is None or moment is None or ((stop is None or moment >= stop) and moment <= end)

        seen: set[str] = set()
        if not self._after_filters_ids:
            try:
                yield from self._ordered_desc(workspace, stop, end, seen)
                return
            except _OrderBrokenError as broken:
                self._after_filters_ids = True
                self.http.log.warning(
                    "%s workspace %s: %s, so `after` with sort_property=updated_at filters ids instead "
                    "of continuing the order; reading every contact in id order for this run",
                    self._source,
                    workspace,
                    broken,
                )
        for records in self._scan_ids(workspace):
            yield [r for r in records if within(r) and str(r.get("id")) not in seen]

    def _ordered_desc(
        self, workspace: str, stop: datetime | None, end: datetime | None, seen: set[str]
    ) -> Iterator[list[dict[str, Any]]]:
        """The ``updated_at`` descending scan; ``_OrderBrokenError`` on a page that breaks the order.

        ``seen`` learns the ids of every page that passed the check (whether yielded or not)."""
        params = {"sort_property": "updated_at", "sort_order": "desc"}
        template = f"{PREFIX}/workspaces/{{id}}/contacts"
        previous: datetime | None = None
        for number, records in enumerate(self._pages(template, {"id": workspace}, params), start=1):
            if number > 1:
                _check_order(number, records, previous, seen)
            elif stamps := [moment for r in records if (moment := _updated(r)) is not None]:
                # Read as the scan began, whatever order the pages then keep.
                self._top_at_start[workspace] = max(stamps)
            seen.update(str(r.get("id")) for r in records)
            previous = _updated(records[-1]) if records else previous
            kept = []
            reached = False
            for record in records:
                moment = _updated(record)
                if moment is not None and stop is not None and moment < stop:
                    reached = True
                    continue
                if moment is not None and end is not None and moment > end:
                    continue
                kept.append(record)
            yield kept
            if reached:
                return

    def _scan_ids(self, workspace: str) -> Iterator[list[dict[str, Any]]]:
        """Every visible contact of the workspace in id order (the API's default, a true keyset)."""
        template = f"{PREFIX}/workspaces/{{id}}/contacts"
        yield from self._pages(template, {"id": workspace}, {"sort_property": "id", "sort_order": "asc"})

    def read_contacts_full(
        self, since: ClickFunnelsContactCursor | None = None
    ) -> Iterator[Page[ClickFunnelsContactCursor]]:
        """Every visible contact in id order; ids absent from a complete scan were deleted.

        The last page per workspace moves that workspace's watermark to the newest ``updated_at`` seen.
        """
        cursor = since or ClickFunnelsContactCursor()
        for workspace in self.workspace_ids():
            mark = cursor.updated_at.get(workspace)
            newest = parse_instant(mark) if mark else None
            for records in self._scan_ids(workspace):
                newest = _newest(newest, records)
                yield Page(records, cursor)
            cursor = cursor.with_workspace(workspace, to_iso(newest) if newest else None)
            yield Page([], cursor)

    def contact_ids(self) -> set[str]:
        """Ids of every visible contact (a full scan; 1 request per 20 contacts)."""
        return {str(r["id"]) for page in self.read_contacts_full() for r in page.records if "id" in r}

    def find_by_email(self, workspace_id: str | int, emails: Sequence[str]) -> list[dict[str, Any]]:
        """Contacts with one of ``emails`` (``filter[email_address]`` ORs comma-separated values)."""
        if not emails:
            return []
        params = {"filter[email_address]": ",".join(emails)}
        template = f"{PREFIX}/workspaces/{{id}}/contacts"
        return [r for page in self._pages(template, {"id": workspace_id}, params) for r in page]

    # ----------------------------------------------------------------- writes

    def upsert_contact(self, workspace_id: str | int, contact: Mapping[str, Any]) -> WriteResult:
        """Create or update the contact with this ``email_address``; empty values are ignored by the API."""
        if not contact.get("email_address"):
            raise ValueError("an upsert needs email_address: ClickFunnels matches on it")
        if "tag_ids" in contact:
            raise ValueError("tag_ids replaces every tag; use update_contact(..., tag_ids=...) on purpose")
        return write_one(
            None,
            lambda: self.http.request(
                "POST",
                f"{PREFIX}/workspaces/{{id}}/contacts/upsert",
                path_params={"id": workspace_id},
                json_body={"contact": dict(contact)},
                idempotent=True,
            ),
            id_of=_contact_id,
            record_of=_contact,
        )

    def update_contact(
        self, contact_id: str | int, changes: Mapping[str, Any], *, tag_ids: Sequence[int] | None = None
    ) -> WriteResult:
        """``PUT /contacts/{id}``; ``None`` clears a field. ``tag_ids`` (all tags) only when given."""
        if "tag_ids" in changes:
            raise ValueError("pass tag_ids as its own argument: it replaces every tag of the contact")
        body = dict(changes)
        if tag_ids is not None:
            body["tag_ids"] = list(tag_ids)
        return write_one(
            str(contact_id),
            lambda: self.http.request(
                "PUT",
                f"{PREFIX}/contacts/{{id}}",
                path_params={"id": contact_id},
                json_body={"contact": body},
            ),
            id_of=_contact_id,
            record_of=_contact,
        )

    def delete_contact(self, contact_id: str | int) -> WriteResult:
        """``DELETE /contacts/{id}`` (204); repeating it after a lost answer finds nothing to delete."""
        return write_one(
            str(contact_id),
            lambda: self.http.request(
                "DELETE", f"{PREFIX}/contacts/{{id}}", path_params={"id": contact_id}, idempotent=True
            ),
            id_of=lambda _body: contact_id,
        )


def _check_order(
    number: int, records: Sequence[Mapping[str, Any]], previous: datetime | None, seen: set[str]
) -> None:
    """Raise ``_OrderBrokenError`` when page ``number`` of a descending scan cannot follow the pages before:
    a keyset on (``updated_at``, id) never lists a record newer than the previous page's last, nor
    one listed already."""
    for record in records:
        moment = _updated(record)
        if previous is not None and moment is not None and moment > previous:
            raise _OrderBrokenError(
                f"page {number} lists updated_at {to_iso(moment)} after {to_iso(previous)}"
            )
        if str(record.get("id")) in seen:
            raise _OrderBrokenError(f"page {number} lists contact {record.get('id')} again")


def _contact(body: Any) -> object:
    """Upsert answers one contact object; an older spec typed it as an array (api-notes §2.5)."""
    if isinstance(body, list) and body and isinstance(body[0], dict):
        body = body[0]
    if isinstance(body, dict) and isinstance(body.get("contact"), dict):
        body = body["contact"]
    return body


def _contact_id(body: Any) -> object:
    contact = _contact(body)
    return contact.get("id") if isinstance(contact, dict) else None
