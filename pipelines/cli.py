"""The ``contact-sync`` command line: thin argument parsing over functions that do the work.

Expected failures (a bad setting, an unreachable warehouse, a failed run) end with one readable line on
stderr and a non-zero status; a traceback means a bug. ``sync`` and ``backfill`` stop when asked
(``StopSignals``): SIGINT or SIGTERM ends them within seconds with one line saying what was saved,
exit status 130 or 143.
"""

import argparse
import gc
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from models.mappings import MappingsError
from models.warehouse.db import WarehouseError
from pipelines.dagster_home import DagsterHomeError, ensure_dagster_home
from pipelines.settings import SOURCES, SettingsError, load_settings

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2
_HOUSEHOLDS_HELP = (
    "generate people who share a landline or an email, with first names varying between systems "
    "(nicknames, initials, missing ones)"
)

T = TypeVar("T")


class CommandError(Exception):
    """An expected failure of a command; its message is the one line the user sees."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _source_list(value: str) -> str:
    name = value.strip().lower()
    if name not in SOURCES:
        raise argparse.ArgumentTypeError(f"unknown source {value!r}; choose from {', '.join(SOURCES)}")
    return name


def _behaviour(text: str) -> tuple[str, object]:
    """``NAME=VALUE`` with the value read as JSON where it reads (true, 0.25, 3), else as text."""
    import json

    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        value: object = json.loads(raw)
    except ValueError:
        value = raw
    return name.strip(), value


def handled_signals() -> tuple[int, ...]:
    """SIGTERM, and SIGINT unless this process was started with it ignored: a script's background
    job (``contact-sync sync &``) is meant to outlive a Ctrl-C typed for the script in front of it."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        return (signal.SIGTERM,)
    return (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """SIGINT and SIGTERM during a run: the first stops it, a second quits at once.

    The run works in a thread of its own while the main thread, the one signals reach, only waits: a
    signal sets the stop flag (``connectors.stop``) instead of raising wherever the main thread happens
    to be. Dagster leaves signal handling alone outside the main thread, so these handlers stay in place
    for the whole run. The workers finish their request in flight, record it and start nothing new; the
    run ends canceled and the command says what was saved. A second signal ends the process at once:
    every page is stored with its cursor and every write marked before its call, so this is as safe as
    a crash, which the next sync already recovers from. The run is marked canceled first (given half a
    second at most), so the UI does not show it started for ever.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else "Terminate in Dagster"

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports a process ended by it (130, 143)."""
        return 128 + self.signum if self.signum is not None else EXIT_RUN_FAILED

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        from connectors.stop import STOP

        name = signal.Signals(signum).name
        if self.signum is None:
            self.signum = signum
            STOP.request(f"stopped by {name}", until_exit=True)
            again = "Ctrl-C again" if signum == signal.SIGINT else f"a second {name}"
            print(
                f"contact-sync: {name}: stopping once the requests in flight are answered; "
                f"{again} quits at once",
                file=sys.stderr,
                flush=True,
            )
            return
        runner = sys.modules.get(
            "pipelines.runner"
        )  # not loaded: no run of ours to mark (and no slow import)
        if runner is not None:
            runner.cancel_running(
                f"Quit at once on a second {name}: the steps in flight did not finish; "
                "what was saved stays saved"
            )
        print(
            f"contact-sync: quit at once on a second {name}; what was saved stays saved and the next "
            "`contact-sync sync` goes on from there",
            file=sys.stderr,
            flush=True,
        )
        sys.stdout.flush()
        os._exit(128 + signum)

    def __enter__(self) -> "StopSignals":
        """Install the handlers (early: a signal before the run starts stops it before its first step)."""
        from connectors.stop import STOP

        STOP.clear()
        self._previous = {sig: signal.signal(sig, self._handle) for sig in handled_signals()}
        return self

    def __exit__(self, *_exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def run(self, work: Callable[[], T]) -> T:
        """``work()`` in a worker thread while this (main) thread waits, its result or its exception."""
        outcome: list[T] = []
        failure: list[BaseException] = []

        def target() -> None:
            try:
                outcome.append(work())
            except BaseException as exc:  # handed to the main thread, raised there
                failure.append(exc)

        worker = threading.Thread(target=target, name="contact-sync-run", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(0.2)
        if failure:
            raise failure[0]
        return outcome[0]


@contextmanager
def _watched(verbose: bool) -> Iterator[dict[str, Any]]:
    """The run's progress observer and loggers (``progress``, ``loggers`` keywords of the runner).

    On a terminal: a live display per stream, Dagster's log lines in ``contact-sync.log`` (and on
    the terminal too with ``-v``). Anywhere else (cron, CI, a pipe): nothing but the log lines on
    stderr, as a script expects.
    """
    if not sys.stderr.isatty() or os.environ.get("TERM") == "dumb":
        yield {}
        return
    from pipelines.logs import DEFAULT_LOG_FILE, python_logs_to, run_loggers
    from pipelines.progress_display import LiveProgress

    path = Path(DEFAULT_LOG_FILE).resolve()
    # The display draws on its own copy of the terminal: with a DAGSTER_HOME, Dagster points the
    # process's stdout and stderr at its compute-log files while the run executes, and a display
    # drawn there would neither be seen nor know it is on a terminal.
    with (
        os.fdopen(os.dup(sys.stderr.fileno()), "w", encoding="utf-8", buffering=1) as terminal,
        LiveProgress(terminal) as display,
        python_logs_to(path),
    ):
        yield {"progress": display, "loggers": run_loggers(console=verbose, file=path)}
    print(f"log lines of the run: {path}", file=sys.stderr)


def _dagster_home() -> Path | None:
    """Make a missing ``DAGSTER_HOME`` folder before Dagster needs it, saying so in one line."""
    path, created = ensure_dagster_home()
    if created:
        print(
            f"contact-sync: created DAGSTER_HOME {path} (with this project's dagster.yaml)", file=sys.stderr
        )
    return path


def cmd_sync(args: argparse.Namespace) -> int:
    from models.warehouse.db import open_warehouse
    from models.warehouse.locks import SourceBusyError
    from pipelines.runner import run_sync

    with StopSignals() as stop:
        settings = load_settings()
        settings.mappings()  # a bad mappings file: one line per problem, and nothing read or written
        _dagster_home()
        open_warehouse(settings.database_url)  # fail before the run, with one line, if it cannot be reached
        try:
            with _watched(args.verbose) as watch:
                report = stop.run(
                    lambda: run_sync(
                        settings,
                        sources=args.source or (),
                        dry_run=args.dry_run,
                        full_refresh=args.full_refresh,
                        **watch,
                    )
                )
        except SourceBusyError as exc:
            raise CommandError(str(exc), exit_code=EXIT_RUN_FAILED) from None
    if report.stopped:
        raise CommandError(
            f"stopped by {stop.name} (run {report.run_id}); saved: {report.saved()}; "
            "the next `contact-sync sync` goes on from there",
            exit_code=stop.exit_code,
        )
    for line in report.lines():
        print(line)
    if not report.success:
        raise CommandError(
            f"sync failed: {'; '.join(report.failures) or 'see the run log'}", exit_code=EXIT_RUN_FAILED
        )
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    import json
    import logging

    from pipelines.check import run_check

    # The table says what failed; the HTTP layer's retry warnings would only repeat it on stderr.
    logging.getLogger("connectors").addHandler(logging.NullHandler())
    settings = load_settings()
    settings.mappings()  # the file's own problems first, one line each; its paths are checked per source
    report = run_check(settings, sources=args.source or ())
    if args.json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        for line in report.lines():
            print(line)
    if not report.would_sync:
        raise CommandError(report.failure_line(), exit_code=EXIT_RUN_FAILED)
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from models.warehouse.db import open_warehouse
    from models.warehouse.store import RawStore
    from pipelines.status import status_lines

    for line in status_lines(RawStore(open_warehouse(load_settings().database_url))):
        print(line)
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    from models.warehouse.db import open_warehouse
    from pipelines.explain import explain_lines

    lines = explain_lines(open_warehouse(load_settings().database_url), args.target)
    if lines is None:
        raise CommandError(
            f"no contact or record {args.target!r} in the warehouse (give a contact id or source/object/id)",
            exit_code=EXIT_RUN_FAILED,
        )
    for line in lines:
        print(line)
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    import json

    from models.warehouse.db import open_warehouse
    from pipelines.show import NoSuchContactError, show_contact, text_lines, to_json

    settings = load_settings()
    engine = open_warehouse(settings.database_url)
    try:
        shown = show_contact(engine, settings, args.query)
    except NoSuchContactError as exc:
        raise CommandError(f"show: {exc}", exit_code=EXIT_RUN_FAILED) from None
    if args.json:
        print(json.dumps(to_json(shown, settings), indent=2, ensure_ascii=False))
    else:
        for line in text_lines(shown, settings):
            print(line)
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from models.warehouse.db import open_warehouse
    from pipelines.export import export_table

    written = export_table(open_warehouse(load_settings().database_url), args.table, args.format, args.output)
    if args.output is not None:
        print(f"wrote {written} {args.table} rows to {args.output}", file=sys.stderr)
    return EXIT_OK


def cmd_sandbox(args: argparse.Namespace) -> int:
    from connectors.emulator.behaviours import Behaviours
    from connectors.emulator.faults import FaultConfig
    from pipelines.demo import run_sandbox

    try:
        behaviours = Behaviours.from_mapping(dict(args.behaviour))
        faults = FaultConfig.from_mapping(dict(args.fault))
    except (TypeError, ValueError) as exc:
        raise CommandError(f"sandbox: {exc}") from exc
    run_sandbox(
        host=args.host,
        port=args.port,
        seed=args.seed,
        people=args.people,
        behaviours=behaviours,
        faults=faults,
        echo=_echo,
        households=args.households,
    )
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from pipelines.demo import run_demo

    _dagster_home()
    with StopSignals() as stop:
        first, second = stop.run(
            lambda: run_demo(people=args.people, seed=args.seed, echo=_echo, households=args.households)
        )
    if first.stopped or second.stopped:
        raise CommandError(f"demo stopped by {stop.name}", exit_code=stop.exit_code)
    if not (first.success and second.success):
        failures = "; ".join(first.failures + second.failures) or "see the run log"
        raise CommandError(f"demo sync failed: {failures}", exit_code=EXIT_RUN_FAILED)
    return EXIT_OK


def cmd_undo(args: argparse.Namespace) -> int:
    from models.warehouse.db import open_warehouse
    from pipelines.runner import run_undo

    settings = load_settings()
    open_warehouse(settings.database_url)
    _dagster_home()
    report = run_undo(settings, args.run_id, dry_run=args.dry_run)
    meta = report.assets.get("undo", {})
    if report.success:
        print(
            f"undo of run {args.run_id}{' (dry run)' if args.dry_run else ''}: "
            f"{'would restore' if args.dry_run else 'restored'} {meta.get('restored', 0)} fields, "
            f"{'would delete' if args.dry_run else 'deleted'} {meta.get('deleted', 0)} created records, "
            f"kept {meta.get('kept', 0)}, failed {meta.get('failed', 0)} (details: push_ledger, "
            f"run_id {report.run_id})"
        )
    if not report.success or meta.get("failed"):
        reason = "; ".join(report.failures) or f"{meta.get('failed')} writes failed; see push_ledger.error"
        raise CommandError(f"undo failed: {reason}", exit_code=EXIT_RUN_FAILED)
    return EXIT_OK


def _echo(line: str) -> None:
    print(line, flush=True)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def cmd_ui(args: argparse.Namespace) -> int:
    from pipelines.ui import run_ui

    load_settings()  # a bad setting stops here in one line, not in the UI's code-location error
    _dagster_home()
    return run_ui(host=args.host, port=args.port, daemon=not args.no_daemon, echo=_say)


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def cmd_backfill(args: argparse.Namespace) -> int:
    from pipelines.extract import BACKFILL_PARTITIONS, backfillable
    from pipelines.runner import run_backfill
    from pipelines.streams import STREAMS

    settings = load_settings()
    _dagster_home()
    streams = [s for s in STREAMS if s.source == args.source and args.object in (None, s.object)]
    if not streams:
        raise CommandError(f"{args.source} has no object {args.object!r}")
    windowed = [s for s in streams if backfillable(s)]
    for stream in streams:
        if stream not in windowed:
            print(f"{stream.name}: its API cannot filter by time; use sync --full-refresh", file=sys.stderr)
    if not windowed:
        raise CommandError(f"nothing to backfill for {args.source}")
    until = args.until or datetime.now(UTC).date()
    if until < args.since:
        raise CommandError(f"--until {until} is before --since {args.since}")
    first = BACKFILL_PARTITIONS.start.date()
    if args.since < first:  # the days a backfill covers are the UI's daily partitions
        raise CommandError(f"--since {args.since} is before {first}, the first day a backfill can cover")
    with StopSignals() as stop, _watched(args.verbose) as watch:
        report = stop.run(
            lambda: run_backfill(
                settings,
                source=args.source,
                objects=[s.object for s in windowed],
                first_day=args.since.isoformat(),
                last_day=until.isoformat(),
                **watch,
            )
        )
    if report.stopped:
        raise CommandError(
            f"stopped by {stop.name} (run {report.run_id}); saved: {report.saved()}; the rows re-read "
            "are stored and no cursor moved: run the same backfill again to finish it",
            exit_code=stop.exit_code,
        )
    for name, meta in sorted(report.assets.items()):
        print(
            f"{name}: read {meta.get('rows_read', 0)}, new {meta.get('rows_inserted', 0)}, "
            f"changed {meta.get('rows_updated', 0)}, requests {meta.get('requests', 0)} "
            f"({args.since} to {until}; cursors unchanged)"
        )
    if not report.success:
        raise CommandError(f"backfill failed: {'; '.join(report.failures)}", exit_code=EXIT_RUN_FAILED)
    return EXIT_OK


def _verbose(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="on a terminal, print Dagster's log lines above the progress display as well as to "
        "./contact-sync.log (without a terminal they are always printed, and there is no display)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="contact-sync",
        description="Keep one clean list of people across ClickFunnels, ClickSend, Linkflow, Zoho CRM and "
        "Zoho Bigin. Settings come from the environment and .env (see the README).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sync = commands.add_parser(
        "sync",
        help="one full cycle: incremental extract, identity resolution, reverse sync",
        description="Run the full_sync job once (the job the schedule runs) and print a summary.",
    )
    sync.add_argument(
        "--source", action="append", type=_source_list, metavar="S", help="only this source (repeatable)"
    )
    sync.add_argument("--dry-run", action="store_true", help="plan and record pushes, write nothing")
    sync.add_argument(
        "--full-refresh",
        action="store_true",
        help="ignore stored cursors, re-read everything, store fresh ones",
    )
    _verbose(sync)
    sync.set_defaults(handler=cmd_sync)

    backfill = commands.add_parser(
        "backfill",
        help="re-read a past window without moving the incremental cursors",
        description="Re-read a date window of the sources that can filter by time.",
    )
    backfill.add_argument("--source", required=True, type=_source_list, metavar="S")
    backfill.add_argument("--object", metavar="O", help="only this object of the source")
    backfill.add_argument(
        "--since", required=True, type=_day, metavar="DATE", help="first day of the window (YYYY-MM-DD, UTC)"
    )
    backfill.add_argument(
        "--until", type=_day, metavar="DATE", help="last day of the window (default: today)"
    )
    _verbose(backfill)
    backfill.set_defaults(handler=cmd_backfill)

    undo = commands.add_parser(
        "undo",
        help="put back what one sync's reverse sync wrote and delete the records it created",
        description="Undo one run's writes, field by field, leaving alone whatever changed since.",
    )
    undo.add_argument("run_id", metavar="RUN_ID", help="the run id the sync printed (push_ledger.run_id)")
    undo.add_argument("--dry-run", action="store_true", help="record the undo plan, write nothing")
    undo.set_defaults(handler=cmd_undo)

    check = commands.add_parser(
        "check",
        help="read-only: whether a sync would work, per source, with advice for each problem",
        description="Ask each configured source's API, read-only, what a sync depends on: host, "
        "credentials, connection, each object, the account's country and time zone, and the "
        "behaviours it detected. Exit 0 when a sync would work.",
    )
    check.add_argument(
        "--source", action="append", type=_source_list, metavar="S", help="only this source (repeatable)"
    )
    check.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    check.set_defaults(handler=cmd_check)

    status = commands.add_parser(
        "status",
        help="per source and object: cursor, last successful run, record counts, last error",
        description="Show the state of every stream as stored in the warehouse.",
    )
    status.set_defaults(handler=cmd_status)

    _add_lookup_commands(commands)
    _add_local_commands(commands)
    return parser


def _add_lookup_commands(commands: Any) -> None:
    """The commands that read the warehouse: explain, show, export."""
    explain = commands.add_parser(
        "explain",
        help="why records are one contact, and which nearby records were kept apart",
        description="Explain one golden contact from what the last resolution stored.",
    )
    explain.add_argument("target", metavar="CONTACT_ID", help="a contact id, or a record as source/object/id")
    explain.set_defaults(handler=cmd_explain)

    show = commands.add_parser(
        "show",
        help="one golden contact: its records, where each field came from, history, activity, pushes",
        description="Print what the warehouse holds on one person: the golden contact, each source "
        "record in it, which record each field came from and why, its merges and splits, its latest "
        "activity and the reverse-sync writes planned or sent for it. An email or phone is normalised "
        "as the pipeline does; a merged-away contact id leads to its survivor. Exit 1 when nothing "
        "(or more than one contact) matches.",
    )
    show.add_argument("query", metavar="EMAIL|PHONE|CONTACT_ID")
    show.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    show.set_defaults(handler=cmd_show)

    export = commands.add_parser(
        "export",
        help="write the golden contacts or the unified activity to a file or stdout",
        description="Export a warehouse table as CSV or JSON lines.",
    )
    export.add_argument("table", choices=("contacts", "activity"))
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    export.add_argument("--output", metavar="PATH", help="file to write (default: stdout)")
    export.set_defaults(handler=cmd_export)


def _add_local_commands(commands: Any) -> None:
    """The commands that run things on this machine: the sandbox, the demo, the UI."""
    sandbox = commands.add_parser(
        "sandbox",
        help="run the local emulator of the five APIs until stopped",
        description="Serve the five APIs locally and print the variables that point contact-sync at them.",
    )
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8765)
    sandbox.add_argument("--seed", type=int, default=1)
    sandbox.add_argument("--people", type=int, default=500)
    sandbox.add_argument(
        "--behaviour",
        type=_behaviour,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="play another answer to a vendor's open question, e.g. clicksend_inbound_poll=false or "
        "bigin_deleted=feed (the switches: connectors/emulator/README.md)",
    )
    sandbox.add_argument(
        "--fault",
        type=_behaviour,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="inject trouble from the start, e.g. error_rate_503=0.05, challenge_rate=0.05 (a 200 HTML "
        "'Just a moment...' page) or truncate_rate=0.05 (a 200 body cut short); the FaultConfig fields "
        "in connectors/emulator/README.md, also settable later with POST /_admin/faults",
    )
    sandbox.add_argument("--households", action="store_true", help=_HOUSEHOLDS_HELP)
    sandbox.set_defaults(handler=cmd_sandbox)

    demo = commands.add_parser(
        "demo",
        help="with no credentials: sync twice against the local emulator and print both summaries",
        description="Start the emulator, sync into a fresh SQLite warehouse, change data, sync again.",
    )
    demo.add_argument("--people", type=int, default=300, help="how many people the emulator holds")
    demo.add_argument("--seed", type=int, default=1, help="seed of the emulator's data")
    demo.add_argument("--households", action="store_true", help=_HOUSEHOLDS_HELP)
    demo.set_defaults(handler=cmd_demo)

    ui = commands.add_parser(
        "ui",
        help="the Dagster UI and its daemon until Ctrl-C (which stops both within seconds)",
        description="Start the Dagster webserver and daemon on this code location (DAGSTER_HOME, "
        "default ./.dagster_home). The first Ctrl-C or SIGTERM stops both within seconds, a run in "
        "progress canceled; a second kills them at once.",
    )
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.add_argument("--no-daemon", action="store_true", help="the UI only: no schedule, queue or backfills")
    ui.set_defaults(handler=cmd_ui)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``contact-sync`` script; returns the process exit status."""
    code = _run(argv)
    if argv is None:
        # The process ends now: collecting a sync's heap on the way out took seconds (nearly three
        # after a stopped sync), time a stop should not cost. Frozen objects are left to the exit.
        gc.freeze()
    return code


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except (SettingsError, WarehouseError, DagsterHomeError) as exc:
        print(f"contact-sync: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except MappingsError as exc:
        for line in exc.problems:
            print(f"contact-sync: {line}", file=sys.stderr)
        return EXIT_USAGE
    except CommandError as exc:
        print(f"contact-sync: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("contact-sync: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
