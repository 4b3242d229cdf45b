"""Alembic environment: runs against the engine handed over by ``models.warehouse.db`` (never a URL in an ini
file)."""

from alembic import context
from sqlalchemy.engine import Connection, Engine

from models.warehouse.tables import Base
from models.warehouse.waits import never_stopped, wait_for_write_lock

config = context.config


def run_migrations() -> None:
    """Apply migrations inside one transaction on the engine that ``models.warehouse.db.migrate`` passed
    in."""
    engine = config.attributes.get("engine")
    if not isinstance(engine, Engine):
        raise RuntimeError(
            "models.warehouse.db.migrate passes the engine; running alembic on its own is not supported"
        )
    with engine.begin() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        _wait_for_other_writers(connection)
        context.run_migrations()


def _wait_for_other_writers(connection: Connection) -> None:
    """SQLite, a warehouse with migrations to apply: take its write lock first, waiting for another
    process's long transaction (a sync still running the code before an upgrade) as the steps do, up
    to `WRITE_LOCK_WAIT_S`, where the migration's first statement would give up after the 30 s busy
    timeout. A current warehouse is left alone, so opening it never waits on a writer; a new one has
    no table to take the lock with, and nobody else writing to it."""
    if connection.dialect.name != "sqlite":
        return
    current = context.get_context().get_current_revision()
    if current is None or current == context.get_head_revision():
        return
    wait_for_write_lock(connection, never_stopped)


run_migrations()
