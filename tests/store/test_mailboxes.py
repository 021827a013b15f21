"""Mailboxes and messages: UIDs, modseqs, flags, copy/move/expunge, quota, change events."""

from __future__ import annotations

import pytest

from tidings.notify import Change
from tidings.store import AlreadyExists, NotFound, OverQuota, Store, StoreError
from tidings.store.mailboxes import _DELETED_UIDS

MESSAGE = b"From: a@example.org\r\nTo: bob@example.org\r\nSubject: hello\r\n\r\nbody\r\n"


@pytest.fixture
def bob(store, run):
    run(store.accounts.add_domain("example.org"))
    return run(store.accounts.add_user("bob@example.org", "secret pass 1", quota_bytes=10_000))


def test_append_assigns_increasing_uids_and_modseqs(store, run, bob):
    inbox = run(store.mailboxes.get(bob.id, "inbox"))
    first = run(store.mailboxes.append(bob.id, inbox.id, MESSAGE, ["\\Seen"]))
    second = run(store.mailboxes.append(bob.id, inbox.id, MESSAGE + b"2"))
    assert first == (inbox.uidvalidity, 1) and second == (inbox.uidvalidity, 2)
    box, refs = run(store.mailboxes.messages(bob.id, inbox.id))
    assert [r.uid for r in refs] == [1, 2]
    assert refs[0].flags == {"\\Seen"} and refs[1].flags == frozenset()
    assert refs[0].modseq < refs[1].modseq <= box.highestmodseq
    assert box.uidnext == 3


def test_identical_content_is_stored_once(store, run, bob):
    inbox = run(store.mailboxes.get(bob.id, "INBOX"))
    run(store.mailboxes.append(bob.id, inbox.id, MESSAGE))
    run(store.mailboxes.append(bob.id, inbox.id, MESSAGE))
    _, refs = run(store.mailboxes.messages(bob.id, inbox.id))
    assert refs[0].message_id == refs[1].message_id
    assert refs[0].blob_hash == refs[1].blob_hash
    assert store.blobs.get_sync(refs[0].blob_hash) == MESSAGE


def test_flags_changes_report_only_real_changes_and_honour_unchangedsince(store, run, bob):
    inbox = run(store.mailboxes.get(bob.id, "INBOX"))
    run(store.mailboxes.append(bob.id, inbox.id, MESSAGE))
    run(store.mailboxes.append(bob.id, inbox.id, MESSAGE + b"x"))
    changed, refused = run(store.mailboxes.store_flags(bob.id, inbox.id, [1], "add", ["\\seen", "$Label"]))
    assert [r.uid for r in changed] == [1] and refused == []
    assert changed[0].flags == {"\\Seen", "$Label"}
    again, _ = run(store.mailboxes.store_flags(bob.id, inbox.id, [1], "add", ["\\Seen"]))
    assert again == []
    _, refused = run(
        store.mailboxes.store_flags(
            bob.id, inbox.id, [1, 2], "replace", ["\\Flagged"], unchanged_since=changed[0].modseq - 1
        )
    )
    assert refused == [1]


def test_expunge_removes_deleted_messages_and_remembers_them_for_qresync(store, run, bob):
    inbox = run(store.mailboxes.get(bob.id, "INBOX"))
    for i in range(3):
        run(store.mailboxes.append(bob.id, inbox.id, MESSAGE + bytes([48 + i])))
    before = run(store.mailboxes.get(bob.id, "INBOX")).highestmodseq
    run(store.mailboxes.store_flags(bob.id, inbox.id, [1, 3], "add", ["\\Deleted"]))
    assert run(store.mailboxes.expunge(bob.id, inbox.id, uids=[3])) == [3]
    assert run(store.mailboxes.expunge(bob.id, inbox.id)) == [1]
    changes = run(store.mailboxes.changes_since(bob.id, inbox.id, before))
    assert changes.expunged == [1, 3]
    assert changes.highestmodseq > before


@pytest.mark.sqlite_only
def test_expunge_finds_the_deleted_entries_through_their_index_not_by_reading_the_mailbox(store, run, bob):
    """SQLite uses a partial index only when the query repeats its condition word for word; a
    scan of a 100,000-message mailbox held the write lock for every writer (100+ ms)."""
    inbox = run(store.mailboxes.get(bob.id, "INBOX"))
    with store.db.read_engine.connect() as conn:
        query = _DELETED_UIDS.compile(conn)
        plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(query), (inbox.id,)).all()
    assert "USING INDEX ix_mailbox_messages_deleted" in " ".join(str(row[-1]) for row in plan)


