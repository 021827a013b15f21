"""The outbound queue's persistent state: messages waiting for remote delivery, per-recipient status.

A queue entry is written in the same transaction that accepts the message (so "250 OK" means it is
queued), and is removed only when no recipient is pending any more. Delivery workers claim due
entries with a lease (`claimed_until`); a node that dies leaves its lease to expire and another node
(or the restarted one) resumes. On PostgreSQL claims use `FOR UPDATE SKIP LOCKED`, so several nodes
never deliver the same entry at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy import case, delete, func, insert, or_, select, update

from tidings.store import schema as s
from tidings.store.database import Database, NotFound, Tx
from tidings.store.traffic import log_outcome_rows


@dataclass(frozen=True)
class QueueRecipient:
    id: int
    address: str
    domain: str
    status: str
    notify: str | None
    orcpt: str | None
    last_error: str | None
    remote_mta: str | None


@dataclass(frozen=True)
class QueueEntry:
    id: int
    sender: str
    blob_hash: str
    size: int
    created_at: float
    release_at: float
    next_attempt_at: float
    attempts: int
    last_error: str | None
    envid: str | None
    ret: str | None
    smtputf8: bool
    body_8bit: bool
    account_id: int | None
    delay_warned: bool
    recipients: list[QueueRecipient] = field(default_factory=list)

    @property
    def pending(self) -> list[QueueRecipient]:
        return [r for r in self.recipients if r.status == "pending"]


@dataclass(frozen=True)
class RecipientOutcome:
    recipient_id: int
    status: str  # delivered | failed | pending (deferred)
    message: str = ""
    remote_mta: str | None = None


def enqueue_rows(
    tx: Tx,
    *,
    sender: str,
    blob_hash: str,
    size: int,
    recipients: list[tuple[str, str | None, str | None]],
    release_at: float | None = None,
    envid: str | None = None,
    ret: str | None = None,
    smtputf8: bool = False,
    body_8bit: bool = False,
    account_id: int | None = None,
) -> int:
    """Insert a queue entry with (address, notify, orcpt) recipients; returns its id."""
    now = time.time()
    release = max(release_at or now, now)
    result = tx.conn.execute(
        insert(s.queue).values(
            sender=sender,
            blob_hash=blob_hash,
            size=size,
            created_at=now,
            release_at=release,
            next_attempt_at=release,
            attempts=0,
            envid=envid,
            ret=ret,
            smtputf8=smtputf8,
            body_8bit=body_8bit,
            account_id=account_id,
            delay_warned=False,
        )
    )
    queue_id = result.inserted_primary_key[0]
    tx.conn.execute(
        insert(s.queue_recipients),
        [
            {
                "queue_id": queue_id,
                "address": address,
                "domain": address.rpartition("@")[2].lower(),
                "status": "pending",
                "notify": notify,
                "orcpt": orcpt,
                "updated_at": now,
            }
            for address, notify, orcpt in recipients
        ],
    )
    return queue_id


def _entries(tx: Tx, rows) -> list[QueueEntry]:
    rows = list(rows)
    if not rows:
        return []
    ids = [r.id for r in rows]
    recipients: dict[int, list[QueueRecipient]] = {i: [] for i in ids}
    for r in tx.conn.execute(
        select(s.queue_recipients)
        .where(s.queue_recipients.c.queue_id.in_(ids))
        .order_by(s.queue_recipients.c.id)
    ):
        recipients[r.queue_id].append(
            QueueRecipient(r.id, r.address, r.domain, r.status, r.notify, r.orcpt, r.last_error, r.remote_mta)
        )
    return [
        QueueEntry(
            r.id,
            r.sender,
            r.blob_hash,
            r.size,
            r.created_at,
            r.release_at,
            r.next_attempt_at,
            r.attempts,
            r.last_error,
            r.envid,
            r.ret,
            r.smtputf8,
            r.body_8bit,
            r.account_id,
            r.delay_warned,
            recipients[r.id],
        )
        for r in rows
    ]


class Queue:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim_due(self, node_id: str, limit: int = 50, lease: float = 600.0) -> list[QueueEntry]:
        """Take up to `limit` due entries for this node, leased for `lease` seconds."""

        def op(tx: Tx) -> list[QueueEntry]:
            now = time.time()
            q = s.queue
            query = (
                select(q)
                .where(q.c.next_attempt_at <= now, or_(q.c.claimed_until.is_(None), q.c.claimed_until < now))
                .order_by(q.c.next_attempt_at)
                .limit(limit)
            )
            if tx.is_postgres:
                query = query.with_for_update(skip_locked=True)
            rows = tx.conn.execute(query).all()
            if not rows:
                return []
            tx.conn.execute(
                update(q)
                .where(q.c.id.in_([r.id for r in rows]))
                .values(claimed_by=node_id, claimed_until=now + lease)
            )
            return _entries(tx, rows)

        return await self.db.write(op)

    async def record(
        self,
        queue_id: int,
        outcomes: list[RecipientOutcome],
        next_attempt_at: float | None,
        error: str | None = None,
        delay_warned: bool | None = None,
        node_id: str | None = None,
    ) -> bool | None:
        """Save an attempt's outcome and release the claim. Returns True when the entry is finished.

        With `node_id`, the outcome is saved only while that node still holds the claim: a node whose
        lease lapsed (a stalled process) must not overwrite or delete an entry another node has
        claimed and is delivering since; it gets None and records nothing (the other node's attempt
        decides, at worst repeating a delivery as RFC 5321 section 6.1 allows)."""

        def op(tx: Tx) -> bool | None:
            now = time.time()
            qr = s.queue_recipients
            if node_id is not None:
                query = select(s.queue.c.claimed_by).where(s.queue.c.id == queue_id)
                if tx.is_postgres:
                    query = query.with_for_update()  # no other node's claim can slip in before our update
                holder = tx.conn.execute(query).first()
                if holder is None or holder.claimed_by != node_id:
                    return None
            entry = tx.conn.execute(
                select(s.queue.c.sender, s.queue.c.size).where(s.queue.c.id == queue_id)
            ).first()
            if entry is not None and outcomes:
                addresses = dict(
                    tx.conn.execute(
                        select(qr.c.id, qr.c.address).where(qr.c.id.in_([o.recipient_id for o in outcomes]))
                    ).all()
                )
                log_outcome_rows(
                    tx,
                    queue_id,
                    entry.sender,
                    entry.size,
                    [(addresses.get(o.recipient_id, "?"), o.status, o.message) for o in outcomes],
                )
            for outcome in outcomes:
                tx.conn.execute(
                    update(qr)
                    .where(qr.c.id == outcome.recipient_id)
                    .values(
                        status=outcome.status,
                        last_error=outcome.message or None,
                        remote_mta=outcome.remote_mta,
                        updated_at=now,
                    )
                )
            pending = tx.conn.execute(
                select(func.count())
                .select_from(qr)
                .where(qr.c.queue_id == queue_id, qr.c.status == "pending")
            ).scalar_one()
            if pending == 0:
                tx.conn.execute(delete(qr).where(qr.c.queue_id == queue_id))
                tx.conn.execute(delete(s.queue).where(s.queue.c.id == queue_id))
                return True
            values: dict = {
                "attempts": s.queue.c.attempts + 1,
                "claimed_by": None,
                "claimed_until": None,
                "next_attempt_at": next_attempt_at if next_attempt_at is not None else now,
            }
            if error is not None:
                values["last_error"] = error
            if delay_warned is not None:
                values["delay_warned"] = delay_warned
            tx.conn.execute(update(s.queue).where(s.queue.c.id == queue_id).values(**values))
            return False

        return await self.db.write(op)

    async def release(self, queue_id: int) -> None:
        """Give up a claim without recording an attempt (shutdown)."""

        def op(tx: Tx) -> None:
            tx.conn.execute(
                update(s.queue).where(s.queue.c.id == queue_id).values(claimed_by=None, claimed_until=None)
            )

        await self.db.write(op)

    async def list(self) -> list[QueueEntry]:
        def op(tx: Tx) -> list[QueueEntry]:
            return _entries(tx, tx.conn.execute(select(s.queue).order_by(s.queue.c.id)))

        return await self.db.read(op)

    async def get(self, queue_id: int) -> QueueEntry:
        def op(tx: Tx) -> QueueEntry:
            entries = _entries(tx, tx.conn.execute(select(s.queue).where(s.queue.c.id == queue_id)))
            if not entries:
                raise NotFound(f"no queue entry {queue_id}")
            return entries[0]

        return await self.db.read(op)

    async def retry(self, queue_id: int | None = None) -> int:
        """Make entries due now (all when `queue_id` is None); scheduled sends keep their time."""

        def op(tx: Tx) -> int:
            now = time.time()
            q = s.queue
            query = update(q).where(q.c.release_at <= now).values(next_attempt_at=now, claimed_until=None)
            if queue_id is not None:
                if tx.conn.execute(select(q.c.id).where(q.c.id == queue_id)).first() is None:
                    raise NotFound(f"no queue entry {queue_id}")
                query = query.where(q.c.id == queue_id)
            return tx.conn.execute(query).rowcount

        return await self.db.write(op)

    async def delete(self, queue_id: int) -> None:
        def op(tx: Tx) -> None:
            tx.conn.execute(delete(s.queue_recipients).where(s.queue_recipients.c.queue_id == queue_id))
            if tx.conn.execute(delete(s.queue).where(s.queue.c.id == queue_id)).rowcount == 0:
                raise NotFound(f"no queue entry {queue_id}")

        await self.db.write(op)

    async def scheduled(self, account_id: int) -> list[QueueEntry]:
        """The account's messages waiting for their scheduled time (send later), soonest first."""

        def op(tx: Tx) -> list[QueueEntry]:
            q = s.queue
            rows = tx.conn.execute(
                select(q)
                .where(q.c.account_id == account_id, q.c.release_at > time.time(), q.c.attempts == 0)
                .order_by(q.c.release_at, q.c.id)
            )
            return _entries(tx, rows)

        return await self.db.read(op)

    async def cancel_scheduled(self, account_id: int, queue_id: int) -> QueueEntry:
        """Take back one of the account's scheduled messages before its time; NotFound when it is
        not the account's, or is no longer waiting (its time came, a worker holds it)."""

        def op(tx: Tx) -> QueueEntry:
            q = s.queue
            now = time.time()
            rows = tx.conn.execute(
                select(q).where(
                    q.c.id == queue_id,
                    q.c.account_id == account_id,
                    q.c.release_at > now,
                    q.c.attempts == 0,
                    or_(q.c.claimed_until.is_(None), q.c.claimed_until < now),
                )
            )
            entries = _entries(tx, rows)
            if not entries:
                raise NotFound("no such scheduled message")
            tx.conn.execute(delete(s.queue_recipients).where(s.queue_recipients.c.queue_id == queue_id))
            tx.conn.execute(delete(q).where(q.c.id == queue_id))
            return entries[0]

        return await self.db.write(op)

    async def count(self) -> int:
        def op(tx: Tx) -> int:
            return tx.conn.execute(select(func.count()).select_from(s.queue)).scalar_one()

        return await self.db.read(op)

    async def next_due(self) -> float | None:
        """When the earliest entry becomes claimable (for the delivery loop's sleep).

        An entry under a live claim is not due before its lease ends, so a worker busy with entries
        does not wake up in a loop for them."""

        def op(tx: Tx) -> float | None:
            q = s.queue
            claimable_at = case(
                (q.c.claimed_until > q.c.next_attempt_at, q.c.claimed_until), else_=q.c.next_attempt_at
            )
            return tx.conn.execute(select(func.min(claimable_at))).scalar()

        return await self.db.read(op)

    async def extend_lease(self, queue_ids: list[int], node_id: str, lease: float) -> None:
        """Keep this node's claims alive while their delivery is still running."""
        if not queue_ids:
            return

        def op(tx: Tx) -> None:
            q = s.queue
            tx.conn.execute(
                update(q)
                .where(q.c.id.in_(queue_ids), q.c.claimed_by == node_id)
                .values(claimed_until=time.time() + lease)
            )

        await self.db.write(op)
