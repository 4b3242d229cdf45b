"""The ``contact-sync`` command line: thin argument parsing over functions that do the work.

Expected failures (a bad setting, an unreachable warehouse, a failed run) end with one readable line on
stderr and a non-zero status; a traceback means a bug.
"""

import argparse
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path

from models.warehouse.db import WarehouseError
from pipelines.dagster_home import DagsterHomeError, ensure_dagster_home
from pipelines.settings import SOURCES, SettingsError, load_settings

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2


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

    settings = load_settings()
    _dagster_home()
    open_warehouse(settings.database_url)  # fail before the run, with one line, if it cannot be reached
    try:
        report = run_sync(
            settings, sources=args.source or (), dry_run=args.dry_run, full_refresh=args.full_refresh
        )
    except SourceBusyError as exc:
        raise CommandError(str(exc), exit_code=EXIT_RUN_FAILED) from None
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
    report = run_check(load_settings(), sources=args.source or ())
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


def cmd_export(args: argparse.Namespace) -> int:
    from models.warehouse.db import open_warehouse
    from pipelines.export import export_table

    written = export_table(open_warehouse(load_settings().database_url), args.table, args.format, args.output)
    if args.output is not None:
        print(f"wrote {written} {args.table} rows to {args.output}", file=sys.stderr)
    return EXIT_OK


def cmd_sandbox(args: argparse.Namespace) -> int:
    from connectors.emulator.behaviours import Behaviours
    from pipelines.demo import run_sandbox

    try:
        behaviours = Behaviours.from_mapping(dict(args.behaviour))
    except (TypeError, ValueError) as exc:
        raise CommandError(f"sandbox: {exc}") from exc
    run_sandbox(
        host=args.host, port=args.port, seed=args.seed, people=args.people, behaviours=behaviours, echo=_echo
    )
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from pipelines.demo import run_demo

    _dagster_home()
    first, second = run_demo(people=args.people, seed=args.seed, echo=_echo)
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


def cmd_ui(args: argparse.Namespace) -> int:
    """Become ``dagster dev`` on this project's code location, after making a missing ``DAGSTER_HOME``.

    The workspace it is given names the location ``contact_sync`` as ``workspace.yaml`` does, with
    the current directory as the code's working directory, so settings and ``.env`` are read from
    where the command runs, as every other command reads them. The process is replaced rather than
    wrapped, so Ctrl-C and service managers' signals reach ``dagster dev`` itself.
    """
    import hashlib
    import json

    load_settings()  # a bad setting stops here in one line, not in the UI's code-location error
    _dagster_home()
    location = {
        "module_name": "pipelines.definitions",
        "attribute": "defs",
        "location_name": "contact_sync",
        "working_directory": os.getcwd(),
    }
    # One small file per user and working directory, rewritten each time: nothing piles up.
    folder = Path(tempfile.gettempdir()) / f"contact-sync-ui-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    workspace = folder / f"workspace-{hashlib.sha256(os.getcwd().encode()).hexdigest()[:12]}.yaml"
    workspace.write_text(json.dumps({"load_from": [{"python_module": location}]}))  # JSON is YAML
    command = [sys.executable, "-m", "dagster", "dev", "-w", str(workspace)]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [*command, "--host", args.host, "--port", str(args.port)])  # noqa: S606 - fixed argv
    return EXIT_OK  # not reached: execv replaces the process


def _echo(line: str) -> None:
    print(line, flush=True)


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
    report = run_backfill(
        settings,
        source=args.source,
        objects=[s.object for s in windowed],
        first_day=args.since.isoformat(),
        last_day=until.isoformat(),
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

    export = commands.add_parser(
        "export",
        help="write the golden contacts or the unified activity to a file or stdout",
        description="Export a warehouse table as CSV or JSON lines.",
    )
    export.add_argument("table", choices=("contacts", "activity"))
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    export.add_argument("--output", metavar="PATH", help="file to write (default: stdout)")
    export.set_defaults(handler=cmd_export)

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
    sandbox.set_defaults(handler=cmd_sandbox)

    demo = commands.add_parser(
        "demo",
        help="with no credentials: sync twice against the local emulator and print both summaries",
        description="Start the emulator, sync into a fresh SQLite warehouse, change data, sync again.",
    )
    demo.add_argument("--people", type=int, default=300, help="how many people the emulator holds")
    demo.add_argument("--seed", type=int, default=1, help="seed of the emulator's data")
    demo.set_defaults(handler=cmd_demo)

    ui = commands.add_parser(
        "ui",
        help="the Dagster UI and daemon (dagster dev) on this project, creating a missing DAGSTER_HOME",
        description="Run `dagster dev` on the contact_sync code location until Ctrl-C. Set DAGSTER_HOME to "
        "keep runs across sessions (a missing folder is created); unset, Dagster uses a temporary one.",
    )
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(handler=cmd_ui)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``contact-sync`` script; returns the process exit status."""
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except (SettingsError, WarehouseError, DagsterHomeError) as exc:
        print(f"contact-sync: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CommandError as exc:
        print(f"contact-sync: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("contact-sync: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
