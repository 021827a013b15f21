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
