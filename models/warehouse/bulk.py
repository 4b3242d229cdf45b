"""Bulk writes of whole tables: ``COPY`` on PostgreSQL, large ``executemany`` batches on SQLite;
and bulk updates by key: one ``UPDATE ... FROM unnest(...)`` on PostgreSQL, ``executemany`` on SQLite.

A full rebuild of the golden contacts writes a row per source record, per identifier and per golden field.
Through SQLAlchemy's ``insert`` each row would first become a dict, and a million records make a few
million of them at once. Here rows go from the columns of a frame straight to the driver, a slice at a
time, after the same bind processing SQLAlchemy would apply (UTC datetimes, JSON), so memory holds one
slice of tuples and the statements are the cheapest each database offers.
"""

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import datetime
from typing import Any, cast

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from models.warehouse.json_text import dumps as json_dumps

#: Rows per executemany call or COPY slice: large enough that per-call overhead vanishes, small enough
#: that one slice of tuples stays a few megabytes.
BULK_ROWS = 50_000


def _processors(
    connection: Connection, columns: Sequence[sa.Column[Any]]
) -> list[Callable[[Any], Any] | None]:
    """The bind processor of each column for this connection's dialect (None where values pass as is)."""
    dialect = connection.dialect
    return [column.type.dialect_impl(dialect).bind_processor(dialect) for column in columns]


def _rows(
    frame: pd.DataFrame, processors: list[Callable[[Any], Any] | None], start: int, stop: int
) -> Iterator[tuple[Any, ...]]:
    """Rows ``start:stop`` of ``frame`` as tuples, missing values as None, bind processors applied."""
    columns: list[list[Any]] = []
    for name, processor in zip(frame.columns, processors, strict=True):
        column = frame[name].iloc[start:stop].astype(object)
        values: list[Any] = column.where(column.notna(), None).tolist()
        if processor is not None:
            values = [None if value is None else processor(value) for value in values]
        columns.append(values)
    return zip(*columns, strict=True)


def bulk_insert(connection: Connection, model: Any, frame: pd.DataFrame) -> None:
    """Insert every row of ``frame`` (columns named as the mapped class ``model``'s table's) inside
    ``connection``'s transaction."""
    if frame.empty:
        return
    table = cast(sa.Table, model.__table__)
    columns = [table.c[name] for name in frame.columns]
    processors = _processors(connection, columns)
    preparer = connection.dialect.identifier_preparer
    names = ", ".join(preparer.quote(column.name) for column in columns)
    target = preparer.format_table(table)
    driver = connection.connection.driver_connection
    postgres = connection.dialect.name == "postgresql"
    # Names from the table's own metadata, quoted by the dialect; values go as parameters.
    insert = f"INSERT INTO {target} ({names}) VALUES ({', '.join('?' for _ in columns)})"  # noqa: S608
    for start in range(0, len(frame), BULK_ROWS):
        rows = _rows(frame, processors, start, start + BULK_ROWS)
        if postgres:
            with driver.cursor() as cursor, cursor.copy(f"COPY {target} ({names}) FROM STDIN") as copy:  # type: ignore[union-attr]
                for row in rows:
                    copy.write_row(row)
        else:
            cursor = driver.cursor()  # type: ignore[union-attr]
            try:
                cursor.executemany(insert, list(rows))
            finally:
                cursor.close()


def next_ids(connection: Connection, model: Any, count: int) -> list[int]:
    """PostgreSQL: ``count`` new values of the sequence behind ``model``'s ``id`` column, ascending, in
    one query, for rows that then go by ``COPY`` with their ids (`bulk_insert`) where the caller
    needs each row's id."""
    table = cast(sa.Table, model.__table__)
    values = connection.execute(
        sa.text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :count)"),
        {"table": table.name, "count": count},
    ).scalars()
    return sorted(int(value) for value in values)


