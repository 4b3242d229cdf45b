"""How long work reports its progress: a small observer that extract (and reverse sync) call per page.

Dagster's log lines say what happened; a person watching a first sync of a large account wants to
see how far it is. The work calls ``ProgressObserver.stream`` when a stream starts and the returned
``StreamProgress`` once per page (or per batch of writes) and once at the end. What listens is
chosen by whoever runs the job: the CLI's live display on a terminal (``pipelines.progress_display``),
nothing anywhere else (``NO_PROGRESS``). No Dagster, no terminal code here: connectors and models
never see it, and the assets only pass figures they already have.
"""

from typing import Protocol


class StreamProgress(Protocol):
    """One stream's progress; every figure is a running total since the stream started."""

    def page(self, *, records: int, expected: int | None, requests: int) -> None:
        """A page (or batch) is done: ``records`` handled so far, ``expected`` in all when the API
        told (None when it did not), ``requests`` made so far."""

    def finished(self, *, error: str | None = None) -> None:
        """The stream is done, or failed with the one-line ``error``."""


class ProgressObserver(Protocol):
    """Hands out one ``StreamProgress`` per stream; called from several threads at once."""

    def stream(self, name: str, *, unit: str = "records", step: str | None = "pages") -> StreamProgress:
        """A stream called ``name`` (``zoho_crm/lead``) starts; ``unit`` says what it counts, ``step``
        what each ``page`` call is (``calls`` for writes; None when a step has no parts)."""
        ...


class _Silent:
    """Listens to nothing: what a run outside the CLI's terminal display reports to."""

    def page(self, *, records: int, expected: int | None, requests: int) -> None:
        return None

    def finished(self, *, error: str | None = None) -> None:
        return None

    def stream(self, name: str, *, unit: str = "records", step: str | None = "pages") -> StreamProgress:
        return self


NO_PROGRESS: ProgressObserver = _Silent()
