"""Every store call that takes a mailbox or message id refuses another account's, changing nothing.

The store is where the data is, so it is where ownership is checked: a session that holds a stale
or foreign id (a bug, a removed account's session) must get "no such mailbox", not the data.
"""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import insert, select

from tidings.store import NotFound
from tidings.store import schema as s

MESSAGE = b"From: a@example.org\r\nTo: alice@example.org\r\nSubject: alice only\r\n\r\nsecret\r\n"


@pytest.fixture
def accounts(store, run):
    run(store.accounts.add_domain("example.org"))
    alice = run(store.accounts.add_user("alice@example.org", "secret pass 1"))
    bob = run(store.accounts.add_user("bob@example.org", "secret pass 2"))
    inbox = run(store.mailboxes.get(alice.id, "INBOX"))
    run(store.mailboxes.append(alice.id, inbox.id, MESSAGE, ["\\Flagged"]))
    run(store.mailboxes.store_flags(alice.id, inbox.id, [1], "add", ["\\Deleted"]))
    return alice, bob, inbox


def _state(store, run, alice, inbox):
    box, refs = run(store.mailboxes.messages(alice.id, inbox.id))
    return box.highestmodseq, box.uidnext, [(r.uid, r.flags, r.modseq) for r in refs]


CALLS = {
    "get_by_id": lambda m, bob, box: m.get_by_id(bob.id, box.id),
    "status": lambda m, bob, box: m.status(bob.id, box.id),
    "messages": lambda m, bob, box: m.messages(bob.id, box.id),
    "changes_since": lambda m, bob, box: m.changes_since(bob.id, box.id, 0),
    "store_flags": lambda m, bob, box: m.store_flags(bob.id, box.id, [1], "replace", []),
    "expunge": lambda m, bob, box: m.expunge(bob.id, box.id),
    "uid_expunge": lambda m, bob, box: m.expunge(bob.id, box.id, [1]),
    "delete_messages": lambda m, bob, box: m.delete_messages(bob.id, box.id, [1]),
    "append": lambda m, bob, box: m.append(bob.id, box.id, MESSAGE),
    "copy_from": lambda m, bob, box: m.copy(bob.id, box.id, [1], box.id + 1),
    "move_from": lambda m, bob, box: m.copy(bob.id, box.id, [1], box.id + 1, move=True),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_another_accounts_mailbox_id_is_refused_and_nothing_changes(store, run, accounts, call):
    alice, bob, inbox = accounts
    before = _state(store, run, alice, inbox)
    with pytest.raises(NotFound):
        run(CALLS[call](store.mailboxes, bob, inbox))
    assert _state(store, run, alice, inbox) == before


def test_copy_into_another_accounts_mailbox_is_refused(store, run, accounts):
    alice, bob, inbox = accounts
    bob_inbox = run(store.mailboxes.get(bob.id, "INBOX"))
    run(store.mailboxes.append(bob.id, bob_inbox.id, b"Subject: bob\r\n\r\nx\r\n"))
    before = _state(store, run, alice, inbox)
    with pytest.raises(NotFound):
        run(store.mailboxes.copy(bob.id, bob_inbox.id, [1], inbox.id))
    assert _state(store, run, alice, inbox) == before


def test_another_accounts_message_summary_is_not_served(store, run, accounts):
    alice, bob, inbox = accounts
    [ref] = run(store.mailboxes.messages(alice.id, inbox.id))[1]
    assert run(store.mailboxes.summaries(alice.id, [ref]))[ref.message_id].subject == "alice only"
    # From the database (the cache keyed by content is bypassed by a fresh one):
    store.mailboxes._summary_cache = type(store.mailboxes._summary_cache)(10)
    assert run(store.mailboxes.summaries(bob.id, [ref])) == {}
    assert run(store.mailboxes.summaries_json(bob.id, [ref])) == {}


def test_a_summary_is_never_served_for_other_content_under_the_same_message_id(store, run, accounts):
    """Even if a message id came back (a restored backup, a sequence reset), the cache and the read
    both check the content: a message id with a different content hash finds nothing."""
    alice, bob, inbox = accounts
    [ref] = run(store.mailboxes.messages(alice.id, inbox.id))[1]
    run(store.mailboxes.summaries(alice.id, [ref]))  # cached
    forged = dataclasses.replace(ref, blob_hash="f" * 64)
    assert run(store.mailboxes.summaries(alice.id, [forged])) == {}


def test_a_new_row_never_takes_a_deleted_rows_id(store, run, accounts):
    alice, bob, inbox = accounts

    def newest(tx):
        return tx.conn.execute(select(s.domains.c.id).order_by(s.domains.c.id.desc())).scalar()

    run(store.accounts.add_domain("gone.example"))
    gone = store.db.read_sync(newest)
    run(store.accounts.remove_domain("gone.example"))
    run(store.accounts.add_domain("next.example"))
    assert store.db.read_sync(newest) > gone
    removed = run(store.accounts.get_user("bob@example.org")).id
    run(store.accounts.remove_user("bob@example.org"))
    assert run(store.accounts.add_user("bob@example.org", "secret pass 2")).id > removed

    def insert_message(tx):
        return tx.conn.execute(
            insert(s.messages).values(blob_hash="x" * 64, size=1, created_at=0)
        ).inserted_primary_key[0]

    first = store.db.write_sync(insert_message)
    store.db.write_sync(lambda tx: tx.conn.execute(s.messages.delete().where(s.messages.c.id == first)))
    assert store.db.write_sync(insert_message) > first


def test_another_accounts_mailbox_metadata_is_neither_read_nor_written(store, run, accounts):
    alice, bob, inbox = accounts
    run(store.metadata.set(alice.id, inbox.id, [("/private/comment", b"alice's note")]))
    with pytest.raises(NotFound):
        run(store.metadata.entries(bob.id, inbox.id))
    with pytest.raises(NotFound):
        run(store.metadata.set(bob.id, inbox.id, [("/private/comment", b"bob was here")]))
    with pytest.raises(NotFound):
        run(store.metadata.set(bob.id, inbox.id, [("/private/comment", None)]))
    assert run(store.metadata.entries(alice.id, inbox.id)) == {"/private/comment": b"alice's note"}


def test_another_accounts_message_gets_no_thread_id(store, run, accounts):
    alice, bob, inbox = accounts
    [ref] = run(store.mailboxes.messages(alice.id, inbox.id))[1]
    store.mailboxes._summary_cache = type(store.mailboxes._summary_cache)(10)
    assert run(store.threads.thread_ids(bob.id, [ref])) == {}
    rows = store.db.read_sync(
        lambda tx: tx.conn.execute(
            select(s.message_threads.c.message_id).where(s.message_threads.c.account_id == bob.id)
        ).all()
    )
    assert rows == []
    assert ref.message_id in run(store.threads.thread_ids(alice.id, [ref]))


def test_resetting_url_keys_of_another_accounts_mailbox_changes_nothing(store, run, accounts):
    from tidings.mail.imapurl import parse_imap_url

    alice, bob, inbox = accounts
    rump = "imap://alice%40example.org@localhost/INBOX/;uid=1;urlauth=anonymous"
    signed = parse_imap_url(run(store.urls.generate(alice.id, parse_imap_url(rump))))
    assert b"secret" in run(store.urls.fetch_authorized(signed, None))
    run(store.urls.reset(bob.id, inbox.id))
    assert b"secret" in run(store.urls.fetch_authorized(signed, None))
