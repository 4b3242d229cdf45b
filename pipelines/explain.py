"""`contact-sync explain`: the stored reasons for one contact, as plain lines a person reads top down."""

from sqlalchemy.engine import Engine

from models.identity.explain import Explanation, SourceRecord, contact_of_record, explain
from models.identity.households import NAMES_DIFFER

_RULES = {
    NAMES_DIFFER: "first names differ",
    "unclear_whose": "the record could belong to more than one of the people sharing it",
}


def explain_lines(engine: Engine, target: str) -> list[str] | None:
    """Lines for a contact id (a merged-away one too) or a record named source/object/id; None when
    neither is known."""
    with engine.connect() as connection:
        contact_id = target
        parts = target.split("/", 2)
        if len(parts) == 3:
            found = contact_of_record(connection, *parts)
            if found is None:
                return None
            contact_id = found
        explanation = explain(connection, contact_id)
    return None if explanation is None else _lines(explanation)


def _lines(found: Explanation) -> list[str]:
    lines = [f"contact {found.contact_id}: {len(found.records)} source record(s)"]
    if found.merged_from:
        lines.append(f"  {' -> '.join(found.merged_from)} was merged into {found.contact_id}")
    labels: dict[int, SourceRecord] = {record.record_key: record for record in found.records}
    for record in found.records:
        lines.append(f"  - {record.label}")
    linking = [shared for shared in found.shared if shared.suppressed is None]
    if linking:
        lines.append("together because they share:")
        for shared in linking:
            holders = ", ".join(labels[key].label for key in shared.record_keys)
            lines.append(f"  {shared.kind} {shared.value}: {holders}")
    elif len(found.records) == 1:
        lines.append("one record: nothing links it to another")
    for shared in found.shared:
        if shared.suppressed is not None:
            lines.append(
                f"  ({shared.kind} {shared.value} is shared too, but never links: {shared.suppressed})"
            )
    if found.kept_apart:
        lines.append("kept apart:")
        for kept in found.kept_apart:
            lines.append(
                f"  {kept.outside.label} in {kept.outside.contact_id} shares {kept.kind} {kept.value} "
                f"with {kept.inside.label}: {_RULES.get(kept.rule, kept.rule)}"
            )
    else:
        lines.append("kept apart: none")
    return lines
