"""The process's stop flag: once it is set, no new request starts and every worker winds down.

A sync works in several threads (one per source in extract and in reverse sync), and a signal reaches
only the main thread. Rather than interrupting a worker anywhere (mid-transaction, mid-write), the
signal handler or Dagster's termination sets this flag, and each worker looks at it where stopping is
clean: the HTTP layer before each attempt and during each backoff wait (so a page loop ends at its next
page), reverse sync before each write batch, identity resolution between its phases, each step before
it starts. The request in flight finishes (or times out) and its answer is recorded as usual; the next
one never starts. What was stored is exactly what a run killed at that point would
have stored, so the next sync goes on from there.

``StopRequested`` derives from ``BaseException``, as ``KeyboardInterrupt`` does, so the ``except
Exception`` nets that turn a failing stream into an error line let it pass: a stop is not a failure.
"""

import threading


class StopRequested(BaseException):
    """Raised where a worker finds the stop flag set, instead of starting more work.

    ``sent`` says whether an earlier attempt of the request it interrupted may have reached the API
    (a write answered 503, or whose connection dropped): its outcome is then unknown and must be
    settled as a lost answer is, never assumed not to have happened.
    """

    def __init__(self, reason: str, *, sent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sent = sent


class StopFlag:
    """A ``threading.Event`` with the reason it was set and whether it outlives the current run."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._reason: str | None = None
        self._until_exit = False

    def request(self, reason: str, *, until_exit: bool = False) -> None:
        """Ask every worker to stop; the first reason is kept.

        ``until_exit``: the process is going away (a signal to the command line), so the flag stays
        set for whatever would run next. Otherwise it is cleared when the run ends (``end_run``), so a
        process that runs jobs one after another (a notebook, a test) is not stopped for good.
        """
        with self._lock:
            if self._reason is None:
                self._reason = reason
            self._until_exit = self._until_exit or until_exit
            self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    @property
    def reason(self) -> str:
        return self._reason or "stop requested"

    def check(self, *, sent: bool = False) -> None:
        """Raise ``StopRequested`` when the flag is set; a no-op otherwise (cheap: one flag read)."""
        if self._event.is_set():
            raise StopRequested(self.reason, sent=sent)

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, waking at once when the flag is set; True when it is."""
        return self._event.wait(max(0.0, seconds))

    def end_run(self) -> None:
        """The stopped run is over: clear the flag unless the process itself is stopping."""
        with self._lock:
            if not self._until_exit:
                self._reason = None
                self._event.clear()

    def clear(self) -> None:
        """Forget any request (tests; a new command in the same process)."""
        with self._lock:
            self._reason = None
            self._until_exit = False
            self._event.clear()


STOP = StopFlag()
"""The flag of this process: every client, page loop and push worker looks at this one."""
