"""full-text index: messages.has_attachment (NULL: not read by the search indexer yet, its work
list) and the word index `message_text`, an FTS5 table on SQLite, a tsvector with a GIN index on
PostgreSQL (see tidings/store/search.py). Existing messages are indexed by the background indexer.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 09:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("has_attachment", sa.Boolean(), nullable=True))
    op.create_index(
        "ix_messages_unsearchable",
        "messages",
        ["id"],
        sqlite_where=sa.text("has_attachment IS NULL"),
        postgresql_where=sa.text("has_attachment IS NULL"),
    )
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE message_text USING fts5("
            "subject, sender, recipients, body, tokenize = 'unicode61 remove_diacritics 0')"
        )
    else:
        op.execute(
            "CREATE TABLE message_text ("
            " message_id INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,"
            " document TSVECTOR NOT NULL)"
        )
        op.execute("CREATE INDEX ix_message_text_document ON message_text USING GIN (document)")


def downgrade() -> None:
    op.execute("DROP TABLE message_text")
    op.drop_index("ix_messages_unsearchable", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("has_attachment")
