"""What every read yields: pages of raw records, each with the cursor reached so far.

The extract assets write a page's rows and its cursor in one transaction, so a page's cursor must be
safe to store as soon as that page is stored: resuming from it may re-read a little (rows are upserted
by id with a content hash) but never skips anything.
"""

from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, Self, TypeVar

from connectors.errors import PaginationLoopError


class Cursor(Protocol):
    """A frozen dataclass holding only JSON-safe values."""

    def to_json(self) -> dict[str, Any]: ...

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self: ...


CursorT = TypeVar("CursorT")


@dataclass(frozen=True)
class Page(Generic[CursorT]):
    """Raw payloads exactly as the API sent them, plus the cursor that covers them.

    ``deleted_ids`` lists records the API reported gone (Zoho's deleted feed, Linkflow ids missing
    from a hydration). ``part`` names the sub-feed when one stream reads several (ClickSend ``sms``:
    ``history``, ``inbound``, ``receipt``), because their ids overlap.

    ``expected`` is how many records the whole read will yield, as far as the API has told so far
    (ClickSend's ``total`` of each listing begun, Linkflow's ids of each window listed), or None when
    it tells nothing. It only feeds progress estimates, and grows as later parts report theirs.
    """

    records: list[dict[str, Any]]
    cursor: CursorT
    deleted_ids: list[str] = field(default_factory=list)
    part: str | None = None
    expected: int | None = None


class LoopGuard:
    """Refuses a pagination token seen before in the same scan (singer-sdk's paginator guard)."""

    def __init__(self, source: str, method: str, path: str) -> None:
        self._source = source
        self._method = method
        self._path = path
        self._seen: set[str] = set()

    def check(self, token: object) -> None:
        key = str(token)
        if key in self._seen:
            raise PaginationLoopError(
                self._source,
                self._method,
                self._path,
                message=f"the API returned the pagination token {key[:40]!r} twice; stopping",
            )
        self._seen.add(key)
