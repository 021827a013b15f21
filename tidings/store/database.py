"""Database access: SQLAlchemy Core engines, a writer thread with group commit, and reads.

Writes never run on the event loop: they go through a single writer thread that commits many
callers' operations in one transaction (group commit), so one fsync of the SQLite WAL (or one
PostgreSQL commit) covers many accepted messages. A caller's future resolves only after that
commit, so "250 OK" is said only once the data is durable. If a batch fails, each operation is
retried alone so one caller's error (a unique-key clash, a quota refusal) never fails another's.

Two durability classes (`durability.flags`): writes that create mail (`write`) are fsynced before
their caller hears of the commit; writes that only change state of mail already stored (flags,
expunges, \\Recent, subscriptions: `write_lazy`) may commit without waiting for an fsync, as
Dovecot's default mail_fsync=optimized does. A lazy commit is in the operating system once it
returns, so it survives the process being killed; a power loss may lose the last moments of them,
until the next durable commit or checkpoint (which syncs everything committed before it). A batch
holding both kinds commits the lazy writes first, apart, so they do not wait for the fsync.

Reads on PostgreSQL run in worker threads (network round trips). Reads on SQLite run on the event
loop itself: they are local, WAL readers never wait for a lock (checkpoints here are PASSIVE), and
pysqlite releases the GIL around every row it steps, so reader threads spent their time handing the
GIL back and forth instead (measured in the IMAP benchmark: 25% more operations per second, SELECT
latency 20 ms -> 4 ms at 10 clients, against two reader threads).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Connection, create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError

log = logging.getLogger(__name__)

# Worker threads for reads on PostgreSQL (SQLite reads run on the loop; see the module docstring).
POSTGRES_READERS = 8

T = TypeVar("T")


class StoreError(Exception):
    """An operation the store refuses: the message is meant for the user or the client."""


class NotFound(StoreError):
    pass


class AlreadyExists(StoreError):
    pass


class OverQuota(StoreError):
    pass


class AliasLoop(StoreError):
    """Alias expansion went deeper than its limit: aliases that point at each other."""


@dataclass
class Tx:
    """One unit of work inside a (possibly shared) transaction."""

    conn: Connection
    is_postgres: bool
    _after_commit: list[Callable[[], None]] = field(default_factory=list)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` on the event loop once the transaction has committed (e.g. notifications)."""
        self._after_commit.append(callback)


def normalise_url(url: str) -> str:
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, *, for_writes: bool) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn, _record) -> None:  # pragma: no cover - driver hook
            # Let SQLAlchemy, not pysqlite, decide when transactions begin (so BEGIN IMMEDIATE works).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # FULL: every commit fsyncs the WAL. Group commit makes that one fsync per batch.
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            if for_writes:
                # Checkpoints run in `Checkpointer`'s thread, never inside a commit that callers wait on.
                cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn) -> None:  # pragma: no cover - driver hook
            # Writers take the lock up front: avoids deadlocks when a reader upgrades to writer.
            conn.exec_driver_sql("BEGIN IMMEDIATE" if for_writes else "BEGIN")

        return engine
    return create_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=True)


