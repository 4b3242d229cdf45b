"""The outcome of writing one record, so reverse sync can ledger each record on its own.

A 2xx can hide failed records (Zoho answers 200 or 207 with a status per element), so the clients
read every record's own result. Failures of the whole call (auth, rate limit, a 5xx after retries)
raise typed errors instead; a ``WriteResult`` always describes one record.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from connectors.errors import AuthError, FatalError
from connectors.http import json_body

ALREADY_MODIFIED = "ALREADY_MODIFIED"
"""Zoho's code (and our code for any 412) when the record changed after the ``If-Unmodified-Since``
time: "Record updated time has already passed if-unmodified-since time" (v7 update and upsert pages,
api-notes §5.7)."""
RECORD_MODIFIED = "RECORD_MODIFIED"
"""The code earlier notes (and the emulator) assumed for the same refusal; still read as a conflict."""
CONFLICT_CODES = frozenset({ALREADY_MODIFIED, RECORD_MODIFIED})


@dataclass(frozen=True)
class WriteResult:
    """``record_id`` is the id at the source (known after a create or upsert succeeded)."""

    record_id: str | None
    ok: bool
    code: str | None = None
    message: str = ""
    retriable: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    action: str | None = None
    """``insert`` or ``update`` when the API says which happened."""
    gone: bool = False
    """The record addressed does not exist (404): it was deleted at the source since we read it."""
    record: dict[str, Any] = field(default_factory=dict)
    """The record as the answer shows it after the write (Zoho: the result's ``details``, with
    ``Modified_Time`` and ``Modified_By``; the others: the record they answer with, with its own
    modification time and, for Linkflow, ``ver``). Survivorship tells our writes from people's edits
    by it (`models.identity.own_writes`)."""

    @property
    def conflict(self) -> bool:
        """The record changed at the source since it was read; re-read before writing again."""
        return self.code in CONFLICT_CODES


def write_one(
    record_id: str | None,
    send: Callable[[], httpx.Response],
    *,
    id_of: Callable[[Any], object] = lambda body: body.get("id") if isinstance(body, dict) else None,
    record_of: Callable[[Any], object] = lambda body: body,
) -> WriteResult:
    """Run a one-record write and turn the API's refusal of that record into a ``WriteResult``.

    Refusals that concern the record (validation, not found, conflict, a business code) become
    ``ok=False``; failures of the call itself (auth, exhausted retries, an ambiguous create) raise.
    ``record_of`` finds the written record in the answer's body (`WriteResult.record`).
    """
    try:
        response = send()
    except AuthError:
        raise
    except FatalError as err:
        code = ALREADY_MODIFIED if err.status == 412 else err.code or f"HTTP_{err.status}"
        return WriteResult(
            record_id, False, code, err.message, gone=err.status == 404 and record_id is not None
        )
    # A 2xx body that is not JSON never gets here: the HTTP layer raised AmbiguousWriteError for it.
    body: Any = None
    if response.content.strip():
        try:
            body = json_body(response)
        except ValueError:
            body = None
    found = id_of(body) if body is not None else None
    record = record_of(body) if body is not None else None
    return WriteResult(
        str(found) if found is not None else record_id,
        True,
        details=body if isinstance(body, dict) else {},
        action="insert" if response.status_code == 201 else None,
        record=dict(record) if isinstance(record, dict) else {},
    )
