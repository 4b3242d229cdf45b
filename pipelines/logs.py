"""Where a run's log lines go: the console, as always without a terminal, or a file behind the display.

On a terminal the CLI draws a live progress display; Dagster's log lines (one per page, per source
check, per push) would scroll it away, so they go to a file instead, or to both with ``-v``. The
``file`` logger is declared on every job (``LOGGERS``) so run config can choose it, as it chooses
Dagster's own ``console`` logger.
"""

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg

from pipelines.stopping import console_logger

DEFAULT_LOG_FILE = "contact-sync.log"
"""Where the CLI writes Dagster's log lines while it shows the progress display (working directory)."""

LINE_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
"""The console logger's layout, so a line reads the same in the file as it did on the terminal."""


class AppendingFileHandler(logging.Handler):
    """Appends each record to ``path``, opening and closing the file per record.

    Dagster builds a run's loggers and never closes them; a handler that held the file open would
    leak a descriptor per run in a long-lived process. A log line per page costs nothing next to
    the page's HTTP request.
    """

    def __init__(self, path: Path, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.path = path
        self.setFormatter(logging.Formatter(LINE_FORMAT))
        self._write_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            with self._write_lock, self.path.open("a", encoding="utf-8") as file:
                file.write(line + "\n")
        except Exception:
            self.handleError(record)


@dg.logger(
    {
        "path": dg.Field(str, description="File the run's log lines are appended to."),
        "log_level": dg.Field(str, is_required=False, default_value="INFO"),
        "name": dg.Field(str, is_required=False, default_value="dagster"),
    },
    description="Appends the run's log lines to a file (the CLI's choice while it shows progress).",
)
def file_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    config = init_context.logger_config
    logger = logging.Logger(config["name"], level=config["log_level"].upper())
    logger.addHandler(AppendingFileHandler(Path(config["path"])))
    return logger


LOGGERS: dict[str, dg.LoggerDefinition] = {"console": console_logger, "file": file_logger}
"""The loggers every job offers: Dagster's console logger (the default) and ``file``."""


def run_loggers(*, console: bool = True, file: Path | None = None, level: str = "INFO") -> dict[str, Any]:
    """The ``loggers`` section of a run's config: the console, a file, or both.

    ``level`` is INFO because the console logger defaults to DEBUG, which buries the per-page lines.
    """
    chosen: dict[str, Any] = {}
    if console or file is None:
        chosen["console"] = {"config": {"log_level": level}}
    if file is not None:
        chosen["file"] = {"config": {"log_level": level, "path": str(file)}}
    return chosen


@contextmanager
def python_logs_to(path: Path, names: tuple[str, ...] = ("connectors",)) -> Iterator[None]:
    """Send the plain Python loggers ``names`` (the HTTP layer's retry warnings) to ``path`` for a while,
    instead of the terminal the progress display is drawn on."""
    handler = AppendingFileHandler(path)
    loggers = [logging.getLogger(name) for name in names]
    kept = [logger.propagate for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, propagate in zip(loggers, kept, strict=True):
            logger.removeHandler(handler)
            logger.propagate = propagate
