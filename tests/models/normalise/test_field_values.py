"""Zero-width characters in names: invisible junk goes, joiners that spell something stay."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from models.normalise.field_values import clean_text, parse_time

ZWSP, ZWNJ, ZWJ, BOM, WORD_JOINER = "\u200b", "\u200c", "\u200d", "\ufeff", "\u2060"
ZERO_WIDTH = (ZWSP, ZWNJ, ZWJ, BOM, WORD_JOINER)


@pytest.mark.parametrize("junk", ZERO_WIDTH)
def test_a_zero_width_character_makes_no_different_name(junk: str) -> None:
    assert clean_text(f"Ann{junk}") == ("Ann", None)
    assert clean_text(f"{junk}Ann") == ("Ann", None)
    assert clean_text(f"A{junk}nn") == ("Ann", None)
    assert clean_text(f"Ann {junk} Smith") == ("Ann Smith", None)
    assert clean_text(f"王{junk}小明") == ("王小明", None)
    assert clean_text(junk * 3) == (None, None)


@pytest.mark.parametrize(
    "emoji",
    [
        "👩\u200d💻",  # woman technologist: woman, ZWJ, laptop
        "🏳\ufe0f\u200d🌈",  # rainbow flag: VS16 before the ZWJ
        "👩🏽\u200d💻",  # with a skin tone
        "👨\u200d👩\u200d👧\u200d👦",  # family: three joiners
        "🏃\u200d♀\ufe0f",  # woman running: the sign after the ZWJ
    ],
)
def test_a_joiner_inside_an_emoji_sequence_stays(emoji: str) -> None:
    assert clean_text(f"张伟 {emoji}") == (f"张伟 {emoji}", None)


def test_joiners_outside_an_emoji_sequence_go() -> None:
    assert clean_text(f"{ZWJ}👩") == ("👩", None)
    assert clean_text(f"👩{ZWJ}") == ("👩", None)
    assert clean_text(f"👩 {ZWJ}💻") == ("👩 💻", None)
    assert clean_text(f"Ann{ZWJ}👩") == ("Ann👩", None)
    assert clean_text(f"👩{ZWNJ}💻") == ("👩💻", None)  # a non-joiner never belongs in an emoji


@pytest.mark.parametrize(
    "name",
    [
        "حسن\u200cزاده",  # Persian Hassanzadeh: the ZWNJ keeps the two parts unjoined
        "क्\u200dष",  # Devanagari: ZWJ after a virama asks for the half form
        "ക്\u200dക",  # Malayalam
    ],
)
def test_joiners_that_spell_a_name_in_its_script_stay(name: str) -> None:
    assert clean_text(name) == (name, None)


def test_other_zero_width_characters_in_those_scripts_still_go() -> None:
    assert clean_text(f"حسن{ZWSP}زاده") == ("حسنزاده", None)
    assert clean_text(f"حسن\u200cزاده{BOM}") == ("حسن\u200cزاده", None)


latin_names = st.text(alphabet=st.sampled_from("AaBbZz'- éøß"), min_size=1, max_size=30)


@settings(max_examples=300, deadline=None)
@given(
    name=latin_names, junk=st.lists(st.tuples(st.integers(0, 30), st.sampled_from(ZERO_WIDTH)), max_size=5)
)
def test_zero_width_characters_anywhere_in_a_latin_name_change_nothing(
    name: str, junk: list[tuple[int, str]]
) -> None:
    dirty = name
    for position, ch in junk:
        dirty = dirty[:position] + ch + dirty[position:]
    assert clean_text(dirty) == clean_text(name)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=40))
def test_cleaning_is_idempotent_and_leaves_no_stray_zero_width_character(text: str) -> None:
    cleaned, _ = clean_text(text)
    if cleaned is None:
        return
    assert clean_text(cleaned) == (cleaned, None)
    assert not set(cleaned) & {ZWSP, BOM, WORD_JOINER}
    for joiner in (ZWJ, ZWNJ):
        assert not cleaned.startswith(joiner)
        assert not cleaned.endswith(joiner)
        assert f" {joiner}" not in cleaned
        assert f"{joiner} " not in cleaned


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(["👩", "💻", "🏽", "\ufe0f", ZWJ, ZWNJ, "A", " ", "ن"]), max_size=12))
def test_emoji_and_joiner_soup_never_breaks(text: str) -> None:
    cleaned, reason = clean_text(text)
    assert reason is None
    if cleaned is not None:
        assert clean_text(cleaned) == (cleaned, None)
        assert f"A{ZWJ}" not in cleaned
        assert f"{ZWJ}A" not in cleaned


SHANGHAI_TIMES = st.builds(
    lambda fields, sep: f"{fields[0]}-{fields[1]}-{fields[2]}{sep}{fields[3]}:{fields[4]}:{fields[5]}",
    st.tuples(
        st.text(alphabet="0123456789٣", min_size=1, max_size=5),
        *[st.text(alphabet="0123456789٣", min_size=1, max_size=3) for _ in range(5)],
    ),
    st.sampled_from([" ", "T"]),
)


@given(st.one_of(SHANGHAI_TIMES, st.text(max_size=25)))
@example("\u0662\u0660\u0662\u0666-12-07 09:05:01")  # other digits: strptime reads them, fromisoformat not
@example("2026-2-7 9:05:01")  # unpadded
@settings(max_examples=300)
def test_a_shanghai_time_parses_as_strptime_parses_it(text: str) -> None:
    """Linkflow's times take a fast path where they are zero-padded; the value, or the reason it is
    refused, is what ``strptime`` gives."""
    try:
        expected: object = (
            datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S")
            .replace(tzinfo=timezone(timedelta(hours=8)))
            .astimezone(UTC),
            None,
        )
    except ValueError:
        expected = (None, "unparseable_time")
    assert parse_time(text, "shanghai") == expected
