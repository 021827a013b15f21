"""What happened to mail, for the admin console: the delivery log and the queue's length over time.

Rows are written inside the transactions that do the work, never by a commit of their own:
`log_received_rows` by the acceptance batch (store/delivery.py), `log_outcome_rows` by the queue's
`record` (store/queue.py). The log is insert-only so concurrent deliveries never wait on a shared
row (a per-hour counter row would serialise every delivery on PostgreSQL). The primary worker
samples the queue's length every SAMPLE_INTERVAL and prunes rows older than KEPT (tidings.server).

Only the store reads these tables; the admin pages get typed rows and hourly counts from `Traffic`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Integer, cast, delete, func, insert, select

from tidings.store import schema as s
from tidings.store.database import Database, Tx

KEPT = 7 * 86400.0  # seconds of log and samples kept
SAMPLE_INTERVAL = 300.0  # seconds between queue-length samples
HOUR = 3600

_INSERT_LOG = insert(s.delivery_log)


@dataclass(frozen=True)
class LogEntry:
    id: int
    at: float
    kind: str  # received | delivered | deferred | failed
    sender: str
    recipient: str
    recipients: int
    size: int | None
    queue_id: int | None
    detail: str | None


@dataclass(frozen=True)
class HourlyCounts:
    """Counts per kind for each hour from `start` (an hour boundary, epoch seconds) on."""

    start: float
    hours: int
    counts: dict[str, list[int]]

    def series(self, kind: str) -> list[int]:
        return self.counts.get(kind, [0] * self.hours)


def log_received_rows(tx: Tx, rows: list[dict]) -> None:
    """In the acceptance transaction: one row per message put into local mailboxes; each dict has
    sender, recipients (addresses), size."""
    if not rows:
        return
    now = time.time()
    tx.conn.execute(
        _INSERT_LOG,
        [
            {
                "at": now,
                "kind": "received",
                "sender": r["sender"],
                "recipient": r["recipients"][0],
                "recipients": len(r["recipients"]),
                "size": r["size"],
                "queue_id": None,
                "detail": None,
            }
            for r in rows
        ],
    )


def log_outcome_rows(
    tx: Tx, queue_id: int, sender: str, size: int, outcomes: list[tuple[str, str, str]]
) -> None:
    """In the queue's `record` transaction: (recipient, status, message) per attempted recipient;
    status "pending" is logged as "deferred"."""
    if not outcomes:
        return
    now = time.time()
    tx.conn.execute(
        _INSERT_LOG,
        [
            {
                "at": now,
                "kind": "deferred" if status == "pending" else status,
                "sender": sender,
                "recipient": recipient,
                "recipients": 1,
                "size": size,
                "queue_id": queue_id,
                "detail": message or None,
            }
            for recipient, status, message in outcomes
        ],
    )


class Traffic:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def recent(self, kinds: tuple[str, ...] | None = None, limit: int = 50) -> list[LogEntry]:
        """The newest log entries, of `kinds` when given."""

        def op(tx: Tx) -> list[LogEntry]:
            query = select(s.delivery_log).order_by(s.delivery_log.c.id.desc()).limit(limit)
            if kinds:
                query = query.where(s.delivery_log.c.kind.in_(kinds))
            return [
                LogEntry(
                    r.id, r.at, r.kind, r.sender, r.recipient, r.recipients, r.size, r.queue_id, r.detail
                )
                for r in tx.conn.execute(query)
            ]

        return await self.db.read(op)

    async def per_hour(self, hours: int = 48, now: float | None = None) -> HourlyCounts:
        """Log entries per kind and hour over the last `hours` hours (the current one included)."""
        now = time.time() if now is None else now
        start = (int(now) // HOUR - hours + 1) * HOUR

        def op(tx: Tx) -> HourlyCounts:
            at = s.delivery_log.c.at
            # floor(): PostgreSQL's cast to integer rounds; SQLite's truncates (and has no floor).
            hour = func.floor(at / HOUR) if tx.is_postgres else cast(at / HOUR, Integer)
            rows = tx.conn.execute(
                select(hour.label("hour"), s.delivery_log.c.kind, func.count())
                .where(at >= start)
                .group_by(hour, s.delivery_log.c.kind)
            )
            counts: dict[str, list[int]] = {}
            for bucket, kind, count in rows:
                index = int(bucket) - start // HOUR
                if 0 <= index < hours:
                    counts.setdefault(kind, [0] * hours)[index] += count
            return HourlyCounts(start, hours, counts)

        return await self.db.read(op)

    async def queue_lengths(self, since: float) -> list[tuple[float, int]]:
        """(time, length) samples of the outbound queue since `since`, oldest first."""

        def op(tx: Tx) -> list[tuple[float, int]]:
            q = s.queue_samples
            rows = tx.conn.execute(select(q.c.at, q.c.length).where(q.c.at >= since).order_by(q.c.at))
            return [(r.at, r.length) for r in rows]

        return await self.db.read(op)

    async def sample_queue(self, now: float | None = None) -> int:
        """Record the queue's length now and prune what is older than KEPT; returns the length."""
        now = time.time() if now is None else now

        def op(tx: Tx) -> int:
            length = tx.conn.execute(select(func.count()).select_from(s.queue)).scalar_one()
            tx.conn.execute(insert(s.queue_samples).values(at=now, length=length))
            tx.conn.execute(delete(s.queue_samples).where(s.queue_samples.c.at < now - KEPT))
            tx.conn.execute(delete(s.delivery_log).where(s.delivery_log.c.at < now - KEPT))
            return length

        return await self.db.write_lazy(op)
