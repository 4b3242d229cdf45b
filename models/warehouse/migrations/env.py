"""Alembic environment: runs against the engine handed over by ``models.warehouse.db`` (never a URL in an ini
file)."""

from alembic import context
from sqlalchemy.engine import Engine

from models.warehouse.tables import Base

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
        context.run_migrations()


run_migrations()
