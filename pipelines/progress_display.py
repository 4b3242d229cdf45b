"""The CLI's live progress display on a terminal, drawn with rich: one line per stream.

Each line shows the stream, a bar where the API told how many records to expect (ClickSend's totals,
Linkflow's id windows; a pulse elsewhere), records read (of the expected), pages, requests per
second over the last few seconds, and the time left at the current pace, or, once done, how long it
took. ``LiveProgress`` is a ``pipelines.progress.ProgressObserver``: extract calls it from its worker
threads, and rich's own lock keeps the drawing whole.
"""

import time
from collections import deque
from datetime import timedelta
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.text import Text

from pipelines.progress import StreamProgress

RATE_WINDOW_S = 10.0
"""Requests per second are measured over this many seconds: recent enough to show a slowdown (a 429
backoff), long enough not to flicker with each page."""


def _duration(seconds: float) -> str:
    return str(timedelta(seconds=int(seconds)))


class _CountColumn(ProgressColumn):
    """``1,200/3,400 records``, or ``1,200 records`` when nothing told a total."""

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", "records")
        expected = task.fields.get("expected")
        done = int(task.fields["records"])
        if expected is not None and not task.finished:
            return Text(f"{done:,}/{_plural(max(expected, done), unit)}")
        return Text(_plural(done, unit))


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun[:-1] if count == 1 and noun.endswith('s') else noun}"


class _PagesColumn(ProgressColumn):
    """Pages read (or write calls made)."""

    def render(self, task: Task) -> Text:
        step = task.fields.get("step")
        return Text(_plural(int(task.fields.get("pages", 0)), step) if step else "")


class _TimeColumn(ProgressColumn):
    """Time left at the current pace while a total is known; the time taken once done."""

    def render(self, task: Task) -> Text:
        if task.finished:
            return Text(f"done in {_duration(task.finished_time or 0)}", style="green")
        if task.fields.get("expected") is None or not task.speed:
            return Text("")
        remaining = max(0.0, (task.total or 0) - task.completed) / task.speed
        return Text(f"~{_duration(remaining)} left", style="cyan")


class _Stream:
    """One line of the display; what ``ProgressObserver.stream`` hands to the work."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task
        self._pages = 0
        self._records = 0
        self._total_requests = 0
        self._requests: deque[tuple[float, int]] = deque([(time.monotonic(), 0)])

    def _rate(self, requests: int) -> float:
        now = time.monotonic()
        self._requests.append((now, requests))
        while len(self._requests) > 2 and now - self._requests[1][0] >= RATE_WINDOW_S:
            self._requests.popleft()
        start, first = self._requests[0]
        return (requests - first) / (now - start) if now > start else 0.0

    def page(self, *, records: int, expected: int | None, requests: int) -> None:
        self._pages += 1
        total = None if expected is None else max(expected, records)
        self._records = records
        self._total_requests = requests
        rate = self._rate(requests)
        self._progress.update(
            self._task,
            completed=records,
            total=total,
            records=records,
            expected=expected,
            pages=self._pages,
            rate=f"{rate:.1f} req/s" if requests else "",
        )

    def finished(self, *, error: str | None = None) -> None:
        requests = _plural(self._total_requests, "requests") if self._total_requests else ""
        mark, note = ("[green]✓[/]", requests) if error is None else ("[red]✗[/]", f"[red]{error}[/]")
        # A full bar (rich marks the task finished when completed reaches total), even for 0 records.
        full = max(self._records, 1)
        self._progress.update(self._task, total=full, completed=full, mark=mark, rate=note)
        self._progress.stop_task(self._task)


class LiveProgress:
    """The display, for the length of a ``with`` block, drawn on ``terminal``."""

    def __init__(self, terminal: TextIO) -> None:
        self.console = Console(file=terminal)
        self._progress = Progress(
            TextColumn("{task.fields[mark]}"),
            TextColumn("{task.description}", style="bold"),
            BarColumn(bar_width=24),
            _CountColumn(),
            _PagesColumn(),
            TextColumn("{task.fields[rate]}"),
            _TimeColumn(),
            console=self.console,
            refresh_per_second=4,
        )

    def __enter__(self) -> "LiveProgress":
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._progress.stop()

    def stream(self, name: str, *, unit: str = "records", step: str | None = "pages") -> StreamProgress:
        task = self._progress.add_task(
            name, total=None, mark="[yellow]…[/]", unit=unit, step=step, records=0, pages=0, rate=""
        )
        return _Stream(self._progress, task)
