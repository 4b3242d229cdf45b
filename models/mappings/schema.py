"""The mappings file's schema, read and checked as a whole.

The format is the interface's "Mappings file": a top-level ``fields`` list, each entry a golden field
with a type, the source objects it is read from (a payload path, or the long form with a value map and
its own write rule), a survivorship rule and a default write rule. Every problem found is one line
naming the file, the field and what is wrong, and all of them are reported together, so a user fixes
the file in one go; a file with any problem is never used (`MappingsError`).

What is checked here needs no account: keys, names, types, choices, source objects, path shapes
(ClickFunnels keeps custom values in ``custom_attributes``, ClickSend in ``custom_1``..``custom_4``,
Linkflow in ``props``; Zoho paths are one API name), write rules, survivorship sources, and paths that
would collide with a built-in field or another mapped field. Paths against each account's own field
list are `models.mappings.metadata`'s job.
"""

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import yaml

from models.normalise.layouts import LAYOUTS, TEXT_FIELDS

FieldType = Literal["text", "number", "boolean", "date", "datetime", "choice"]
WriteRule = Literal["fill", "overwrite", "never"]
FIELD_TYPES: tuple[FieldType, ...] = ("text", "number", "boolean", "date", "datetime", "choice")
WRITE_RULES: tuple[WriteRule, ...] = ("fill", "overwrite", "never")
SOURCES: tuple[str, ...] = ("clickfunnels", "clicksend", "linkflow", "zoho_crm", "zoho_bigin")
#: The source objects that describe people, the only ones a golden field can be read from.
CONTACT_OBJECTS: tuple[tuple[str, str], ...] = tuple(LAYOUTS)

#: Golden names taken by the contract: the built-in fields, consent, and the contacts table's columns.
RESERVED_NAMES = frozenset(
    {"email", "phone", *TEXT_FIELDS, "full_name", "email_opt_out", "sms_opt_out"}
    | {"contact_id", "source_count", "created_at", "updated_at", "custom"}
)
_NAME = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
_MAX_NAME = 48
_FIELD_KEYS = frozenset({"name", "type", "choices", "sources", "survivorship", "write"})
_LONG_KEYS = frozenset({"path", "values", "write"})
_PATH_PART = re.compile(r"^[A-Za-z0-9_$-]+$")
_SNAKE = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)*$")
_CLICKSEND_CUSTOM = ("custom_1", "custom_2", "custom_3", "custom_4")


@dataclass(frozen=True, slots=True)
class SourceMapping:
    """Where one golden field lives in one source object.

    values: the source's value -> golden choice (choice fields only; empty: the same text).
    write: this destination's write rule (the field's own unless the long form names one).
    """

    source: str
    object: str
    path: str
    values: Mapping[str, str] = field(default_factory=dict)
    write: WriteRule = "fill"

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.object)

    @property
    def label(self) -> str:
        return f"{self.source}/{self.object}"

    def outgoing(self, golden: str) -> str:
        """The source's value for a golden choice: the value map read backwards (the first source
        value naming it), else the golden value itself."""
        for theirs, ours in self.values.items():
            if ours == golden:
                return theirs
        return golden


@dataclass(frozen=True, slots=True)
class MappedField:
    """One golden field beyond the built-in ones; priority is empty for recency."""

    name: str
    type: FieldType
    sources: tuple[SourceMapping, ...]
    choices: tuple[str, ...] = ()
    priority: tuple[str, ...] = ()
    write: WriteRule = "fill"


@dataclass(frozen=True, slots=True)
class Mappings:
    """A checked mappings file: its path (for messages) and its fields, in file order."""

    path: str
    fields: tuple[MappedField, ...]

    def for_object(self, source: str, obj: str) -> list[tuple[MappedField, SourceMapping]]:
        """The fields read from one source object, with where each is."""
        return [(f, m) for f in self.fields for m in f.sources if m.key == (source, obj)]

    def zoho_fields(self, source: str, obj: str) -> tuple[str, ...]:
        """The API names a Zoho module must be asked for (its list calls name every field read)."""
        return tuple(dict.fromkeys(m.path.split(".")[0] for _f, m in self.for_object(source, obj)))

    def destination_fingerprint(self, source: str, obj: str) -> str:
        """A short digest of what decides one destination's writes (`models.push.field_map.PushConfig`)."""
        rules = [
            [f.name, f.type, m.path, m.write, sorted(m.values.items())]
            for f, m in self.for_object(source, obj)
        ]
        return hashlib.sha256(json.dumps(rules).encode()).hexdigest()[:16]

    def fingerprint(self) -> str:
        """A short digest of everything that decides the golden values: a resolution made under
        another file is stale (`models.identity.canonical_incremental` rebuilds in full)."""
        rules = [
            [
                f.name,
                f.type,
                list(f.choices),
                list(f.priority),
                [[m.source, m.object, m.path, sorted(m.values.items())] for m in f.sources],
            ]
            for f in self.fields
        ]
        return hashlib.sha256(json.dumps(rules).encode()).hexdigest()[:16]