def rows_frame(rows: Iterable[Any], columns: Sequence[str], dtype: Any = None) -> pd.DataFrame:
    """``pd.DataFrame(rows, columns=columns)`` for SQLAlchemy rows, made tuples first. pandas 3 takes a
    row that is neither tuple nor list nor mapping through a last-resort path that probes each one for
    a ``dtype`` attribute, and a SQLAlchemy ``Row`` answers that probe by raising and catching
    inside: about 17 µs a row, 1.7 s per 100,000, against 0.1 s for the same rows as tuples."""
    return pd.DataFrame([tuple(row) for row in rows], columns=list(columns), dtype=dtype)


def read_frame(connection: Connection, query: sa.Executable, columns: Sequence[str]) -> pd.DataFrame:
    """The rows of ``query`` as a frame of object columns named ``columns``, built column by column:
    pandas probes each SQLAlchemy row for namedtuple fields before reading it, which costs more than
    the read itself at a hundred thousand rows."""
    rows = connection.execute(query).all()
    data = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
    del rows
    return pd.DataFrame(
        {name: pd.Series(values, dtype=object) for name, values in zip(columns, data, strict=True)}
    )


def bulk_update(
    connection: Connection,
    model: Any,
    key: Sequence[str],
    values: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    only_where_different: bool = False,
    kept_when_none: Collection[str] = (),
) -> None:
    """Set ``values`` on the rows of ``model``'s table whose ``key`` columns match, one row of
    ``rows`` (key values, then the values to set) per stored row; keys must be unique among ``rows``.
    ``only_where_different``: leave alone a row that holds those values already (one value column).
    ``kept_when_none``: value columns that keep what they hold where the new value is None.

    SQLite runs one ``executemany``: each row is a statement, but in the same process, at a few
    microseconds each. On PostgreSQL each statement is parsed, planned and run on its own (psycopg
    pipelines them): 20,000 activity link keys with nothing to change took 0.42 to 0.52 s that way
    against 0.21 to 0.28 s as one array per column, unnested and joined to the table in one
    statement, which is how the rows go there, 50,000 at a time.
    """
    if not rows or not values:
        return
    table = cast(sa.Table, model.__table__)
    if connection.dialect.name == "postgresql":
        _update_postgres(connection, table, key, values, rows, only_where_different, kept_when_none)
        return
    condition = [table.c[name] == sa.bindparam(f"k_{name}") for name in key]
    if only_where_different:
        condition.append(table.c[values[0]].is_distinct_from(sa.bindparam(f"v_{values[0]}")))
    new_values: dict[str, sa.ColumnElement[Any]] = {
        name: sa.bindparam(f"v_{name}", type_=table.c[name].type) for name in values
    }
    for name in kept_when_none:
        new_values[name] = sa.func.coalesce(new_values[name], table.c[name])
    statement = sa.update(table).where(*condition).values(new_values)
    names = [f"k_{name}" for name in key] + [f"v_{name}" for name in values]
    for start in range(0, len(rows), BULK_ROWS):
        connection.execute(
            statement, [dict(zip(names, row, strict=True)) for row in rows[start : start + BULK_ROWS]]
        )


