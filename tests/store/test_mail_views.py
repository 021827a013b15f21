"""The web client's reads (store/mail_views.py): a page of a mailbox in each sort order, the
folder list's counts, messages by UID; on SQLite and PostgreSQL, and only for the owner."""

from __future__ import annotations

import pytest

from tidings.store import NotFound

SENDERS = ["carol@example.org", "Alice@example.org", "bob@example.org", None]


def message(i: int) -> bytes:
    sender = SENDERS[i % len(SENDERS)]
    head = f"From: {sender}\r\n" if sender else ""
    subject = f"Subject: {'zulu' if i % 3 == 0 else 'Alpha'} {i % 5}\r\n" if i % 7 else ""
    return f"{head}To: bob@example.org\r\n{subject}Message-ID: <m{i}@example.org>\r\n\r\n".encode() + b"x" * (
        (i * 37) % 300
    )


@pytest.fixture
def bob(store, run):
    run(store.accounts.add_domain("example.org"))
    return run(store.accounts.add_user("bob@example.org", "secret pass 1"))


@pytest.fixture
def filled(store, run, bob):
    """Bob's INBOX with 40 messages: dates not in UID order, sizes and senders mixed, some with
    the same date or size (ties), every third one read, every fourth flagged; all analysed."""
    inbox = run(store.mailboxes.get(bob.id, "INBOX"))
    items = []
    for i in range(40):
        flags = (["\\Seen"] if i % 3 == 0 else []) + (["\\Flagged", "$Seenish"] if i % 4 == 0 else [])
        items.append((message(i), flags, 1_700_000_000 + (i * 7919) % 13 * 3600))
    run(store.mailboxes.append_many(bob.id, inbox.id, items))
    while run(store.mailboxes.index_pending(100)):
        pass
    return inbox


def expected_order(store, run, bob, inbox, sort: str, descending: bool) -> list[int]:
    """The order by the definition, computed from the whole mailbox in Python ("date" is arrival:
    UID order, whatever internal date an APPEND gave)."""
    _, refs = run(store.mailboxes.messages(bob.id, inbox.id))
    summaries = run(store.mailboxes.summaries(bob.id, refs))

    def key(ref):
        summary = summaries[ref.message_id]
        if sort == "date":
            return (ref.uid,)
        if sort == "size":
            return (ref.size, ref.uid)
        if sort == "from":
            return ((summary.from_addrs[0].addr_spec if summary.from_addrs else "").lower(), ref.uid)
        return ((summary.subject or "").lower(), ref.uid)

    return [ref.uid for ref in sorted(refs, key=key, reverse=descending)]


@pytest.mark.parametrize("sort", ["date", "size", "from", "subject"])
@pytest.mark.parametrize("descending", [False, True])
def test_pages_follow_the_sort_order_and_add_up_to_the_mailbox(store, run, bob, filled, sort, descending):
    want = expected_order(store, run, bob, filled, sort, descending)
    got = []
    for offset in range(0, 45, 15):
        got += [
            ref.uid for ref in run(store.mail_views.page(bob.id, filled.id, sort, descending, offset, 15))
        ]
    assert got == want
    assert run(store.mail_views.page(bob.id, filled.id, sort, descending, 40, 15)) == []


def test_a_page_carries_what_the_list_shows(store, run, bob, filled):
    refs = run(store.mail_views.page(bob.id, filled.id, "date", True, 0, 50))
    _, snapshot = run(store.mailboxes.messages(bob.id, filled.id))
    assert sorted(refs, key=lambda ref: ref.uid) == snapshot  # flags, sizes, hashes, dates alike


def test_counts_follow_flags_moves_and_expunges(store, run, bob, filled):
    trash = run(store.mailboxes.get(bob.id, "Trash"))
    counts = run(store.mail_views.counts(bob.id))
    # Every third is read; "$Seenish" on every fourth is a keyword, not \Seen.
    assert counts[filled.id] == (40, 26) and counts[trash.id] == (0, 0)
    run(store.mailboxes.store_flags(bob.id, filled.id, [2, 3], "add", ["\\Seen"]))
    run(store.mailboxes.store_flags(bob.id, filled.id, [1], "remove", ["\\Seen"]))
    assert run(store.mail_views.counts(bob.id))[filled.id] == (40, 25)
    run(store.mailboxes.copy(bob.id, filled.id, [5, 6, 7], trash.id, move=True))  # 5, 6 unseen
    counts = run(store.mail_views.counts(bob.id))
    assert counts[filled.id] == (37, 23) and counts[trash.id] == (3, 2)
    status = run(store.mailboxes.status(bob.id, filled.id))
    assert (status.messages, status.unseen) == counts[filled.id]


def test_messages_by_uid_skip_missing_ones(store, run, bob, filled):
    refs = run(store.mail_views.messages(bob.id, filled.id, [9, 3, 3, 999]))
    assert [ref.uid for ref in refs] == [3, 9]
    assert run(store.mail_views.messages(bob.id, filled.id, [])) == []


def test_another_accounts_mailbox_is_not_found(store, run, bob, filled):
    eve = run(store.accounts.add_user("eve@example.org", "secret pass 2"))
    with pytest.raises(NotFound):
        run(store.mail_views.page(eve.id, filled.id, "date", True, 0, 50))
    with pytest.raises(NotFound):
        run(store.mail_views.messages(eve.id, filled.id, [1]))
    assert filled.id not in run(store.mail_views.counts(eve.id))


@pytest.mark.sqlite_only
def test_sqlite_plans_counts_pages_and_conversations_along_indexes(store, run, bob, filled):
    """The statements as the store sends them, planned by SQLite itself: a partial index is used
    only if the query repeats its condition word for word."""
    from sqlalchemy import event

    sent: list[tuple[str, tuple]] = []

    def grab(conn, cursor, statement, parameters, context, executemany):
        sent.append((statement, parameters))

    event.listen(store.db.read_engine, "before_cursor_execute", grab)
    try:
        run(store.mail_views.counts(bob.id))
        run(store.mail_views.page(bob.id, filled.id, "date", True, 100, 50))
        run(store.mail_views.page(bob.id, filled.id, "size", False, 100, 50))
        run(store.mail_threads.uids(bob.id, filled.id, 1))
    finally:
        event.remove(store.db.read_engine, "before_cursor_execute", grab)

    def plan(marker: str) -> str:
        statement, parameters = next((st, p) for st, p in sent if marker in st)
        rows = run(
            store.db.read(
                lambda tx: tx.conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
            )
        )
        return " | ".join(row[-1] for row in rows)

    assert "ix_mailbox_messages_unseen" in plan("instr(")
    by_arrival, by_size = plan("ORDER BY mailbox_messages.uid DESC"), plan("ORDER BY mailbox_messages.size")
    assert "COVERING INDEX" in by_arrival and "TEMP B-TREE" not in by_arrival.split("|")[0]
    assert "COVERING INDEX ix_mailbox_messages_size" in by_size
    # A conversation's messages: from the thread's index, not a walk over the mailbox.
    assert plan("message_threads.thread_id").startswith(
        "SEARCH message_threads USING INDEX ix_message_threads_thread"
    )
