"""The five time formats the emulated APIs speak, from one epoch-seconds clock.

Records keep times as the API shows them (strings or ints). Every stored format sorts the same way as
the instants it names, provided all values share one offset, so the store can index the raw values and
a time filter only has to render its bound in the same format before bisecting.
"""

import email.utils
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from functools import cache
from zoneinfo import ZoneInfo

# China has kept UTC+8 without daylight saving since 1991, so a fixed offset is exact.
SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")
# The emulated Zoho orgs use fixed offsets (see README): CRM as "EST", Bigin as "PST", no DST.
ZOHO_CRM_OFFSET = timezone(timedelta(hours=-5), "EST")
ZOHO_BIGIN_OFFSET = timezone(timedelta(hours=-8), "PST")

LINKFLOW_FORMAT = "%Y-%m-%d %H:%M:%S"


def iso_ms_utc(ts: float) -> str:
    """ClickFunnels style: ``2026-01-09T15:27:56.647Z``."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def zoho_time(ts: float, offset: timezone) -> str:
    """Zoho style: second resolution in the org's offset, ``2026-02-06T00:28:53-08:00``."""
    return datetime.fromtimestamp(int(ts), offset).isoformat(timespec="seconds")


@cache
def zone_named(name: str) -> tzinfo:
    """An IANA zone (``Asia/Shanghai`` is the fixed offset above); raises ValueError for unknown names."""
    if name == "Asia/Shanghai":
        return SHANGHAI
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(f"unknown time zone {name!r}") from exc


def local_text(ts: float, zone: tzinfo) -> str:
    """Linkflow style: wall-clock time in ``zone`` without the zone, ``2017-09-04 09:30:23``."""
    return datetime.fromtimestamp(int(ts), zone).isoformat(sep=" ", timespec="seconds")[:19]


def parse_local_text(text: str, zone: tzinfo) -> float:
    """Read ``yyyy-MM-dd HH:mm:ss`` or ``yyyy-MM-dd`` as wall-clock time in ``zone``; raises ValueError.

    A wall time a daylight-saving change makes ambiguous is read as the earlier instant (``fold=0``).
    """
    text = text.strip()
    if len(text) == 10:
        day = date.fromisoformat(text)
        moment = datetime(day.year, day.month, day.day, tzinfo=zone)
    else:
        moment = datetime.strptime(text, LINKFLOW_FORMAT).replace(tzinfo=zone)
    return moment.timestamp()


def shanghai_local(ts: float) -> str:
    """How the emulator stores Linkflow times: Shanghai wall-clock, ``2017-09-04 09:30:23``."""
    return local_text(ts, SHANGHAI)


def parse_shanghai_local(text: str) -> float:
    """Read ``yyyy-MM-dd HH:mm:ss`` or ``yyyy-MM-dd`` as Shanghai local time; raises ValueError."""
    return parse_local_text(text, SHANGHAI)


def parse_http_time(text: str, naive_offset: timezone) -> float:
    """Read an ISO 8601 time (Zoho's documented form) or an RFC 7231 HTTP date; raises ValueError.

    A time without an offset is read in ``naive_offset`` (the org's zone), as Zoho does for times
    given without one.
    """
    text = text.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError) as exc:
            raise ValueError(f"not a time: {text!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=naive_offset)
    return moment.timestamp()
