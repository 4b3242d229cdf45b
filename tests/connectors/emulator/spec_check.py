"""A small checker of JSON values against the vendors' OpenAPI schemas in /work/shared/specs.

It understands what those files use for response shapes: ``$ref`` (local), ``type`` (also as a list,
and ``nullable``), ``required``, ``properties``, ``items``, ``allOf`` and ``anyOf``. It reports every
mismatch with its JSON path, so a failing test says which field drifted.
"""

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

_REPOSITORY = Path(__file__).resolve().parents[3]
# The specs live beside the checkout (../shared/specs) until they are vendored into it (specs/).
SPECS = next(
    (path for path in (_REPOSITORY / "specs", _REPOSITORY.parent / "shared" / "specs") if path.is_dir()),
    None,
)
_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


@cache
def load_spec(name: str) -> dict[str, Any]:
    if SPECS is None:
        pytest.skip("the vendor specs are not next to this checkout (../shared/specs)")
    text = (SPECS / name).read_text(encoding="utf-8")
    document = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
    assert isinstance(document, dict)
    return document


def schema(spec: str, name: str) -> dict[str, Any]:
    found = load_spec(spec)["components"]["schemas"][name]
    assert isinstance(found, dict)
    return found


def mismatches(spec: str, value: Any, node: dict[str, Any], path: str = "$") -> list[str]:
    """Every way ``value`` breaks ``node`` (a schema of ``spec``)."""
    if "$ref" in node:
        reference = node["$ref"]
        if not reference.startswith("#/"):
            return []  # a schema in another file (Zoho's users.json): not checked here
        target: Any = load_spec(spec)
        for part in reference[2:].split("/"):
            target = target[part]
        return mismatches(spec, value, target, path)
    problems: list[str] = []
    for part in node.get("allOf", []):
        problems += mismatches(spec, value, part, path)
    if "anyOf" in node and all(mismatches(spec, value, option, path) for option in node["anyOf"]):
        problems.append(f"{path}: matches none of anyOf")
    if value is None and node.get("nullable"):
        return problems
    declared = node.get("type")
    if declared is not None:
        names = declared if isinstance(declared, list) else [declared]
        allowed = tuple(kind for name in names for kind in _TYPES[name])
        # bool is an int to Python, not to JSON Schema.
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            problems.append(f"{path}: {type(value).__name__} is not {declared}")
            return problems
    if isinstance(value, dict):
        for key in node.get("required", []):
            if key not in value:
                problems.append(f"{path}: missing required {key!r}")
        for key, sub in node.get("properties", {}).items():
            if key in value:
                problems += mismatches(spec, value[key], sub, f"{path}.{key}")
    if isinstance(value, list) and "items" in node:
        for position, item in enumerate(value):
            problems += mismatches(spec, item, node["items"], f"{path}[{position}]")
    return problems
