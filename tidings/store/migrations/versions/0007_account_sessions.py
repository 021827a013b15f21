"""account sessions: a generation per account that ends its open sessions, and account events

`accounts.session_generation` goes up when an account is disabled: a session that logged in under
an older value must end. `account_events` tells running servers (other processes, other nodes)
that an account was removed or disabled, so they end its sessions without waiting for a login.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 00:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN: SQLite does it in place, so the table keeps its AUTOINCREMENT (0003).
    op.add_column(
        "accounts", sa.Column("session_generation", sa.BigInteger(), nullable=False, server_default="0")
    )
    op.create_table(
        "account_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_events")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_account_events_created", "account_events", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_account_events_created", table_name="account_events")
    op.drop_table("account_events")
    op.drop_column("accounts", "session_generation")
