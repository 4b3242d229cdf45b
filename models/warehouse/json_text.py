"""JSON documents in and out of the warehouse: what ``json.loads`` and ``json.dumps`` give, mostly
through orjson.

Every step of a run parses stored payloads again: the incremental canonical step each record in scope
(22,000 of them after a 10% change at 100,000 people), activity each event and message it reads,
reverse sync each destination record it plans. For 30,000 contact payloads of about 750 bytes the
standard library takes 0.15 to 0.17 s with the cycle collector off, orjson 0.06 s.

orjson reads the same values except in two ways, and both are caught here:

- it refuses some documents the standard library takes and the store may hold (a payload is stored
  as the source sent it): ``NaN``, numbers beyond a double's range, lone surrogates. Those are parsed
  by the standard library;
- it reads an integer outside 64 bits as a float (``99999999999999999999`` becomes ``1e+20``),
  which would change a custom field's value on its way to another system. Such an integer has at
  least 20 digits, or a minus sign and 19, so a document holding a run of digits that long anywhere
  (in a string too) goes to the standard library instead. Looking for one costs about 0.8 µs a
  payload: the digits are mapped to one byte (``bytes.translate``) and the run searched for.

Writing, orjson gives ``json.dumps``'s text for the values a payload holds (strings, integers within
64 bits, booleans, null, objects with string keys, arrays) and for a float unless it is NaN or
infinite (orjson writes ``null``, which would lose it) or below 1e-4 in size (``0.00001`` for
``1e-05``: the same value, but not the text a content hash was taken of). `orjson_writes_alike`
walks a document for anything else; ``json.dumps`` writes what it finds and what orjson refuses (an
integer beyond 64 bits, a lone surrogate, a key that is not a string). Every record an extract reads
is serialised for its content hash, and every one it stores once more: 11.6 µs each through
``json.dumps`` for contact payloads of about 750 bytes, about 4 µs walked and written by orjson.
"""

import json
import math
from typing import Any

import orjson

_DIGITS_ALIKE = bytes.maketrans(b"0123456789", b"9999999999")
_POSITIVE_BEYOND_64_BITS = b"9" * 20
_NEGATIVE_BEYOND_64_BITS = b"-" + b"9" * 19


def orjson_reads_exactly(data: bytes) -> bool:
    """Whether orjson reads ``data`` as ``json.loads`` would, if it reads it at all: no run of
    digits long enough to be an integer outside 64 bits."""
    shape = data.translate(_DIGITS_ALIKE)
    return _POSITIVE_BEYOND_64_BITS not in shape and _NEGATIVE_BEYOND_64_BITS not in shape


def loads(text: str | bytes) -> Any:
    """``json.loads(text)``: through orjson where that gives the same value."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if orjson_reads_exactly(data):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


#: Raise on what orjson would write in its own way (a datetime in ISO form, an enum by its value, a
#: subclass of a plain type as the plain type), so ``json.dumps`` decides as it always did.
_ONLY_PLAIN = (
    orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS
)
_SORTED = _ONLY_PLAIN | orjson.OPT_SORT_KEYS
_SCALARS = frozenset({str, int, bool, type(None)})
#: Below this size a float is written in another form by orjson (``0.00001`` against ``1e-05``).
_SMALLEST_ALIKE = 1e-4


def orjson_writes_alike(document: Any) -> bool:
    """Whether ``document`` holds only what orjson writes as ``json.dumps`` does: plain strings,
    integers, booleans, None, dicts and lists of them, and floats that are finite and zero or at
    least 1e-4 in size. (Only containers are queued: most values are strings or None.)"""
    pending = [document]
    while pending:
        container = pending.pop()
        kind = type(container)
        if kind is dict:
            values = container.values()
        elif kind is list:
            values = container
        else:
            return kind in _SCALARS or _float_alike(container)
        for value in values:
            kind = type(value)
            if kind in _SCALARS:
                continue
            if kind is dict or kind is list:
                pending.append(value)
            elif not _float_alike(value):
                return False
    return True


def _float_alike(value: Any) -> bool:
    return type(value) is float and math.isfinite(value) and (not value or abs(value) >= _SMALLEST_ALIKE)


def dumps(document: Any) -> str:
    """``json.dumps(document)`` as a value: the same document, written compactly and in UTF-8
    rather than with ASCII escapes (the warehouse's JSON columns, through the engine)."""
    if orjson_writes_alike(document):
        try:
            return orjson.dumps(document, option=_ONLY_PLAIN).decode()
        except orjson.JSONEncodeError:
            pass
    return json.dumps(document)


def sorted_compact(document: Any) -> bytes:
    """Exactly ``json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    default=str)`` in UTF-8: the text a content hash is taken of."""
    if orjson_writes_alike(document):
        try:
            return orjson.dumps(document, option=_SORTED)
        except orjson.JSONEncodeError:
            pass
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return text.encode("utf-8")
