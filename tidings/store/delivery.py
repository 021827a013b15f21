"""Accepting a message: one durable write that puts it in local INBOXes and/or the outbound queue.

`accept` is what "250 OK" waits for. The body is fsynced as a blob first; then one (group-committed)
transaction inserts the parsed message once, a mailbox row per local recipient, and a queue entry for
everything that must wait (remote recipients, or all recipients of a scheduled message).

A local recipient whose mailbox cannot take the message is never dropped: if anyone else got the
message, that recipient waits in the same queue entry (the queue retries it as the owner makes room,
and reports to the sender only if it never fits), in the same transaction, so nothing can fall
between "accepted" and "queued". Only when nobody got it is it left to the caller (`over_quota`), so
the SMTP server can refuse it before saying 250 instead of bouncing later; `keep_over_quota` queues
it even then (for callers that cannot refuse, such as a report to a local sender).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy import bindparam, insert, select, update

from tidings.mail.ingest import PreparedMessage, prepare
from tidings.notify import Change, Hub
from tidings.pim import imip
from tidings.store import schema as s
from tidings.store.blobs import BlobStore
from tidings.store.database import Database, OverQuota, Tx
from tidings.store.mailboxes import (
    bump_mailbox,
    charge_quota,
    find_mailbox_row,
    insert_into_mailbox,
    message_row,
    publish,
)
from tidings.store.queue import enqueue_rows
from tidings.store.traffic import log_received_rows

log = logging.getLogger(__name__)
AfterDelivery = Callable[[bytes, str, int | None, list[str]], Awaitable[object]]


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
    # DSN parameters of local recipients, kept if they must be queued (scheduled sending, quota).
    local_params: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    keep_over_quota: bool = False  # queue full mailboxes' copies even when nobody else got the message


@dataclass
class AcceptResult:
    blob_hash: str
    delivered: list[str]
    over_quota: list[str]  # refused: not stored for them (nobody got the message)
    queue_id: int | None
    waiting_for_room: list[str] = field(default_factory=list)  # over quota, kept in the queue entry


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


# The acceptance path's statements, built once: constructing them per batch cost more than running them.
_ACCOUNTS_BY_ADDRESS = select(
    s.accounts.c.id, s.accounts.c.address, s.accounts.c.quota_bytes, s.accounts.c.used_bytes
).where(s.accounts.c.address.in_(bindparam("addresses", expanding=True)))
_INBOXES_OF = select(s.mailboxes.c.id, s.mailboxes.c.account_id).where(
    s.mailboxes.c.account_id.in_(bindparam("accounts", expanding=True)), s.mailboxes.c.name == "INBOX"
)
_CHARGE = (
    update(s.accounts)
    .where(s.accounts.c.id == bindparam("account"))
    .values(used_bytes=s.accounts.c.used_bytes + bindparam("delta"))
)
_INSERT_MAILBOX_MESSAGE = insert(s.mailbox_messages)
_MESSAGES_BY_HASH = select(s.messages.c.id, s.messages.c.blob_hash).where(
    s.messages.c.blob_hash.in_(bindparam("hashes", expanding=True))
)
_INSERT_MESSAGE = insert(s.messages).returning(
    s.messages.c.id, s.messages.c.blob_hash, sort_by_parameter_order=True
)


@dataclass
class _Accepted:
    """One message waiting in the group-commit batch."""

    envelope: Envelope
    raw: bytes
    blob_hash: str
    delivers_locally: bool  # False when only queued (remote recipients, or scheduled for later)


class Delivery:
    def __init__(self, db: Database, blobs: BlobStore, hub: Hub, node_id: str) -> None:
        self.db = db
        self.blobs = blobs
        self.hub = hub
        self.node_id = node_id
        # Called after the commit with (raw, envelope sender, submitting account id, delivered
        # addresses) when a message reached local accounts: the calendar side of iMIP (set by Store).
        self.after_local_delivery: Callable[[bytes, str, int | None, list[str]], Awaitable[object]] | None = (
            None
        )

    async def accept(self, envelope: Envelope, raw: bytes) -> AcceptResult:
        """Make `raw` durable and deliver/queue it; returns only after the covering commit."""
        blob_hash = await self.blobs.prepare(raw)
        scheduled = envelope.release_at is not None and envelope.release_at > time.time()
        item = _Accepted(envelope, raw, blob_hash, bool(envelope.local) and not scheduled)
        result = await self.db.write_batched(self._accept_many, item)
        if result.delivered and self.after_local_delivery is not None:
            await self._after(raw, envelope.sender, envelope.account_id, result.delivered)
        return result

    async def _after(self, raw: bytes, sender: str, account_id: int | None, delivered: list[str]) -> None:
        # Cheap test first: nearly no message is a calendar one, and this runs before "250 OK".
        if len(raw) > imip.MAX_MESSAGE_BYTES or not imip.MAY_CARRY_CALENDAR.search(raw):
            return
        try:
            await self.after_local_delivery(raw, sender, account_id, delivered)
        except Exception:  # the message is delivered; a calendar problem never undoes that
            log.exception("after-delivery hook failed")

    def _accept_many(self, tx: Tx, items: list[_Accepted]) -> list[AcceptResult]:
        """Writer thread: a handful of statements for the whole batch, bodies included.

        Messages are stored without their MIME analysis (summary NULL): the indexer or the first
        reader does it, so parsing never delays "250 OK".
        """
        self.blobs.insert_rows(tx, [(item.blob_hash, item.raw) for item in items])
        conn = tx.conn
        now = time.time()
        message_ids = _message_ids(tx, [(i.blob_hash, len(i.raw)) for i in items if i.delivers_locally])

        # Accounts and their INBOXes, once per batch.
        addresses = sorted({a for item in items if item.delivers_locally for a in item.envelope.local})
        accounts = {}
        if addresses:
            rows = conn.execute(_ACCOUNTS_BY_ADDRESS, {"addresses": addresses}).all()
            accounts = {r.address: [r.id, r.quota_bytes, r.used_bytes] for r in rows}
        inboxes = {}
        if accounts:
            rows = conn.execute(_INBOXES_OF, {"accounts": [a[0] for a in accounts.values()]}).all()
            inboxes = {r.account_id: r.id for r in rows}

        results: list[AcceptResult] = []
        placed: dict[int, list[tuple[int, int]]] = {}  # mailbox id -> [(message id, size)]
        charged: dict[int, int] = {}
        for item in items:
            envelope = item.envelope
            delivered, over_quota = [], []
            queued = list(envelope.remote)
            if item.delivers_locally:
                size = len(item.raw)
                for address in envelope.local:
                    account = accounts.get(address)
                    inbox = inboxes.get(account[0]) if account else None
                    if inbox is None or (account[1] is not None and account[2] + size > account[1]):
                        over_quota.append(address)
                        continue
                    account[2] += size
                    charged[account[0]] = charged.get(account[0], 0) + size
                    placed.setdefault(inbox, []).append((message_ids[item.blob_hash], size))
                    delivered.append(address)
            else:
                queued += [(a, *envelope.local_params.get(a, (None, None))) for a in envelope.local]
            waiting: list[str] = []
            if over_quota and (delivered or queued or envelope.keep_over_quota):
                waiting, over_quota = over_quota, []
                queued += [(a, *envelope.local_params.get(a, (None, None))) for a in waiting]
            queue_id = None
            if queued:
                queue_id = enqueue_rows(
                    tx,
                    sender=envelope.sender,
                    blob_hash=item.blob_hash,
                    size=len(item.raw),
                    recipients=queued,
                    release_at=envelope.release_at,
                    envid=envelope.envid,
                    ret=envelope.ret,
                    smtputf8=envelope.smtputf8,
                    body_8bit=envelope.body_8bit,
                    account_id=envelope.account_id,
                )
            results.append(AcceptResult(item.blob_hash, delivered, over_quota, queue_id, waiting))

        if charged:
            conn.execute(
                _CHARGE, [{"account": account_id, "delta": delta} for account_id, delta in charged.items()]
            )
        for mailbox_id, entries in placed.items():
            first_uid, modseq = bump_mailbox(tx, mailbox_id, len(entries))
            conn.execute(
                _INSERT_MAILBOX_MESSAGE,
                [
                    {
                        "mailbox_id": mailbox_id,
                        "uid": first_uid + offset,
                        "message_id": message_id,
                        "size": size,
                        "flags": "",
                        "modseq": modseq,
                        "internal_date": now,
                        "save_date": now,
                    }
                    for offset, (message_id, size) in enumerate(entries)
                ],
            )
            account_id = next(a[0] for a in accounts.values() if inboxes.get(a[0]) == mailbox_id)
            publish(tx, self.hub, self.node_id, Change(account_id, mailbox_id, "message", modseq))
        if any(r.queue_id is not None for r in results):
            publish(tx, self.hub, self.node_id, Change(0, None, "queue"))
        log_received_rows(
            tx,
            [
                {"sender": item.envelope.sender, "recipients": result.delivered, "size": len(item.raw)}
                for item, result in zip(items, results, strict=True)
                if result.delivered
            ],
        )
        return results

    async def deliver_local(
        self, address: str, raw: bytes, blob_hash: str | None = None, mailbox: str = "INBOX"
    ) -> bool:
        """Deliver one stored message to one local account (queue worker, rules). False: over quota."""
        blob_hash = blob_hash or await self.blobs.prepare(raw)
        message = prepare(raw, blob_hash)

        def op(tx: Tx) -> bool:
            self.blobs.insert_rows(tx, [(blob_hash, raw)])
            return deliver_local_rows(tx, self.hub, self.node_id, message, address, mailbox)

        return await self.db.write(op)


def _message_ids(tx: Tx, contents: list[tuple[str, int]]) -> dict[str, int]:
    """messages.id for each (blob hash, size), inserting the new ones (not yet indexed) at once."""
    if not contents:
        return {}
    sizes = dict(contents)
    rows = tx.conn.execute(_MESSAGES_BY_HASH, {"hashes": sorted(sizes)}).all()
    ids = {r.blob_hash: r.id for r in rows}
    new = [
        {"blob_hash": h, "size": size, "created_at": time.time()} for h, size in sizes.items() if h not in ids
    ]
    if new:
        inserted = tx.conn.execute(
            insert(s.messages).returning(
                s.messages.c.id, s.messages.c.blob_hash, sort_by_parameter_order=True
            ),
            new,
        ).all()
        ids.update({r.blob_hash: r.id for r in inserted})
    return ids
