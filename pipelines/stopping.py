"""How a run stops when asked, whoever asks: Ctrl-C or SIGTERM to the command line, "Terminate" in the
Dagster UI, SIGTERM to a run's pod.

Everything meets in one flag (``connectors.stop.STOP``). The command line sets it from its signal
handlers. Dagster, when it terminates a run, interrupts the main thread of the step's process
(``DagsterExecutionInterruptedError``); the steps that work in threads catch that interrupt while they
wait (``run_in_threads``) and set the flag, so the workers stop between requests instead of being
abandoned mid-write or, as before, sending every planned write first. Either way the step then reports
what it finished and what it left in part, and ends the run as canceled (``end_run_stopped``), which is
what Dagster shows for a run stopped on purpose.
"""

import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import dagster as dg
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster._core.log_manager import LOG_RECORD_METADATA_ATTR
from dagster._loggers import colored_console_logger
from sqlalchemy.engine import Engine

from connectors.stop import STOP, StopRequested
from models.warehouse.waits import cancel_on_stop

T = TypeVar("T")

StepContext = dg.OpExecutionContext | dg.AssetExecutionContext

TERMINATED = "the run was terminated"
"""The reason given when Dagster, not our command line, stops the run."""


RECORDING_GRACE_S = 1.0
"""How long after a stop the statements of the extract's and reverse sync's threads may still run
before they are cancelled. Their writes record what happened (a page read with its cursor, a call's
outcome) and take milliseconds when nothing holds them up, so they land; a statement still running
after this waits on another session's lock or is a long read, and is cancelled (what is left is what
a kill leaves, and the next sync settles it)."""


def with_statements_stopped(engine: Engine, call: Callable[[], T]) -> Callable[[], T]:
    """``call``, made to run inside `cancel_on_stop` (with `RECORDING_GRACE_S`) in whichever thread
    runs it: the cancel reaches only the calling thread's statements, so each worker needs its own."""

    def run() -> T:
        with cancel_on_stop(engine, STOP, STOP.check, grace_s=RECORDING_GRACE_S):
            return call()

    return run


def run_in_threads(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Each call in a thread of its own; their results, in order.

    The calling thread only waits. An interrupt from Dagster while it waits sets the stop flag and the
    wait goes on: the workers finish the request in flight, record it and return what they did, so the
    step can report it. A second interrupt while they wind down leaves at once (the workers, with the
    flag set, start nothing new).
    """
    if not calls:
        return []
    pool = ThreadPoolExecutor(len(calls))
    try:
        futures = [pool.submit(call) for call in calls]
        try:
            wait(futures)
        except (DagsterExecutionInterruptedError, KeyboardInterrupt):
            STOP.request(TERMINATED)
            wait(futures)
        return [future.result() for future in futures]
    finally:
        pool.shutdown(wait=False)


def end_run_stopped(context: StepContext) -> NoReturn:
    """End the run as canceled: reported as canceling, then the interrupt Dagster ends a run with.

    Dagster marks an interrupted run canceled only when the run was reported canceling first (as its
    Terminate does); an interrupt without that reads as a crash and fails the run.
    """
    reason = STOP.reason
    instance = context.instance
    run = instance.get_run_by_id(context.run_id)
    if run is not None and run.status not in (dg.DagsterRunStatus.CANCELING, dg.DagsterRunStatus.CANCELED):
        instance.report_run_canceling(run, message=f"Stopping: {reason}. No new request starts.")
    STOP.end_run()
    raise DagsterExecutionInterruptedError(reason)


@contextmanager
def stops_cleanly(context: StepContext) -> Iterator[None]:
    """Around a step's body: a step that starts after the stop does nothing, and a ``StopRequested``
    escaping the body (a request refused by the HTTP layer) ends the run canceled, not failed.

    So does Dagster's own interrupt raised in the body (a step working in its main thread, such as
    identity resolution, when the run is terminated or its process gets SIGTERM): without a report of
    the run canceling first, Dagster would record an interrupt it did not ask for as a failure.
    """
    if STOP.is_set():
        context.log.info(f"not started: {STOP.reason}")
        end_run_stopped(context)
    try:
        yield
    except StopRequested:
        end_run_stopped(context)
    except (DagsterExecutionInterruptedError, KeyboardInterrupt):
        STOP.request(TERMINATED)
        end_run_stopped(context)


def is_interrupt(error_cls_name: str | None) -> bool:
    """Whether a step's or run's error is the interrupt a stop ends with (not a failure to report)."""
    return error_cls_name in ("DagsterExecutionInterruptedError", "KeyboardInterrupt")


class _QuietStop(logging.Filter):
    """Drops the stack traces Dagster prints when a run is stopped on purpose.

    A stopped step is logged as a failure with the interrupt's traceback, and the run's cancellation
    with it again; a person who pressed Ctrl-C needs neither. The step's failure goes, the run's
    cancellation keeps its first line. Every other record passes untouched, and the run's event log
    (what the UI shows) keeps everything.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        meta: Any = getattr(record, LOG_RECORD_METADATA_ATTR, None)
        event = meta.get("dagster_event") if isinstance(meta, dict) else None
        if event is None:
            return True
        data = getattr(event, "event_specific_data", None)
        error = getattr(data, "error", None)
        if not is_interrupt(getattr(error, "cls_name", None)):
            return True
        if event.event_type_value == "STEP_FAILURE":
            return False
        record.msg = str(record.msg).split("\n", 1)[0]
        record.args = ()
        return True


def _console_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    logger: logging.Logger = colored_console_logger.logger_fn(init_context)
    for handler in logger.handlers:
        handler.addFilter(_QuietStop())
    return logger


console_logger = dg.LoggerDefinition(
    _console_logger,
    config_schema=colored_console_logger.config_schema,
    description="Dagster's colored console logger, without the stack traces of a run stopped on purpose.",
)
"""Dagster's console logger with ``_QuietStop``: the runs of this code location log as before, except
that a stop is not followed by pages of traceback."""
