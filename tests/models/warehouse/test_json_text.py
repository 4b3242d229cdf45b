"""Stored JSON reads back as the standard library reads it, whichever parser took it; JSON written
(content hashes, the warehouse's columns) is what the standard library writes."""

import enum
import json
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from models.warehouse.db import open_warehouse
from models.warehouse.json_text import dumps, loads, orjson_reads_exactly, sorted_compact
from models.warehouse.store import content_hash
from models.warehouse.tables import RawRecord

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


def _hashed_text(document: object) -> bytes:
    """What content hashes were taken of before orjson wrote it."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return text.encode("utf-8")


@given(DOCUMENTS)
def test_sorted_compact_is_the_text_content_hashes_were_taken_of(document):
    """Byte for byte, so a record stored before reads as unchanged: floats below 1e-4, NaN,
    infinities and integers beyond 64 bits included (orjson writes each of those its own way)."""
    assert sorted_compact(document) == _hashed_text(document)


class _Tier(enum.Enum):
    GOLD = 1


class _Label(str):
    pass


@pytest.mark.parametrize(
    "document",
    [
        {"n": 1e-05, "m": -2.5e-07, "z": -0.0, "big": 1e300},
        {"x": math.nan, "y": -math.inf},
        {"n": 2**64, "m": -(2**63) - 1, "u": 2**64 - 1},
        {"when": datetime(2026, 3, 1, 12, 30, tzinfo=UTC), "tier": _Tier.GOLD, "label": _Label("vip")},
        {3: "three", 1: [("pair", 1)]},
        {"nested": [{"b": 1, "a": [0.0001, "\x00", "\u2028é", "\x7f"]}]},
    ],
)
def test_what_orjson_writes_otherwise_is_written_by_the_standard_library(document):
    """The content hash's text byte for byte; the stored text as ``json.dumps`` writes it, or the
    same error where it writes nothing (a datetime, an enum)."""
    assert sorted_compact(document) == _hashed_text(document)
    try:
        expected = json.dumps(document)
    except TypeError:
        with pytest.raises(TypeError):
            dumps(document)
    else:
        assert json.dumps(json.loads(dumps(document))) == expected


def test_a_lone_surrogate_fails_the_hash_as_it_always_did():
    with pytest.raises(UnicodeEncodeError):
        content_hash({"name": "\ud800"})


@given(DOCUMENTS)
def test_dumps_writes_the_document_json_dumps_writes(document):
    """The same values in the same order, whatever the spacing and escaping."""
    assert json.dumps(json.loads(dumps(document))) == json.dumps(document)


def test_the_warehouse_writes_json_columns_through_dumps(tmp_path: Path):
    """Compact UTF-8 where orjson writes alike, and what the standard library writes where not (NaN
    stays NaN rather than becoming null)."""
    engine = open_warehouse(f"sqlite:///{tmp_path / 'w.db'}")
    now = datetime(2026, 3, 1, tzinfo=UTC)
    payloads = {"1": {"name": "Zoë", "n": 1.5}, "2": {"x": math.nan, "n": 1e-05}}
    with engine.begin() as connection:
        connection.execute(
            sa.insert(RawRecord),
            [
                {"source": "zoho_crm", "object": "contact", "source_id": key, "payload": payload}
                | {"content_hash": "h", "first_seen_at": now, "last_seen_at": now, "changed_at": now}
                for key, payload in payloads.items()
            ],
        )
        text = dict(
            connection.execute(
                sa.select(RawRecord.source_id, sa.type_coerce(RawRecord.payload, sa.Text))
            ).all()
        )
        read = dict(connection.execute(sa.select(RawRecord.source_id, RawRecord.payload)).all())
    assert text == {"1": '{"name":"Zoë","n":1.5}', "2": '{"x": NaN, "n": 1e-05}'}
    assert read["1"] == payloads["1"]
    assert math.isnan(read["2"]["x"])
    assert read["2"]["n"] == 1e-05
