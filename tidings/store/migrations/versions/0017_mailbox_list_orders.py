"""message list orders: an index on (mailbox_id, size, uid) so a page of a mailbox sorted by size
is a walk along it, and a partial index on the unseen entries of each mailbox so an unread count
reads only those (see tidings/store/mail_views.py)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_mailbox_messages_size", "mailbox_messages", ["mailbox_id", "size", "uid"])
    op.create_index(
        "ix_mailbox_messages_unseen",
        "mailbox_messages",
        ["mailbox_id"],
        sqlite_where=sa.text("instr(flags, '\\Seen') = 0"),
        postgresql_where=sa.text("strpos(flags, '\\Seen') = 0"),
    )


def downgrade() -> None:
    op.drop_index("ix_mailbox_messages_unseen", table_name="mailbox_messages")
    op.drop_index("ix_mailbox_messages_size", table_name="mailbox_messages")
