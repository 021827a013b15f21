"""urlauth keys: the access key of each mailbox that signs its URLAUTH URLs (RFC 4467)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 12:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "urlauth_keys",
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("access_key", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name=op.f("fk_urlauth_keys_mailbox_id_mailboxes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("mailbox_id", name=op.f("pk_urlauth_keys")),
    )


def downgrade() -> None:
    op.drop_table("urlauth_keys")