class MappingsError(ValueError):
    """A mappings file that cannot be used: every problem, one line each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def load_mappings(path: str | Path) -> Mappings:
    """Read and check the file at ``path``; raises `MappingsError` with every problem."""
    shown = str(path)
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingsError([f"{shown}: cannot read the mappings file: {exc.strerror}"]) from None
    return parse_mappings(text, shown)


def parse_mappings(text: str, path: str = "<mappings>") -> Mappings:
    """Parse and check a mappings file's text; raises `MappingsError` with every problem."""
    problems = _Problems(path)
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not YAML"
        raise MappingsError([f"{path}: not valid YAML{where}: {problem}"]) from None
    if not isinstance(document, dict):
        raise MappingsError([f"{path}: must be a mapping with a 'fields' list"])
    for key in sorted(set(map(str, document)) - {"fields"}):
        problems.add(None, f"unknown key {key!r} (the file has only 'fields')")
    entries = document.get("fields")
    if not isinstance(entries, list) or not entries:
        problems.add(None, "'fields' must be a non-empty list of fields")
        entries = []
    fields = [_field(entry, index, problems) for index, entry in enumerate(entries, start=1)]
    checked = [f for f in fields if f is not None]
    _check_across(checked, problems)
    if problems.lines:
        raise MappingsError(problems.lines)
    return Mappings(path=path, fields=tuple(checked))


class _Problems:
    def __init__(self, path: str) -> None:
        self.path = path
        self.lines: list[str] = []

    def add(self, name: str | None, message: str) -> None:
        where = f"{self.path}: field {name}: " if name else f"{self.path}: "
        self.lines.append(where + message)


def _field(entry: Any, index: int, problems: _Problems) -> MappedField | None:
    """One entry checked; None when it has a problem (all of its problems are reported)."""
    if not isinstance(entry, dict):
        problems.add(f"#{index}", "must be a mapping with name, type and sources")
        return None
    before = len(problems.lines)
    raw_name = entry.get("name")
    name = str(raw_name) if isinstance(raw_name, str) and raw_name else f"#{index}"
    for key in sorted(set(map(str, entry)) - _FIELD_KEYS):
        problems.add(name, f"unknown key {key!r} (allowed: {', '.join(sorted(_FIELD_KEYS))})")
    _check_name(raw_name, name, problems)
    kind = entry.get("type")
    if kind not in FIELD_TYPES:
        problems.add(name, f"type must be one of {', '.join(FIELD_TYPES)}; got {kind!r}")
    choices = _choices(entry, name, kind, problems)
    write = _write_rule(entry.get("write", "fill"), name, "write", problems)
    sources = _sources(entry.get("sources"), name, kind, choices, write, problems)
    priority = _survivorship(entry.get("survivorship", "recency"), name, problems)
    if len(problems.lines) > before:
        return None
    return MappedField(
        name=name,
        type=cast(FieldType, kind),
        sources=tuple(sources),
        choices=choices,
        priority=priority,
        write=write,
    )


def _check_name(raw: Any, name: str, problems: _Problems) -> None:
    if raw is None:
        problems.add(name, "has no name")
    elif not isinstance(raw, str) or not _NAME.match(raw) or len(raw) > _MAX_NAME:
        problems.add(name, f"name {raw!r} must be lower_snake_case, at most {_MAX_NAME} characters")
    elif raw in RESERVED_NAMES:
        problems.add(name, f"name {raw!r} is a built-in field; choose another name")


def _choices(entry: dict[str, Any], name: str, kind: Any, problems: _Problems) -> tuple[str, ...]:
    raw = entry.get("choices")
    if kind != "choice":
        if raw is not None:
            problems.add(name, f"choices are for type choice only; this field is {kind}")
        return ()
    if not isinstance(raw, list) or not raw:
        problems.add(name, "type choice needs 'choices', a non-empty list of values")
        return ()
    if not all(isinstance(c, str) and c.strip() for c in raw):
        problems.add(name, "every choice must be non-empty text")
        return ()
    duplicated = sorted({c for c in raw if raw.count(c) > 1})
    if duplicated:
        problems.add(name, f"choices repeat {', '.join(duplicated)}")
    return tuple(raw)


def _write_rule(raw: Any, name: str, where: str, problems: _Problems) -> WriteRule:
    if raw not in WRITE_RULES:
        problems.add(name, f"{where} must be one of {', '.join(WRITE_RULES)}; got {raw!r}")
        return "fill"
    return cast(WriteRule, raw)


