"""pim: collections of vCard/iCalendar objects, their change log and shares

Four new tables (see store/pim.py and the comments in store/schema.py): pim_collections (address
books and calendars per account, with the sync counter), pim_objects (one vCard or iCalendar
resource each, with its ETag and the columns queries need), pim_changes (RFC 6578 sync-collection)
and pim_shares. The web client and CalDAV/CardDAV both serve these rows.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pim_collections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=False),
        sa.Column("colour", sa.String(length=32), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("components", sa.String(length=64), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=True),
        sa.Column("properties", sa.Text(), nullable=True),
        sa.Column("sync_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_pim_collections_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pim_collections")),
        sa.UniqueConstraint("account_id", "kind", "name", name="uq_pim_collections_account_kind_name"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "pim_objects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("href", sa.String(length=255), nullable=False),
        sa.Column("uid", sa.String(length=255), nullable=False),
        sa.Column("etag", sa.String(length=64), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("component", sa.String(length=16), nullable=False),
        sa.Column("card_kind", sa.String(length=16), nullable=True),
        sa.Column("modseq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("emails", sa.Text(), nullable=False),
        sa.Column("categories", sa.Text(), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("first_start", sa.Float(), nullable=True),
        sa.Column("last_end", sa.Float(), nullable=True),
        sa.Column("recurs", sa.Boolean(), nullable=False),
        sa.Column("all_day", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["pim_collections.id"],
            name=op.f("fk_pim_objects_collection_id_pim_collections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pim_objects")),
        sa.UniqueConstraint("collection_id", "href", name="uq_pim_objects_collection_href"),
        sa.UniqueConstraint("collection_id", "uid", name="uq_pim_objects_collection_uid"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_pim_objects_time", "pim_objects", ["collection_id", "first_start"])
    op.create_table(
        "pim_changes",
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("href", sa.String(length=255), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["pim_collections.id"],
            name=op.f("fk_pim_changes_collection_id_pim_collections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("collection_id", "href", name=op.f("pk_pim_changes")),
    )
    op.create_index("ix_pim_changes_seq", "pim_changes", ["collection_id", "seq"])
    op.create_table(
        "pim_shares",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("grantee_account_id", sa.Integer(), nullable=True),
        sa.Column("grantee_domain_id", sa.Integer(), nullable=True),
        sa.Column("access", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["pim_collections.id"],
            name=op.f("fk_pim_shares_collection_id_pim_collections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["grantee_account_id"],
            ["accounts.id"],
            name=op.f("fk_pim_shares_grantee_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["grantee_domain_id"],
            ["domains.id"],
            name=op.f("fk_pim_shares_grantee_domain_id_domains"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pim_shares")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_pim_shares_collection", "pim_shares", ["collection_id"])
    op.create_index("ix_pim_shares_account", "pim_shares", ["grantee_account_id"])
    op.create_index("ix_pim_shares_domain", "pim_shares", ["grantee_domain_id"])


def downgrade() -> None:
    op.drop_table("pim_shares")
    op.drop_table("pim_changes")
    op.drop_table("pim_objects")
    op.drop_table("pim_collections")
