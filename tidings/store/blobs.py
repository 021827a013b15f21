"""Message bodies, content-addressed by SHA-256 and stored once however many mailboxes hold them.

Two places, one interface:
- Bodies up to `inline_limit` (most mail) live in the `blob_data` table and are written *in the same
  transaction* that references them, so the group commit's one fsync makes body and delivery durable
  together. Measured here: a batch of 20 deliveries costs 1.2 ms that way against 3.7-3.9 ms for 20
  fsynced files (plus the commit's own fsync), which is what lets SMTP acknowledge at disk speed.
- Larger bodies are files `blobs/ab/cdef…`, written to a temporary file, fsynced, renamed into place
  and their directory fsynced *before* the transaction that references them commits.

Callers use `prepare` (before the write transaction), `insert_rows` (inside it) and `get`.
With PostgreSQL several nodes share inline bodies through the database; large ones need a shared
`blob_dir`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import bindparam, false, func, select
from sqlalchemy.dialects import postgresql, sqlite

from tidings.store import schema as s
from tidings.store.database import Database, NotFound, Tx

DEFAULT_INLINE_LIMIT = 512 * 1024

# hashlib lets go of the GIL while it hashes 2 KiB or more at once. On the event loop that is a trap:
# the hash of a 5 KB body takes microseconds, but taking the GIL back from the writer thread (or any
# other busy thread) can take up to the switch interval. Measured on the loop under smtp-source -d
# (5 KB): 23-39 us per hash on average, 1 in 100 over 60-730 us; fed in pieces below the threshold,
# 10-13 us and under 45 us.
_GIL_KEEPING_PIECE = 2047


_SELECT_BODY = select(s.blob_data.c.data).where(s.blob_data.c.hash == bindparam("hash"))
_INSERT_BODY_SQLITE = sqlite.insert(s.blob_data).on_conflict_do_nothing(index_elements=["hash"])
# On PostgreSQL an existing body is locked (DO UPDATE ... WHERE false writes nothing but locks the
# row) until the delivery referencing it commits: compaction locks before it looks for references
# (compaction._drop_inline), so it either waits for this commit and sees the reference, or removes
# the row first and this insert then writes it anew. DO NOTHING would take no lock, and a body
# compaction found unreferenced could be deleted under an uncommitted delivery. SQLite needs none
# of this: its write transactions never overlap.
_INSERT_BODY_PG = postgresql.insert(s.blob_data)
_INSERT_BODY_PG = _INSERT_BODY_PG.on_conflict_do_update(
    index_elements=["hash"], set_={"hash": _INSERT_BODY_PG.excluded.hash}, where=false()
)


class FileBlobs:
    """Content-addressed files, each made durable on its own."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._tmp = self.root / "tmp"
        self._tmp.mkdir(exist_ok=True)
        self._known_dirs: set[str] = set()

    def path_of(self, digest: str) -> Path:
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise ValueError(f"not a blob id: {digest!r}")
        return self.root / digest[:2] / digest[2:]

    def put(self, digest: str, data: bytes) -> None:
        final = self.path_of(digest)
        if _has_size(final, len(data)):
            # A new reference is about to be committed: make the file young again so compaction,
            # which spares recent files, cannot remove it in between (see `remove_if_stale`).
            try:
                os.utime(final)
                return
            except FileNotFoundError:
                pass  # compaction took it away just now: write it again
        directory = final.parent
        if digest[:2] not in self._known_dirs:
            directory.mkdir(exist_ok=True)
            _fsync_dir(self.root)
            self._known_dirs.add(digest[:2])
        tmp = self._tmp / f"{digest}.{os.getpid()}.{id(data)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        _fsync_dir(directory)

    def get(self, digest: str) -> bytes | None:
        try:
            return self.path_of(digest).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path_of(digest).unlink()

    def remove_if_stale(self, digest: str, cutoff: float) -> int | None:
        """Remove a body file that nothing referenced when compaction looked, unless a delivery has
        touched it (`put`) since `cutoff`; returns the size removed, or None if it stays.

        A delivery touches the file and then commits its reference, possibly after compaction
        found none. So the file is first renamed out of place, atomically, and only then is its
        time read: a touch before the rename shows (the file goes back), a `put` after it finds no
        file and writes it anew. Works across nodes sharing `blob_dir`, on a local file system.
        """
        final = self.path_of(digest)
        taken = self._tmp / f"{digest}.compacting.{os.getpid()}"
        try:
            os.rename(final, taken)
        except FileNotFoundError:
            return None
        stat = os.stat(taken)
        if stat.st_mtime >= cutoff:
            with contextlib.suppress(FileExistsError):  # a `put` may have written it again meanwhile
                os.link(taken, final)
            os.unlink(taken)
            return None
        os.unlink(taken)
        return stat.st_size

    def usage_bytes(self) -> int:
        total = 0
        for sub in self.root.iterdir():
            if len(sub.name) == 2 and sub.is_dir():
                total += sum(f.stat().st_size for f in sub.iterdir())
        return total


