"""unindexed messages: a partial index on messages without a summary (the indexer's work list)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 07:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_messages_unindexed",
        "messages",
        ["id"],
        sqlite_where=sa.text("summary IS NULL"),
        postgresql_where=sa.text("summary IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_unindexed", table_name="messages")