class Database:
    """Runs store functions `fn(tx, *args)` in worker threads; writes are group-committed."""

    def __init__(self, url: str, *, lazy_writes: bool = True, checkpoints: bool = True) -> None:
        """`checkpoints` False: another process of this server copies the SQLite WAL back (only one
        should; see tidings.supervisor)."""
        self.url = normalise_url(url)
        # False (durability.flags = "strict"): `write_lazy` is `write`, every commit waits for its fsync.
        self.lazy_writes = lazy_writes
        self.is_postgres = self.url.startswith("postgresql")
        self.write_engine = make_engine(self.url, for_writes=True)
        self.read_engine = make_engine(self.url, for_writes=False)
        self._readers = ThreadPoolExecutor(POSTGRES_READERS, thread_name_prefix="db-read")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="db-write")
        self._pending: list[tuple[Callable[..., Any], tuple, asyncio.Future]] = []
        self._writer_busy = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self.commits = 0
        self.operations = 0
        self._checkpointer = Checkpointer(self.read_engine) if checkpoints and not self.is_postgres else None
        self._write_lock = WriteLock.for_url(self.url)

    # -- reads ---------------------------------------------------------------------------------

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(tx, *args)` in a read transaction: in a worker thread on PostgreSQL, directly on
        SQLite."""
        if not self.is_postgres:
            return self._run_read(fn, args)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._run_read, fn, args)

    async def read_in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """`read` for a large result (a big mailbox's snapshot): always in a worker thread, so
        the loop serves other sessions while the rows are stepped and turned into objects."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._run_read, fn, args)

    def _run_read(self, fn: Callable[..., T], args: tuple) -> T:
        with self.read_engine.connect() as conn:
            with conn.begin():
                return fn(Tx(conn, self.is_postgres), *args)

    def read_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """Same as `read` for synchronous callers (the command-line tools)."""
        return self._run_read(fn, args)

    # -- writes --------------------------------------------------------------------------------

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(tx, *args)` in the next group-committed write transaction; resolves after commit."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        future: asyncio.Future = loop.create_future()
        with self._lock:
            self._pending.append((fn, args, future))
            start = not self._writer_busy
            self._writer_busy = True
        if start:
            loop.run_in_executor(self._writer, self._drain_writes)
        return await future

    async def write_lazy(self, fn: Callable[..., T], *args: Any) -> T:
        """`write` for a change to mail already stored (flags, expunge, \\Recent, subscriptions):
        resolves once committed, without waiting for the commit's fsync (see the module docstring)."""
        return await self.write(_Lazy(fn) if self.lazy_writes else fn, *args)

    async def write_batched(self, batch_fn: Callable[[Tx, list], list], item: Any) -> Any:
        """Like `write`, for operations that are much cheaper done many at once (message acceptance).

        All items pending for the same `batch_fn` are passed together as `batch_fn(tx, items)`, which
        returns one result per item, in the same group-committed transaction as other writes.
        """
        return await self.write(_Batched(batch_fn), item)

    def write_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """A write for synchronous callers: its own transaction, callbacks run inline after commit."""
        result, callbacks = self._run_batch_alone(fn, args)
        for callback in callbacks:
            callback()
        return result

    def _drain_writes(self) -> None:
        """Writer thread: commit everything pending, in batches, until the queue is empty."""
        loop = self._loop
        assert loop is not None
        while True:
            with self._lock:
                if not self._pending:
                    self._writer_busy = False
                    return
            # The batch is taken once the write lock is ours: writes that arrive while another
            # process commits join this batch instead of waiting for one more commit (and fsync).
            with self._write_lock:
                with self._lock:
                    batch = self._pending
                    self._pending = []
                self._commit_batch(batch, loop)

    def _commit_batch(self, batch: list, loop: asyncio.AbstractEventLoop) -> None:
        lazy = [entry for entry in batch if isinstance(entry[0], _Lazy)]
        if lazy and len(lazy) < len(batch):
            # Flag changes and expunges need not wait for the fsync new mail needs: they are
            # committed (and answered) first, in a transaction of their own.
            self._commit_batch(lazy, loop)
            batch = [entry for entry in batch if not isinstance(entry[0], _Lazy)]
        durable = not all(isinstance(fn, _Lazy) for fn, _, _ in batch)
        try:
            with self._write_lock, self._connect_write() as conn:
                self._set_synchronous(conn, durable)
                with conn.begin():
                    if not durable and self.is_postgres:
                        conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
                    results = self._run_ops(conn, batch)
            self.commits += 1
        except Exception:
            results = [self._single(fn, args, future) for fn, args, future in batch]
        self.operations += len(batch)
        loop.call_soon_threadsafe(_resolve_all, results)

    def _set_synchronous(self, conn: Connection, durable: bool) -> None:
        """SQLite: FULL (the WAL is fsynced at commit) or NORMAL (it is not, in WAL mode) for the
        next commit on this connection. SQLite refuses the change inside a transaction, so it is
        made on the driver connection before BEGIN; the level last set is kept with it."""
        if self.is_postgres:
            return
        level = "FULL" if durable else "NORMAL"
        info = conn.connection.info
        if info.get("synchronous", "FULL") != level:
            conn.connection.driver_connection.execute(f"PRAGMA synchronous={level}")
            info["synchronous"] = level

    def _run_ops(self, conn: Connection, batch: list) -> list:
        outcomes: list = [None] * len(batch)
        groups: dict[Callable, list[int]] = {}
        for index, (fn, args, future) in enumerate(batch):
            if isinstance(fn, _Batched):
                groups.setdefault(fn.batch_fn, []).append(index)
                continue
            tx = Tx(conn, self.is_postgres)
            outcomes[index] = (future, fn(tx, *args), None, tx._after_commit)
        for batch_fn, indexes in groups.items():
            tx = Tx(conn, self.is_postgres)
            results = batch_fn(tx, [batch[i][1][0] for i in indexes])
            for position, (index, result) in enumerate(zip(indexes, results, strict=True)):
                outcomes[index] = (batch[index][2], result, None, tx._after_commit if position == 0 else [])
        return outcomes

    def _single(self, fn, args, future):
        try:
            result, callbacks = self._run_batch_alone(fn, args)
            return (future, result, None, callbacks)
        except BaseException as exc:  # delivered to the awaiting caller
            return (future, None, exc, [])

    def _run_batch_alone(self, fn, args):
        for attempt in range(5):
            try:
                with self._write_lock, self._connect_write() as conn:
                    self._set_synchronous(conn, True)  # alone, every write is committed durably
                    with conn.begin():
                        tx = Tx(conn, self.is_postgres)
                        result = fn(tx, *args)
                self.commits += 1
                return result, tx._after_commit
            except OperationalError as exc:
                # Deadlock / serialization failure / database locked: retry a few times.
                if attempt == 4 or not _is_retryable(exc):
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def commit_durability_problems(self) -> list[str]:
        """PostgreSQL settings under which a committed write may still be lost in a crash, e.g.
        `synchronous_commit=off` (set for the server, the database or the role): "250 OK" waits
        for the commit, so it would no longer mean "on disk". Empty when commits are durable."""
        if not self.is_postgres:
            return []  # SQLite: synchronous=FULL is set on every connection (make_engine)
        with self._connect_write() as conn:
            settings = {
                name: conn.exec_driver_sql(f"SHOW {name}").scalar()
                for name in ("synchronous_commit", "fsync")
            }
            conn.rollback()
        return [f"{name}={value}" for name, value in settings.items() if value == "off"]

    def _connect_write(self) -> Connection:
        return self.write_engine.connect()

    def dispose(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self._readers.shutdown(wait=False)
        self._writer.shutdown(wait=True)
        self.write_engine.dispose()
        self.read_engine.dispose()


class WriteLock:
    """SQLite only: an exclusive `flock` on `<database>-writelock` held around every write
    transaction (BEGIN IMMEDIATE .. COMMIT), by every process that writes (server workers, admin
    commands).

    SQLite lets one writer in at a time; one that finds the database locked sleeps in its busy
    handler, in steps that grow to 100 ms, and tries again, so with several server processes a
    commit would often wait for a sleep rather than for the writer before it. Waiting in `flock`
    instead queues the writers in the kernel, and the next one wakes the moment the lock is
    released. The lock is the open file's, so each process opens its own (lazily: a Database made
    before `fork` still gets one per process) and a dead process's lock is released by the kernel.
    The thread lock keeps two threads of one process (writer thread, `write_sync`) in order too;
    the writer thread takes the lock again inside itself (batch, then a retry alone), so only the
    outermost hold takes and releases the flock.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._pid = 0
        self._threads = threading.RLock()
        self._depth = 0

    @staticmethod
    def for_url(url: str) -> WriteLock | contextlib.nullcontext:
        if not url.startswith("sqlite"):
            return contextlib.nullcontext()  # PostgreSQL queues writers itself, row by row
        database = make_url(url).database
        if not database or database == ":memory:" or database.startswith("file:"):
            return contextlib.nullcontext()
        return WriteLock(database + "-writelock")

    def __enter__(self) -> None:
        self._threads.acquire()
        if self._depth == 0:
            try:
                if self._fd is None or self._pid != os.getpid():
                    self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                    self._pid = os.getpid()
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except BaseException:
                self._threads.release()
                raise
        self._depth += 1

    def __exit__(self, *exc_info) -> None:
        self._depth -= 1
        try:
            if self._depth == 0:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()


class Checkpointer:
    """SQLite only: copies the WAL back into the database file from a background thread.

    With automatic checkpoints off for the writer, a commit costs one WAL fsync and never stalls
    on a checkpoint (seen as 200 ms pauses under SMTP load before this). A PASSIVE checkpoint does
    not block readers or the writer.

    But SQLite only starts the WAL over when a write begins while every frame has been copied,
    and under unbroken writes a PASSIVE checkpoint never wins that race: 6,000 messages of 100 KB
    left a 715 MB WAL beside a 587 MB database (and every read searches a WAL index that grows
    with it). So once the WAL passes `RESTART_BYTES`, a RESTART checkpoint follows the passive
    one. It holds writers back only while it copies what arrived since the passive run, then the
    next write starts at the beginning of the file again, overwriting blocks it already has
    (appending to a truncated file would add metadata updates to every commit's fsync). It waits
    at most `RESTART_WAIT_MS` for readers still using the WAL, then gives up until the next
    interval rather than keep writers waiting.
    """

    INTERVAL = 1.0
    RESTART_BYTES = 64 * 1024 * 1024
    RESTART_WAIT_MS = 20

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.restarts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.INTERVAL):
            self.checkpoint()

    def checkpoint(self) -> None:
        try:
            conn = self.engine.raw_connection()  # outside any transaction, as checkpoints must be
            try:
                cursor = conn.cursor()
                _, frames, _ = cursor.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                page_size = cursor.execute("PRAGMA page_size").fetchone()[0]
                if frames * page_size > self.RESTART_BYTES:
                    self._truncate(cursor)
            finally:
                conn.close()
        except Exception:
            log.warning("WAL checkpoint failed; will retry", exc_info=True)

    def _truncate(self, cursor) -> None:
        (timeout,) = cursor.execute("PRAGMA busy_timeout").fetchone()
        cursor.execute(f"PRAGMA busy_timeout={self.RESTART_WAIT_MS}")
        try:
            busy, _, _ = cursor.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
            self.restarts += not busy
        finally:
            cursor.execute(f"PRAGMA busy_timeout={timeout}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.checkpoint()


@dataclass(frozen=True)
class _Lazy:
    """Marks a pending write that need not wait for an fsync (see `Database.write_lazy`)."""

    fn: Callable[..., Any]

    def __call__(self, tx: Tx, *args: Any) -> Any:
        return self.fn(tx, *args)


@dataclass(frozen=True)
class _Batched:
    """Marks a pending write whose function takes a list of items (see `Database.write_batched`)."""

    batch_fn: Callable[[Tx, list], list]

    def __call__(self, tx: Tx, item: Any) -> Any:
        return self.batch_fn(tx, [item])[0]


def _is_retryable(exc: OperationalError) -> bool:
    text = str(exc).lower()
    return any(word in text for word in ("deadlock", "could not serialize", "database is locked", "busy"))


def _resolve_all(results) -> None:
    for future, result, error, callbacks in results:
        if error is None:
            for callback in callbacks:
                try:
                    callback()
                except Exception:  # a notification failing must not lose the caller's result
                    log.exception("after-commit callback failed")
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


__all__ = [
    "AliasLoop",
    "AlreadyExists",
    "Database",
    "NotFound",
    "OverQuota",
    "StoreError",
    "Tx",
]
