"""Typed failures of the source APIs.

The pipeline needs to know two things about a failed call without parsing text: would repeating it
help (``RetriableError``) or not (``FatalError``), and what exactly the API said. Every error carries
the source, the method, the path (never the query string, never a header) and the API's own status,
code and message, and renders as one readable line such as
``zoho_crm GET /crm/v8/Leads -> 400 DISCRETE_PAGINATION_LIMIT_EXCEEDED: You can only get ...``.
"""

from typing import Any

_MAX_MESSAGE = 300


class ConnectorError(Exception):
    """A call to a source API that did not succeed."""

    def __init__(
        self,
        source: str,
        method: str,
        path: str,
        *,
        status: int | None = None,
        code: str | None = None,
        message: str = "",
        attempts: int = 1,
    ) -> None:
        self.source = source
        self.method = method
        self.path = path
        self.status = status
        self.code = code
        self.message = " ".join(message.split())[:_MAX_MESSAGE]
        self.attempts = attempts
        super().__init__(self._line())

    def _line(self) -> str:
        outcome = str(self.status) if self.status is not None else "no response"
        detail = f"{self.code}: {self.message}" if self.code and self.message else self.code or self.message
        text = f"{self.source} {self.method} {self.path} -> {outcome}"
        if detail:
            text += f" {detail}"
        if self.attempts > 1:
            text += f" (after {self.attempts} attempts)"
        return text

    def __str__(self) -> str:
        return self._line()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._line()!r})"

    def __reduce__(self) -> tuple[object, ...]:
        # Dagster and multiprocessing pickle exceptions; keyword-only arguments need a helper.
        state = {
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "attempts": self.attempts,
        }
        return (_rebuild, (type(self), self.source, self.method, self.path, state))


def _rebuild(
    cls: type[ConnectorError], source: str, method: str, path: str, state: dict[str, Any]
) -> ConnectorError:
    return cls(source, method, path, **state)


class RetriableError(ConnectorError):
    """A transient failure (network, timeout, 429, 5xx) that outlasted the retry budget.

    Running the same step later is expected to succeed.
    """


class RateLimitedError(RetriableError):
    """The API kept answering 429 until the retry budget ran out."""


class FatalError(ConnectorError):
    """The API refused the request; repeating it unchanged will fail the same way."""


class AuthError(FatalError):
    """Credentials are missing, wrong, expired or lack a scope; a person has to act."""


class NotFoundError(FatalError):
    """The path or the record does not exist."""


class PaginationLoopError(FatalError):
    """A paginator was handed the same cursor twice; continuing would loop forever."""


class AmbiguousWriteError(ConnectorError):
    """A non-repeatable write failed after the request may have reached the API.

    The record may or may not exist now. The caller must look it up before trying again; the HTTP
    layer never repeats such a request on its own.
    """
