"""`IdentityStore` over the warehouse, so an incremental resolution reads only the neighbourhood it needs.

Each lookup is indexed SQL: identifiers by record through contact_identifiers.raw_record_id, holders and
counts of an identifier through (kind, value), records of a contact through contact_sources.contact_id.
Key lists go as one bound array per query (`models.warehouse.key_lists`: one statement however many
keys, compiled once), and a query names one kind at a time so the (kind, value) index is used whole.

contact_identifiers holds one row per contact point, unusable ones (value NULL) included, and a record may
hold one value under two fields (Email and Secondary_Email); the store answers with usable values only,
each (record, kind, value) once, which is what the last resolution linked on.
"""

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from models.identity.linking import IDENTIFIER_COLUMNS, NAME_COLUMNS
from models.warehouse.bulk import rows_frame
from models.warehouse.key_lists import key_in
from models.warehouse.tables import ContactIdentifier, ContactSource

_ASSIGNMENT_COLUMNS = ("record_key", "contact_id")
_IDENTIFIER_SELECT = (ContactIdentifier.raw_record_id, ContactIdentifier.kind, ContactIdentifier.value)


class SqlIdentityStore:
    """The last resolution's identifiers and assignment, as
    `models.identity.resolution.resolve_incremental` reads them. Reads through `connection`, so inside a
    transaction it sees that transaction's own writes."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def identifiers_of(self, record_keys: npt.NDArray[np.int64]) -> pd.DataFrame:
        return _identifier_frame(
            self._rows(
                sa.select(*_IDENTIFIER_SELECT)
                .where(
                    self._in(ContactIdentifier.raw_record_id, _ints(record_keys)),
                    ContactIdentifier.value.is_not(None),
                )
                .distinct()
            )
        )

    def holders_of(self, identifiers: pd.DataFrame) -> pd.DataFrame:
        rows: list[Sequence[Any]] = []
        for kind, values in values_of_kind(identifiers):
            rows.extend(
                self._rows(
                    sa.select(
                        ContactIdentifier.raw_record_id, ContactIdentifier.kind, ContactIdentifier.value
                    )
                    .where(ContactIdentifier.kind == kind, self._in(ContactIdentifier.value, values))
                    .distinct()
                )
            )
        return _identifier_frame(rows)

    def record_counts(self, identifiers: pd.DataFrame) -> pd.DataFrame:
        rows: list[Sequence[Any]] = []
        for kind, values in values_of_kind(identifiers):
            rows.extend(
                self._rows(
                    sa.select(
                        ContactIdentifier.kind,
                        ContactIdentifier.value,
                        sa.func.count(sa.distinct(ContactIdentifier.raw_record_id)),
                    )
                    .where(ContactIdentifier.kind == kind, self._in(ContactIdentifier.value, values))
                    .group_by(ContactIdentifier.kind, ContactIdentifier.value)
                )
            )
        found = rows_frame(rows, ["kind", "value", "record_count"]).astype(
            {"kind": object, "value": object, "record_count": np.int64}
        )
        wanted = pd.DataFrame(
            {
                "kind": identifiers["kind"].to_numpy(dtype=object),
                "value": identifiers["value"].to_numpy(dtype=object),
            }
        )
        counts = wanted.merge(found, on=["kind", "value"], how="left")
        counts["record_count"] = counts["record_count"].fillna(0).to_numpy(dtype=np.int64)
        return counts

    def contacts_of(self, record_keys: npt.NDArray[np.int64]) -> pd.DataFrame:
        return _assignment_frame(
            self._rows(
                sa.select(ContactSource.raw_record_id, ContactSource.contact_id).where(
                    self._in(ContactSource.raw_record_id, _ints(record_keys)),
                    ContactSource.contact_id.is_not(None),
                )
            )
        )

    def records_of_contacts(self, contact_ids: npt.NDArray[np.object_]) -> pd.DataFrame:
        return _assignment_frame(
            self._rows(
                sa.select(ContactSource.raw_record_id, ContactSource.contact_id).where(
                    self._in(
                        ContactSource.contact_id, sorted({str(contact_id) for contact_id in contact_ids})
                    )
                )
            )
        )

    def names_of(self, record_keys: npt.NDArray[np.int64]) -> pd.DataFrame:
        rows = self._rows(
            sa.select(ContactSource.raw_record_id, ContactSource.first_name).where(
                self._in(ContactSource.raw_record_id, _ints(record_keys))
            )
        )
        frame = rows_frame(rows, NAME_COLUMNS)
        return frame.astype({"record_key": np.int64, "first_name": object})

    def _in(self, column: Any, values: Sequence[Any]) -> sa.ColumnElement[bool]:
        return key_in(self._connection, column, values)

    def _rows(self, query: sa.Executable) -> Sequence[Sequence[Any]]:
        return self._connection.execute(query).all()


def _ints(record_keys: Iterable[Any]) -> list[int]:
    """Distinct plain ints: drivers want Python ints, not numpy scalars."""
    return sorted({int(key) for key in record_keys})


def values_of_kind(identifiers: pd.DataFrame) -> Iterable[tuple[str, list[str]]]:
    """(kind, its distinct values, sorted) from a kind, value frame: a query that names one kind and
    lists its values (`models.warehouse.key_lists.key_in`) probes the (kind, value) index whole."""
    pairs = identifiers.loc[:, ["kind", "value"]].drop_duplicates()
    for kind, group in pairs.groupby("kind", sort=True):
        yield str(kind), sorted(str(value) for value in group["value"])


def _identifier_frame(rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    frame = rows_frame(rows, IDENTIFIER_COLUMNS)
    return frame.astype({"record_key": np.int64, "kind": object, "value": object}).drop_duplicates(
        ignore_index=True
    )


def _assignment_frame(rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    frame = rows_frame(rows, _ASSIGNMENT_COLUMNS)
    return frame.astype({"record_key": np.int64, "contact_id": object})