class BlobStore:
    def __init__(self, root: Path, db: Database, inline_limit: int = DEFAULT_INLINE_LIMIT) -> None:
        self.files = FileBlobs(root)
        self.db = db
        self.inline_limit = inline_limit
        self._pool = ThreadPoolExecutor(8, thread_name_prefix="blob")

    @staticmethod
    def hash_of(data: bytes) -> str:
        """SHA-256, letting other threads run meanwhile (for big bodies, in a worker thread)."""
        return hashlib.sha256(data).hexdigest()

    @staticmethod
    def hash_on_loop(data: bytes) -> str:
        """SHA-256 of a small body without letting go of the GIL (see `_GIL_KEEPING_PIECE`)."""
        digest = hashlib.sha256()
        view = memoryview(data)
        for start in range(0, len(view), _GIL_KEEPING_PIECE):
            digest.update(view[start : start + _GIL_KEEPING_PIECE])
        return digest.hexdigest()

    def is_inline(self, data: bytes) -> bool:
        return len(data) <= self.inline_limit

    async def prepare(self, data: bytes) -> str:
        """Hash `data`; a large body is written to its durable file now. Then call `insert_rows`.

        A large body is hashed in the file thread too: hashing 50 MB takes over 100 ms, and
        hashlib releases the GIL, so the loop keeps serving everyone else meanwhile."""
        if self.is_inline(data):
            return self.hash_on_loop(data)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._hash_and_put, data)

    def _hash_and_put(self, data: bytes) -> str:
        digest = self.hash_of(data)
        self.files.put(digest, data)
        return digest

    def insert_rows(self, tx: Tx, items: list[tuple[str, bytes]]) -> None:
        """Inside a write transaction: store the inline bodies among `items` (hash, data) once each."""
        rows = {digest: data for digest, data in items if self.is_inline(data)}
        if not rows:
            return
        # In hash order: concurrent deliveries on PostgreSQL lock shared bodies in the same order.
        values = [{"hash": digest, "data": rows[digest]} for digest in sorted(rows)]
        tx.conn.execute(_INSERT_BODY_PG if tx.is_postgres else _INSERT_BODY_SQLITE, values)

    async def put(self, data: bytes) -> str:
        """Store one body durably on its own (outside any other write). Returns its hash."""
        digest = await self.prepare(data)
        if self.is_inline(data):
            await self.db.write(self.insert_rows, [(digest, data)])
        return digest

    async def get(self, digest: str) -> bytes:
        """The body, from the database (small ones), else from its file, read in a file thread:
        reading tens of megabytes must not hold up the loop."""
        data = await self.db.read(self._read_inline, digest)
        if data is None:
            loop = asyncio.get_running_loop()
            data = await loop.run_in_executor(self._pool, self.files.get, digest)
        if data is None:
            raise NotFound(f"message body {digest} is missing")
        return data

    def get_sync(self, digest: str) -> bytes:
        return self.db.read_sync(self._read_body, digest)

    def _read_inline(self, tx: Tx, digest: str) -> bytes | None:
        row = tx.conn.execute(_SELECT_BODY, {"hash": digest}).first()
        return None if row is None else bytes(row.data)

    def _read_body(self, tx: Tx, digest: str) -> bytes:
        data = self._read_inline(tx, digest)
        if data is None:
            data = self.files.get(digest)
        if data is None:
            raise NotFound(f"message body {digest} is missing")
        return data

    def usage_bytes(self) -> int:
        inline = self.db.read_sync(
            lambda tx: tx.conn.execute(
                select(func.coalesce(func.sum(func.length(s.blob_data.c.data)), 0))
            ).scalar()
        )
        return int(inline) + self.files.usage_bytes()

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _has_size(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except FileNotFoundError:
        return False


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["BlobStore", "FileBlobs"]
