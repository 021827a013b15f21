"""SQLite's WAL is started over once it is big, even under writes that never pause
(tidings/store/database.py `Checkpointer`)."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.sqlite_only


def wal_frames(store) -> int:
    conn = store.db.read_engine.raw_connection()
    try:
        return conn.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
    finally:
        conn.close()


def quiet_checkpointer(store):
    """The store's checkpointer, its background thread stopped (it would race the test's calls)."""
    checkpointer = store.db._checkpointer
    checkpointer.stop()
    checkpointer.RESTART_BYTES = 100_000
    return checkpointer


def fill_wal(store, run, count: int = 20) -> None:
    for _ in range(count):
        run(store.blobs.put(b"Subject: x\r\n\r\n" + os.urandom(50_000)))


def test_a_big_wal_is_started_over_by_the_checkpoint_itself(store, run):
    if store.db.is_postgres:
        pytest.skip("SQLite only")
    checkpointer = quiet_checkpointer(store)
    fill_wal(store, run)
    assert wal_frames(store) > 100  # a passive checkpoint copies frames but leaves the WAL as it is
    checkpointer.checkpoint()
    assert checkpointer.restarts == 1
    fill_wal(store, run, 2)  # the next write starts at the beginning of the file
    assert 0 < wal_frames(store) < 100


def test_a_reader_on_the_wal_makes_it_give_up_until_the_next_interval(store, run):
    if store.db.is_postgres:
        pytest.skip("SQLite only")
    checkpointer = quiet_checkpointer(store)
    fill_wal(store, run)
    reader = store.db.read_engine.raw_connection()
    try:
        cursor = reader.cursor()
        cursor.execute("BEGIN")
        cursor.execute("SELECT count(*) FROM blob_data").fetchone()  # a snapshot that uses the WAL
        fill_wal(store, run, 2)
        restarts = checkpointer.restarts
        checkpointer.checkpoint()
        assert checkpointer.restarts == restarts
        assert cursor.execute("SELECT count(*) FROM blob_data").fetchone()[0] == 20  # still its snapshot
        cursor.execute("COMMIT")
    finally:
        reader.close()
    fill_wal(store, run, 2)
    assert wal_frames(store) > 100  # the WAL went on growing
    checkpointer.checkpoint()
    assert checkpointer.restarts == restarts + 1
    fill_wal(store, run, 2)
    assert 0 < wal_frames(store) < 100
