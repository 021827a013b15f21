from __future__ import annotations

import asyncio

import pytest

from tests.support.running import fresh_database_url
from tidings.config import Config
from tidings.store import Store


@pytest.fixture
def store(tmp_path):
    """A store opened directly (no listeners), on SQLite or the test PostgreSQL."""
    config = Config(data_dir=tmp_path / "data", database=fresh_database_url(), listen={"smtp": []})
    opened = Store.open(config)
    yield opened
    opened.close()


@pytest.fixture
def run():
    loop = asyncio.new_event_loop()
    yield loop.run_until_complete
    loop.close()
