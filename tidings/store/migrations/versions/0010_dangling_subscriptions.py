"""dangling subscriptions: subscribed names whose mailbox was deleted (RFC 3501 6.3.6, RFC 5258)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 01:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dangling_subscriptions",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=1024), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_dangling_subscriptions_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "name", name=op.f("pk_dangling_subscriptions")),
    )


def downgrade() -> None:
    op.drop_table("dangling_subscriptions")
