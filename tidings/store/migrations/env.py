"""Alembic environment: migrations run against the URL the store passes in."""

from alembic import context
from sqlalchemy import create_engine, pool

from tidings.store.schema import is_backend_specific, metadata

config = context.config


def _declared(name, kind, _parents) -> bool:
    """Autogenerate leaves the full-text tables alone: they are made by hand per database."""
    return not (kind == "table" and is_backend_specific(name))


def run_migrations_online() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=metadata, render_as_batch=True, include_name=_declared
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata, literal_binds=True
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
