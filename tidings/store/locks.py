"""Maildrop locks: which accounts' INBOX a POP3 session holds in TRANSACTION state on this node.

In the store package because the lock is a file in the data directory (protocol packages never
touch files or SQL themselves): tidings.pop3 asks for it at login and gives it back at QUIT.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class MaildropLocks:
    """Which maildrops have a session in TRANSACTION state on this node (RFC 1939 section 8: the
    server acquires an exclusive lock on the maildrop).

    Two locks, both needed: a set in this process, keyed by (database URL, account id) so that two
    servers in one process (tests) each have their own and two nodes on one database in one process
    share it; and, given a `lock_dir` (the data directory's `locks/`), an exclusive `flock` on
    `pop3-<account id>.lock` there, which the worker processes of one `tidings serve`
    (tidings.supervisor) share. The kernel releases a flock when its process dies, so a killed
    worker never leaves a maildrop locked. Across hosts on PostgreSQL the lock is per node (per
    data directory): two nodes can each have one session on the same maildrop.
    """

    def __init__(self) -> None:
        self._held: set[tuple[str, int]] = set()
        self._files: dict[tuple[str, int], int] = {}

    def acquire(self, database: str, account_id: int, lock_dir: Path | None = None) -> bool:
        key = (database, account_id)
        if key in self._held:
            return False
        if lock_dir is not None:
            fd = _lock_file(Path(lock_dir), account_id)
            if fd is None:
                return False
            self._files[key] = fd
        self._held.add(key)
        return True

    def release(self, database: str, account_id: int) -> None:
        key = (database, account_id)
        self._held.discard(key)
        fd = self._files.pop(key, None)
        if fd is not None:
            os.close(fd)  # closing the only descriptor of the open file releases its flock

    def held(self, database: str, account_id: int) -> bool:
        return (database, account_id) in self._held


def _lock_file(lock_dir: Path, account_id: int) -> int | None:
    """The open, flock'd lock file of the account's maildrop; None when another process holds it."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_dir / f"pop3-{account_id}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def lock_dir(data_dir: Path) -> Path:
    """Where a node keeps its lock files (shared by its worker processes)."""
    return Path(data_dir) / "locks"


LOCKS = MaildropLocks()
