"""Extract: each source object read incrementally from its API into the raw store, page by page.

``run_extract`` is the plain function (a test calls it without Dagster); the assets of group
``extract`` wrap it, one per source object of the contract. Each page's rows and the cursor that
covers them are committed together, so a run killed at any moment resumes from the last stored page
and converges to the state of an uninterrupted run.
"""

import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connectors.clickfunnels import ClickFunnelsContactCursor
from connectors.clicksend import ClickSendListContactCursor, ClickSendSmsCursor
from connectors.errors import ConnectorError
from connectors.factory import Clients
from connectors.linkflow import LinkflowContactCursor, LinkflowEventCursor
from connectors.paging import Page
from connectors.stats import StatsSnapshot
from connectors.stop import STOP, StopRequested
from connectors.zoho import DELETED_FEED_RETENTION, ZohoCursor
from models.mappings import MappingsError
from models.normalise.raw_keys import identify
from models.warehouse.locks import SourceBusyError, source_lock
from models.warehouse.source_checks import forget_check
from models.warehouse.store import BadRecord, PageCounts, RawRow, RawStore, StreamKey
from models.warehouse.tables import SourceAccount, utcnow
from models.warehouse.waits import writing
from pipelines.batches import PageBatch
from pipelines.check import SourceCheck, sync_start_check
from pipelines.clients import clients_for
from pipelines.progress import NO_PROGRESS, ProgressObserver, StreamProgress
from pipelines.resources import RunOptionsResource, SyncSettingsResource, WarehouseResource
from pipelines.settings import Settings
from pipelines.stopping import end_run_stopped, run_in_threads, stops_cleanly, with_statements_stopped
from pipelines.streams import STREAMS, Stream

Reader = Callable[[Clients, Any], Iterator[Page[Any]]]
WindowReader = Callable[[Clients, datetime, datetime], Iterator[Page[Any]]]
OnPage = Callable[[int, int | None], None]
"""Called after each stored page with the records read so far and the total the API expects."""


@dataclass(frozen=True)
class ExtractSpec:
    """How one source object is read: its cursor type, its incremental read and its window read."""

    cursor_type: Any
    read: Reader
    read_window: WindowReader | None = None
    full_scan: Reader | None = None
    """A complete read whose end proves absence: records not seen are marked deleted."""
    scan_on_cadence: bool = True
    """Whether ``full_scan`` also runs every ``CONTACT_SYNC_FULL_SCAN_HOURS`` (streams without a
    deletion feed to trust); a full refresh scans either way."""
    scan_needed: Callable[[Any], str | None] | None = None
    """Given the stored cursor, why a scan must run now (None when it need not): a deletion feed
    that no longer reaches back to the cursor."""


def _client(clients: Clients, source: str) -> Any:
    client = getattr(clients, source)
    if client is None:
        raise RuntimeError(f"{source}: no client configured")
    return client


def _zoho_feed_outlived(cursor: ZohoCursor | None) -> str | None:
    if cursor is None or not cursor.feed_outlived(utcnow()):
        return None
    return (
        f"deletions were last read up to {cursor.deleted_since}, and Zoho's deleted feed keeps "
        f"them {DELETED_FEED_RETENTION.days} days"
    )


