"""A mapped field's values: read from a payload into golden form, and back into a destination's form.

Golden values are JSON values, so `contacts.custom` holds what SQL can compare: text as text, numbers
as integers when whole, booleans, dates as ``YYYY-MM-DD``, datetimes as UTC ``YYYY-MM-DDTHH:MM:SSZ``,
choices as one of the declared choices. A source value that cannot convert is not a crash: `read`
answers no value and the reason, and the record's other values go on.

Writing goes the other way: a choice through the source's value map backwards; to ClickFunnels and
ClickSend, whose custom fields hold text only (api-notes §2.4, §3.4), everything as text.
"""

import math
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from models.mappings.schema import MappedField, SourceMapping

Golden = str | int | float | bool
_TRUE = frozenset({"true", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "no", "n", "0", "off"})
_TEXT_ONLY = frozenset({"clickfunnels", "clicksend"})
_MAX_TEXT = 4000


def at_path(payload: Any, path: str) -> Any:
    """The value at a dotted path of a payload (dots go into nested objects), None when absent."""
    value = payload
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def nested(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A write's payload with dotted keys made nested objects (``custom_attributes.plan`` goes into
    ``custom_attributes``), keys sharing a parent merged; APIs that merge such objects key by key
    (ClickFunnels custom attributes, Linkflow props) then change only those keys."""
    out: dict[str, Any] = {}
    for key, value in payload.items():
        *parents, last = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def read(field: MappedField, mapping: SourceMapping, raw: Any) -> tuple[Golden | None, str | None]:
    """(golden value, None), (None, None) for an empty value, or (None, why it cannot convert)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None, None
    try:
        value = _convert(field, mapping, raw)
    except (ValueError, OverflowError) as exc:
        shown = repr(raw) if len(repr(raw)) <= 60 else repr(raw)[:57] + "..."
        return None, f"{mapping.label} {mapping.path}: {shown} is not a {field.type}: {exc}"
    return value, None


def _convert(field: MappedField, mapping: SourceMapping, raw: Any) -> Golden:
    if isinstance(raw, (dict, list)):
        raise ValueError("a nested object or list")
    if field.type == "text":
        text = raw if isinstance(raw, str) else _text(raw)
        text = " ".join(text.split())
        if len(text) > _MAX_TEXT:
            raise ValueError(f"longer than {_MAX_TEXT} characters")
        return text
    if field.type == "number":
        return _number(raw)
    if field.type == "boolean":
        return _boolean(raw)
    if field.type == "date":
        return _datetime(raw).date().isoformat() if not _is_date_text(raw) else str(raw).strip()[:10]
    if field.type == "datetime":
        return _datetime(raw).strftime("%Y-%m-%dT%H:%M:%SZ")
    return _choice(field, mapping, raw)


def _text(raw: Any) -> str:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    return str(raw)


def _number(raw: Any) -> int | float:
    if isinstance(raw, bool):
        raise ValueError("a boolean")
    number = float(raw.strip().replace(",", "")) if isinstance(raw, str) else float(raw)
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


def _boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, (int, float)) and raw in (0, 1):
        return bool(raw)
    text = str(raw).strip().casefold()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("expected true/false, yes/no or 1/0")


def _is_date_text(raw: Any) -> bool:
    if not isinstance(raw, str):
        return False
    try:
        date.fromisoformat(raw.strip()[:10])
    except ValueError:
        return False
    return len(raw.strip()) == 10


def _datetime(raw: Any) -> datetime:
    """A time as UTC: ISO 8601 text (no offset: UTC) or seconds (milliseconds past 1e11) since 1970."""
    if isinstance(raw, bool):
        raise ValueError("a boolean")
    if isinstance(raw, (int, float)):
        seconds = raw / 1000 if raw > 1e11 else raw
        return datetime.fromtimestamp(seconds, UTC)
    text = str(raw).strip().replace("Z", "+00:00")
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _choice(field: MappedField, mapping: SourceMapping, raw: Any) -> str:
    text = _text(raw).strip()
    if text in mapping.values:
        return mapping.values[text]
    folded = {k.casefold(): v for k, v in mapping.values.items()}
    if text.casefold() in folded:
        return folded[text.casefold()]
    for choice in field.choices:
        if choice.casefold() == text.casefold():
            return choice
    raise ValueError(f"not one of {', '.join(field.choices)} nor in the value map")


def outgoing(field: MappedField, mapping: SourceMapping, golden: Golden) -> Golden:
    """The value sent to a destination for a golden value (read back, it gives the golden value)."""
    value: Golden = mapping.outgoing(str(golden)) if field.type == "choice" else golden
    if mapping.source in _TEXT_ONLY:
        return _text(value)
    return value


def same(field: MappedField, mapping: SourceMapping, held: Any, golden: Golden) -> bool:
    """Whether a destination already holds the golden value, compared as it reads back."""
    value, _reason = read(field, mapping, held)
    return value is not None and value == golden and type(value) is type(golden)


def lineage_text(value: Golden) -> str:
    """A golden value as `contact_field_lineage.value` keeps text."""
    return _text(value) if not isinstance(value, str) else value
