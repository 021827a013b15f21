"""The Alembic migrations build exactly the schema the code declares."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from tests.support.running import fresh_database_url
from tidings.store.database import normalise_url
from tidings.store.migrate import migrate
from tidings.store.schema import metadata


def test_migrations_match_the_declared_schema(tmp_path):
    url = fresh_database_url() or f"sqlite:///{tmp_path / 'm.db'}"
    migrate(url)
    migrate(url)  # running again is a no-op
    engine = create_engine(normalise_url(url))
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == []
