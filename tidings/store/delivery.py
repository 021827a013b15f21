"""Accepting a message: one durable write that puts it in local INBOXes and/or the outbound queue.

`accept` is what "250 OK" waits for. The body is fsynced as a blob first; then one (group-committed)
transaction inserts the parsed message once, a mailbox row per local recipient, and a queue entry for
everything that must wait (remote recipients, or all recipients of a scheduled message).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy import select

from tidings.mail.ingest import PreparedMessage, prepare
from tidings.notify import Change, Hub
from tidings.store import schema as s
from tidings.store.blobs import BlobStore
from tidings.store.database import Database, OverQuota, Tx
from tidings.store.mailboxes import charge_quota, find_mailbox_row, insert_into_mailbox, message_row, publish
from tidings.store.queue import enqueue_rows


@dataclass
class Envelope:
    sender: str  # "" for the null reverse-path
    local: list[str] = field(default_factory=list)  # account addresses (already resolved)
    remote: list[tuple[str, str | None, str | None]] = field(default_factory=list)  # (address, notify, orcpt)
    release_at: float | None = None
    envid: str | None = None
    ret: str | None = None
    smtputf8: bool = False
    body_8bit: bool = False
    account_id: int | None = None
    # DSN parameters of local recipients, kept if they must be queued (scheduled sending).
    local_params: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)


@dataclass
class AcceptResult:
    blob_hash: str
    delivered: list[str]
    over_quota: list[str]
    queue_id: int | None


def deliver_local_rows(
    tx: Tx,
    hub: Hub,
    node_id: str,
    message: PreparedMessage,
    address: str,
    mailbox: str = "INBOX",
    flags: str = "",
) -> bool:
    """Put a prepared message into an account's mailbox; False when over quota. Runs in a savepoint-free
    way: the quota check happens before any insert for this recipient."""
    account = tx.conn.execute(select(s.accounts.c.id).where(s.accounts.c.address == address)).first()
    if account is None:
        return False
    try:
        charge_quota(tx, account.id, message.size)
    except OverQuota:
        return False
    box = find_mailbox_row(tx, account.id, mailbox) or find_mailbox_row(tx, account.id, "INBOX")
    message_id = message_row(tx, message.blob_hash, message.size, message.summary_json, message.fields)
    _, modseq, _ = insert_into_mailbox(tx, box.id, [(message_id, message.size, flags, time.time())])
    publish(tx, hub, node_id, Change(account.id, box.id, "message", modseq))
    return True


class Delivery:
    def __init__(self, db: Database, blobs: BlobStore, hub: Hub, node_id: str) -> None:
        self.db = db
        self.blobs = blobs
        self.hub = hub
        self.node_id = node_id

    async def accept(self, envelope: Envelope, raw: bytes) -> AcceptResult:
        blob_hash = await self.blobs.put(raw)
        scheduled = envelope.release_at is not None and envelope.release_at > time.time()
        message = prepare(raw, blob_hash) if envelope.local and not scheduled else None

        def op(tx: Tx) -> AcceptResult:
            delivered, over_quota = [], []
            queued = list(envelope.remote)
            if scheduled:
                queued += [(a, *envelope.local_params.get(a, (None, None))) for a in envelope.local]
            else:
                for address in envelope.local:
                    if deliver_local_rows(tx, self.hub, self.node_id, message, address):
                        delivered.append(address)
                    else:
                        over_quota.append(address)
            queue_id = None
            if queued:
                queue_id = enqueue_rows(
                    tx,
                    sender=envelope.sender,
                    blob_hash=blob_hash,
                    size=len(raw),
                    recipients=queued,
                    release_at=envelope.release_at,
                    envid=envelope.envid,
                    ret=envelope.ret,
                    smtputf8=envelope.smtputf8,
                    body_8bit=envelope.body_8bit,
                    account_id=envelope.account_id,
                )
                publish(tx, self.hub, self.node_id, Change(0, None, "queue"))
            return AcceptResult(blob_hash, delivered, over_quota, queue_id)

        return await self.db.write(op)

    async def deliver_local(
        self, address: str, raw: bytes, blob_hash: str | None = None, mailbox: str = "INBOX"
    ) -> bool:
        """Deliver one stored message to one local account (queue worker, rules). False: over quota."""
        blob_hash = blob_hash or await self.blobs.put(raw)
        message = prepare(raw, blob_hash)

        def op(tx: Tx) -> bool:
            return deliver_local_rows(tx, self.hub, self.node_id, message, address, mailbox)

        return await self.db.write(op)
