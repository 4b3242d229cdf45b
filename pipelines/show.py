"""``contact-sync show``: what the warehouse holds on one person, and why, as text or JSON.

The queries are in ``models.identity.lookup``; this module picks the phone regions the pipeline would
use, says why each field won in the user's terms (the settings that made it so), and lays it out.
It imports no Dagster, so it answers in well under a second.
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models.identity.consent import consent_lines
from models.identity.lookup import (
    GOLDEN_COLUMNS,
    ContactStory,
    FieldOrigin,
    IdChange,
    Lookup,
    contact_story,
    find_contacts,
)
from models.warehouse.tables import SourceAccount
from pipelines.settings import SOURCES, Settings

ACTIVITY_SHOWN = 5
PUSHES_SHOWN = 10


class NoSuchContactError(Exception):
    """The query leads to no golden contact, or to several; the message is the line to print."""


@dataclass(frozen=True)
class Shown:
    """The contact a query found, how it was found, and its story."""

    query: str
    lookup: Lookup
    story: ContactStory


def phone_regions(engine: Engine, settings: Settings) -> list[str]:
    """Regions to read a typed phone without a country code: the default first, then each source's
    own (the account country its API told, or the configured one), as resolution read its records."""
    with engine.connect() as connection:
        countries = dict(connection.execute(sa.select(SourceAccount.source, SourceAccount.country)).all())
    regions = [settings.contact_sync_default_phone_region]
    regions += [settings.phone_region(source, countries.get(source)) for source in SOURCES]
    return list(dict.fromkeys(regions))


def show_contact(engine: Engine, settings: Settings, query: str) -> Shown:
    """The contact ``query`` (an email, a phone or a contact id) leads to, else ``NoSuchContactError``."""
    lookup = find_contacts(engine, query, phone_regions(engine, settings))
    typed = query.strip()
    if lookup.value is None:
        raise NoSuchContactError(f"{typed!r} is not a usable {lookup.kind} ({lookup.reason})")
    if not lookup.contact_ids:
        if lookup.merged:
            raise NoSuchContactError(
                f"{typed} was merged into {lookup.merged[-1].new_contact_id}, which no longer exists"
            )
        said = typed if typed == lookup.value else f"{typed} (read as {lookup.value})"
        raise NoSuchContactError(f"no golden contact has the {lookup.kind.replace('_', ' ')} {said}")
    if len(lookup.contact_ids) > 1:
        listed = ", ".join(lookup.contact_ids[:5]) + (", ..." if len(lookup.contact_ids) > 5 else "")
        raise NoSuchContactError(
            f"{lookup.value} is held by {len(lookup.contact_ids)} golden contacts (an identifier too "
            f"widely shared to link people, see suppressed_identifiers); show one by its id: {listed}"
        )
    story = contact_story(
        engine, lookup.contact_ids[0], activity_limit=ACTIVITY_SHOWN, push_limit=PUSHES_SHOWN
    )
    if story is None:  # removed between the two reads by a sync running meanwhile
        raise NoSuchContactError(f"{lookup.contact_ids[0]} no longer exists; try again")
    return Shown(typed, lookup, story)


def why(origin: FieldOrigin, settings: Settings) -> str:
    """The rule that chose a field's value, said in terms of what the user can change."""
    if origin.rule == "source_priority":
        ranked = settings.source_priority().get(origin.field, ())
        mapped = _mapped_priority(settings, origin.field)
        order = ", ".join(ranked or mapped) or origin.source
        setting = "CONTACT_SYNC_MAPPINGS" if mapped and not ranked else "CONTACT_SYNC_SOURCE_PRIORITY"
        return f"source priority for {origin.field}: {order} ({setting})"
    when = _when(origin.record_updated_at)
    return f"most recently modified record with a value (modified {when})"


def _mapped_priority(settings: Settings, name: str) -> tuple[str, ...]:
    """The mappings file's source priority for one of its fields (empty when it has none)."""
    mappings = settings.mappings()
    found = [f.priority for f in mappings.fields if f.name == name] if mappings else []
    return found[0] if found else ()


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


