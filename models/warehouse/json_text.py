"""JSON documents read back from the warehouse, parsed by orjson.

Every step of a run parses stored payloads again: the incremental canonical step parses each record in
scope (22,000 of them after a 10% change at 100,000 people), activity each event and message read,
reverse sync each destination record it plans. The standard library takes about 25 µs for a
750-byte contact payload and orjson about 9: a tenth of the canonical step's time.

orjson refuses some documents the standard parser takes and the store may hold (a payload is stored as
the source sent it): ``NaN`` and ``Infinity``, numbers beyond a double's range, lone surrogates. Those
are parsed again by the standard library, with the same result it always gave. One difference stays:
an integer outside 64 bits (below -2^63 or above 2^64 - 1) reads as a float, as JavaScript and
most of the vendors' own clients read it. The connectors parse API answers the same way
(`connectors.http`), so a payload is stored with that float and reads back unchanged; no field the
pipeline reads (names, emails, phones of at most 15 digits, times, ids sent as text) can hold one.
"""

import json
from typing import Any

import orjson


def loads(text: str | bytes) -> Any:
    """The parsed document: orjson's reading, or the standard library's where orjson refuses it."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