SPECS: dict[tuple[str, str], ExtractSpec] = {
    ("clickfunnels", "contact"): ExtractSpec(
        ClickFunnelsContactCursor,
        read=lambda c, cur: _client(c, "clickfunnels").read_contacts(cur),
        read_window=lambda c, start, end: _client(c, "clickfunnels").read_contacts_window(start, end),
        full_scan=lambda c, cur: _client(c, "clickfunnels").read_contacts_full(cur),
    ),
    ("clicksend", "list_contact"): ExtractSpec(
        ClickSendListContactCursor,
        read=lambda c, cur: _client(c, "clicksend").read_list_contacts(cur),
        full_scan=lambda c, cur: _client(c, "clicksend").read_list_contacts_full(cur),
    ),
    ("clicksend", "sms"): ExtractSpec(
        ClickSendSmsCursor,
        read=lambda c, cur: _client(c, "clicksend").read_sms(cur),
        read_window=lambda c, start, end: _client(c, "clicksend").read_sms_history_window(start, end),
    ),
    ("linkflow", "contact"): ExtractSpec(
        LinkflowContactCursor,
        read=lambda c, cur: _client(c, "linkflow").read_contacts(cur),
        read_window=lambda c, start, end: _client(c, "linkflow").read_contacts_window(start, end),
    ),
    ("linkflow", "event"): ExtractSpec(
        LinkflowEventCursor,
        read=lambda c, cur: _client(c, "linkflow").read_events(cur),
    ),
    ("zoho_crm", "lead"): ExtractSpec(
        ZohoCursor,
        read=lambda c, cur: _client(c, "zoho_crm").read_leads(cur),
        read_window=lambda c, start, end: _client(c, "zoho_crm").read_leads_window(start, end),
        full_scan=lambda c, cur: _client(c, "zoho_crm").read_leads_full(cur),
        scan_on_cadence=False,
        scan_needed=_zoho_feed_outlived,
    ),
    ("zoho_crm", "contact"): ExtractSpec(
        ZohoCursor,
        read=lambda c, cur: _client(c, "zoho_crm").read_contacts(cur),
        read_window=lambda c, start, end: _client(c, "zoho_crm").read_contacts_window(start, end),
        full_scan=lambda c, cur: _client(c, "zoho_crm").read_contacts_full(cur),
        scan_on_cadence=False,
        scan_needed=_zoho_feed_outlived,
    ),
    # Bigin documents no deletion feed: its deletions come from full reads on the cadence.
    ("zoho_bigin", "contact"): ExtractSpec(
        ZohoCursor,
        read=lambda c, cur: _client(c, "zoho_bigin").read_contacts(cur),
        read_window=lambda c, start, end: _client(c, "zoho_bigin").read_contacts_window(start, end),
        full_scan=lambda c, cur: _client(c, "zoho_bigin").read_contacts_full(cur),
    ),
}


@dataclass
class ExtractReport:
    """What one extract did, for the materialization metadata and the CLI summary."""

    counts: PageCounts
    pages: int
    cursor_before: dict[str, Any] | None
    cursor_after: dict[str, Any] | None
    seconds: float


def _rows(stream: Stream, page: Page[Any]) -> tuple[list[RawRow], list[BadRecord]]:
    rows: list[RawRow] = []
    bad: list[BadRecord] = []
    for record in page.records:
        identified = identify(stream.source, stream.object, page.part, record)
        (rows if isinstance(identified, RawRow) else bad).append(identified)  # type: ignore[arg-type]
    return rows, bad


def load_pages(
    stream: Stream,
    store: RawStore,
    pages: Iterable[Page[Any]],
    *,
    run_id: str | None,
    move_cursor: bool = True,
    log: Callable[[str], None] = lambda _line: None,
    progress: PageCounts | None = None,
    on_page: OnPage | None = None,
) -> tuple[PageCounts, int, dict[str, Any] | None]:
    """Store every page with its cursor, consecutive pages together (``PageBatch``); returns counts,
    pages, last cursor.

    A read asked to stop ends at its next request, which the HTTP layer refuses with
    ``StopRequested``: every page before it is stored with its cursor (``progress``, when given, holds
    their counts), so the next run goes on from the last stored page. Pages already in hand (several
    can come from one answer) are stored first, and a read whose last page is stored is complete. A
    read that fails stores the pages it read before failing, as well.
    """
    key = StreamKey(stream.source, stream.object)
    total = progress if progress is not None else PageCounts()
    number = 0
    seen = 0

    def write(
        rows: list[RawRow], bad: list[BadRecord], deleted: list[str], cursor: dict[str, Any] | None
    ) -> PageCounts:
        return store.write_page(
            key, rows, cursor=cursor, move_cursor=move_cursor, deleted_ids=deleted, bad=bad, run_id=run_id
        )

    def stored(written: list[tuple[str, PageCounts]]) -> None:
        for label, counts in written:
            total.add(counts)
            if counts.read or counts.deleted:
                log(
                    f"{stream.name}: {label}: read {counts.read}, new {counts.inserted}, "
                    f"changed {counts.updated}, unchanged {counts.unchanged}, deleted {counts.deleted}, "
                    f"quarantined {counts.quarantined}"
                )

    batch = PageBatch(write)
    cursor: dict[str, Any] | None = None
    with store.holding_connection():
        reading = iter(pages)
        while True:
            try:
                page = next(reading)
            except StopIteration:
                break
            except BaseException:
                stored(batch.flush())
                raise
            number += 1
            rows, bad = _rows(stream, page)
            cursor = page.cursor.to_json()
            stored(batch.add(number, rows, bad, list(page.deleted_ids), cursor))
            seen += len(page.records)
            if on_page is not None:
                on_page(seen, page.expected)
        stored(batch.flush())
    return total, number, cursor


