"""``column IN (keys)`` as one statement with one bound value, however many keys.

An incremental resolution asks for the rows of a few thousand records, contacts or identifiers at a
time. As literal ``IN`` lists those went in chunks of 900 (`models.warehouse.store.chunks`), and
SQLAlchemy renders every chunk's list into the statement's text before it runs: one compile and one
bound parameter per key. At 9,000 records in scope that rendering cost more than the queries, about
0.6 s of a 4.5 s step, and it grows with the keys.

Here the keys travel as one value, so the statement's text never changes and SQLAlchemy compiles it
once per process: SQLite unpacks a JSON array with ``json_each`` (``IN (SELECT value FROM
json_each(?))``, which it plans as an index probe per key, like a literal list), PostgreSQL takes an
array (``= ANY(%(keys)s::BIGINT[])``, or ``TEXT[]``). There is no bound-parameter limit to stay
under, so no chunks either. Other dialects get a plain ``IN`` list.
"""

import json
from collections.abc import Iterable
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection


def _plain(values: Iterable[Any], integers: bool) -> list[Any]:
    """Plain Python ints or strs, as the drivers and ``json.dumps`` take them (not numpy scalars)."""
    return [int(value) for value in values] if integers else [str(value) for value in values]


def key_in(connection: Connection, column: Any, values: Iterable[Any]) -> sa.ColumnElement[bool]:
    """``column IN values`` for ``connection``'s dialect, the values bound as one array."""
    integers = isinstance(column.type, sa.Integer)
    keys = _plain(values, integers)
    dialect = connection.dialect.name
    if dialect == "sqlite":
        table = sa.func.json_each(sa.bindparam(None, json.dumps(keys), type_=sa.Text, unique=True))
        condition = column.in_(sa.select(table.table_valued("value").c.value))
    elif dialect == "postgresql":
        array_type = postgresql.ARRAY(sa.BigInteger if integers else sa.Text)
        # The psycopg dialect renders an ARRAY parameter with its cast (``%(param)s::BIGINT[]``).
        condition = column == sa.any_(sa.bindparam(None, keys, type_=array_type, unique=True))
    else:
        condition = column.in_(keys)
    return cast(sa.ColumnElement[bool], condition)
