"""Which id and which modified time identify a raw record, per source object.

Each API names them differently and writes times its own way (Zoho ISO with the org's offset,
ClickFunnels ISO UTC, ClickSend unix seconds, Linkflow Shanghai local time without a zone). A record
without a usable id cannot be upserted and is quarantined with the reason instead of being dropped.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from models.normalise.field_values import parse_time
from models.normalise.layouts import TimeFormat
from models.warehouse.store import BadRecord, RawRow

_MAX_ID_LENGTH = 128


def _reader(time_format: TimeFormat) -> Callable[[Any], datetime | None]:
    return lambda value: parse_time(value, time_format)[0]


#: The source's own time formats, read by the same rules as the canonical fields (``field_values``).
parse_iso = _reader("iso")
parse_unix = _reader("unix")
parse_shanghai = _reader("shanghai")


def parse_unix_ms(value: Any) -> datetime | None:
    """Epoch milliseconds (Linkflow ``eventDate``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return parse_unix(value / 1000)


@dataclass(frozen=True)
class RecordKeySpec:
    """Where a source object keeps its id and its own modified time.

    ``alternates`` are read, in order, when ``modified_field`` gives no time: ClickSend's inbound SMS
    schema names ``timestamp``, while the v3 spec's own ``/sms/inbound`` example carries only
    ``timestamp_send``.
    """

    id_field: str
    modified_field: str | None
    parse_modified: Callable[[Any], datetime | None]
    alternates: tuple[str, ...] = ()

    def modified(self, payload: Mapping[str, Any]) -> datetime | None:
        """The record's own modified time: the first of its time fields that reads as one."""
        names = (self.modified_field, *self.alternates) if self.modified_field else self.alternates
        for name in names:
            moment = self.parse_modified(payload.get(name))
            if moment is not None:
                return moment
        return None


RECORD_KEYS: dict[tuple[str, str, str | None], RecordKeySpec] = {
    ("clickfunnels", "contact", None): RecordKeySpec("id", "updated_at", parse_iso),
    ("clicksend", "list_contact", None): RecordKeySpec("contact_id", "date_updated", parse_unix),
    ("clicksend", "sms", "history"): RecordKeySpec("message_id", "date", parse_unix),
    ("clicksend", "sms", "inbound"): RecordKeySpec(
        "message_id", "timestamp", parse_unix, alternates=("timestamp_send",)
    ),
    ("clicksend", "sms", "receipt"): RecordKeySpec("message_id", "timestamp", parse_unix),
    ("linkflow", "contact", None): RecordKeySpec("id", "lastUpdated", parse_shanghai),
    ("linkflow", "event", None): RecordKeySpec("id", "lastUpdated", parse_shanghai),
    ("zoho_crm", "lead", None): RecordKeySpec("id", "Modified_Time", parse_iso),
    ("zoho_crm", "contact", None): RecordKeySpec("id", "Modified_Time", parse_iso),
    ("zoho_bigin", "contact", None): RecordKeySpec("id", "Modified_Time", parse_iso),
}


def source_id_for(source: str, obj: str, part: str | None, raw_id: str) -> str:
    """The stored id; SMS parts share one object but not one id space, so their ids carry the part."""
    return f"{part}:{raw_id}" if part else raw_id


def identify(source: str, obj: str, part: str | None, payload: Mapping[str, Any]) -> RawRow | BadRecord:
    """The raw row for ``payload``, or why it cannot be stored."""
    if not isinstance(payload, Mapping):
        return BadRecord(reason=f"record is a {type(payload).__name__}, not a JSON object", payload=None)
    spec = RECORD_KEYS[(source, obj, part)]
    raw_id = payload.get(spec.id_field)
    if raw_id is None or isinstance(raw_id, bool | dict | list) or str(raw_id).strip() == "":
        return BadRecord(reason=f"missing id field {spec.id_field!r}", payload=payload)
    text_id = str(raw_id).strip()
    if len(text_id) > _MAX_ID_LENGTH:
        return BadRecord(reason=f"id field {spec.id_field!r} longer than {_MAX_ID_LENGTH}", payload=payload)
    source_id = source_id_for(source, obj, part, text_id)
    return RawRow(source_id=source_id, payload=payload, modified_at=spec.modified(payload))


def record_time(source: str, obj: str, part: str | None, payload: Mapping[str, Any]) -> datetime | None:
    """The record's own time as its source object's key spec reads it (None when it has none)."""
    return RECORD_KEYS[(source, obj, part)].modified(payload)
