"""Metadata entries on the server and on mailboxes (IMAP METADATA, RFC 5464).

An entry is a name such as ``/private/comment`` or ``/shared/vendor/acme/colour`` with a value
of up to :data:`MAX_VALUE_BYTES` bytes.  Server entries (IMAP's empty mailbox name) belong to
the account that set them: without shared administration there is no one to share the server's
``/shared`` entries with, and one user's entries must never reach another.  Mailbox entries go
with their mailbox (kept over RENAME, removed with DELETE).  Names are stored lower-case
(entry names are case-insensitive, RFC 5464 section 3.2).

Limits keep one account from filling the database: at most :data:`MAX_ENTRIES` entries and
:data:`MAX_TOTAL_BYTES` bytes of names and values per account, checked inside the same
transaction as the change, so a refused SETMETADATA changes nothing (RFC 5464 section 4.3).

Names are checked by the protocol layer; this module only stores them.  It never reads another
account's mailbox: every call names the acting account.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, delete, func, insert, select, update

from tidings.notify import Change, Hub
from tidings.store import schema as s
from tidings.store.database import Database, NotFound, StoreError, Tx
from tidings.store.mailboxes import publish

MAX_VALUE_BYTES = 64 * 1024
MAX_ENTRIES = 1000
MAX_TOTAL_BYTES = 1024 * 1024


class MetadataTooLarge(StoreError):
    """A value is longer than :data:`MAX_VALUE_BYTES`, or the account's total would pass
    :data:`MAX_TOTAL_BYTES` (``NO [METADATA MAXSIZE n]``)."""

    def __init__(self, limit: int, text: str) -> None:
        super().__init__(text)
        self.limit = limit


class MetadataTooMany(StoreError):
    """The account would hold more than :data:`MAX_ENTRIES` entries (``NO [METADATA TOOMANY]``)."""


class Metadata:
    """Server and mailbox metadata entries of each account; see the module docstring."""

    def __init__(self, db: Database, hub: Hub, node_id: str) -> None:
        self.db = db
        self.hub = hub
        self.node_id = node_id

    async def entries(self, account_id: int, mailbox_id: int | None) -> dict[str, bytes]:
        """Every entry of the account's server (``mailbox_id`` None) or of one of its mailboxes."""

        def op(tx: Tx) -> dict[str, bytes]:
            if mailbox_id is None:
                a = s.account_metadata
                query = select(a.c.name, a.c.value).where(a.c.account_id == account_id)
            else:
                _check_owner(tx, account_id, mailbox_id)
                m = s.mailbox_metadata
                query = select(m.c.name, m.c.value).where(m.c.mailbox_id == mailbox_id)
            return {row.name: bytes(row.value) for row in tx.conn.execute(query)}

        return await self.db.read(op)

    async def set(
        self, account_id: int, mailbox_id: int | None, changes: Sequence[tuple[str, bytes | None]]
    ) -> None:
        """Set (or, for a None value, remove) entries, all or none."""
        for name, value in changes:
            if value is not None and len(value) > MAX_VALUE_BYTES:
                raise MetadataTooLarge(
                    MAX_VALUE_BYTES, f"the value of {name} is over {MAX_VALUE_BYTES} bytes"
                )

        def op(tx: Tx) -> None:
            if mailbox_id is None:
                table, owner = s.account_metadata, s.account_metadata.c.account_id == account_id
            else:
                _check_owner(tx, account_id, mailbox_id)
                table, owner = s.mailbox_metadata, s.mailbox_metadata.c.mailbox_id == mailbox_id
            target = {"account_id": account_id} if mailbox_id is None else {"mailbox_id": mailbox_id}
            for name, value in changes:
                where = and_(owner, table.c.name == name)
                if value is None:
                    tx.conn.execute(delete(table).where(where))
                elif tx.conn.execute(update(table).where(where).values(value=value)).rowcount == 0:
                    tx.conn.execute(insert(table).values(name=name, value=value, **target))
            _check_limits(tx, account_id)
            # NOTIFY MailboxMetadataChange / ServerMetadataChange (RFC 5465 sections 5.6, 5.7).
            publish(tx, self.hub, self.node_id, Change(account_id, mailbox_id, "metadata"))

        await self.db.write(op)


def _check_owner(tx: Tx, account_id: int, mailbox_id: int) -> None:
    owner = tx.conn.execute(select(s.mailboxes.c.account_id).where(s.mailboxes.c.id == mailbox_id)).scalar()
    if owner != account_id:
        raise NotFound("mailbox no longer exists")


def _check_limits(tx: Tx, account_id: int) -> None:
    a, m, mb = s.account_metadata, s.mailbox_metadata, s.mailboxes
    size = func.coalesce(func.sum(func.length(a.c.name) + func.length(a.c.value)), 0)
    count, total = tx.conn.execute(select(func.count(), size).where(a.c.account_id == account_id)).one()
    size = func.coalesce(func.sum(func.length(m.c.name) + func.length(m.c.value)), 0)
    more = tx.conn.execute(
        select(func.count(), size)
        .select_from(m.join(mb, mb.c.id == m.c.mailbox_id))
        .where(mb.c.account_id == account_id)
    ).one()
    count, total = count + more[0], total + more[1]
    if count > MAX_ENTRIES:
        raise MetadataTooMany(f"at most {MAX_ENTRIES} metadata entries per account")
    if total > MAX_TOTAL_BYTES:
        raise MetadataTooLarge(MAX_VALUE_BYTES, f"at most {MAX_TOTAL_BYTES} bytes of metadata per account")