def _sources(  # noqa: PLR0917 - one field's parts, checked together
    raw: Any,
    name: str,
    kind: Any,
    choices: tuple[str, ...],
    write: WriteRule,
    problems: _Problems,
) -> list[SourceMapping]:
    if not isinstance(raw, dict) or not raw:
        problems.add(name, "needs 'sources': source/object -> payload path")
        return []
    found = []
    for key, spec in raw.items():
        source, _, obj = str(key).partition("/")
        if (source, obj) not in CONTACT_OBJECTS:
            known = ", ".join(f"{s}/{o}" for s, o in CONTACT_OBJECTS)
            problems.add(name, f"unknown source object {key!r} (known: {known})")
            continue
        label = f"{source}/{obj}"
        values: dict[str, str] = {}
        rule = write
        if isinstance(spec, dict):
            for extra in sorted(set(map(str, spec)) - _LONG_KEYS):
                problems.add(name, f"{label}: unknown key {extra!r} (allowed: path, values, write)")
            path = spec.get("path")
            values = _values(spec.get("values"), name, label, kind, choices, problems)
            rule = _write_rule(spec.get("write", write), name, f"{label}: write", problems)
        else:
            path = spec
        if not isinstance(path, str) or not path.strip():
            problems.add(name, f"{label}: needs a payload path (text)")
            continue
        problem = _path_problem(source, obj, path)
        if problem:
            problems.add(name, f"{label}: {problem}")
            continue
        found.append(SourceMapping(source, obj, path, values, rule))
    return found


def _values(  # noqa: PLR0917 - one field's parts, checked together
    raw: Any, name: str, label: str, kind: Any, choices: tuple[str, ...], problems: _Problems
) -> dict[str, str]:
    if raw is None:
        return {}
    if kind != "choice":
        problems.add(name, f"{label}: values (a value map) are for type choice only")
        return {}
    if not isinstance(raw, dict) or not raw:
        problems.add(name, f"{label}: values must map the source's values to choices")
        return {}
    values = {str(theirs): ours for theirs, ours in raw.items()}
    unknown = sorted(str(v) for v in values.values() if v not in choices)
    if unknown:
        problems.add(name, f"{label}: values map to {', '.join(unknown)}, not among the choices")
    return {k: str(v) for k, v in values.items()}


def _path_problem(source: str, obj: str, path: str) -> str | None:  # noqa: PLR0911 - one answer per shape
    """Why a path cannot hold a custom value of this source object, or None."""
    parts = path.split(".")
    if not all(_PATH_PART.match(part) for part in parts):
        return f"path {path!r} must be names joined by dots"
    spec = LAYOUTS[(source, obj)]
    built_in = {*spec.paths, *spec.full_name}
    if path in built_in or parts[0] in built_in:
        return f"path {path!r} is where a built-in field lives; map a field of your own"
    if source == "clickfunnels" and (len(parts) != 2 or parts[0] != "custom_attributes"):
        return f"path {path!r}: ClickFunnels keeps custom values as custom_attributes.<key>"
    if source == "clickfunnels" and not _SNAKE.match(parts[1]):
        # ClickFunnels stores attribute keys in snake_case: another key would be written as one
        # name and read back as another.
        return f"path {path!r}: ClickFunnels custom attribute keys are snake_case"
    if source == "clicksend" and path not in _CLICKSEND_CUSTOM:
        return f"path {path!r}: ClickSend custom fields are {', '.join(_CLICKSEND_CUSTOM)}"
    if source == "linkflow" and (len(parts) != 2 or parts[0] != "props"):
        return f"path {path!r}: Linkflow keeps custom values as props.<alias>"
    if source.startswith("zoho") and len(parts) != 1:
        return f"path {path!r}: a Zoho field is one API name (such as Lead_Source)"
    return None


def _survivorship(raw: Any, name: str, problems: _Problems) -> tuple[str, ...]:
    if raw == "recency":
        return ()
    if not isinstance(raw, list) or not raw or not all(isinstance(s, str) for s in raw):
        problems.add(name, f"survivorship must be 'recency' or a list of sources; got {raw!r}")
        return ()
    unknown = [s for s in raw if s not in SOURCES]
    if unknown:
        problems.add(
            name, f"survivorship names unknown source {', '.join(unknown)} (known: {', '.join(SOURCES)})"
        )
    return tuple(raw)


def _check_across(fields: list[MappedField], problems: _Problems) -> None:
    """Problems between fields: a name used twice, two fields in the same place of a source."""
    seen: set[str] = set()
    places: dict[tuple[str, str, str], str] = {}
    for f in fields:
        if f.name in seen:
            problems.add(f.name, "is declared twice")
        seen.add(f.name)
        for m in f.sources:
            place = (m.source, m.object, m.path)
            if place in places and places[place] != f.name:
                problems.add(f.name, f"{m.label}: path {m.path!r} is already field {places[place]}'s")
            places.setdefault(place, f.name)
