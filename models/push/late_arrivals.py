"""Creates held back because the destination gained the person after the extract.

Reverse sync plans a create for a golden contact the destination lacked as the extract read it;
someone adding the person meanwhile (a signup form, an import, a colleague) is seen only by the next
extract. Every destination would then hold the person twice or write over someone:

- ClickSend has no upsert: a create always adds a contact, and a list keeps two contacts with one
  phone (a campaign then texts that person twice).
- Linkflow's identify keys a create by our contact id as its external id. Whether it also joins the
  contact that holds the email or mobile is left open by its documents (api-notes §4.4): if not, the
  person gets a second contact; if so, a newcomer who is someone else sharing the value (a household
  member) gets our person's fields written over theirs.
- Zoho and ClickFunnels creates are upserts on the email: the record someone made meanwhile gets our
  fields written over what was just typed into it, and over someone else's if a household member
  sharing the email was added.

So, just before its first write into a list, workspace, Zoho system or Linkflow account, reverse sync
reads the records changed there since the extract and holds back each create whose email or phone
one of them holds (`held_back`). The next extract reads that record, identity resolution links it to
the golden contact (or keeps it apart), and the plan then fills its empty fields instead of creating
or overwriting.

The same look guards the updates of the destinations that take them with no condition on the
record's state (ClickFunnels, ClickSend, Linkflow; Zoho's carry If-Unmodified-Since): an update whose
record changed since the extract in a field it writes is held back (`changed_since_extract`).

Values are compared in their normal forms (emails as identity resolution matches them, phones as
E.164), so "(415) 555-0123" typed into the list stops a create of "+14155550123". Only values the
warehouse did not hold for that record count: a record the extract already read went through
identity resolution, so one that shares the phone and stayed apart (a household member) is someone
else, and the create goes out. A new record that is someone else with the person's phone holds the
create back for one run; the next extract reads it, and identity resolution decides.
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from models.normalise.identifiers import normalise_email, normalise_phone
from models.push.field_map import destination_map
from models.push.plan import RecordChange

#: The destinations whose writes are checked against what changed there since the extract (all of
#: them), with the field their records are named by.
ID_FIELDS: Mapping[tuple[str, str], str] = {
    ("clicksend", "list_contact"): "contact_id",
    ("linkflow", "contact"): "id",
    ("clickfunnels", "contact"): "id",
    ("zoho_crm", "lead"): "id",
    ("zoho_crm", "contact"): "id",
    ("zoho_bigin", "contact"): "id",
}


def _normal(canonical: str, value: Any, region: str | None) -> str | None:
    """The form identity resolution matches ``value`` of the golden field ``canonical`` on."""
    if not isinstance(value, str) or not value.strip():
        return None
    if canonical == "email":
        return normalise_email(value).value
    return normalise_phone(value, region).value


def held_back(
    creates: Sequence[RecordChange],
    arrived: Iterable[Mapping[str, Any]],
    stored: Mapping[str, Mapping[str, Any]],
    *,
    destination: str,
    obj: str,
    region: str | None,
    container: str,
) -> dict[str, str]:
    """contact id -> why its create is held back, for each of ``creates`` whose email or phone one of
    the records ``arrived`` (as the destination lists them) holds and did not hold as the extract
    stored it (``stored``: payloads by record id, the field `ID_FIELDS` names). A record the
    extract read went through identity resolution, which kept it apart from the person (a household
    member sharing the phone): only a value new since then can be the person arriving. ``region``
    reads phones written without a country code (the destination account's country); ``container``
    names the list or account in the reason."""
    if not creates:
        return {}
    id_field = ID_FIELDS[(destination, obj)]
    noun = "record" if destination.startswith("zoho") else "contact"
    fields = [
        (spec.canonical, spec.field)
        for spec in destination_map(destination, obj).fields
        if spec.canonical in ("email", "phone")
    ]
    carried = [  # each create's identifiers in normal form, in the order of the fields
        (
            change.contact_id,
            [
                (canonical, v)
                for canonical, field in fields
                if (v := _normal(canonical, change.payload.get(field), region))
            ],
        )
        for change in creates
    ]
    wanted = {pair for _, pairs in carried for pair in pairs}
    gained: set[tuple[str, str]] = set()
    for record in arrived:
        before = stored.get(str(record.get(id_field)), {})
        for canonical, field in fields:
            now = record.get(field)
            if now == before.get(field):
                continue  # as the extract read it (identity resolution saw it); normalising costs
            value = _normal(canonical, now, region)
            if (
                value is not None
                and (canonical, value) in wanted
                and value != _normal(canonical, before.get(field), region)
            ):
                gained.add((canonical, value))
    reasons: dict[str, str] = {}
    for contact_id, pairs in carried:
        held = next((canonical for canonical, value in pairs if (canonical, value) in gained), None)
        if held is not None:
            reasons[contact_id] = (
                f"not created: {container} gained a {noun} with this {held} after the extract; "
                "the next sync links it instead"
            )
    return reasons


def unguarded_updates(destination: str, obj: str) -> bool:
    """Whether the destination's updates carry no condition on the record's state (Zoho's carry
    If-Unmodified-Since and come back 412 when it moved): their records are then checked against the
    same look before they are written (`changed_since_extract`)."""
    return (destination, obj) in ID_FIELDS and not destination_map(destination, obj).guards_concurrency


def changed_since_extract(
    updates: Sequence[RecordChange],
    arrived: Iterable[Mapping[str, Any]],
    stored: Mapping[str, Mapping[str, Any]],
    *,
    destination: str,
    obj: str,
) -> dict[str, str]:
    """record id -> why its update is held back, for each of ``updates`` whose record is among
    ``arrived`` (as the destination lists it now) holding, in a field the update writes, another
    value than the extract stored (``stored``). Someone changed the field after we read it: an empty
    field we would fill may hold their value now, and Linkflow's ``props`` go whole. As Zoho's 412,
    the update waits for the next extract, which reads their value, and is planned from it."""
    id_field = ID_FIELDS[(destination, obj)]
    now = {str(record.get(id_field)): record for record in arrived}
    reasons: dict[str, str] = {}
    for change in updates:
        record_id = str(change.record_id)
        current, before = now.get(record_id), stored.get(record_id)
        if current is None or before is None:
            continue
        moved = [field for field in change.payload if current.get(field) != before.get(field)]
        if moved:
            reasons[record_id] = (
                f"not written: record {record_id} changed at the destination since the extract "
                f"({', '.join(moved)}); planned again from the next extract"
            )
    return reasons
