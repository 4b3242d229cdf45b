"""Linkflow's wall-clock times: read fast where they have the usual shape, exactly as ``strptime`` would."""

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.times import LINKFLOW_FORMAT, LINKFLOW_TZ, from_linkflow, parse_wall


def strptime_or_error(text: str) -> datetime | type[ValueError]:
    try:
        return datetime.strptime(text.strip(), LINKFLOW_FORMAT)
    except ValueError:
        return ValueError


def parse_wall_or_error(text: str) -> datetime | type[ValueError]:
    try:
        return parse_wall(text)
    except ValueError:
        return ValueError


def field(width: int) -> st.SearchStrategy[str]:
    """A field of the time as Linkflow pads it, as it might not, or out of range."""
    return st.one_of(
        st.integers(0, 10**width - 1).map(lambda n: str(n).zfill(width)),
        st.integers(0, 99).map(str),
        st.text(alphabet="0123456789٠١٢३४", min_size=1, max_size=width + 1),
    )


#: Times of the usual shape and near it: padded or not, out of range, other digits, spaces around.
WALL_TIMES = st.builds(
    lambda y, mo, d, h, mi, s, sep, pad: f"{pad}{y}-{mo}-{d}{sep}{h}:{mi}:{s}{pad}",
    field(4),
    field(2),
    field(2),
    field(2),
    field(2),
    field(2),
    st.sampled_from([" ", "T", "  "]),
    st.sampled_from(["", " ", "\t"]),
)


@given(WALL_TIMES)
def test_a_wall_time_reads_as_strptime_reads_it(text: str) -> None:
    assert parse_wall_or_error(text) == strptime_or_error(text)


@given(st.text(max_size=25))
def test_any_text_reads_as_strptime_reads_it(text: str) -> None:
    assert parse_wall_or_error(text) == strptime_or_error(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-07 09:05:01", datetime(2026, 12, 7, 9, 5, 1)),
        (" 2026-2-7 9:05:01 ", datetime(2026, 2, 7, 9, 5, 1)),  # unpadded: strptime's, as before
        ("\u0662\u0660\u0662\u0666-12-07 09:05:01", datetime(2026, 12, 7, 9, 5, 1)),  # other digits too
    ],
)
def test_wall_times_and_their_zone(text: str, expected: datetime) -> None:
    assert parse_wall(text) == expected
    assert from_linkflow(text) == expected.replace(tzinfo=LINKFLOW_TZ)


@pytest.mark.parametrize("text", ["2026-02-30 00:00:00", "2026-12-07 24:00:00", "2026-12-07 23:59:60", ""])
def test_impossible_times_raise_value_error(text: str) -> None:
    assert parse_wall_or_error(text) is ValueError
