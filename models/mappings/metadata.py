"""The mappings file against each account's own fields, where its API lists them.

Zoho lists a module's fields (`GET /settings/fields?module=`: ``api_name``, ``data_type``) and
Linkflow its contacts' custom properties (`GET /v2/contacts/meta/properties`: ``alias`` is the
``props`` key, ``dataType``). A path the account does not have is an error, and so is a golden type the
account's field cannot hold (a boolean read from a Zoho date field). ClickFunnels' ``custom_attributes``
and ClickSend's ``custom_1``..``custom_4`` have fixed shapes, checked by `models.mappings.schema`.

The pipeline fetches the lists (`connectors`); this only compares, so it is pure.
"""

from collections.abc import Mapping

from models.mappings.schema import Mappings

#: Which account data types each golden type can be read from and written to. Text reads anything.
_COMPATIBLE: Mapping[str, frozenset[str]] = {
    "number": frozenset({"integer", "double", "currency", "decimal", "bigint", "percent", "number", "text"}),
    "boolean": frozenset({"boolean", "text"}),
    "date": frozenset({"date", "datetime", "text"}),
    "datetime": frozenset({"datetime", "text"}),
    "choice": frozenset({"picklist", "text", "textarea", "multiselectpicklist"}),
}

FieldList = Mapping[str, str]
"""One account object's fields: the name a payload uses -> the account's data type (lower case)."""


def metadata_problems(mappings: Mappings, catalogues: Mapping[tuple[str, str], FieldList]) -> list[str]:
    """One line per mapped path the account lacks or cannot hold the golden type in.

    catalogues: per source object whose API lists its fields, that list (a Linkflow list is keyed by
    ``props.<alias>``). Source objects without one are not checked here.
    """
    problems = []
    for field in mappings.fields:
        for mapping in field.sources:
            catalogue = catalogues.get(mapping.key)
            if catalogue is None:
                continue
            where = f"{mappings.path}: field {field.name}: {mapping.label}:"
            kind = catalogue.get(mapping.path)
            if kind is None:
                problems.append(f"{where} the account has no field {mapping.path!r}")
            elif field.type != "text" and kind.lower() not in _COMPATIBLE[field.type]:
                problems.append(f"{where} {mapping.path!r} is a {kind} field; it cannot hold a {field.type}")
    return problems


def zoho_catalogue(answer: object) -> dict[str, str]:
    """A Zoho ``/settings/fields`` answer as api_name -> data_type."""
    fields = answer.get("fields") if isinstance(answer, Mapping) else None
    return {
        str(f["api_name"]): str(f.get("data_type") or "text").lower()
        for f in fields or []
        if isinstance(f, Mapping) and f.get("api_name")
    }


def linkflow_catalogue(answer: object) -> dict[str, str]:
    """A Linkflow ``/v2/contacts/meta/properties`` answer as ``props.<alias>`` -> dataType."""
    items = answer if isinstance(answer, list) else []
    return {
        f"props.{item['alias']}": str(item.get("dataType") or "text").lower()
        for item in items
        if isinstance(item, Mapping) and item.get("alias")
    }
