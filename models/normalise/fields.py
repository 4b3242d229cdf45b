"""Pull the fields a golden contact is built from out of raw source payloads.

Each source names things its own way (Zoho `Mobile`, Linkflow `mobilePhone`, ClickSend `phone_number`), dates
its records its own way (ISO with an offset, Unix seconds, Shanghai wall time) and sometimes sends the wrong
type (a number where text belongs, a megabyte of text, control characters). This module maps all of that onto
one set of fields (`models.normalise.layouts`) and never raises on a bad value: it coerces what has an obvious
reading and drops the rest with a reason a person can query (`models.normalise.field_values`).

Two entry points share those per-value rules: `extract_fields` for one payload, and `extract_frame` for
a whole batch given as one column per payload path (what `json_extract` in SQL or `frame_from_payloads`
produces), which does the work once per distinct value.
"""

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

from models.normalise.arrays import object_array, object_column
from models.normalise.countries import country_code
from models.normalise.field_values import clean_text, parse_time, split_name
from models.normalise.layouts import TimeFormat, layout

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_NAT_TICKS = np.iinfo(np.int64).min
_SHANGHAI_OFFSET_MICROS = 8 * 3600 * 1_000_000
# The Unix seconds datetime can represent (years 1 to 9999).
_UNIX_MIN = int((datetime(1, 1, 1, tzinfo=UTC) - _EPOCH).total_seconds())
_UNIX_MAX = int((datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC) - _EPOCH).total_seconds())
# The shapes the sources document (api-notes §2.4, §4.3, §5.5), with whole seconds or milli- or
# microseconds, which pandas and datetime read identically.
_CLOCK = r"(?:[01]\d|2[0-3]):[0-5]\d"
_TIME_SHAPES = {
    "iso": re.compile(
        rf"\d{{4}}-\d\d-\d\dT{_CLOCK}:[0-5]\d(?:\.\d{{3}}|\.\d{{6}})?(?:Z|[+-]{_CLOCK})", re.ASCII
    ),
    "shanghai": re.compile(rf"\d{{4}}-\d\d-\d\d {_CLOCK}:[0-5]\d", re.ASCII),
}
_TIME_FORMATS = {"iso": "ISO8601", "shanghai": "%Y-%m-%d %H:%M:%S"}


class Issue(NamedTuple):
    """A value that was dropped: the payload path it came from and why."""

    field: str
    reason: str


@dataclass(frozen=True, slots=True)
class SourceFields:
    """The canonical fields of one source record; text is cleaned but otherwise as the source says it."""

    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    title: str | None = None
    city: str | None = None
    country: str | None = None
    emails: tuple[tuple[str, str], ...] = ()
    phones: tuple[tuple[str, str], ...] = ()
    country_hint: str | None = None
    modified_at: datetime | None = None
    issues: tuple[Issue, ...] = ()


