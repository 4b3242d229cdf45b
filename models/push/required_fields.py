"""Which fields a Zoho create must carry, read from the module's layouts.

Zoho refuses a record without a field its layout marks mandatory, whoever creates it: the API too
(``MANDATORY_NOT_FOUND``). Leads' ``Company`` is the common case (api-notes §5.5 [?]), but an admin can
make any field mandatory. Knowing them before sending lets reverse sync refuse such a create up front,
with a reason that names the field, instead of sending it and being refused three runs in a row.

Which layout an API create lands in when the module has several is not documented, so a field counts
only when every active layout requires it: those are refused for certain. A field only some layouts
require is left to Zoho's answer (the create is sent; a refusal is retried, then parked, as any other).
Fields a create need not carry never count: those the API cannot set (read-only, not creatable
through the API, computed), those Zoho fills itself (the owner, who defaults to the connection's user;
a field with a default value).
"""

from collections.abc import Iterable, Mapping
from typing import Any

from models.mappings import Mappings
from models.push.field_map import DestinationMap, destination_map


def required_on_create(layouts: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """API names of the fields every active layout marks mandatory (``required`` or
    ``system_mandatory``) among those an API create may set; empty when no layout is active."""
    found: frozenset[str] | None = None
    for layout in layouts:
        if str(layout.get("status") or "active") != "active":
            continue
        mandatory = frozenset(_mandatory_fields(layout))
        found = mandatory if found is None else found & mandatory
    return found or frozenset()


def _mandatory_fields(layout: Mapping[str, Any]) -> Iterable[str]:
    for section in layout.get("sections") or ():
        if not isinstance(section, Mapping):
            continue
        for item in section.get("fields") or ():
            if isinstance(item, Mapping) and _mandatory(item) and item.get("api_name"):
                yield str(item["api_name"])


#: Data types Zoho fills or computes itself: the record's owner, numbering, formulas, roll-ups.
_FILLED_BY_ZOHO = frozenset({"ownerlookup", "autonumber", "formula", "rollup_summary"})


def _mandatory(item: Mapping[str, Any]) -> bool:
    if not (item.get("required") is True or item.get("system_mandatory") is True):
        return False
    if item.get("read_only") is True or item.get("field_read_only") is True:
        return False
    if item.get("data_type") in _FILLED_BY_ZOHO or item.get("default_value") not in (None, ""):
        return False
    operations = item.get("operation_type")
    return not (isinstance(operations, Mapping) and operations.get("api_create") is False)


def create_requirements(dest: str, obj: str, layouts: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """What the layouts make a create carry beyond the field map's own rule
    (`PushConfig.create_fields_required` of one destination)."""
    return beyond_map(destination_map(dest, obj), required_on_create(layouts))


def beyond_map(mapping: DestinationMap, required: frozenset[str]) -> frozenset[str]:
    """``required`` less the fields the map requires on every create already (Zoho's ``Last_Name``):
    those are refused by the map's own rule, and leaving them out keeps the plan's settings
    fingerprint, so a module with no other mandatory field plans as before."""
    always = {group[0] for group in mapping.create_requires if len(group) == 1}
    return frozenset(name for name in required if _canonical(mapping, name) not in always)


def _canonical(mapping: DestinationMap, name: str) -> str | None:
    return next((spec.canonical for spec in mapping.fields if spec.field == name), None)


def written_fields(dest: str, obj: str, mappings: Mappings | None) -> dict[str, str]:
    """The destination's own field names a create may carry (the field map's, and the mappings
    file's), each with the golden field it carries."""
    custom = mappings.for_object(dest, obj) if mappings else []
    written = {where.path.split(".")[0]: field.name for field, where in custom if where.write != "never"}
    return {**written, **{spec.field: spec.canonical for spec in destination_map(dest, obj).fields}}