@pytest.mark.parametrize("changes", [3, 150])  # folded in one by one / in one pass over the list
def test_a_kept_snapshot_is_brought_up_to_date_with_what_changed_since(store, run, changes):
    run(store.accounts.add_domain("example.org"))
    carol = run(store.accounts.add_user("carol@example.org", "secret pass 1"))
    inbox = run(store.mailboxes.get(carol.id, "INBOX"))
    items = [(MESSAGE + b"%d" % i, [], None) for i in range(200)]
    run(store.mailboxes.append_many(carol.id, inbox.id, items))
    run(store.mailboxes.messages(carol.id, inbox.id))  # kept at this HIGHESTMODSEQ
    run(store.mailboxes.store_flags(carol.id, inbox.id, range(1, changes + 1), "add", ["\\Seen"]))
    run(store.mailboxes.store_flags(carol.id, inbox.id, range(100, 100 + changes, 2), "add", ["\\Deleted"]))
    run(store.mailboxes.expunge(carol.id, inbox.id))
    run(store.mailboxes.append(carol.id, inbox.id, MESSAGE + b"new", ["$Label"]))
    run(store.mailboxes.store_flags(carol.id, inbox.id, [201], "add", ["\\Deleted"]))
    run(store.mailboxes.append(carol.id, inbox.id, MESSAGE + b"newer"))
    run(store.mailboxes.expunge(carol.id, inbox.id))
    box, kept = run(store.mailboxes.messages(carol.id, inbox.id))
    fresh = Store.open(store.config)  # a second process: no snapshot of its own
    try:
        box_read, read = run(fresh.mailboxes.messages(carol.id, inbox.id))
    finally:
        fresh.close()
    assert box == box_read and kept == read
    assert [ref.uid for ref in kept][-1] == 202 and 201 not in {ref.uid for ref in kept}
    deleted = set(range(100, min(100 + changes, 201), 2))
    assert {ref.uid for ref in kept if "\\Seen" in ref.flags} == set(range(1, changes + 1)) - deleted


def test_copy_and_move_keep_flags_and_report_uid_pairs(store, run, bob):
    inbox = run(store.mailboxes.get(bob.id, "INBOX"))
    archive = run(store.mailboxes.get(bob.id, "Archive"))
    run(store.mailboxes.append(bob.id, inbox.id, MESSAGE, ["\\Flagged"]))
    validity, pairs = run(store.mailboxes.copy(bob.id, inbox.id, [1], archive.id))
    assert validity == archive.uidvalidity and pairs == [(1, 1)]
    _, pairs = run(store.mailboxes.copy(bob.id, inbox.id, [1], archive.id, move=True))
    assert pairs == [(1, 2)]
    assert run(store.mailboxes.messages(bob.id, inbox.id))[1] == []
    refs = run(store.mailboxes.messages(bob.id, archive.id))[1]
    assert [r.flags for r in refs] == [{"\\Flagged"}, {"\\Flagged"}]


def test_quota_refuses_appends_beyond_it_and_expunge_gives_space_back(store, run, bob):
    inbox = run(store.mailboxes.get(bob.id, "INBOX"))
    big = b"Subject: big\r\n\r\n" + b"x" * 6000
    run(store.mailboxes.append(bob.id, inbox.id, big))
    with pytest.raises(OverQuota):
        run(store.mailboxes.append(bob.id, inbox.id, big + b"y"))
    assert run(store.accounts.get_user("bob@example.org")).used_bytes == len(big)
    run(store.mailboxes.store_flags(bob.id, inbox.id, [1], "add", ["\\Deleted"]))
    run(store.mailboxes.expunge(bob.id, inbox.id))
    assert run(store.accounts.get_user("bob@example.org")).used_bytes == 0
    run(store.mailboxes.append(bob.id, inbox.id, big + b"y"))


def test_create_rename_delete_mailboxes(store, run, bob):
    boxes = store.mailboxes
    run(boxes.create(bob.id, "Work/Projects/2026"))
    names = {m.name for m in run(boxes.list(bob.id))}
    assert {"Work", "Work/Projects", "Work/Projects/2026"} <= names
    with pytest.raises(AlreadyExists):
        run(boxes.create(bob.id, "Work"))
    run(boxes.rename(bob.id, "Work", "Job"))
    names = {m.name for m in run(boxes.list(bob.id))}
    assert {"Job", "Job/Projects", "Job/Projects/2026"} <= names and "Work" not in names
    run(boxes.delete(bob.id, "Job/Projects/2026"))
    with pytest.raises(NotFound):
        run(boxes.get(bob.id, "Job/Projects/2026"))
    with pytest.raises(StoreError):
        run(boxes.delete(bob.id, "INBOX"))
    for bad in ("", "a//b", "x/", "bad*name", "tab\tname"):
        with pytest.raises(StoreError):
            run(boxes.create(bob.id, bad))


def test_renaming_inbox_moves_its_messages_and_keeps_an_empty_inbox(store, run, bob):
    inbox = run(store.mailboxes.get(bob.id, "INBOX"))
    run(store.mailboxes.append(bob.id, inbox.id, MESSAGE))
    run(store.mailboxes.rename(bob.id, "INBOX", "Old"))
    old = run(store.mailboxes.get(bob.id, "Old"))
    assert len(run(store.mailboxes.messages(bob.id, old.id))[1]) == 1
    assert run(store.mailboxes.messages(bob.id, inbox.id))[1] == []


def test_uidvalidity_of_a_recreated_mailbox_differs(store, run, bob):
    first = run(store.mailboxes.create(bob.id, "Temp"))
    run(store.mailboxes.delete(bob.id, "Temp"))
    second = run(store.mailboxes.create(bob.id, "Temp"))
    assert second.uidvalidity > first.uidvalidity