def run_extract(
    stream: Stream,
    clients: Clients,
    store: RawStore,
    *,
    run_id: str | None = None,
    full_refresh: bool = False,
    full_scan_every: timedelta | None = None,
    log: Callable[[str], None] = lambda _line: None,
    progress: PageCounts | None = None,
    on_page: OnPage | None = None,
) -> ExtractReport:
    """Read ``stream`` from its stored cursor (from scratch on a full refresh) into the raw store.

    A stream that can be read whole (``ExtractSpec.full_scan``) is scanned on a full refresh, when
    its spec says its deletion feed no longer covers the cursor, and, for streams without a feed to
    trust (ClickFunnels, ClickSend list contacts, Bigin), when ``full_scan_every`` is given and its
    last complete scan is older: records a complete scan did not see are marked deleted (never after
    a stopped scan: ``StopRequested`` leaves before that). ``progress`` is as in ``load_pages``.
    """
    spec = SPECS[(stream.source, stream.object)]
    key = StreamKey(stream.source, stream.object)
    scan_key = StreamKey(stream.source, stream.object, "id_scan")
    started = time.monotonic()
    before = store.cursor(key)
    since = None if full_refresh or before is None else spec.cursor_type.from_json(before)
    last_scan = store.last_success(scan_key)
    reason = _scan_reason(spec, since, full_refresh, last_scan, full_scan_every)
    if reason is not None and spec.full_scan is not None:
        log(f"{stream.name}: full id scan to find deletions ({reason})")
        seen: set[str] = set()

        def remember(pages: Iterator[Page[Any]]) -> Iterator[Page[Any]]:
            for page in pages:
                seen.update(row.source_id for row in _rows(stream, page)[0])
                yield page

        counts, pages, after = load_pages(
            stream,
            store,
            remember(spec.full_scan(clients, since)),
            run_id=run_id,
            log=log,
            progress=progress,
            on_page=on_page,
        )
        counts.deleted += store.mark_missing_deleted(key, seen)
        store.finish_run(scan_key, counts={"records_seen": len(seen), "rows_deleted": counts.deleted})
    else:
        counts, pages, after = load_pages(
            stream,
            store,
            spec.read(clients, since),
            run_id=run_id,
            log=log,
            progress=progress,
            on_page=on_page,
        )
    return ExtractReport(counts, pages, before, after or before, time.monotonic() - started)


def _scan_reason(
    spec: ExtractSpec,
    since: Any,
    full_refresh: bool,
    last_scan: datetime | None,
    full_scan_every: timedelta | None,
) -> str | None:
    """Why this run reads the stream whole to find deletions, or None when it need not."""
    if full_refresh:
        return "full refresh"
    needed = spec.scan_needed(since) if spec.scan_needed is not None else None
    if needed is not None:
        return needed
    due = last_scan is None or (full_scan_every is not None and utcnow() - last_scan >= full_scan_every)
    if spec.scan_on_cadence and full_scan_every is not None and due:
        return f"last complete scan: {last_scan or 'never'}"
    return None


def run_backfill(
    stream: Stream,
    clients: Clients,
    store: RawStore,
    start: datetime,
    end: datetime,
    *,
    run_id: str | None = None,
    log: Callable[[str], None] = lambda _line: None,
    progress: PageCounts | None = None,
    on_page: OnPage | None = None,
) -> ExtractReport:
    """Re-read records modified in [start, end) through the same upsert, leaving the live cursor alone."""
    spec = SPECS[(stream.source, stream.object)]
    if spec.read_window is None:
        raise ValueError(f"{stream.name} cannot be read by time window")
    started = time.monotonic()
    cursor = store.cursor(StreamKey(stream.source, stream.object))
    counts, pages, _ = load_pages(
        stream,
        store,
        spec.read_window(clients, start, end),
        run_id=run_id,
        move_cursor=False,
        log=log,
        progress=progress,
        on_page=on_page,
    )
    return ExtractReport(counts, pages, cursor, cursor, time.monotonic() - started)


