"""A POP3 maildrop: the snapshot of an account's INBOX taken at login, and the per-node lock on it.

RFC 1939 section 5: message numbers are assigned at login and stay fixed for the session; messages
marked deleted are hidden from every command but stay numbered; nothing is removed before QUIT
(UPDATE state). This module only keeps that bookkeeping; it never touches the store itself.

Unique ids (UIDL, RFC 1939 section 7) are "<uidvalidity>.<uid>" of the INBOX: stable across sessions
and never reused for another message, as IMAP guarantees for the pair.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tidings.pop3.errors import Refused
from tidings.store.mailboxes import Mailbox, MessageRef


@dataclass
class MaildropMessage:
    number: int
    uid: int
    blob_hash: str
    size: int  # octets as stored (see the size note in session.py)
    unique_id: str
    deleted: bool = False
    retrieved: bool = False  # RETR sent it in full: marked \Seen at QUIT
    vanished: bool = False  # expunged by another session (IMAP) after our snapshot


class Maildrop:
    def __init__(self, account_id: int, mailbox: Mailbox, refs: Iterable[MessageRef]) -> None:
        self.account_id = account_id
        self.mailbox_id = mailbox.id
        # The store's modseq at the snapshot: later expunges are looked up relative to it.
        self.modseq = mailbox.highestmodseq
        self.messages = [
            MaildropMessage(number, ref.uid, ref.blob_hash, ref.size, f"{mailbox.uidvalidity}.{ref.uid}")
            for number, ref in enumerate(refs, start=1)
        ]
        self._by_uid = {m.uid: m for m in self.messages}

    def message(self, number: int) -> MaildropMessage:
        """The message with this number; -ERR if there is none or it is marked deleted."""
        if not 1 <= number <= len(self.messages):
            raise Refused(f"no message {number}")
        message = self.messages[number - 1]
        if message.deleted:
            raise Refused(f"message {number} is deleted")
        return message

    def present(self) -> list[MaildropMessage]:
        return [m for m in self.messages if not m.deleted]

    def totals(self) -> tuple[int, int]:
        """(count, octets) of the messages not marked deleted: STAT and the login reply."""
        present = self.present()
        return len(present), sum(m.size for m in present)

    def delete(self, number: int) -> None:
        self.message(number).deleted = True

    def reset(self) -> None:
        for message in self.messages:
            message.deleted = False

    def mark_vanished(self, uids: Iterable[int]) -> None:
        for uid in uids:
            message = self._by_uid.get(uid)
            if message is not None:
                message.vanished = True

    def deleted_uids(self) -> list[int]:
        return [m.uid for m in self.messages if m.deleted and not m.vanished]

    def seen_uids(self) -> list[int]:
        return [m.uid for m in self.messages if m.retrieved and not m.deleted and not m.vanished]


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
