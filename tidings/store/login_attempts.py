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

from sqlalchemy import and_, bindparam, delete, or_, select, update
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


# Built once: a login makes up to a dozen of these statements, and building them each time was most
# of the writer thread's work for logins (17 % of its samples under a LOGIN/LOGOUT churn mix).
def _insert_if_missing(dialect):
    return (
        dialect.insert(t)
        .values(
            kind=bindparam("k_kind"),
            key=bindparam("k_key"),
            window_start=bindparam("k_now"),
            failures=0,
            pending=0,
            pending_at=bindparam("k_now"),
        )
        .on_conflict_do_nothing(index_elements=["kind", "key"])
    )


_INSERT_IF_MISSING = {True: _insert_if_missing(postgresql), False: _insert_if_missing(sqlite)}
_ROW = select(t).where(t.c.kind == bindparam("k_kind"), t.c.key == bindparam("k_key"))
_ROW_LOCKED = {True: _ROW.with_for_update(), False: _ROW}
_THIS_ROW = and_(t.c.kind == bindparam("k_kind"), t.c.key == bindparam("k_key"))
_RESERVE = (
    update(t)
    .where(_THIS_ROW)
    .values(
        failures=bindparam("v_failures"),
        window_start=bindparam("v_window_start"),
        pending=bindparam("v_pending"),
        pending_at=bindparam("v_pending_at"),
    )
)
_SETTLE_SUCCESS = update(t).where(_THIS_ROW).values(pending=bindparam("v_pending"))
_SETTLE_FAILURE = (
    update(t)
    .where(_THIS_ROW)
    .values(
        pending=bindparam("v_pending"),
        failures=bindparam("v_failures"),
        window_start=bindparam("v_window_start"),
    )
)


def _key(limit: Limit) -> dict:
    return {"k_kind": limit.kind, "k_key": limit.key}


def _locked_rows(tx: Tx, limits: list[Limit], now: float) -> list:
    """The rows of `limits`, created if missing, locked for this transaction, in `limits` order."""
    insert, query = _INSERT_IF_MISSING[tx.is_postgres], _ROW_LOCKED[tx.is_postgres]
    rows = []
    for limit in limits:
        tx.conn.execute(insert, {**_key(limit), "k_now": now})
        rows.append(tx.conn.execute(query, _key(limit)).one())
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
            _RESERVE,
            {
                **_key(limit),
                "v_failures": failures,
                "v_window_start": row.window_start if failures else now,
                "v_pending": pending + 1,
                "v_pending_at": now,
            },
        )
    return Verdict.ADMITTED


def _settle(tx: Tx, limits: list[Limit], failed: bool, window: float, now: float) -> None:
    for limit, row in zip(limits, _locked_rows(tx, limits, now), strict=True):
        failures, pending = _current(row, window, now)
        values = {**_key(limit), "v_pending": max(pending - 1, 0)}
        if not failed:
            tx.conn.execute(_SETTLE_SUCCESS, values)
            continue
        values["v_failures"] = failures + 1
        values["v_window_start"] = row.window_start if failures else now
        tx.conn.execute(_SETTLE_FAILURE, values)