BACKFILL_PARTITIONS = dg.DailyPartitionsDefinition(start_date="2015-01-01", end_offset=1, timezone="UTC")
"""Days the UI can backfill over; ``end_offset=1`` includes today so a backfill can reach now."""


def backfillable(stream: Stream) -> bool:
    return SPECS[(stream.source, stream.object)].read_window is not None


def _build_backfill_asset(stream: Stream) -> dg.AssetsDefinition:
    @dg.asset(
        key=dg.AssetKey(["backfill", stream.source, stream.object]),
        group_name="backfill",
        pool=f"api_{stream.source}",
        partitions_def=BACKFILL_PARTITIONS,
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"python", stream.source},
        description=f"Re-reads {stream.name} over a range of days into the same raw tables; "
        "never moves the incremental cursor.",
    )
    def backfill_stream(
        context: dg.AssetExecutionContext,
        sync_settings: SyncSettingsResource,
        warehouse: WarehouseResource,
        progress: dg.ResourceParam[ProgressObserver],
    ) -> Iterator[dg.MaterializeResult]:
        with stops_cleanly(context):
            settings = sync_settings.settings()
            if stream.source not in settings.enabled_sources():
                raise dg.Failure(
                    description=settings.skipped_sources().get(stream.source, f"{stream.source}: not enabled")
                )
            window = context.partition_time_window
            store = RawStore(warehouse.engine(), checkpoint=STOP.check)
            window_meta = {"window_start": window.start.isoformat(), "window_end": window.end.isoformat()}
            counted = PageCounts()
            shown = progress.stream(f"backfill/{stream.name}")
            with clients_for(settings, (stream.source,)) as clients:
                try:
                    report = run_backfill(
                        stream,
                        clients,
                        store,
                        window.start,
                        window.end,
                        run_id=context.run.run_id,
                        log=context.log.info,
                        progress=counted,
                        on_page=_reporter(shown, clients, stream.source, clients.stats.snapshot()),
                    )
                except ConnectorError as exc:
                    shown.finished(error=f"backfill {stream.name}: {exc}")
                    raise dg.Failure(description=f"backfill {stream.name}: {exc}") from None
                except StopRequested:
                    # What was re-read is stored; the cursors were never going to move.
                    requests = clients.stats.snapshot().total_requests()
                    context.log.info(f"backfill {stream.name}: stopped part-way ({STOP.reason})")
                    shown.finished(error="stopped")
                    yield dg.MaterializeResult(
                        metadata={
                            "status": "stopped",
                            **counted.as_dict(),
                            "requests": requests,
                            **window_meta,
                        }
                    )
                    end_run_stopped(context)
                requests = clients.stats.snapshot().total_requests()
            shown.finished()
            yield dg.MaterializeResult(
                metadata={
                    **report.counts.as_dict(),
                    "requests": requests,
                    **window_meta,
                    "cursor_unchanged": dg.MetadataValue.json(report.cursor_before or {}),
                }
            )

    return backfill_stream


ACCOUNT_COUNTRY: dict[str, Callable[[Clients], str | None]] = {
    "zoho_crm": lambda c: _client(c, "zoho_crm").org_country(),
    "zoho_bigin": lambda c: _client(c, "zoho_bigin").org_country(),
    "clicksend": lambda c: _client(c, "clicksend").account_country(),
}
"""Sources whose API tells the account's country: the contract's default region for their phones."""

ACCOUNT_REFRESH = timedelta(days=1)


