"""SQLite lock files live in one folder beside the warehouse, and still exclude an older version's."""

import fcntl
import os
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from models.warehouse.db import open_warehouse
from models.warehouse.locks import SourceBusyError, source_lock


def test_lock_files_go_into_one_folder_beside_the_database(tmp_path: Path) -> None:
    engine = open_warehouse(f"sqlite:///{tmp_path / 'warehouse.db'}")
    with source_lock(engine, "extract-zoho_crm-lead"), source_lock(engine, "sync"):
        pass
    beside = sorted(path.name for path in tmp_path.iterdir())
    assert "warehouse.db.locks" in beside
    assert [name for name in beside if name.endswith(".lock")] == []
    held = sorted(path.name for path in (tmp_path / "warehouse.db.locks").iterdir())
    assert held == ["extract-zoho_crm-lead.lock", "migrate.lock", "sync.lock"]


def test_an_older_versions_lock_file_still_excludes_both_ways(tmp_path: Path) -> None:
    """Versions before the folder locked ``<db>.<name>.lock``: a sync of the old version running on the
    same warehouse must refuse the new one's, and the new one's must refuse it."""
    engine = open_warehouse(f"sqlite:///{tmp_path / 'warehouse.db'}")
    legacy = tmp_path / "warehouse.db.extract-zoho_crm-lead.lock"
    old = os.open(legacy, os.O_RDWR | os.O_CREAT, 0o644)  # what the old version opens and flocks
    try:
        fcntl.flock(old, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with (
            pytest.raises(SourceBusyError, match="another sync is running it"),
            source_lock(engine, "extract-zoho_crm-lead", "zoho_crm/lead"),
        ):
            pass
        fcntl.flock(old, fcntl.LOCK_UN)
        with source_lock(engine, "extract-zoho_crm-lead"), pytest.raises(BlockingIOError):
            fcntl.flock(old, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(old)
    assert not (tmp_path / "warehouse.db.sync.lock").exists()  # never created where none was


@pytest.mark.postgres
def test_two_warehouses_in_schemas_of_one_database_lock_apart(postgres_schema_url: str) -> None:
    """A PostgreSQL warehouse is a schema; advisory locks are per database. A sync of one warehouse
    must not refuse a sync of another in the same database, and still refuse a second of its own."""
    first = postgres_schema_url
    other_schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(sa.make_url(first).update_query_dict({"options": ""}, append=False))
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{other_schema}"'))
    second = sa.make_url(first).update_query_dict({"options": f"-csearch_path={other_schema}"})
    try:
        one, two = open_warehouse(first), open_warehouse(second.render_as_string(hide_password=False))
        with source_lock(one, "sync"), source_lock(two, "sync"):
            with pytest.raises(SourceBusyError), source_lock(one, "sync"):
                pass
            with pytest.raises(SourceBusyError), source_lock(two, "sync"):
                pass
        two.dispose()
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{other_schema}" CASCADE'))
        admin.dispose()
