"""The five time formats the emulated APIs speak, from one epoch-seconds clock.

Records keep times as the API shows them (strings or ints). Every stored format sorts the same way as
the instants it names, provided all values share one offset, so the store can index the raw values and
a time filter only has to render its bound in the same format before bisecting.
"""

import email.utils
from datetime import UTC, date, datetime, timedelta, timezone

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


def shanghai_local(ts: float) -> str:
    """Linkflow style: Shanghai wall-clock time without a zone, ``2017-09-04 09:30:23``."""
    return datetime.fromtimestamp(int(ts), SHANGHAI).isoformat(sep=" ", timespec="seconds")[:19]


def parse_shanghai_local(text: str) -> float:
    """Read ``yyyy-MM-dd HH:mm:ss`` or ``yyyy-MM-dd`` as Shanghai local time; raises ValueError."""
    text = text.strip()
    if len(text) == 10:
        day = date.fromisoformat(text)
        moment = datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)
    else:
        moment = datetime.strptime(text, LINKFLOW_FORMAT).replace(tzinfo=SHANGHAI)
    return moment.timestamp()


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