def _lookup(payload: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path; a lookup that arrives flattened (a plain value) is taken as is."""
    value: Any = payload
    for key in path.split("."):
        if not isinstance(value, Mapping):
            return value
        value = value.get(key)
    return value


def extract_fields(source: str, obj: str, payload: Mapping[str, Any]) -> SourceFields:
    """The canonical fields of one raw payload of `source`/`obj`."""
    spec = layout(source, obj)
    issues: list[Issue] = []

    def text(path: str) -> str | None:
        value, reason = clean_text(_lookup(payload, path))
        if reason:
            issues.append(Issue(path, reason))
        return value

    found: dict[str, str | None] = {}
    for name, paths in spec.text_paths.items():
        values = [text(path) for path in paths]
        found[name] = next((v for v in values if v is not None), None)
    full_names = [text(path) for path in spec.full_name]
    full = next((v for v in full_names if v is not None), None)
    if full is not None and found["first_name"] is None and found["last_name"] is None:
        found["first_name"], found["last_name"] = split_name(full)
    emails = tuple((path, v) for path in spec.emails if (v := text(path)) is not None)
    phones = tuple((path, v) for path in spec.phones if (v := text(path)) is not None)
    modified_at, reason = parse_time(_lookup(payload, spec.modified_at), spec.time_format)
    if reason:
        issues.append(Issue(spec.modified_at, reason))
    return SourceFields(
        first_name=found["first_name"],
        last_name=found["last_name"],
        company=found["company"],
        title=found["title"],
        city=found["city"],
        country=found["country"],
        emails=emails,
        phones=phones,
        country_hint=country_code(found["country"]),
        modified_at=modified_at,
        issues=tuple(issues),
    )


class ExtractedFrame(NamedTuple):
    """`extract_frame`'s result; every frame refers to input rows by the input's index label (`row`).

    records: indexed like the input; TEXT_FIELDS, country_hint (object, None when absent) and
        modified_at (datetime64[us, UTC], NaT when absent or unreadable).
    contact_points: row, kind ('email' | 'phone'), field (payload path), position (order of the field in
        the layout, so the lowest usable one is the record's primary), raw (cleaned text); sorted.
    issues: row, field (payload path), reason.
    """

    records: pd.DataFrame
    contact_points: pd.DataFrame
    issues: pd.DataFrame


def frame_from_payloads(source: str, obj: str, payloads: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One object column per payload path of the layout, ready for `extract_frame`."""
    spec = layout(source, obj)
    rows = list(payloads)
    data = {path: pd.Series(_values_at(rows, path), dtype=object) for path in spec.paths}
    return pd.DataFrame(data, index=pd.RangeIndex(len(rows)))


def _values_at(rows: list[Mapping[str, Any]], path: str) -> list[Any]:
    """`_lookup` of every row; a path of one key reads it straight (most paths are, and a rebuild
    reads a dozen per record)."""
    if "." in path:
        return [_lookup(p, path) for p in rows]
    return [p.get(path) if type(p) is dict else _lookup(p, path) for p in rows]


def extract_frame(source: str, obj: str, columns: pd.DataFrame) -> ExtractedFrame:
    """`extract_fields` for a whole batch, doing each cleaning step once per distinct value.

    `columns` has one column per path in `layout(source, obj).paths` (a missing column reads as all
    null). From SQL, select `json_extract(payload, '$.<path>')` under the path's name; nested values
    then arrive as JSON text and are read as text.
    """
    spec = layout(source, obj)
    index = columns.index
    cleaned: dict[str, tuple[npt.NDArray[np.object_], npt.NDArray[np.object_]]] = {}
    for path in spec.paths:
        if path == spec.modified_at:
            continue
        raw = _column(columns, path)
        cleaned[path] = _map_distinct(raw, clean_text)

    records = pd.DataFrame(index=index)
    for name, paths in spec.text_paths.items():
        records[name] = pd.Series(_first_present([cleaned[p][0] for p in paths], len(index)), index, object)
    if spec.full_name:
        full = _first_present([cleaned[p][0] for p in spec.full_name], len(index))
        unnamed = (records["first_name"].isna() & records["last_name"].isna()).to_numpy()
        take = unnamed & pd.notna(full)
        if take.any():
            codes, uniques = pd.factorize(full[take])
            pairs = [split_name(name) for name in uniques]
            records.loc[take, "first_name"] = object_array([p[0] for p in pairs])[codes]
            records.loc[take, "last_name"] = object_array([p[1] for p in pairs])[codes]
    records["country_hint"] = pd.Series(
        _map_distinct(records["country"].to_numpy(object), lambda v: (country_code(v), None))[0],
        index,
        object,
    )
    ticks, time_reasons = _times(_column(columns, spec.modified_at), spec.time_format)
    records["modified_at"] = pd.Series(ticks.view("datetime64[us]"), index).dt.tz_localize(UTC)

    points = [
        (kind, path, position, cleaned[path][0])
        for kind, paths in (("email", spec.emails), ("phone", spec.phones))
        for position, path in enumerate(paths)
    ]
    present = [pd.notna(values) for *_, values in points]
    counts = [int(mask.sum()) for mask in present]
    contact_points = (
        pd.DataFrame(
            {
                "row": _stacked([index.to_numpy()[mask] for mask in present], index.to_numpy()),
                "kind": object_column(np.repeat(object_array([p[0] for p in points]), counts)),
                "field": object_column(np.repeat(object_array([p[1] for p in points]), counts)),
                "position": np.repeat(np.array([p[2] for p in points], dtype=np.int8), counts),
                "raw": object_column(_stacked([p[3][mask] for p, mask in zip(points, present, strict=True)])),
            }
        )
        .sort_values(["row", "kind", "position"], kind="stable")
        .reset_index(drop=True)
    )
    reasons = {path: reasons for path, (_, reasons) in cleaned.items()}
    reasons[spec.modified_at] = time_reasons
    noted = {path: pd.notna(r) for path, r in reasons.items()}
    issues = pd.DataFrame(
        {
            "row": _stacked([index.to_numpy()[mask] for mask in noted.values()], index.to_numpy()),
            "field": object_column(
                np.repeat(object_array(list(noted)), [int(m.sum()) for m in noted.values()])
            ),
            "reason": object_column(_stacked([reasons[path][mask] for path, mask in noted.items()])),
        }
    )
    return ExtractedFrame(records, contact_points, issues)


def _stacked(parts: list[npt.NDArray[Any]], like: npt.NDArray[Any] | None = None) -> npt.NDArray[Any]:
    """The parts end to end, of ``like``'s dtype when there are none (object by default): one frame
    built from them costs less than a frame per part."""
    empty = np.empty(0, dtype=object) if like is None else like[:0]
    return np.concatenate([empty, *parts])


def _times(
    values: npt.NDArray[np.object_], time_format: TimeFormat
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.object_]]:
    """Microseconds since the epoch (NaT's value when absent) and reasons, for a column of source times.

    Times come one per record, nearly all distinct, so the exact shapes each source documents are
    converted in one vectorised pass; anything else goes through `parse_time`, which is the rule.
    """
    ticks = np.full(len(values), _NAT_TICKS, dtype=np.int64)
    if time_format == "unix":
        fast = _whole_seconds(values, ticks)
    else:
        fast = _documented_shape(values, time_format, ticks)
    rest = np.flatnonzero(~fast & pd.notna(values))
    slow, slow_reasons = _map_distinct(values[rest], lambda v: _epoch_micros(v, time_format))
    known = pd.notna(slow)
    ticks[rest[known]] = slow[known].astype(np.int64)
    reasons = np.full(len(values), None, dtype=object)
    reasons[rest] = slow_reasons
    return ticks, reasons


def _whole_seconds(values: npt.NDArray[np.object_], ticks: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Fill `ticks` for integer seconds in datetime's range; return which values were taken."""
    fast = np.fromiter((type(v) is int for v in values), dtype=bool, count=len(values))
    fast[fast] = (values[fast] >= _UNIX_MIN) & (values[fast] <= _UNIX_MAX)
    ticks[fast] = values[fast].astype(np.int64) * 1_000_000
    return fast


def _documented_shape(
    values: npt.NDArray[np.object_], time_format: TimeFormat, ticks: npt.NDArray[np.int64]
) -> npt.NDArray[np.bool_]:
    """Fill `ticks` for text in the source's documented shape that pandas reads; return which."""
    shape = _TIME_SHAPES[time_format]
    fast = np.fromiter(
        (isinstance(v, str) and shape.fullmatch(v) is not None for v in values), dtype=bool, count=len(values)
    )
    if not fast.any():
        return fast
    parsed = pd.to_datetime(
        pd.Series(values[fast], dtype=object), format=_TIME_FORMATS[time_format], utc=True, errors="coerce"
    )
    parsed_ticks = parsed.dt.as_unit("us").to_numpy(dtype="datetime64[us]").view(np.int64)
    if time_format == "shanghai":
        parsed_ticks = parsed_ticks - _SHANGHAI_OFFSET_MICROS
    readable = parsed.notna().to_numpy()
    taken = np.flatnonzero(fast)
    ticks[taken[readable]] = parsed_ticks[readable]
    fast[taken[~readable]] = False
    return fast


def _epoch_micros(value: Any, time_format: TimeFormat) -> tuple[int | None, str | None]:
    parsed, reason = parse_time(value, time_format)
    if parsed is None:
        return None, reason
    return (parsed - _EPOCH) // _MICROSECOND, None


def _column(columns: pd.DataFrame, path: str) -> npt.NDArray[np.object_]:
    if path not in columns:
        return np.full(len(columns), None, dtype=object)
    values: npt.NDArray[np.object_] = columns[path].to_numpy(dtype=object)
    return values


def _first_present(arrays: list[npt.NDArray[np.object_]], length: int) -> npt.NDArray[np.object_]:
    result = np.full(length, None, dtype=object)
    for values in reversed(arrays):
        present = pd.notna(values)
        result[present] = values[present]
    return result


def _map_distinct(
    values: npt.NDArray[np.object_], fn: Callable[[Any], tuple[Any, str | None]]
) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.object_]]:
    """Apply `fn` once per distinct value (absent values map to `fn(None)`)."""
    try:
        codes, uniques = pd.factorize(values)
    except TypeError:
        return _map_distinct_by_type(values, fn)
    # 1, 1.0 and True are equal under hashing and would share one result; text alone cannot collide.
    if not all(type(u) is str for u in uniques):
        return _map_distinct_by_type(values, fn)
    results = [*(fn(u) for u in uniques), fn(None)]
    return object_array([r[0] for r in results])[codes], object_array([r[1] for r in results])[codes]


def _map_distinct_by_type(
    values: npt.NDArray[np.object_], fn: Callable[[Any], tuple[Any, str | None]]
) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.object_]]:
    """`_map_distinct` for columns holding numbers or unhashable values: each exact type is grouped
    on its own, and anything else is taken one value at a time."""
    out = np.full(len(values), None, dtype=object)
    reasons = np.full(len(values), None, dtype=object)
    types = np.fromiter((type(v) for v in values), dtype=object, count=len(values))
    for kind in (str, int, float):
        mask = types == kind
        if not mask.any():
            continue
        codes, uniques = pd.factorize(values[mask], use_na_sentinel=False)
        results = [fn(u) for u in uniques]
        out[mask] = object_array([r[0] for r in results])[codes]
        reasons[mask] = object_array([r[1] for r in results])[codes]
    rest = np.flatnonzero(~pd.Series(types, dtype=object).isin((str, int, float, type(None))).to_numpy())
    for i in rest:
        out[i], reasons[i] = fn(values[i])
    return out, reasons