def refresh_account_country(
    engine: Engine, clients: Clients, source: str, log: Callable[[str], None]
) -> None:
    """Store the account's country once a day; a failure only costs the better phone default."""
    fetch = ACCOUNT_COUNTRY.get(source)
    if fetch is None:
        return
    with engine.connect() as connection:
        fetched = connection.execute(
            sa.select(SourceAccount.fetched_at).where(SourceAccount.source == source)
        ).scalar_one_or_none()
    now = utcnow()
    if fetched is not None and now - fetched < ACCOUNT_REFRESH:
        return
    try:
        country = fetch(clients)
    except ConnectorError as exc:
        log(f"{source}: could not read the account's country ({exc}); phones use the configured default")
        return
    except StopRequested:  # the stream it follows is complete; the country waits for the next sync
        return
    with suppress(StopRequested), writing(engine, STOP.check, must_land=True) as connection:
        connection.execute(sa.delete(SourceAccount).where(SourceAccount.source == source))
        connection.execute(sa.insert(SourceAccount).values(source=source, country=country, fetched_at=now))
        log(f"{source}: account country {country or 'unknown'}")


def _reporter(shown: StreamProgress, clients: Clients, source: str, before: StatsSnapshot) -> OnPage:
    """The per-page hook telling ``shown`` the records so far and ``source``'s requests since ``before``."""
    start = before.total_requests(source)

    def on_page(records: int, expected: int | None) -> None:
        requests = clients.stats.snapshot().total_requests(source) - start
        shown.page(records=records, expected=expected, requests=requests)

    return on_page


def _extract_with_bookkeeping(
    stream: Stream,
    clients: Clients,
    store: RawStore,
    *,
    run_id: str,
    full_refresh: bool,
    full_scan_every: timedelta,
    log: Callable[[str], None],
    before: StatsSnapshot | None = None,
    shown: StreamProgress | None = None,
) -> dict[str, Any]:
    """Run the extract, record its outcome in ``stream_state`` and return the materialization metadata
    (``status: stopped`` and the counts so far when the run was asked to stop part-way).

    Requests are counted for this stream's source only, so sources extracted at the same time in
    other threads (sharing one Maton bucket and one ``RequestStats``) do not blur the figures;
    ``before`` counts from an earlier moment (the source's check, made for its first stream).
    """
    key = StreamKey(stream.source, stream.object)
    store.start_run(key, run_id)
    if before is None:
        before = clients.stats.snapshot()
    progress = PageCounts()
    try:
        report = run_extract(
            stream,
            clients,
            store,
            run_id=run_id,
            full_refresh=full_refresh,
            full_scan_every=full_scan_every,
            log=log,
            progress=progress,
            on_page=None if shown is None else _reporter(shown, clients, stream.source, before),
        )
    except StopRequested:
        used = clients.stats.snapshot().diff(before)
        stopped = {**progress.as_dict(), "requests": used.total_requests(stream.source)}
        # Another process holding the warehouse's write lock past the stop: the state stays as
        # start_run left it (``running``, as after a kill), and the step still reports what it stored.
        with suppress(StopRequested):
            store.finish_run(key, counts=stopped, stopped=True)
        log(
            f"{stream.name}: stopped part-way ({STOP.reason}): read {progress.read}, new "
            f"{progress.inserted}, changed {progress.updated}, {stopped['requests']} requests; the pages "
            "read are stored with their cursor, and the next sync goes on from there"
        )
        return {"status": "stopped", **stopped, "reason": STOP.reason}
    except Exception as exc:
        used = clients.stats.snapshot().diff(before)
        store.finish_run(key, counts={"requests": used.total_requests(stream.source)}, error=str(exc))
        raise
    refresh_account_country(store.engine, clients, stream.source, log)
    used = clients.stats.snapshot().diff(before)
    requests = used.total_requests(stream.source)
    counts = report.counts.as_dict()
    store.finish_run(key, counts={**counts, "requests": requests})
    log(
        f"{stream.name}: {report.pages} pages, read {report.counts.read}, new {report.counts.inserted}, "
        f"changed {report.counts.updated}, deleted {report.counts.deleted}, "
        f"{requests} requests in {report.seconds:.1f}s"
    )
    return {
        **counts,
        "requests": requests,
        "retries": used.total_retries(stream.source),
        "requests_by_endpoint": dg.MetadataValue.json(used.as_metadata(stream.source)),
        "cursor_before": dg.MetadataValue.json(report.cursor_before or {}),
        "cursor_after": dg.MetadataValue.json(report.cursor_after or {}),
        "full_refresh": full_refresh,
        "duration_s": round(report.seconds, 3),
    }


