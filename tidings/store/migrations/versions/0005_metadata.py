"""metadata: IMAP METADATA entries (RFC 5464)

Two new tables (see store/metadata.py): account_metadata for server entries, per account, and
mailbox_metadata for mailbox entries, removed with their mailbox.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 11:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_metadata",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_account_metadata_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "name", name=op.f("pk_account_metadata")),
    )
    op.create_table(
        "mailbox_metadata",
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name=op.f("fk_mailbox_metadata_mailbox_id_mailboxes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("mailbox_id", "name", name=op.f("pk_mailbox_metadata")),
    )


def downgrade() -> None:
    op.drop_table("mailbox_metadata")
    op.drop_table("account_metadata")
