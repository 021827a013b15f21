"""ids never reused: AUTOINCREMENT on SQLite

SQLite gives the highest row id out again once its row is deleted, unless the table says
AUTOINCREMENT. A summary cached under a message id, or a session holding an account's or a
mailbox's id, would then find another account's row under the old id. Each table with an integer
id is rebuilt (Alembic batch mode: copy into a new table, drop, rename) with AUTOINCREMENT; rows
keep their ids. PostgreSQL identities come from sequences, which never go back: nothing to do.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 11:10:00
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = (
    "domains",
    "accounts",
    "aliases",
    "mailboxes",
    "messages",
    "mailbox_messages",
    "queue",
    "queue_recipients",
)


def _rebuild(autoincrement: bool) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    # Dropping a parent table with foreign keys enforced would cascade into its children: the
    # rebuild must run with enforcement off (SQLite's default for a connection that did not ask).
    if bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError("migration 0003 must run with PRAGMA foreign_keys=OFF")
    for table in TABLES:
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
        ):
            pass
    problems = bind.exec_driver_sql("PRAGMA foreign_key_check").all()
    if problems:
        raise RuntimeError(f"foreign keys broken by the rebuild: {problems[:5]}")


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