def test_changes_are_published_after_commit(store, run, bob):
    seen: list[Change] = []
    store.hub.subscribe(bob.id, seen.append)
    inbox = run(store.mailboxes.get(bob.id, "INBOX"))
    run(store.mailboxes.append(bob.id, inbox.id, MESSAGE))
    assert seen and seen[-1].mailbox_id == inbox.id and seen[-1].kind == "message"


def test_accept_delivers_locally_and_queues_remote_in_one_step(store, run, bob):
    from tidings.store import Envelope

    result = run(
        store.delivery.accept(
            Envelope(
                sender="a@remote.test", local=["bob@example.org"], remote=[("x@remote.test", None, None)]
            ),
            MESSAGE,
        )
    )
    assert result.delivered == ["bob@example.org"] and result.queue_id is not None
    inbox = run(store.mailboxes.get(bob.id, "INBOX"))
    assert len(run(store.mailboxes.messages(bob.id, inbox.id))[1]) == 1
    entry = run(store.queue.get(result.queue_id))
    assert [r.address for r in entry.pending] == ["x@remote.test"]


def test_many_concurrent_accepts_are_group_committed(store, run, bob):
    import asyncio

    from tidings.store import Envelope

    async def many():
        envs = [
            store.delivery.accept(
                Envelope(sender="a@remote.test", local=["bob@example.org"]), MESSAGE + str(i).encode()
            )
            for i in range(50)
        ]
        return await asyncio.gather(*envs)

    store.db.commits = 0
    results = run(many())
    assert all(r.delivered == ["bob@example.org"] for r in results)
    assert store.db.commits < 50
    inbox = run(store.mailboxes.get(bob.id, "INBOX"))
    assert [r.uid for r in run(store.mailboxes.messages(bob.id, inbox.id))[1]] == list(range(1, 51))


def test_status_counts_exact_flags_only(store, run, bob):
    inbox = run(store.mailboxes.get(bob.id, "INBOX"))
    run(store.mailboxes.append(bob.id, inbox.id, MESSAGE + b"1", ["\\Seen"]))
    run(store.mailboxes.append(bob.id, inbox.id, MESSAGE + b"2", ["$NotSeen", "\\Deleted"]))
    run(store.mailboxes.append(bob.id, inbox.id, MESSAGE + b"3", ["\\Seen", "\\Deleted", "Seen"]))
    status = run(store.mailboxes.status(bob.id, inbox.id))
    assert (status.messages, status.unseen, status.deleted, status.first_unseen_uid) == (3, 1, 2, 2)
    assert status.size == 3 * (len(MESSAGE) + 1)
    assert run(store.mailboxes.expunge(bob.id, inbox.id)) == [2, 3]


def test_an_unreadable_summary_is_analysed_again_and_saved(store, run, bob):
    from sqlalchemy import update

    from tidings.store import schema

    inbox = run(store.mailboxes.get(bob.id, "INBOX"))
    run(store.mailboxes.append(bob.id, inbox.id, MESSAGE))
    ref = run(store.mailboxes.messages(bob.id, inbox.id))[1][0]
    store.db.write_sync(lambda tx: tx.conn.execute(update(schema.messages).values(summary="{not json")))
    store.mailboxes._summary_cache = type(store.mailboxes._summary_cache)(10)
    summary = run(store.mailboxes.summaries(bob.id, [ref]))[ref.message_id]
    assert summary.subject == "hello"
    assert run(store.mailboxes.summaries_json(bob.id, [ref]))[ref.message_id].startswith("{")
    assert "not json" not in run(store.mailboxes.summaries_json(bob.id, [ref]))[ref.message_id]


def test_the_indexer_batch_analyses_inline_big_and_file_bodies_alike(store, run, bob):
    """index_pending reads small inline bodies with the batch and the others one by one: each
    message gets its own summary and columns, whichever way its body came."""
    import os

    from sqlalchemy import select

    from tidings.offload import HEAVY_BYTES
    from tidings.store import Envelope, schema

    run(store.accounts.set_quota("bob@example.org", None))
    bodies = {
        "small": MESSAGE.replace(b"hello", b"small"),
        # Inline but too big to come with the batch's list.
        "inline-big": MESSAGE.replace(b"hello", b"inline-big") + b"x" * HEAVY_BYTES + b"\r\n",
        # Over the inline limit: a file.
        "file": MESSAGE.replace(b"hello", b"file") + os.urandom(store.blobs.inline_limit) + b"\r\n",
    }
    for body in bodies.values():
        run(store.delivery.accept(Envelope(sender="a@remote.test", local=["bob@example.org"]), body))
    assert run(store.mailboxes.index_pending(10)) == 3
    assert run(store.mailboxes.index_pending(10)) == 0
    rows = store.db.read_sync(
        lambda tx: tx.conn.execute(select(schema.messages.c.subject, schema.messages.c.summary)).all()
    )
    assert sorted(r.subject for r in rows) == sorted(bodies)
    assert all(r.summary.startswith("{") for r in rows)
