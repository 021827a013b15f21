"""admin console and settings: admin accounts, the delivery log and queue samples, identities,
Sieve scripts

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 09:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN: SQLite does it in place, so the table keeps its AUTOINCREMENT (0003).
    op.add_column("accounts", sa.Column("is_admin", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "delivery_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("sender", sa.String(320), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger()),
        sa.Column("queue_id", sa.Integer()),
        sa.Column("detail", sa.Text()),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_log")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_delivery_log_at", "delivery_log", ["at"])
    op.create_table(
        "queue_samples",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_samples")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_queue_samples_at", "queue_samples", ["at"])
    op.create_table(
        "identities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_identities_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identities")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_identities_account", "identities", ["account_id"])
    op.create_table(
        "sieve_scripts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_sieve_scripts_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sieve_scripts")),
        sa.UniqueConstraint("account_id", "name", name="uq_sieve_scripts_account_name"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("sieve_scripts")
    op.drop_index("ix_identities_account", table_name="identities")
    op.drop_table("identities")
    op.drop_index("ix_queue_samples_at", table_name="queue_samples")
    op.drop_table("queue_samples")
    op.drop_index("ix_delivery_log_at", table_name="delivery_log")
    op.drop_table("delivery_log")
    op.drop_column("accounts", "is_admin")
