"""deleted messages: a partial index on the mailbox entries flagged \\Deleted (EXPUNGE's work list)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 09:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

# The same text as tidings.store.schema.FLAGGED_DELETED: SQLite uses a partial index only for a query
# that repeats its condition word for word.
FLAGGED_DELETED = "flags LIKE '%\\Deleted%' ESCAPE '/'"


def upgrade() -> None:
    op.create_index(
        "ix_mailbox_messages_deleted",
        "mailbox_messages",
        ["mailbox_id", "uid"],
        sqlite_where=sa.text(FLAGGED_DELETED),
        postgresql_where=sa.text(FLAGGED_DELETED),
    )


def downgrade() -> None:
    op.drop_index("ix_mailbox_messages_deleted", table_name="mailbox_messages")