def _check_at_start(
    engine: Engine, settings: Settings, clients: Clients, source: str, log: Callable[[str], None]
) -> SourceCheck | None:
    """The source's check (cached for a day), said in the log; None when the check itself broke,
    which must not stop a sync that may well work."""
    try:
        checked, checked_at = sync_start_check(engine, settings, clients, source)
    except Exception:
        log(f"{source}: the start-of-sync check broke; reading without it\n{traceback.format_exc()}")
        return None
    if checked_at is not None:
        log(f"{source}: check {checked.summary()} at {checked_at:%Y-%m-%d %H:%M}Z (kept for a day)")
        return checked
    log(f"{source}: check {checked.summary()}")
    for row in checked.problems():
        log(f"{source}: {'warning' if row.level == 'warning' else 'failure'}: {row.advice}")
    return checked


def _extract_source(
    streams: Sequence[Stream],
    clients: Clients,
    engine: Engine,
    *,
    settings: Settings,
    run_id: str,
    full_refresh: bool,
    full_scan_every: timedelta,
    log: Callable[[str], None],
    progress: ProgressObserver = NO_PROGRESS,
) -> dict[Stream, dict[str, Any] | str]:
    """One source's streams, one after another: metadata per stream, or the one line that says why not.

    The source's check comes first: a stream it says cannot be read fails at once with the check's
    advice. The check's requests are counted with the source's first stream. Once the run is asked to
    stop, the stream under way ends after its current page and the following ones do not start (they
    have no outcome).
    """
    outcome: dict[Stream, dict[str, Any] | str] = {}
    source = streams[0].source
    before = clients.stats.snapshot()
    try:
        STOP.check()
        checked = _check_at_start(engine, settings, clients, source, log)
    except StopRequested:
        return outcome
    for index, stream in enumerate(streams):
        if STOP.is_set():
            break
        since = before if index == 0 else None
        problem = checked.problem_for(stream.object) if checked is not None else None
        if problem is not None:
            used = clients.stats.snapshot().diff(since) if since is not None else None
            store = RawStore(engine, checkpoint=STOP.check)
            store.start_run(StreamKey(stream.source, stream.object), run_id)
            store.finish_run(
                StreamKey(stream.source, stream.object),
                counts={"requests": used.total_requests(source) if used else 0},
                error=problem,
            )
            outcome[stream] = f"{stream.name}: {problem}"
            progress.stream(stream.name).finished(error=problem)
            continue
        shown = progress.stream(stream.name)
        try:
            with source_lock(engine, f"extract-{stream.source}-{stream.object}", stream.name):
                metadata = _extract_with_bookkeeping(
                    stream,
                    clients,
                    RawStore(engine, checkpoint=STOP.check),
                    run_id=run_id,
                    full_refresh=full_refresh,
                    full_scan_every=full_scan_every,
                    log=log,
                    before=since,
                    shown=shown,
                )
                if index == 0 and checked is not None:
                    metadata["source_check"] = checked.summary()
                outcome[stream] = metadata
                if metadata.get("status") == "stopped":
                    shown.finished(error="stopped")
                    break
                shown.finished()
        except (ConnectorError, SourceBusyError) as exc:
            if isinstance(exc, ConnectorError):
                # The next sync checks again and can say what is wrong (unless a stop ends the wait
                # for another writer's lock: the check then stays, a day at most).
                with suppress(StopRequested):
                    forget_check(engine, source, checkpoint=STOP.check)
            outcome[stream] = str(exc) if isinstance(exc, SourceBusyError) else f"{stream.name}: {exc}"
            shown.finished(error=str(exc))
        except Exception as exc:  # a bug: keep the other sources going, fail the step with the trace logged
            log(f"{stream.name}: unexpected error\n{traceback.format_exc()}")
            outcome[stream] = f"{stream.name}: unexpected {type(exc).__name__}: {exc}"
            shown.finished(error=f"unexpected {type(exc).__name__}: {exc}")
    return outcome


FRESHNESS_CHECK = "extracted_recently"
"""The check on each extract asset that is red while its stream has gone too long without succeeding."""


