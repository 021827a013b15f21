"""login attempts shared by all nodes; SCRAM-SHA-256 keys per account

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 00:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_attempts",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=320), nullable=False),
        sa.Column("window_start", sa.Float(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("pending", sa.Integer(), nullable=False),
        sa.Column("pending_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "key", name=op.f("pk_login_attempts")),
    )
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("scram_sha256_salt", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("scram_sha256_iterations", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("scram_sha256_stored_key", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("scram_sha256_server_key", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("scram_sha256_server_key")
        batch.drop_column("scram_sha256_stored_key")
        batch.drop_column("scram_sha256_iterations")
        batch.drop_column("scram_sha256_salt")
    op.drop_table("login_attempts")
