"""The rules for single raw values: text, full names and source timestamps.

Shared by the per-record and the batch extraction in `models.normalise.fields`, so both give the same answer.
"""

import math
import re
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from models.normalise.layouts import TimeFormat

# Longer values are not names or contact points but pasted documents or abuse; no target system keeps
# them whole, and cutting one short would invent a different value.
MAX_TEXT_LENGTH = 255

# Linkflow writes wall-clock times without a zone; its tenants are in China, where UTC+8 has applied
# all year since 1991, so a fixed offset is exact (api-notes §4.3).
_SHANGHAI = timezone(timedelta(hours=8))
_WALL = "%Y-%m-%d %H:%M:%S"
#: What `_WALL` writes, zero-padded in ASCII digits (``strptime`` also takes unpadded fields, and
#: other scripts' digits, which ``fromisoformat`` refuses).
_WALL_SHAPE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", re.ASCII)

_CONTROL_CATEGORIES = frozenset({"Cc", "Cs"})
_ZWJ = "\u200d"
_ZWNJ = "\u200c"
_VS16 = "\ufe0f"
_JOINERS = frozenset({_ZWJ, _ZWNJ})
# Always invisible junk in a name: zero-width space, zero-width no-break space (BOM), word joiner.
_ZERO_WIDTH = frozenset({"\u200b", "\ufeff", "\u2060"})
# Scripts whose spelling uses ZWJ/ZWNJ (The Unicode Standard, §23.2 Layout Controls), as the first
# word of their characters' names.
_JOINING_SCRIPTS = frozenset(
    {
        "ARABIC",
        "SYRIAC",
        "NKO",
        "MONGOLIAN",
        "DEVANAGARI",
        "BENGALI",
        "GURMUKHI",
        "GUJARATI",
        "ORIYA",
        "TAMIL",
        "TELUGU",
        "KANNADA",
        "MALAYALAM",
        "SINHALA",
        "MYANMAR",
        "KHMER",
        "TIBETAN",
    }
)
_HAN_OR_HANGUL = re.compile(
    r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\U00020000-\U0003134f]{2,4}"
)
# Two-character Chinese surnames common enough to matter when splitting an unspaced full name.
_COMPOUND_SURNAMES = frozenset(
    {
        "欧阳",
        "司马",
        "上官",
        "诸葛",
        "东方",
        "皇甫",
        "尉迟",
        "公孙",
        "慕容",
        "令狐",
        "长孙",
        "宇文",
        "司徒",
        "夏侯",
        "轩辕",
        "端木",
        "独孤",
        "南宫",
        "西门",
        "澹台",
    }
)


def clean_text(value: Any) -> tuple[str | None, str | None]:
    """Text as a person would read it, or None with the reason it was dropped (None when simply absent).

    Numbers become their digits (a phone stored as a JSON number is still a phone); control characters,
    lone surrogates and zero-width characters go, whitespace collapses, and the result is NFC so the
    same name typed on two systems compares equal ("Ann\u200b" is "Ann").

    Zero-width characters (U+200B, U+200C, U+200D, U+FEFF, U+2060) arrive with copy and paste from web
    pages, chat apps and spreadsheets and are invisible, so they would make two equal-looking names
    differ. U+200B, U+FEFF and U+2060 never carry meaning in a name and always go. The two joiners are
    kept only where they are part of how a name is written:

    - a zero-width joiner between two symbols glues an emoji sequence into one picture ("👩‍💻" is
      woman + ZWJ + laptop, "🏳️‍🌈" puts VS16 before the ZWJ, "👩🏽‍💻" a skin tone); dropping it would
      turn one emoji into two, so it stays when the character before it is a symbol, a skin-tone
      modifier or VS16 and the one after it is a symbol;
    - a joiner or non-joiner between two letters (or marks) of a script that shapes its letters by them
      (Arabic, Persian "حسن‌زاده", the Indic scripts and a few more in ``_JOINING_SCRIPTS``) changes the
      spelling there, so it stays.

    Anywhere else (between Latin letters, at either end, next to a space) a joiner is junk and goes.
    """
    if value is None:
        return None, None
    text, reason = _as_text(value)
    if text is None:
        return None, reason
    # Checked before cleaning so a megabyte of text costs nothing more than its length.
    if len(text) > 4 * MAX_TEXT_LENGTH:
        return None, "too_long"
    text = _tidy(text)
    if not text:
        return None, None
    if len(text) > MAX_TEXT_LENGTH:
        return None, "too_long"
    return text, None


