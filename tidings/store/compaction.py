"""Compaction: forget message contents no mailbox and no queue entry refers to any more.

Expunging removes a message from a mailbox, not its content: the same body may sit in other
mailboxes or wait in the queue, and a QRESYNC client may still ask about the UID (that is the
`expunged` table, kept). Compaction removes, in this order so that a crash between steps only
leaves garbage for the next run, never a dangling reference:

1. `messages` rows (parsed summaries) that no mailbox holds, with their full-text index entries;
2. inline bodies (`blob_data`) and body files that neither `messages` nor `queue` refer to.

A body accepted but not yet committed has no row yet, and its delivery may commit after compaction
has looked for references. Body files: a delivery touches the file (`FileBlobs.put`) before it
commits, and compaction removes only files not touched within `GRACE_SECONDS`, checking the time
after it has atomically taken the file away (`FileBlobs.remove_if_stale`), so a touch between the
reference check and the removal keeps it. Inline bodies: on SQLite write transactions never
overlap; on PostgreSQL the delivery holds a row lock on a body it reuses, and compaction takes
that lock before it looks for references (`_drop_inline`).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass

from sqlalchemy import delete, exists, func, select

from tidings.store import schema as s
from tidings.store.blobs import BlobStore
from tidings.store.database import Database, Tx
from tidings.store.search import forget as forget_words

GRACE_SECONDS = 3600.0
CHUNK = 500


@dataclass(frozen=True)
class CompactionReport:
    messages: int
    inline_bodies: int
    files: int
    bytes_freed: int


def _orphan_messages(tx: Tx) -> list[int]:
    m, mm = s.messages, s.mailbox_messages
    return list(
        tx.conn.execute(
            select(m.c.id).where(~exists().where(mm.c.message_id == m.c.id)).limit(CHUNK)
        ).scalars()
    )


def _referenced(tx: Tx, hashes: list[str]) -> set[str]:
    m, q = s.messages, s.queue
    found = set(tx.conn.execute(select(m.c.blob_hash).where(m.c.blob_hash.in_(hashes))).scalars())
    found |= set(tx.conn.execute(select(q.c.blob_hash).where(q.c.blob_hash.in_(hashes))).scalars())
    return found


def _drop_messages(tx: Tx, ids: list[int]) -> int:
    m, mm = s.messages, s.mailbox_messages
    # Re-checked inside the write: a copy may have referenced one since the read.
    orphans = list(
        tx.conn.execute(
            select(m.c.id).where(m.c.id.in_(ids), ~exists().where(mm.c.message_id == m.c.id))
        ).scalars()
    )
    if not orphans:
        return 0
    forget_words(tx, orphans)
    return tx.conn.execute(delete(m).where(m.c.id.in_(orphans))).rowcount


def _unreferenced_inline_page(tx: Tx, after: str) -> tuple[str | None, dict[str, int]]:
    """The next page of inline bodies after `after`: (its last hash, or None past the end; the
    sizes of the page's bodies nothing referred to when read). Only those are handed to a write,
    which checks again: on a store where almost every body is in use, a write (a commit and the
    write lock) per page made compaction of 100,000 bodies take 11 s alone and 30-140 s under
    load, holding up deliveries on every page."""
    b = s.blob_data
    rows = tx.conn.execute(
        select(b.c.hash, func.length(b.c.data)).where(b.c.hash > after).order_by(b.c.hash).limit(CHUNK)
    ).all()
    if not rows:
        return None, {}
    referenced = _referenced(tx, [digest for digest, _ in rows])
    return rows[-1][0], {digest: size for digest, size in rows if digest not in referenced}


def _drop_inline(tx: Tx, hashes: list[str]) -> list[str]:
    if tx.is_postgres:
        # Lock first, then look: a delivery holding one of these bodies (blobs.insert_rows) commits
        # before the lock is granted, and the next statement's snapshot sees its reference.
        b = s.blob_data
        hashes = list(
            tx.conn.execute(
                select(b.c.hash).where(b.c.hash.in_(hashes)).order_by(b.c.hash).with_for_update()
            ).scalars()
        )
        if not hashes:
            return []
    referenced = _referenced(tx, hashes)
    unused = [h for h in hashes if h not in referenced]
    if unused:
        tx.conn.execute(delete(s.blob_data).where(s.blob_data.c.hash.in_(unused)))
    return unused


async def compact(db: Database, blobs: BlobStore) -> CompactionReport:
    # Reads in a worker thread and writes that do not wait for an fsync: this is background work
    # (a removal lost in a power cut leaves garbage for the next run, never a dangling reference).
    messages_removed = 0
    while ids := await db.read_in_thread(_orphan_messages):
        removed = await db.write_lazy(_drop_messages, ids)
        messages_removed += removed
        if removed == 0:
            break

    inline_removed = 0
    freed = 0
    after: str | None = ""
    while after is not None:
        after, sizes = await db.read_in_thread(_unreferenced_inline_page, after)
        if sizes:
            unused = await db.write_lazy(_drop_inline, list(sizes))
            inline_removed += len(unused)
            freed += sum(sizes[h] for h in unused)

    files_removed = 0
    now = time.time()
    cutoff = now - GRACE_SECONDS
    candidates = []
    for sub in sorted(blobs.files.root.iterdir()):
        if len(sub.name) != 2 or not sub.is_dir():
            continue
        for path in sub.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    candidates.append(sub.name + path.name)
    for start in range(0, len(candidates), CHUNK):
        chunk = candidates[start : start + CHUNK]
        referenced = await db.read_in_thread(_referenced, chunk)
        for digest in chunk:
            # A delivery may touch the file now and commit its reference later: remove_if_stale
            # keeps a file touched since the cutoff.
            if digest not in referenced and (size := blobs.files.remove_if_stale(digest, cutoff)) is not None:
                files_removed += 1
                freed += size
    _sweep_temp(blobs, now)
    return CompactionReport(messages_removed, inline_removed, files_removed, freed)


def _sweep_temp(blobs: BlobStore, now: float) -> None:
    """Temporary files of writes that a crash interrupted."""
    tmp = blobs.files.root / "tmp"
    for path in tmp.iterdir():
        if ".compacting." in path.name:
            # A compaction that crashed inside remove_if_stale: put the file back, to be judged
            # again next time.
            with contextlib.suppress(OSError):
                os.link(path, blobs.files.path_of(path.name.split(".", 1)[0]))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            continue
        try:
            if now - path.stat().st_mtime > GRACE_SECONDS:
                os.unlink(path)
        except FileNotFoundError:
            pass
