"""mailbox entries by date: an index on (mailbox_id, internal_date, id), so a search's first page
(newest or oldest first) is a short walk per mailbox instead of a sort of all its entries (see
tidings/store/search.py)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 09:40:00
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_mailbox_messages_date", "mailbox_messages", ["mailbox_id", "internal_date", "id"])


def downgrade() -> None:
    op.drop_index("ix_mailbox_messages_date", table_name="mailbox_messages")
