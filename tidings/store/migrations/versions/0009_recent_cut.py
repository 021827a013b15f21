"""recent cut: mailboxes.recent_uid, the highest UID already claimed as \\Recent (RFC 3501 2.3.2)

Existing mailboxes start with every message claimed, so nothing turns \\Recent on upgrade.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 00:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("mailboxes", sa.Column("recent_uid", sa.BigInteger(), nullable=False, server_default="0"))
    op.execute("UPDATE mailboxes SET recent_uid = uidnext - 1")


def downgrade() -> None:
    with op.batch_alter_table("mailboxes") as batch:
        batch.drop_column("recent_uid")
