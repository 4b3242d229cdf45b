"""Stored JSON reads back as the standard library reads it, whichever parser took it."""

import json
import math

from hypothesis import given
from hypothesis import strategies as st

from models.warehouse.json_text import loads, orjson_reads_exactly

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def _same(a: object, b: object) -> bool:
    """Equality that takes NaN as equal to itself and tells 1 from 1.0 from True."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)  # type: ignore[attr-defined]
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))  # type: ignore[arg-type]
    return a == b


@given(DOCUMENTS, st.booleans())
def test_loads_gives_what_json_loads_gives(document, ascii_only):
    text = json.dumps(document, ensure_ascii=ascii_only)
    assert _same(loads(text), json.loads(text))
    assert _same(loads(text.encode("utf-8", "surrogatepass")), json.loads(text))


def test_what_orjson_refuses_is_read_by_the_standard_parser():
    assert math.isnan(loads('{"x": NaN}')["x"])
    assert loads('"\\ud800"') == "\ud800"
    assert loads("[1e400]") == [math.inf]


def test_an_integer_outside_64_bits_keeps_its_value():
    """orjson alone would read these as floats (``1e+20``): a custom field would change on its way to
    another system. An id of 19 digits in a string still goes through orjson."""
    assert loads("[18446744073709551615, 18446744073709551616]") == [2**64 - 1, 2**64]
    assert loads('{"n": -9223372036854775809}') == {"n": -(2**63) - 1}
    assert type(loads('{"n": 99999999999999999999}')["n"]) is int
    assert orjson_reads_exactly(b'{"id": "5725767000000411001", "n": -922337203685477580}')
    assert not orjson_reads_exactly(b'{"n": 12345678901234567890}')
