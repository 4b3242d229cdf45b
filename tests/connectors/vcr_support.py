"""Cassettes of the connectors' requests, recorded against the emulator and replayed strictly.

Playback is strict: every request must match a recorded one (method, path, query, body and the
conditional headers), no recorded answer may be used twice, and every recorded answer must be used,
so a client that sends a different, an extra or a missing request fails its cassette test.

Re-record after changing a client on purpose::

    CONTACT_SYNC_RECORD_CASSETTES=1 .venv/bin/pytest tests/connectors -k cassette

Recording starts the emulator; playback needs nothing but the files. Secrets never reach a file:
the credential headers are dropped before a request is written, and the Linkflow token is replaced
in the ``/token`` answer before it is written (the ``filter_*`` functions below).
"""

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import vcr
from vcr.cassette import Cassette

CASSETTES = Path(__file__).parent / "cassettes"
RECORDING = os.environ.get("CONTACT_SYNC_RECORD_CASSETTES") == "1"

SECRET_HEADERS = ("Authorization", "X-OpenApi-Key", "X-OpenApi-Secret", "X-OpenApi-Token", "Maton-Connection")
MATCHED_HEADERS = ("If-Modified-Since", "If-Unmodified-Since")
TOKEN_PLACEHOLDER = "recorded-token"


def filter_response(response: dict[str, Any]) -> dict[str, Any]:
    """Replace the token in a ``/token`` answer (the only secret a response carries)."""
    body = response.get("body", {}).get("string")
    if not body:
        return response
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return response
    if isinstance(payload, dict) and "token" in payload and "expiration" in payload:
        payload["token"] = TOKEN_PLACEHOLDER
        text = json.dumps(payload).encode()
        response["body"]["string"] = text
        for name in response.get("headers", {}):
            if name.lower() == "content-length":
                response["headers"][name] = [str(len(text))]
    return response


def _conditional_headers(r1: Any, r2: Any) -> None:
    for name in MATCHED_HEADERS:
        assert r1.headers.get(name) == r2.headers.get(name), (
            f"{name}: {r1.headers.get(name)} != {r2.headers.get(name)}"
        )


def _recorder() -> vcr.VCR:
    recorder = vcr.VCR(
        cassette_library_dir=str(CASSETTES),
        record_mode="all" if RECORDING else "none",
        match_on=("method", "path", "query", "body", "conditional_headers"),
        filter_headers=list(SECRET_HEADERS),
        before_record_response=filter_response,
        decode_compressed_response=True,
    )
    recorder.register_matcher("conditional_headers", _conditional_headers)
    return recorder


@contextmanager
def cassette(name: str) -> Iterator[Cassette]:
    """Record (``CONTACT_SYNC_RECORD_CASSETTES=1``) or strictly replay ``cassettes/<name>.yaml``."""
    path = CASSETTES / f"{name}.yaml"
    if not RECORDING and not path.exists():
        raise FileNotFoundError(f"{path} is missing; record it with CONTACT_SYNC_RECORD_CASSETTES=1")
    if RECORDING and path.exists():
        path.unlink()
    with _recorder().use_cassette(f"{name}.yaml", allow_playback_repeats=False) as tape:
        yield tape
    if not RECORDING:
        assert tape.all_played, f"{name}: {len(tape.data) - tape.play_count} recorded requests were not made"


def cassette_files() -> list[Path]:
    return sorted(CASSETTES.rglob("*.yaml"))