def _update_postgres(  # noqa: PLR0917 - bulk_update's arguments, passed on
    connection: Connection,
    table: sa.Table,
    key: Sequence[str],
    values: Sequence[str],
    rows: Sequence[Sequence[Any]],
    only_where_different: bool,
    kept_when_none: Collection[str],
) -> None:
    """`bulk_update` on PostgreSQL: every column bound as one array of text, cast to its type there,
    so the driver never has to guess an array's element type (a column of only None has none).

    The arrays go in binary form (``%(name)b``): in text form psycopg quotes each element and escapes
    its quotes and backslashes with a regular expression in Python, which for JSON documents (the
    extract's changed payloads, a few dozen quotes each) cost about 0.19 ms a document: 945 ms for
    5,000 payloads sent and cast to JSONB, against 73 ms in binary form, where each element is its
    UTF-8 bytes."""
    dialect = connection.dialect
    preparer = dialect.identifier_preparer
    names = [*key, *values]
    columns = [table.c[name] for name in names]
    texts = [_as_text(column, connection) for column in columns]
    target = preparer.format_table(table)
    quoted = [preparer.quote(name) for name in names]
    arrays = ", ".join(
        f"CAST(%(c{i})b AS TEXT[])::{column.type.compile(dialect=dialect)}[]"
        for i, column in enumerate(columns)
    )
    where = [f"{target}.{preparer.quote(name)} = v.{preparer.quote(name)}" for name in key]
    if only_where_different:
        column = preparer.quote(values[0])
        where.append(f"{target}.{column} IS DISTINCT FROM v.{column}")
    sets = ", ".join(
        f"{preparer.quote(name)} = COALESCE(v.{preparer.quote(name)}, {target}.{preparer.quote(name)})"
        if name in kept_when_none
        else f"{preparer.quote(name)} = v.{preparer.quote(name)}"
        for name in values
    )
    # Names from the table's own metadata, quoted by the dialect; values go as parameters.
    statement = (
        f"UPDATE {target} SET {sets} FROM unnest({arrays}) AS v({', '.join(quoted)}) "  # noqa: S608
        f"WHERE {' AND '.join(where)}"
    )
    with _joined_by_index(connection) if len(rows) > UNGUARDED_ROWS else nullcontext():
        for start in range(0, len(rows), BULK_ROWS):
            part = rows[start : start + BULK_ROWS]
            params = {f"c{i}": [text(row[i]) for row in part] for i, text in enumerate(texts)}
            connection.exec_driver_sql(statement, params)


#: The planner settings `_joined_by_index` turns off around a bulk update.
_NOT_BY_INDEX = ("enable_seqscan", "enable_hashjoin", "enable_mergejoin")

#: Up to this many rows a bulk update leaves the planner alone. PostgreSQL estimates ``unnest``'s
#: rows from the array, and on a 900,000-row ledger without statistics it joined 10 to 500 rows
#: through the key's index by itself (hashing the table from 2,000 on); reading and putting back
#: the settings costs three round trips, which in a sync's threads cost more than the update of a
#: reverse-sync window (about 80 rows: 9.1 s of settings against 6.9 s of updates at 100k records).
UNGUARDED_ROWS = 100


@contextmanager
def _joined_by_index(connection: Connection) -> Iterator[None]:
    """The rows given looked up one by one through the table's key, not the table read whole.

    PostgreSQL hashed the whole table to join 8,000 rows to it (a table no ``ANALYZE`` had seen, as
    after a first sync with autovacuum off): 0.30 s for 607,700 lineage rows at 100,000 people, a
    cost that grows with the warehouse, where the key's index took 0.14 s. With the other joins
    priced out it takes a nested loop over the index. The settings go back as they were after the
    statement (the caller may have set its own for the transaction: `models.warehouse.db.by_key_only`)."""
    names = ", ".join(f"current_setting('{name}')" for name in _NOT_BY_INDEX)
    before = connection.exec_driver_sql(f"SELECT {names}").one()
    _set(connection, dict.fromkeys(_NOT_BY_INDEX, "off"))
    try:
        yield
    finally:
        _set(connection, dict(zip(_NOT_BY_INDEX, before, strict=True)))


def _set(connection: Connection, settings: dict[str, str]) -> None:
    """Planner settings for the rest of the transaction (``set_config`` with ``is_local``)."""
    calls = ", ".join(f"set_config('{name}', %({name})s, true)" for name in settings)
    connection.exec_driver_sql(f"SELECT {calls}", settings)


def _as_text(column: sa.Column[Any], connection: Connection) -> Callable[[Any], str | None]:
    """How one value of ``column`` is written as text for PostgreSQL to cast back: after the column's
    own bind processing (UTC times, refusing naive ones), times in ISO form with their offset, JSON
    documents serialised, anything else as ``str`` gives it (``True`` is a boolean to PostgreSQL)."""
    processor = column.type.dialect_impl(connection.dialect).bind_processor(connection.dialect)
    document = isinstance(column.type, sa.JSON) or isinstance(getattr(column.type, "impl", None), sa.JSON)

    def text(value: Any) -> str | None:
        if value is None:
            return None
        if document:
            return json_dumps(value)
        if processor is not None:
            value = processor(value)
        return value.isoformat() if isinstance(value, datetime) else str(value)

    return text
