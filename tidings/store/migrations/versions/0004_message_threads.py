"""message threads: RFC 8474 THREADID per account

Two new tables (see store/threads.py): message_threads holds the thread of each message an
account holds, thread_links the (Message-ID, base subject) digests that lead later messages into
a thread. Existing messages are threaded by the indexer after the upgrade, and on demand.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 11:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "message_threads",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("thread_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_message_threads_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_message_threads_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "message_id", name=op.f("pk_message_threads")),
    )
    op.create_index("ix_message_threads_thread", "message_threads", ["account_id", "thread_id"])
    op.create_table(
        "thread_links",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("link", sa.String(length=32), nullable=False),
        sa.Column("thread_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_thread_links_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "link", name=op.f("pk_thread_links")),
    )


def downgrade() -> None:
    op.drop_table("thread_links")
    op.drop_index("ix_message_threads_thread", table_name="message_threads")
    op.drop_table("message_threads")