def freshness_results(
    engine: Engine, streams: Iterable[Stream], window: timedelta, selected: AbstractSet[dg.AssetCheckKey]
) -> Iterator[dg.AssetCheckResult]:
    """Each stream's freshness check, from ``stream_state.last_success_at``: the time of its last
    successful extract, which a failed one leaves alone. (The asset's last materialization cannot
    say it: a failed stream is materialized with ``status = failed`` so that the run goes on.)"""
    store = RawStore(engine)
    now = utcnow()
    limit = round(window.total_seconds() / 60)
    for stream in streams:
        key = dg.AssetKey([stream.source, stream.object])
        if dg.AssetCheckKey(key, FRESHNESS_CHECK) not in selected:
            continue
        last = store.last_success(StreamKey(stream.source, stream.object))
        if last is None:
            yield dg.AssetCheckResult(
                asset_key=key,
                check_name=FRESHNESS_CHECK,
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                description=f"{stream.name} has never extracted successfully",
                metadata={"limit_minutes": limit},
            )
            continue
        last = last if last.tzinfo is not None else last.replace(tzinfo=UTC)
        minutes = round((now - last).total_seconds() / 60)
        passed = now - last <= window
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name=FRESHNESS_CHECK,
            passed=passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"{stream.name}: last successful extract {last:%Y-%m-%d %H:%M} UTC, "
            f"{minutes} min ago; {'within' if passed else 'over'} the limit of {limit} min "
            "(CONTACT_SYNC_FRESHNESS_MINUTES)",
            metadata={
                "last_success_at": last.isoformat(),
                "minutes_since_success": minutes,
                "limit_minutes": limit,
            },
        )


def _skip_reason(stream: Stream, settings: Settings) -> str | None:
    if stream.source not in settings.requested_sources():
        return f"{stream.source}: not in CONTACT_SYNC_SOURCES"
    return settings.skipped_sources().get(stream.source)


