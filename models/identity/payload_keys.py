"""Read only the payload keys the rebuild reads, cut out by the database, instead of whole payloads.

A full rebuild used to fetch every contact record's whole payload and parse it in Python
(``json.loads``, then a dict walk per field), though the fields, contact points, consent and mapped
fields it builds come from a few dozen top-level keys. Here the database cuts those keys out of each
payload as one JSON array per record, in its own C code (SQLite ``json_extract`` with several paths,
PostgreSQL ``jsonb_build_array`` of ``payload -> key``), and Python parses that short array and zips
it with the key names into a **partial payload**: a dict holding just those keys.

Both databases write each value back as its JSON text, so parsing the array gives what parsing the
whole payload gives for those keys: SQLite copies the value's original text (numbers as written,
escapes kept), PostgreSQL writes the same text it sends for a whole ``jsonb`` document. Readers then
run unchanged on partial payloads (`models.identity.phases.extract_contact_records`,
`models.identity.consent.statements`), under one difference they must allow: a key the payload
lacks is present with None in the partial payload (both read the same through ``.get``), except the
keys whose presence a reader tests (`models.identity.consent.PRESENCE_KEYS`), which are left out
when absent, as in the payload.

This takes payloads to be JSON objects, as the store writes them (`models.warehouse.store.storable`):
a payload of another kind would read as nulls here, where the Python walk takes it as a flattened
value.

The keys come from the layouts (`models.normalise.layouts`), consent (`CONSENT_KEYS`) and the
mappings file: each path's first segment, so a dotted path still finds its nested value (or the plain
value a flattened lookup holds) in the partial payload. A key no path can name (SQLite cannot quote a
key holding ``"``), or more keys than one function call takes, leaves the rebuild reading whole
payloads, as does a SQLite payload that is not strict JSON (``NaN``), for its slice.
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from models.identity.consent import CONSENT_KEYS, PRESENCE_KEYS
from models.mappings import Mappings
from models.normalise.layouts import layout
from models.warehouse.json_text import loads as json_loads

#: The most keys one object's array is built from: SQLite's function argument limit is 127 by default,
#: PostgreSQL's 100; past this the rebuild reads whole payloads.
MAX_KEYS = 90

SourceObject = tuple[str, str]


def reader_keys(source: str, obj: str, mappings: Mappings | None) -> tuple[str, ...]:
    """The top-level payload keys every reader of ``source``/``obj`` records looks at, each once."""
    paths = [*layout(source, obj).paths, *CONSENT_KEYS.get((source, obj), ())]
    for field in mappings.fields if mappings else ():
        paths.extend(mapping.path for mapping in field.sources if mapping.key == (source, obj))
    return tuple(dict.fromkeys(path.split(".", 1)[0] for path in paths))


def partial_keys(
    objects: Iterable[SourceObject], mappings: Mappings | None, dialect: str
) -> dict[SourceObject, tuple[str, ...]] | None:
    """Each object's `reader_keys`, or None when one of them cannot be cut out in SQL on ``dialect``
    (the rebuild then reads whole payloads)."""
    keys = {key: reader_keys(*key, mappings) for key in objects}
    for names in keys.values():
        if len(names) > MAX_KEYS:
            return None
        if dialect == "sqlite" and any('"' in name or "\\" in name for name in names):
            return None
    return keys


def partial_columns(
    payload: Any, source: Any, obj: Any, keys: Mapping[SourceObject, tuple[str, ...]], dialect: str
) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """Two text columns: the JSON array of the record's keys (`partial_keys`) and, for objects with
    `PRESENCE_KEYS`, which of them the payload holds (`_present`)."""
    arrays = sa.case(
        *(
            (sa.and_(source == s, obj == o), _array(payload, names, dialect))
            for (s, o), names in keys.items()
        ),
        else_=sa.null(),
    )
    presence = [
        (sa.and_(source == s, obj == o), _present(payload, PRESENCE_KEYS[(s, o)], dialect))
        for s, o in keys
        if (s, o) in PRESENCE_KEYS
    ]
    present = sa.case(*presence, else_=sa.null()) if presence else sa.null()
    return sa.type_coerce(arrays, sa.Text), sa.type_coerce(present, sa.Text)


def _array(payload: Any, names: Sequence[str], dialect: str) -> ColumnElement[Any]:
    if dialect == "sqlite":
        # With one path json_extract returns the value itself; a second path keeps it an array.
        paths = [f'$."{name}"' for name in names] + (['$.""'] if len(names) == 1 else [])
        return sa.func.json_extract(payload, *(sa.literal(p) for p in paths))
    values = [payload.op("->")(sa.literal(name)) for name in names]
    return sa.cast(sa.func.jsonb_build_array(*values), sa.Text)


def _present(payload: Any, names: Sequence[str], dialect: str) -> ColumnElement[Any]:
    """One character per key, ``1`` where the payload holds it (null or not), ``0`` where it lacks it."""
    flags: list[ColumnElement[Any]] = []
    for name in names:
        if dialect == "sqlite":
            held = sa.func.json_type(payload, sa.literal(f'$."{name}"')).is_not(None)
        else:
            held = payload.op("?")(sa.literal(name))
        flags.append(sa.case((held, sa.literal("1")), else_=sa.literal("0")))
    text = flags[0]
    for flag in flags[1:]:
        text = text.op("||")(flag)
    return text


def partial_payloads(
    arrays: Iterable[str],
    present: Iterable[str | None],
    sources: Iterable[Any],
    objects: Iterable[Any],
    keys: Mapping[SourceObject, tuple[str, ...]],
) -> list[dict[str, Any]]:
    """The partial payloads of a slice of records from `partial_columns`' two columns."""
    out: list[dict[str, Any]] = []
    for text, flags, source, obj in zip(arrays, present, sources, objects, strict=True):
        names = keys[(str(source), str(obj))]
        payload = dict(zip(names, json_loads(text), strict=False))
        if flags is not None:
            for name, held in zip(PRESENCE_KEYS[(str(source), str(obj))], flags, strict=True):
                if held == "0":
                    del payload[name]
        out.append(payload)
    return out
