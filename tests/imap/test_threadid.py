"""THREADID (RFC 8474 sections 5 and 6): per-account thread ids from References, In-Reply-To
and the base subject, over a real IMAP connection."""

from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import select

from tests.imap.session_support import ALICE, BOB, ImapTestServer
from tidings.store import schema


def mail(subject: str, message_id: str, references: str = "", in_reply_to: str = "") -> bytes:
    head = f"From: carol@example.test\r\nTo: {ALICE}\r\nSubject: {subject}\r\nMessage-ID: {message_id}\r\n"
    if references:
        head += f"References: {references}\r\n"
    if in_reply_to:
        head += f"In-Reply-To: {in_reply_to}\r\n"
    return (head + f"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\n{subject} {message_id}\r\n").encode()


@pytest.fixture
def imap(server) -> ImapTestServer:
    running = ImapTestServer(server)
    for raw in (
        mail("Meeting", "<a@x>"),  # 1
        mail("Re: Meeting", "<b@x>", in_reply_to="<a@x>"),  # 2 replies to 1
        mail("Lunch", "<c@x>"),  # 3 a thread of its own
        mail("RE: [team] Meeting", "<d@x>", references="<a@x> <b@x>"),  # 4 replies to 2
        mail("Another topic", "<e@x>", references="<a@x>"),  # 5 same references, new subject
        mail("Re: Budget", "<g@x>", references="<f@x>"),  # 6 arrives before its parent...
        mail("Budget", "<f@x>"),  # 7 ... which joins its reply's thread
    ):
        running.deliver(raw)
    return running


def thread_ids(raw, command: str = "FETCH 1:* (THREADID)") -> list[bytes]:
    lines = raw.command(command)
    assert lines[-1].split()[1] == b"OK", lines[-1]
    fetched = [re.search(rb"THREADID \(([^)]*)\)", line) for line in lines[:-1] if b" FETCH " in line]
    return [match.group(1) for match in fetched]


def test_fetch_threadid_groups_replies_with_their_parents(imap):
    raw = imap.raw(login=ALICE)
    raw.command("SELECT INBOX")
    ids = thread_ids(raw)
    assert all(re.fullmatch(rb"T[0-9a-f]+", value) for value in ids)
    assert ids[0] == ids[1] == ids[3]
    assert ids[5] == ids[6]
    assert len({ids[0], ids[2], ids[4], ids[5]}) == 4
    # stable across sessions, commands and alongside other items
    other = imap.raw(login=ALICE)
    other.command("EXAMINE INBOX")
    assert thread_ids(other, "UID FETCH 1:* (EMAILID THREADID)") == ids


def test_search_threadid_finds_the_whole_thread(imap):
    """RFC 8474 section 6: SEARCH THREADID."""
    raw = imap.raw(login=ALICE)
    raw.command("SELECT INBOX")
    ids = thread_ids(raw)
    assert raw.command(f"UID SEARCH THREADID {ids[0].decode()}")[0] == b"* SEARCH 1 2 4"
    assert raw.command(f"SEARCH THREADID {ids[6].decode()} NOT SUBJECT Re")[0] == b"* SEARCH 7"
    assert raw.command("SEARCH THREADID T999999")[0] == b"* SEARCH"
    assert raw.command(f"SORT (REVERSE ARRIVAL) UTF-8 THREADID {ids[0].decode()}")[0] == b"* SORT 4 2 1"


def test_threadid_survives_copy_and_is_per_account(imap):
    raw = imap.raw(login=ALICE)
    raw.command("CREATE Archive")
    raw.command("SELECT INBOX")
    ids = thread_ids(raw)
    raw.command("COPY 2 Archive")
    raw.command("SELECT Archive")
    assert thread_ids(raw) == [ids[1]]
    # the same reply delivered to Bob, without its parent: a thread of Bob's own
    imap.deliver(mail("Re: Meeting", "<b@x>", in_reply_to="<a@x>"), to=BOB)
    bob = imap.raw(login=BOB)
    bob.command("SELECT INBOX")
    assert raw.command("FETCH 1 (EMAILID)")[0] == bob.command("FETCH 1 (EMAILID)")[0]
    imap.deliver(mail("Lunch", "<c@x>"), to=BOB)
    bob.command("NOOP")
    bob_ids = thread_ids(bob)
    assert len(bob_ids) == 2 and bob_ids[0] != bob_ids[1] and bob_ids[0] != ids[1]


def test_the_indexer_threads_new_mail_without_being_asked(imap):
    store = imap.running.store

    def threaded() -> int:
        async def count():
            return await store.db.read(lambda tx: len(tx.conn.execute(select(schema.message_threads)).all()))

        return imap.running.call(count())

    deadline = time.monotonic() + 20
    while threaded() < 7 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert threaded() == 7