@dg.multi_asset(
    name="extract",
    specs=[
        dg.AssetSpec(
            dg.AssetKey([stream.source, stream.object]),
            group_name="extract",
            kinds={"python", stream.source},
            description=f"Raw {stream.object} records of {stream.source}, read incrementally from its API.",
            skippable=True,
        )
        for stream in STREAMS
    ],
    check_specs=[
        dg.AssetCheckSpec(
            FRESHNESS_CHECK,
            asset=dg.AssetKey([stream.source, stream.object]),
            description=f"{stream.name} extracted successfully within CONTACT_SYNC_FRESHNESS_MINUTES "
            "(default: four schedule intervals); red while it keeps failing.",
        )
        for stream in STREAMS
    ],
    can_subset=True,
)
def extract(
    context: dg.AssetExecutionContext,
    sync_settings: SyncSettingsResource,
    run_options: RunOptionsResource,
    warehouse: WarehouseResource,
    progress: dg.ResourceParam[ProgressObserver],
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Every selected stream in one step: sources in parallel threads, a source's streams in turn.

    The four Maton apps share one client-side bucket, so together they keep to the gateway's budget
    while Linkflow uses its own at the same time: the run takes about as long as the busier budget,
    not the sum of both. A failing stream fails alone; the others still land their data, and the
    step then fails naming each failed stream on its own line. Each attempted stream's freshness
    check (:func:`freshness_results`) is reported last, after its materialization. Asked to stop,
    every source ends after its current page: the step reports the streams it finished and those it
    stopped part-way (``status: stopped``), and the run ends canceled.
    """
    with stops_cleanly(context):
        yield from _extract_step(context, sync_settings, run_options, warehouse, progress)


def _refuse_bad_mappings(settings: Settings) -> None:
    """A bad mappings file stops the run before anything is read or written, one line per problem."""
    try:
        settings.mappings()
    except MappingsError as exc:
        raise dg.Failure(description=str(exc)) from None


def _extract_step(
    context: dg.AssetExecutionContext,
    sync_settings: SyncSettingsResource,
    run_options: RunOptionsResource,
    warehouse: WarehouseResource,
    progress: ProgressObserver,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    settings = sync_settings.settings()
    _refuse_bad_mappings(settings)
    selected = [s for s in STREAMS if dg.AssetKey([s.source, s.object]) in context.selected_asset_keys]
    runnable: dict[str, list[Stream]] = {}
    for stream in selected:
        reason = _skip_reason(stream, settings)
        if reason is None:
            runnable.setdefault(stream.source, []).append(stream)
        else:
            yield from _skipped(context, stream, reason)
    engine = warehouse.engine()
    outcomes: dict[Stream, dict[str, Any] | str] = {}
    with clients_for(settings, tuple(runnable)) as clients:
        for found in run_in_threads(
            [
                with_statements_stopped(
                    engine,
                    partial(
                        _extract_source,
                        streams,
                        clients,
                        engine,
                        settings=settings,
                        run_id=context.run.run_id,
                        full_refresh=source in run_options.full_refresh_sources,
                        full_scan_every=timedelta(hours=settings.contact_sync_full_scan_hours),
                        log=context.log.info,
                        progress=progress,
                    ),
                )
                for source, streams in runnable.items()
            ]
        ):
            outcomes.update(found)
    failed: dict[Stream, str] = {}
    for stream in selected:
        outcome = outcomes.get(stream)
        if isinstance(outcome, dict):
            yield dg.MaterializeResult(
                asset_key=dg.AssetKey([stream.source, stream.object]), metadata=outcome
            )
        elif isinstance(outcome, str):
            failed[stream] = outcome
    freshness = freshness_results(
        engine,
        [s for s in selected if s in outcomes],
        settings.freshness_window(),
        context.selected_asset_check_keys,
    )
    if STOP.is_set():
        # What landed is reported above; a failure is in stream_state and the log, and the next sync
        # reads that stream again. Streams with no outcome never started.
        for stream, line in failed.items():
            context.log.error(line)
            yield dg.MaterializeResult(
                asset_key=dg.AssetKey([stream.source, stream.object]),
                metadata={"status": "failed", "error": line},
            )
        yield from freshness
        end_run_stopped(context)
    if not failed:
        yield from freshness
        return
    # A stream refused because another sync holds its lock leaves no failure of this run's own.
    recorded = RawStore(engine).failures_of_run(context.run.run_id)
    busy = any((stream.source, stream.object) not in recorded for stream in failed)
    if busy or not _reverse_sync_follows(context):
        yield from freshness
        raise dg.Failure(description="\n".join(failed.values()))
    # The streams that landed go on to identity resolution; reverse sync leaves the failed streams'
    # destinations alone (their copy is stale) and fails the run at its end, naming these streams.
    # A failed stream is reported as such (status "failed", as a stream without credentials is
    # "skipped"): left out, Dagster would skip every step downstream of it.
    for stream, line in failed.items():
        context.log.error(line)
        yield dg.MaterializeResult(
            asset_key=dg.AssetKey([stream.source, stream.object]),
            metadata={"status": "failed", "error": line},
        )
    yield from freshness
    context.log.warning(
        f"{len(failed)} stream(s) failed; resolving what landed, and the run fails after reverse sync"
    )


def _skipped(
    context: dg.AssetExecutionContext, stream: Stream, reason: str
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """A stream this run does not read: said in the log, materialized as skipped, fresh by default."""
    context.log.info(reason)
    yield dg.MaterializeResult(
        asset_key=dg.AssetKey([stream.source, stream.object]),
        metadata={"status": "skipped", "reason": reason},
    )
    check = dg.AssetCheckKey(dg.AssetKey([stream.source, stream.object]), FRESHNESS_CHECK)
    if check in context.selected_asset_check_keys:  # nothing read, so nothing can be stale
        yield dg.AssetCheckResult(
            asset_key=check.asset_key,
            check_name=FRESHNESS_CHECK,
            passed=True,
            description=f"not synced: {reason}",
            metadata={"status": "skipped"},
        )


def _reverse_sync_follows(context: dg.AssetExecutionContext) -> bool:
    """Whether this run also pushes, so a later step of it can report the failure."""
    keys = context.job_def.asset_layer.executable_asset_keys
    return any(key.path[0] == "reverse_sync" for key in keys)


extract_assets: list[dg.AssetsDefinition] = [extract]
# BackfillPolicy is marked beta in Dagster 1.13, but it is the documented way to run a partition range
# as one run; the warning says nothing a user can act on.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)
    backfill_assets: list[dg.AssetsDefinition] = [
        _build_backfill_asset(s) for s in STREAMS if backfillable(s)
    ]
