"""Compaction removes contents nothing refers to and keeps everything still in use."""

from __future__ import annotations

import os
import time

from tidings.store import Envelope
from tidings.store.blobs import BlobStore
from tidings.store.compaction import GRACE_SECONDS, compact

SMALL = b"Subject: small\r\n\r\nhello\r\n"


def test_expunged_contents_are_removed_and_shared_ones_kept(store, run):
    run(store.accounts.add_domain("example.org"))
    bob = run(store.accounts.add_user("bob@example.org", "secret pass 1"))
    inbox = run(store.mailboxes.get(bob.id, "INBOX"))
    archive = run(store.mailboxes.get(bob.id, "Archive"))
    run(store.mailboxes.append(bob.id, inbox.id, SMALL))
    run(store.mailboxes.append(bob.id, inbox.id, SMALL + b"other"))
    run(store.mailboxes.copy(bob.id, inbox.id, [1], archive.id))
    queued = run(
        store.delivery.accept(
            Envelope(sender="bob@example.org", remote=[("x@remote.test", None, None)]), SMALL + b"queued"
        )
    )
    run(store.mailboxes.store_flags(bob.id, inbox.id, [1, 2], "add", ["\\Deleted"]))
    run(store.mailboxes.expunge(bob.id, inbox.id))

    report = run(compact(store.db, store.blobs))

    assert report.messages == 1 and report.inline_bodies == 1
    assert run(store.blobs.get(BlobStore.hash_of(SMALL))) == SMALL  # still in Archive
    assert run(store.blobs.get(queued.blob_hash)) == SMALL + b"queued"  # still queued
    again = run(compact(store.db, store.blobs))
    assert (again.messages, again.inline_bodies, again.files) == (0, 0, 0)


def test_old_unreferenced_files_go_recent_ones_stay(store, run):
    big = b"Subject: big\r\n\r\n" + os.urandom(store.blobs.inline_limit)
    digest = run(store.blobs.prepare(big))  # a file, never committed anywhere
    path = store.blobs.files.path_of(digest)
    assert run(compact(store.db, store.blobs)).files == 0  # could be an acceptance in progress
    old = time.time() - GRACE_SECONDS - 10
    os.utime(path, (old, old))
    report = run(compact(store.db, store.blobs))
    assert report.files == 1 and report.bytes_freed >= len(big)
    assert not path.exists()


def _uncommitted_delivery(store, raw: bytes):
    """Start a real acceptance of `raw` for bob and stop before its commit: the body is prepared
    (file written or touched) and the rows are written in an open transaction. Returns a function
    that commits it."""
    from tidings.store.database import Tx
    from tidings.store.delivery import _Accepted

    async def begin():
        digest = await store.blobs.prepare(raw)
        conn = store.db.write_engine.connect()
        transaction = conn.begin()
        item = _Accepted(Envelope(sender="s@remote.test", local=["bob@example.org"]), raw, digest, True)
        [result] = store.delivery._accept_many(Tx(conn, store.db.is_postgres), [item])
        assert result.delivered == ["bob@example.org"]

        def commit():
            transaction.commit()
            conn.close()

        return digest, commit

    return begin()


def _bob(store, run):
    run(store.accounts.add_domain("example.org"))
    return run(store.accounts.add_user("bob@example.org", "secret pass 1"))


def test_an_inline_body_an_uncommitted_delivery_reuses_survives_compaction(store, run):
    """The delivery reuses an unreferenced body row and has not committed when compaction runs."""
    import asyncio

    bob = _bob(store, run)
    digest = run(store.blobs.put(SMALL))  # a body row nothing refers to (its message was expunged)

    async def race():
        digest_again, commit = await _uncommitted_delivery(store, SMALL)
        assert digest_again == digest
        compaction = asyncio.ensure_future(compact(store.db, store.blobs))
        await asyncio.sleep(1.0)  # compaction finishes, or waits for the delivery's lock
        commit()
        return await asyncio.wait_for(compaction, 30)

    run(race())
    inbox = run(store.mailboxes.get(bob.id, "INBOX"))
    _, refs = run(store.mailboxes.messages(bob.id, inbox.id))
    assert [ref.blob_hash for ref in refs] == [digest]
    assert run(store.blobs.get(digest)) == SMALL  # before the fix (PostgreSQL): NotFound


def test_a_body_file_touched_after_compactions_reference_check_survives(store, run, monkeypatch):
    """Compaction has found an old file unreferenced; then a delivery of the same body touches it
    and commits after compaction's removal step: the file must still be there."""
    from tidings.store import compaction

    bob = _bob(store, run)
    big = b"Subject: big\r\n\r\n" + os.urandom(store.blobs.inline_limit)
    digest = run(store.blobs.prepare(big))
    path = store.blobs.files.path_of(digest)
    old = time.time() - GRACE_SECONDS - 10
    os.utime(path, (old, old))  # left over from a message expunged long ago
    referenced = compaction._referenced

    def check_then_a_delivery_touches(tx, hashes):
        found = referenced(tx, hashes)
        store.blobs.files.put(digest, big)  # the delivery's prepare, between check and removal
        return found

    monkeypatch.setattr(compaction, "_referenced", check_then_a_delivery_touches)
    report = run(compact(store.db, store.blobs))
    monkeypatch.undo()
    assert report.files == 0 and path.exists()  # before the fix: deleted

    # The delivery commits its reference without writing the file again; the body reads back.
    async def deliver():
        _, commit = await _uncommitted_delivery(store, big)
        commit()

    run(deliver())
    inbox = run(store.mailboxes.get(bob.id, "INBOX"))
    _, refs = run(store.mailboxes.messages(bob.id, inbox.id))
    assert run(store.blobs.get(refs[0].blob_hash)) == big
    # Referenced now: later compactions keep it.
    assert run(compact(store.db, store.blobs)).files == 0


def test_a_compaction_interrupted_mid_removal_puts_the_file_back(store, run):
    big = b"Subject: big\r\n\r\n" + os.urandom(store.blobs.inline_limit)
    digest = run(store.blobs.prepare(big))
    path = store.blobs.files.path_of(digest)
    os.rename(path, store.blobs.files.root / "tmp" / f"{digest}.compacting.12345")  # crash here
    run(compact(store.db, store.blobs))
    assert path.read_bytes() == big
