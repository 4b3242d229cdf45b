"""The user's mappings file: golden fields beyond the built-in ones, where each is read and written.

`schema` parses and checks the file as a whole (one readable line per problem, nothing read or
written when there is any); `values` converts a source value to its golden form and back;
`metadata` checks the file's paths against what each account says it holds. Pure: no HTTP, no
database; the pipeline hands in the payloads and the accounts' field metadata.
"""

from models.mappings.schema import (
    FIELD_TYPES,
    WRITE_RULES,
    MappedField,
    Mappings,
    MappingsError,
    SourceMapping,
    load_mappings,
    parse_mappings,
)

__all__ = [
    "FIELD_TYPES",
    "WRITE_RULES",
    "MappedField",
    "Mappings",
    "MappingsError",
    "SourceMapping",
    "load_mappings",
    "parse_mappings",
]
