"""Login attempt counts in the database, shared by every node: the store side of auth/throttle.py.

Each reservation and each settlement is one write transaction that reads and updates the rows of
its keys under a lock: SQLite's single writer (BEGIN IMMEDIATE) serialises them, PostgreSQL's
`SELECT ... FOR UPDATE` does across nodes. Rows are taken in a fixed order (sorted by kind, key), so
two nodes never wait on each other in a circle; a deadlock PostgreSQL still reports (two batches of
group-committed writes) is retried by the writer alone.

A row's failures count from `window_start` (the first failure) for `window` seconds. `pending`
counts attempts being checked right now; if a node dies mid-check its reservations would stay, so
they are forgotten once no attempt has been reserved on the key for a whole window.
"""

from __future__ import annotations

import time

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from tidings.auth.throttle import Limit, Verdict
from tidings.store import schema as s
from tidings.store.database import Database, Tx

t = s.login_attempts
CLEANUP_INTERVAL = 60.0  # seconds between sweeps of rows that say nothing any more


class LoginAttempts:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._next_cleanup = 0.0

    async def reserve(self, limits: list[Limit], window: float, now: float) -> Verdict:
        sweep = time.monotonic() >= self._next_cleanup
        if sweep:
            self._next_cleanup = time.monotonic() + CLEANUP_INTERVAL
        return await self.db.write_lazy(_reserve, sorted(limits, key=_order), window, now, sweep)

    async def settle(self, limits: list[Limit], failed: bool, window: float, now: float) -> None:
        await self.db.write_lazy(_settle, sorted(limits, key=_order), failed, window, now)

    async def failures(self, kind: str, key: str, window: float) -> int:
        """The failures counted now for one key (for `tidings status`-like tools and tests)."""

        def op(tx: Tx) -> int:
            row = tx.conn.execute(select(t).where(t.c.kind == kind, t.c.key == key)).first()
            if row is None or row.window_start <= time.time() - window:
                return 0
            return row.failures

        return await self.db.read(op)


def _order(limit: Limit) -> tuple[str, str]:
    return (limit.kind, limit.key)


def _locked_rows(tx: Tx, limits: list[Limit], now: float) -> list:
    """The rows of `limits`, created if missing, locked for this transaction, in `limits` order."""
    insert = postgresql.insert(t) if tx.is_postgres else sqlite.insert(t)
    rows = []
    for limit in limits:
        tx.conn.execute(
            insert.values(
                kind=limit.kind, key=limit.key, window_start=now, failures=0, pending=0, pending_at=now
            ).on_conflict_do_nothing(index_elements=["kind", "key"])
        )
        query = select(t).where(t.c.kind == limit.kind, t.c.key == limit.key)
        if tx.is_postgres:
            query = query.with_for_update()
        rows.append(tx.conn.execute(query).one())
    return rows


def _current(row, window: float, now: float) -> tuple[int, int]:
    """(failures, pending) as they count now: an old window's failures and stale reservations
    count as nothing."""
    failures = row.failures if row.window_start > now - window else 0
    pending = row.pending if row.pending_at > now - window else 0
    return failures, pending


def _reserve(tx: Tx, limits: list[Limit], window: float, now: float, sweep: bool) -> Verdict:
    if sweep:
        tx.conn.execute(
            delete(t).where(
                or_(t.c.failures == 0, t.c.window_start <= now - window),
                or_(t.c.pending == 0, t.c.pending_at <= now - window),
            )
        )
    rows = _locked_rows(tx, limits, now)
    counts = [_current(row, window, now) for row in rows]
    checks = list(zip(limits, counts, strict=True))
    if any(failures >= limit.limit for limit, (failures, _) in checks):
        return Verdict.BLOCKED
    if any(failures + pending >= limit.limit for limit, (failures, pending) in checks):
        return Verdict.BUSY
    for limit, row, (failures, pending) in zip(limits, rows, counts, strict=True):
        tx.conn.execute(
            update(t)
            .where(and_(t.c.kind == limit.kind, t.c.key == limit.key))
            .values(
                failures=failures,
                window_start=row.window_start if failures else now,
                pending=pending + 1,
                pending_at=now,
            )
        )
    return Verdict.ADMITTED


def _settle(tx: Tx, limits: list[Limit], failed: bool, window: float, now: float) -> None:
    for limit, row in zip(limits, _locked_rows(tx, limits, now), strict=True):
        failures, pending = _current(row, window, now)
        values = {"pending": max(pending - 1, 0)}
        if failed:
            values["failures"] = failures + 1
            values["window_start"] = row.window_start if failures else now
        tx.conn.execute(update(t).where(and_(t.c.kind == limit.kind, t.c.key == limit.key)).values(**values))