def _as_text(value: Any) -> tuple[str | None, str | None]:
    if isinstance(value, str):
        return value, None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, "wrong_type"
    if isinstance(value, int):
        return str(value), None
    if math.isnan(value):
        return None, None
    if math.isinf(value):
        return None, "wrong_type"
    return (str(int(value)) if value.is_integer() else repr(value)), None


def _tidy(text: str) -> str:
    # Zero-width and control characters are all non-printable, so printable text skips both passes.
    if not text.isprintable():
        text = "".join(
            " " if ch.isspace() else ch
            for ch in text
            if unicodedata.category(ch) not in _CONTROL_CATEGORIES and ch not in _ZERO_WIDTH
        )
        if _JOINERS.intersection(text):
            text = _drop_stray_joiners(text)
    text = " ".join(text.split())
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    return text


def _drop_stray_joiners(text: str) -> str:
    """``text`` without the ZWJ/ZWNJ that join nothing (see ``clean_text``)."""
    kept: list[str] = []
    last = len(text) - 1
    for position, ch in enumerate(text):
        if ch in _JOINERS and not (
            0 < position < last and _joins(ch, text[position - 1], text[position + 1])
        ):
            continue
        kept.append(ch)
    return "".join(kept)


def _joins(joiner: str, before: str, after: str) -> bool:
    if joiner == _ZWJ and _emoji_part(before) and unicodedata.category(after) == "So":
        return True
    return _in_joining_script(before) and _in_joining_script(after)


def _emoji_part(ch: str) -> bool:
    """A symbol, a skin-tone modifier (Sk) or the emoji-style variation selector."""
    return ch == _VS16 or unicodedata.category(ch) in ("So", "Sk")


def _in_joining_script(ch: str) -> bool:
    if unicodedata.category(ch)[0] not in "LM":
        return False
    return unicodedata.name(ch, "").partition(" ")[0] in _JOINING_SCRIPTS


def split_name(name: str) -> tuple[str | None, str | None]:
    """(first, last) from one full name, as Linkflow stores it.

    Spaced names put the last word in last_name ("Mary Ann Smith"); a single word is a first name. An
    unspaced Chinese or Korean name of two to four characters is read surname first, the way those
    names are written, so it lines up with Zoho's First_Name/Last_Name for the same person.
    """
    parts = name.rsplit(" ", 1)
    if len(parts) == 2:
        return parts[0], parts[1]
    if _HAN_OR_HANGUL.fullmatch(name):
        surname_length = 2 if name[:2] in _COMPOUND_SURNAMES and len(name) > 2 else 1
        return name[surname_length:], name[:surname_length]
    return name, None


def parse_time(value: Any, time_format: TimeFormat) -> tuple[datetime | None, str | None]:
    """A source's own modification time as an aware UTC datetime, or None with a reason."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None, None
    try:
        if time_format == "unix":
            return _parse_unix(value)
        if not isinstance(value, str):
            return None, "wrong_type"
        if time_format == "shanghai":
            text = value.strip()
            # ``fromisoformat`` reads the zero-padded shape of Linkflow's times to the same datetime
            # as ``strptime`` (this branch 2.1 µs against 7.9); ``strptime`` keeps the rest.
            padded = _WALL_SHAPE.fullmatch(text)
            wall = datetime.fromisoformat(text) if padded else datetime.strptime(text, _WALL)
            parsed = wall.replace(tzinfo=_SHANGHAI)
        else:
            parsed = datetime.fromisoformat(value.strip())
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC), None
    except (ValueError, OverflowError, OSError):
        return None, "unparseable_time"


def _parse_unix(value: Any) -> tuple[datetime | None, str | None]:
    if isinstance(value, bool):
        return None, "wrong_type"
    if isinstance(value, str):
        value = value.strip()
        if not value.isdigit():
            return None, "unparseable_time"
        value = int(value)
    if not isinstance(value, int | float) or (isinstance(value, float) and not math.isfinite(value)):
        return None, "wrong_type"
    return datetime.fromtimestamp(value, UTC), None
