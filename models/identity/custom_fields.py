"""The mappings file's golden fields: read from each record's payload, chosen per contact, stored whole.

Each mapped field is one more column per record (``custom:<name>``, prefixed so no name of the user's
meets one of ours), read by its payload path and converted to its golden type
(`models.mappings.values`); a value that cannot convert is left out with its reason, counted with the
record's other field issues. Survivorship is the built-in fields' own (`survive`): recency, or the
field's source priority, with our own reverse-sync writes discounted the same way, and lineage rows
like theirs. A contact's values are one JSON object (`contacts.custom`), None when it has none.
"""

from typing import Any

import numpy as np
import pandas as pd

from models.identity.survivorship import Golden, SurvivorshipConfig, survive
from models.mappings import Mappings
from models.mappings.values import at_path, lineage_text, read

PREFIX = "custom:"


def column(name: str) -> str:
    """The record column holding one mapped field's value."""
    return PREFIX + name


def custom_columns(
    source: str, obj: str, payloads: pd.Series, mappings: Mappings | None
) -> tuple[pd.DataFrame, list[str]]:
    """One column per mapped field (None where this object does not map it or the record has no
    value) and the reasons of the values that could not convert."""
    columns: dict[str, Any] = {}
    reasons: list[str] = []
    count = len(payloads)
    items = payloads.to_numpy(dtype=object)
    for field in mappings.fields if mappings else ():
        values = np.full(count, None, dtype=object)
        for mapping in field.sources:
            if mapping.key != (source, obj):
                continue
            # Each distinct value converts once: a field holds few distinct values across many records.
            seen: dict[tuple[type, Any], tuple[Any, str | None]] = {}
            for row, payload in enumerate(items):
                raw = at_path(payload, mapping.path)
                key = (type(raw), raw) if isinstance(raw, (str, int, float, type(None))) else None
                found = seen.get(key) if key is not None else None
                if found is None:
                    found = read(field, mapping, raw)
                    if key is not None:
                        seen[key] = found
                value, reason = found
                values[row] = value
                if reason is not None:
                    reasons.append(f"field {field.name}: {reason}")
        columns[column(field.name)] = pd.Series(values, dtype=object)
    return pd.DataFrame(columns, index=range(count)), reasons


def survive_custom(records: pd.DataFrame, mappings: Mappings | None) -> Golden:
    """Per contact, its custom values as one dict (None without any), and their lineage.

    records: the survivorship input (`survive`'s RECORD_COLUMNS, modified_at already discounted for
    our own writes) with the ``custom:<name>`` columns. contacts: contact_id, custom.
    """
    contact_ids = pd.Series(sorted(set(records["contact_id"].astype(object))), dtype=object)
    if mappings is None or records.empty:
        contacts = pd.DataFrame(
            {"contact_id": contact_ids, "custom": pd.Series([None] * len(contact_ids), dtype=object)}
        )
        return Golden(contacts=contacts, lineage=pd.DataFrame())
    names = tuple(column(f.name) for f in mappings.fields)
    config = SurvivorshipConfig(
        source_priority={column(f.name): f.priority for f in mappings.fields if f.priority}, fields=names
    )
    frame = records.reindex(columns=[*_RECORD, *names])
    chosen = survive(frame, config)
    custom = []
    for row in chosen.contacts.loc[:, list(names)].itertuples(index=False, name=None):
        found = {
            name[len(PREFIX) :]: value for name, value in zip(names, row, strict=True) if value is not None
        }
        custom.append(found or None)
    contacts = pd.DataFrame(
        {"contact_id": chosen.contacts["contact_id"], "custom": pd.Series(custom, dtype=object)}
    )
    lineage = chosen.lineage.astype({"field": object})
    lineage["field"] = lineage["field"].str.removeprefix(PREFIX)
    lineage["value"] = [lineage_text(v) for v in lineage["value"]]
    return Golden(contacts=contacts, lineage=lineage)


_RECORD = ["record_key", "contact_id", "source", "object", "source_id", "modified_at"]
