"""Records of one collection with the indexes the list endpoints need, kept current on every write.

Each sorted index is a list of ``(key, id)`` pairs in ascending order, so keyset pages, time windows
and offsets are bisections instead of scans. Filters that no index answers directly (a list's
contacts updated after T, Linkflow's update-time window in id order) are built once per distinct
query and cached until the next write, so a client paging through them pays the build cost once.
"""

import bisect
import gc
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

Record = dict[str, Any]
SortKey = Any
Entry = tuple[SortKey, Any]

_CACHE_LIMIT = 64


@contextmanager
def collector_paused() -> Iterator[None]:
    """For bulk building: hundreds of thousands of new dicts would wake the cycle collector again and
    again (tripling the time), and none of them form cycles."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class Table:
    """One collection: records by id, sorted indexes and hash groups (e.g. email -> ids)."""

    def __init__(
        self,
        records: dict[Any, Record],
        indexes: Mapping[str, Callable[[Record], SortKey]],
        groups: Mapping[str, Callable[[Record], Iterable[Hashable]]] | None = None,
        listed: Callable[[Record], bool] | None = None,
    ) -> None:
        """Index ``records`` in place: the table shares the dict, so the dataset sees every write.

        ``listed`` keeps records out of the sorted indexes (hidden from list endpoints) while they
        stay readable by id, the way ClickFunnels hides anonymous contacts.
        """
        self.records = records
        self._key_fns = dict(indexes)
        self._group_fns = dict(groups or {})
        self._listed = listed
        self._keys: dict[str, dict[Any, SortKey]] = {name: {} for name in self._key_fns}
        self._indexes: dict[str, list[Entry]] = {}
        self._groups: dict[str, dict[Hashable, set[Any]]] = {name: {} for name in self._group_fns}
        # The group values each record was filed under, since a record may be changed in place.
        self._memberships: dict[Any, list[tuple[str, Hashable]]] = {}
        self._cache: dict[Hashable, Any] = {}
        self.version = 0
        for name, key_fn in self._key_fns.items():
            keys = self._keys[name]
            entries: list[Entry] = []
            for record_id, record in records.items():
                if self._is_listed(record):
                    key = key_fn(record)
                    keys[record_id] = key
                    entries.append((key, record_id))
            entries.sort()
            self._indexes[name] = entries
        for record_id, record in records.items():
            self._group_add(record_id, record)

    def __len__(self) -> int:
        return len(self.records)

    def get(self, record_id: Any) -> Record | None:
        return self.records.get(record_id)

    def put(self, record_id: Any, record: Record) -> None:
        """Insert or replace a record (also after changing it in place) and refresh its index entries."""
        if record_id in self.records:
            self._unindex(record_id)
        self.records[record_id] = record
        if self._is_listed(record):
            for name, key_fn in self._key_fns.items():
                key = key_fn(record)
                self._keys[name][record_id] = key
                bisect.insort(self._indexes[name], (key, record_id))
        self._group_add(record_id, record)
        self._touch()

    def remove(self, record_id: Any) -> Record | None:
        if record_id not in self.records:
            return None
        self._unindex(record_id)
        self._touch()
        return self.records.pop(record_id)

    def index(self, name: str) -> list[Entry]:
        """The ascending ``(key, id)`` list of an index; callers must not change it."""
        return self._indexes[name]

    def group(self, name: str, value: Hashable) -> set[Any]:
        return self._groups[name].get(value, set())

    def cached(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """A derived view, rebuilt only after the table changed."""
        if key not in self._cache:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = build()
        return self._cache[key]

    def _is_listed(self, record: Record) -> bool:
        return self._listed is None or self._listed(record)

    def _touch(self) -> None:
        self.version += 1
        self._cache.clear()

    def _unindex(self, record_id: Any) -> None:
        for name, keys in self._keys.items():
            if record_id not in keys:
                continue
            key = keys.pop(record_id)
            entries = self._indexes[name]
            position = bisect.bisect_left(entries, (key, record_id))
            if position < len(entries) and entries[position] == (key, record_id):
                del entries[position]
        for name, value in self._memberships.pop(record_id, ()):
            members = self._groups[name].get(value)
            if members is not None:
                members.discard(record_id)
                if not members:
                    del self._groups[name][value]

    def _group_add(self, record_id: Any, record: Record) -> None:
        if not self._group_fns:
            return
        memberships = []
        for name, group_fn in self._group_fns.items():
            groups = self._groups[name]
            for value in group_fn(record):
                groups.setdefault(value, set()).add(record_id)
                memberships.append((name, value))
        self._memberships[record_id] = memberships


def keyset_page(
    entries: Sequence[Entry], after: Entry | None, descending: bool, size: int
) -> tuple[list[Any], bool]:
    """Ids of the page that follows ``after`` in the given order, and whether more remain."""
    if descending:
        end = len(entries) if after is None else bisect.bisect_left(entries, after)
        start = max(0, end - size)
        ids = [record_id for _, record_id in reversed(entries[start:end])]
        return ids, start > 0
    start = 0 if after is None else bisect.bisect_right(entries, after)
    stop = start + size
    ids = [record_id for _, record_id in entries[start:stop]]
    return ids, stop < len(entries)


def offset_page(
    entries: Sequence[Entry],
    offset: int,
    descending: bool,
    size: int,
    bounds: tuple[int, int] | None = None,
) -> list[Any]:
    """Ids at positions ``offset .. offset+size`` of the given order, within ``bounds`` (start, stop)."""
    start, stop = bounds if bounds is not None else (0, len(entries))
    if offset < 0 or size <= 0:
        return []
    if descending:
        end = stop - offset
        if end <= start:
            return []
        return [record_id for _, record_id in reversed(entries[max(start, end - size) : end])]
    first = start + offset
    return [record_id for _, record_id in entries[first : min(stop, first + size)]]


def key_range(entries: Sequence[Entry], low: SortKey | None, high: SortKey | None) -> tuple[int, int]:
    """Positions of the entries with ``low <= key < high`` (open bounds when None)."""
    start = 0 if low is None else bisect.bisect_left(entries, (low,))
    stop = len(entries) if high is None else bisect.bisect_left(entries, (high,))
    return start, max(start, stop)
