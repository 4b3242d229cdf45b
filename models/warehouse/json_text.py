"""JSON documents read back from the warehouse: what ``json.loads`` gives, mostly through orjson.

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
"""

import json
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
