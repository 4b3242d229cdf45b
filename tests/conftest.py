"""Shared fixtures: a migrated warehouse on SQLite and, when configured, on a real PostgreSQL.

PostgreSQL tests each get their own schema (``search_path`` set through the URL), so they can run
against one shared server without seeing each other's rows. Under pytest-xdist each worker also gets
its own database, made from the configured one, so a worker's leftovers never meet another's.
"""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from models.warehouse import db, waits
from models.warehouse.db import dispose_all

POSTGRES_URL_VARIABLE = "CONTACT_SYNC_TEST_POSTGRES_URL"


def postgres_url() -> str | None:
    return os.environ.get(POSTGRES_URL_VARIABLE) or None


_WORKER_DATABASE: dict[str, str] = {}
"""The database this xdist worker made (``name`` and the ``admin`` URL), dropped when it ends."""


def pytest_configure(config: pytest.Config) -> None:
    """On an xdist worker, point the PostgreSQL variable at a database of the worker's own."""
    worker, base = os.environ.get("PYTEST_XDIST_WORKER"), postgres_url()
    if not worker or base is None:
        return
    server = sa.make_url(base)
    name = f"{server.database}_{worker}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    _WORKER_DATABASE.update(name=name, admin=base)
    os.environ[POSTGRES_URL_VARIABLE] = server.set(database=name).render_as_string(hide_password=False)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files holding a slow test (processes, servers, waits) go first, each file kept whole and in
    order: under pytest-xdist (``scripts/test``) their long waits then overlap the many quick tests
    on the other worker, instead of one of them running alone at the end."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)


def pytest_unconfigure(config: pytest.Config) -> None:
    if not _WORKER_DATABASE:
        return
    dispose_all()
    admin = sa.create_engine(_WORKER_DATABASE["admin"], isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{_WORKER_DATABASE["name"]}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Run every test in a clean directory with none of the developer's settings leaking in."""
    for name in list(os.environ):
        if name.startswith(("CONTACT_SYNC_", "MATON_", "LINKFLOW_")) and name != POSTGRES_URL_VARIABLE:
            monkeypatch.delenv(name)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'warehouse.db'}"


@pytest.fixture
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite's busy timeout cut to 0.2 s for warehouses opened after it, so that a write waiting only
    the busy timeout fails within a test where it would fail after 30 s in a run; the stop-aware
    write-lock wait keeps a 10 s deadline."""
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 200)
    monkeypatch.setattr(waits, "SQLITE_BUSY_TIMEOUT_MS", 200)
    monkeypatch.setattr(waits, "WRITE_LOCK_WAIT_S", 10.0)


@pytest.fixture
def postgres_schema_url() -> Iterator[str]:
    """A URL whose connections live in a fresh schema of the test PostgreSQL server, dropped afterwards."""
    base = postgres_url()
    if base is None:
        pytest.skip(
            f"PostgreSQL tests need {POSTGRES_URL_VARIABLE} (e.g. postgresql://postgres@127.0.0.1/test)"
        )
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        dispose_all()
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def warehouse_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty warehouse, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_schema_url"))


@pytest.fixture(autouse=True)
def _dispose_engines() -> Iterator[None]:
    yield
    dispose_all()


@pytest.fixture(autouse=True)
def _no_stop_left_set() -> Iterator[None]:
    """The process's stop flag is cleared after each test, so one that stops a run stops no other."""
    from connectors.stop import STOP

    yield
    STOP.clear()
