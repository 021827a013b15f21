"""The background indexer threads mailbox entries in id order from a mark: each batch reads only
its own rows, every delivered message ends up threaded, and a later call picks up only new mail."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tidings.store import Envelope, schema

PARENT = (
    b"From: a@remote.test\r\nTo: bob@example.org\r\nSubject: plans\r\n"
    b"Message-ID: <parent@remote.test>\r\n\r\nbody\r\n"
)
REPLY = (
    b"From: c@remote.test\r\nTo: bob@example.org\r\nSubject: Re: plans\r\n"
    b"Message-ID: <reply@remote.test>\r\nIn-Reply-To: <parent@remote.test>\r\n\r\nbody\r\n"
)
OTHER = (
    b"From: d@remote.test\r\nTo: bob@example.org\r\nSubject: else\r\nMessage-ID: <o@remote.test>\r\n\r\nx\r\n"
)


@pytest.fixture
def bob(store, run):
    run(store.accounts.add_domain("example.org"))
    return run(store.accounts.add_user("bob@example.org", "secret pass 1"))


def _threads(store) -> dict[str, int]:
    m, t = schema.messages, schema.message_threads
    rows = store.db.read_sync(
        lambda tx: tx.conn.execute(
            select(m.c.message_id, t.c.thread_id).select_from(t.join(m, m.c.id == t.c.message_id))
        ).all()
    )
    return {row.message_id: row.thread_id for row in rows}


def _deliver(store, run, body: bytes) -> None:
    run(store.delivery.accept(Envelope(sender="a@remote.test", local=["bob@example.org"]), body))


def test_every_entry_is_threaded_batch_by_batch_and_then_only_new_mail(store, run, bob):
    for body in (PARENT, OTHER, REPLY):
        _deliver(store, run, body)
    assert run(store.threads.assign_pending(2)) == 2
    assert len(_threads(store)) == 2
    assert run(store.threads.assign_pending(2)) == 1
    assert run(store.threads.assign_pending(2)) == 0
    threads = _threads(store)
    assert threads["<reply@remote.test>"] == threads["<parent@remote.test>"]
    assert threads["<o@remote.test>"] != threads["<parent@remote.test>"]

    late = REPLY.replace(b"<reply@", b"<late@")
    _deliver(store, run, late)
    assert run(store.threads.assign_pending(10)) == 1  # only the new entry is read
    assert _threads(store)["<late@remote.test>"] == threads["<parent@remote.test>"]
    assert run(store.threads.assign_pending(10)) == 0


def test_an_entry_already_threaded_on_demand_is_left_as_it_is(store, run, bob):
    _deliver(store, run, PARENT)
    inbox = run(store.mailboxes.get(bob.id, "INBOX"))
    _, refs = run(store.mailboxes.messages(bob.id, inbox.id))
    given = run(store.threads.thread_ids(bob.id, refs))
    assert run(store.threads.assign_pending(10)) == 1
    assert _threads(store) == {"<parent@remote.test>": given[refs[0].message_id]}
