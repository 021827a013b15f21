"""Content-addressed message bodies on disk: `blobs/ab/cdef…` named by SHA-256.

A blob is written to a temporary file, fsynced, renamed into place and its directory fsynced before
`put` returns, so a message acknowledged after `put` survives `kill -9` and power loss. Identical
bodies (one message to many recipients, a copy into another mailbox) are stored once.

Blob I/O runs in a thread pool: concurrent fsyncs are merged by the filesystem's journal, which is
what lets many SMTP sessions be acknowledged per disk flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._tmp = self.root / "tmp"
        self._tmp.mkdir(exist_ok=True)
        self._pool = ThreadPoolExecutor(16, thread_name_prefix="blob")
        self._known_dirs: set[str] = set()

    @staticmethod
    def hash_of(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    def path_of(self, digest: str) -> Path:
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise ValueError(f"not a blob id: {digest!r}")
        return self.root / digest[:2] / digest[2:]

    async def put(self, data: bytes) -> str:
        """Store `data` durably; return its hash."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.put_sync, data)

    def put_sync(self, data: bytes) -> str:
        digest = self.hash_of(data)
        final = self.path_of(digest)
        if final.exists():
            return digest
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
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        _fsync_dir(directory)
        return digest

    async def get(self, digest: str) -> bytes:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.get_sync, digest)

    def get_sync(self, digest: str) -> bytes:
        return self.path_of(digest).read_bytes()

    def exists(self, digest: str) -> bool:
        return self.path_of(digest).exists()

    def delete(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path_of(digest).unlink()

    def all_hashes(self):
        """Every stored blob id (for compaction of unreferenced blobs)."""
        for sub in self.root.iterdir():
            if len(sub.name) == 2 and sub.is_dir():
                for f in sub.iterdir():
                    yield sub.name + f.name

    def usage_bytes(self) -> int:
        total = 0
        for sub in self.root.iterdir():
            if len(sub.name) == 2 and sub.is_dir():
                total += sum(f.stat().st_size for f in sub.iterdir())
        return total

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
