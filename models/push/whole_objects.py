"""Nested objects a destination may replace whole when one of their keys is written.

A mapped field under a nested object (`models.mappings`: Linkflow ``props.attr3``, ClickFunnels
``custom_attributes.plan``) is sent as that object holding only the keys that change. ClickFunnels
documents that such an object is merged key by key (its contact update: "a key that does not exist,
will create ...; a key that already exists, will update the value"). Linkflow lists ``props`` among
the fields of ``PUT /v2/contacts/{id}`` and says nothing more: if it replaces the contact's whole
``props`` with what it is sent, a write of one key would clear every other. So for the objects named
here the write carries the whole object as last read, with the planned keys changed: the same result
whether the API merges or replaces (the emulator plays both, ``linkflow_props``).

What it cannot guard against is a key changed at the destination after our last read: it is sent
back with the value read. Linkflow offers no conditional write, so that window (between an extract
and the reverse sync after it) stays, as it does for every Linkflow field.
"""

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy.engine import Engine

from models.push.plan import RecordChange
from models.warehouse.store import StreamKey, payloads_by_source_id

SENT_WHOLE: Mapping[tuple[str, str], tuple[str, ...]] = {("linkflow", "contact"): ("props",)}
"""(destination, object) -> the nested objects whose writes carry every key."""


def records_needing_whole(changes: Sequence[RecordChange]) -> list[str]:
    """Ids of the existing records whose change writes into an object named in `SENT_WHOLE`."""
    return sorted(
        {
            str(change.record_id)
            for change in changes
            if change.record_id is not None
            and any(
                isinstance(change.payload.get(name), dict)
                for name in SENT_WHOLE.get((change.destination, change.object), ())
            )
        }
    )


def with_whole_objects(
    changes: Sequence[RecordChange], held: Mapping[str, Mapping[str, Any]]
) -> list[RecordChange]:
    """``changes`` with each object of `SENT_WHOLE` they write completed from ``held`` (record id ->
    the record's payload as last read): the held keys first, the planned ones over them. A record
    not held (never read) or holding no such object is sent as planned."""
    completed: list[RecordChange] = []
    for change in changes:
        names = SENT_WHOLE.get((change.destination, change.object), ())
        record = held.get(str(change.record_id)) if change.record_id is not None else None
        payload = dict(change.payload)
        for name in names:
            before = record.get(name) if record is not None else None
            if isinstance(payload.get(name), dict) and isinstance(before, dict):
                payload[name] = {**before, **payload[name]}
        completed.append(replace(change, payload=payload) if payload != change.payload else change)
    return completed


def completed_from_warehouse(engine: Engine, changes: Sequence[RecordChange]) -> list[RecordChange]:
    """`with_whole_objects`, the records' payloads read from the warehouse (only those that need it,
    only for the destinations of `SENT_WHOLE`)."""
    needed = records_needing_whole(changes)
    if not needed:
        return list(changes)
    held: dict[str, Mapping[str, Any]] = {}
    for destination, obj in {(change.destination, change.object) for change in changes} & SENT_WHOLE.keys():
        held.update(payloads_by_source_id(engine, StreamKey(destination, obj), needed))
    return with_whole_objects(changes, held)
