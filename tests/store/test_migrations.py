"""The Alembic migrations build exactly the schema the code declares."""

from __future__ import annotations

import sqlite3

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Integer, create_engine

from tests.support.running import fresh_database_url
from tidings.store.database import normalise_url
from tidings.store.migrate import alembic_config, migrate
from tidings.store.schema import is_backend_specific, metadata


def test_migrations_match_the_declared_schema(tmp_path):
    url = fresh_database_url() or f"sqlite:///{tmp_path / 'm.db'}"
    migrate(url)
    migrate(url)  # running again is a no-op
    engine = create_engine(normalise_url(url))
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": _declared})
        diff = compare_metadata(context, metadata)
    engine.dispose()
    assert diff == []


def _declared(name, kind, _parents) -> bool:
    return not (kind == "table" and is_backend_specific(name))


def _integer_id_tables() -> list[str]:
    return [
        table.name
        for table in metadata.sorted_tables
        if [c.name for c in table.primary_key.columns] == ["id"] and isinstance(table.c.id.type, Integer)
    ]


def test_every_table_with_an_integer_id_never_reuses_ids():
    tables = _integer_id_tables()
    assert "messages" in tables and "accounts" in tables
    assert [t for t in tables if not metadata.tables[t].kwargs.get("sqlite_autoincrement")] == []


def test_upgrade_to_autoincrement_keeps_rows_and_ids_and_then_never_reuses_one(tmp_path):
    """Migration 0003 rebuilds the SQLite tables: an existing database keeps every row under its id,
    and an id deleted after the upgrade is not handed out again."""
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    command.upgrade(alembic_config(url), "0002")
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO domains (id, name, created_at) VALUES (1, 'example.test', 0)")
        db.execute(
            "INSERT INTO accounts (id, domain_id, address, password_hash, used_bytes, created_at, disabled,"
            " last_uidvalidity) VALUES (5, 1, 'bob@example.test', 'x', 0, 0, 0, 0)"
        )
        db.execute(
            "INSERT INTO mailboxes (id, account_id, name, uidvalidity, uidnext, highestmodseq, subscribed,"
            " object_id, created_at) VALUES (7, 5, 'INBOX', 1, 2, 2, 1, 'M1', 0)"
        )
        db.execute("INSERT INTO messages (id, blob_hash, size, created_at) VALUES (9, 'h9', 1, 0)")
        db.execute(
            "INSERT INTO mailbox_messages (id, mailbox_id, uid, message_id, size, flags, modseq,"
            " internal_date, save_date) VALUES (3, 7, 1, 9, 1, '\\Seen', 2, 0, 0)"
        )
    db.close()
    migrate(url)
    db = sqlite3.connect(path)
    try:
        definitions = dict(db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
        assert [t for t in _integer_id_tables() if "AUTOINCREMENT" not in definitions[t]] == []
        assert db.execute("SELECT id, mailbox_id, message_id, flags FROM mailbox_messages").fetchall() == [
            (3, 7, 9, "\\Seen")
        ]
        assert db.execute("SELECT id, account_id FROM mailboxes").fetchall() == [(7, 5)]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        db.execute("DELETE FROM mailbox_messages")
        db.execute("DELETE FROM messages WHERE id = 9")
        db.execute("INSERT INTO messages (blob_hash, size, created_at) VALUES ('other', 1, 0)")
        assert db.execute("SELECT id FROM messages").fetchall() == [(10,)]
    finally:
        db.close()