def _text(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def _table(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    """Rows as left-aligned columns (the last column is not padded)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        indent + "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]).rstrip()
        for row in rows
    ]


def text_lines(shown: Shown, settings: Settings) -> list[str]:
    """The human layout: the contact, its records, where each field came from, history, activity, pushes."""
    story = shown.story
    contact = story.contact
    head = f"contact {contact['contact_id']}"
    if shown.lookup.merged:
        steps = ", then ".join(
            f"{change.old_contact_id} was merged into {change.new_contact_id} on {_when(change.at)}"
            for change in shown.lookup.merged
        )
        head += f" ({steps})"
    elif shown.lookup.kind != "contact_id":
        head += f" (found by {shown.lookup.kind} {shown.lookup.value})"
    lines = [head]
    lines += _table([(name, _text(contact[name])) for name in GOLDEN_COLUMNS[1:]])
    custom = contact.get("custom") or {}
    lines += _table([(f"{name} (mapped)", _text(value)) for name, value in custom.items()]) if custom else []
    lines.append(
        f"  created {_when(contact['created_at'])}, updated {_when(contact['updated_at'])}, "
        f"{contact['source_count']} source records"
    )

    lines += ["", "consent", *consent_lines(contact)]

    lines += ["", f"source records ({len(story.records)})"]
    if story.records:
        header = ("SYSTEM/OBJECT", "ID", "LAST MODIFIED", "EMAIL", "PHONE")
        lines += _table(
            [header]
            + [
                (
                    f"{r.source}/{r.object}",
                    r.source_id,
                    _when(r.updated_at) + (" (deleted)" if r.deleted_at else ""),
                    _text(r.email),
                    _text(r.phone),
                )
                for r in story.records
            ]
        )

    lines += ["", "fields"]
    if story.fields:
        lines += _table(
            [("FIELD", "VALUE", "FROM", "WHY")]
            + [
                (f.field, _text(f.value), f"{f.source}/{f.object} {f.source_id}", why(f, settings))
                for f in story.fields
            ]
        )
    else:
        lines.append("  (no field has a value)")

    lines += ["", "merges and splits"]
    lines += [_history_line(change, contact["contact_id"]) for change in story.history] or ["  (none)"]

    lines += ["", f"latest activity ({len(story.activity)} of {story.activity_total})"]
    lines += [
        f"  {_when(a.occurred_at)}  {a.source} {a.kind}  {_text(a.summary)}" for a in story.activity
    ] or ["  (none)"]

    lines += ["", f"pushes ({len(story.pushes)} of {story.pushes_total}, latest first)"]
    lines += [
        f"  {_when(p.updated_at)}  {p.destination}/{p.object} {p.record_id}  {p.field}: "
        f"{_text(p.before)} -> {_text(p.after)}  {p.status}{' (dry run)' if p.dry_run else ''}"
        f"  run {p.run_id}" + (f"  error: {p.error}" if p.error and p.status != "sent" else "")
        for p in story.pushes
    ] or ["  (none)"]
    return lines


def _history_line(change: IdChange, contact_id: str) -> str:
    when = _when(change.at)
    run = f" (run {change.run_id})" if change.run_id else ""
    if change.kind == "merge":
        return f"  {when}  merge: {change.old_contact_id} merged into {change.new_contact_id}{run}"
    if change.old_contact_id == contact_id:
        return f"  {when}  split: some records left for {change.new_contact_id}{run}"
    return f"  {when}  split: {change.new_contact_id} split off from {change.old_contact_id}{run}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


def to_json(shown: Shown, settings: Settings) -> dict[str, Any]:
    """One JSON document for scripts; times as ISO 8601 in UTC."""
    story = shown.story
    document: dict[str, Any] = _jsonable(
        {
            "query": shown.query,
            "found_by": shown.lookup.kind,
            "looked_up": shown.lookup.value,
            "merged": [asdict(change) for change in shown.lookup.merged],
            "contact": story.contact,
            "former_ids": list(story.former_ids),
            "records": [asdict(record) for record in story.records],
            "fields": [{**asdict(f), "why": why(f, settings)} for f in story.fields],
            "history": [asdict(change) for change in story.history],
            "activity": {"total": story.activity_total, "latest": [asdict(a) for a in story.activity]},
            "pushes": {"total": story.pushes_total, "latest": [asdict(p) for p in story.pushes]},
        }
    )
    return document
