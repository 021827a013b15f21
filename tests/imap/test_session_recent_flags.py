"""IMAP session: \\Recent kept as RFC 3501 2.3.2 says (one session sees a new message as recent;
RECENT in SELECT, EXAMINE and STATUS; SEARCH RECENT, NEW and OLD; none of it under IMAP4rev2), and
the FLAGS / PERMANENTFLAGS a session is sent again when a keyword appears (RFC 3501 7.2.6)."""

from __future__ import annotations

import re

import pytest
from imapclient import IMAPClient

from tests.imap.session_support import ALICE, PASSWORD, ImapTestServer, client_tls, message


@pytest.fixture
def imap(server) -> ImapTestServer:
    return ImapTestServer(server)


def recent_count(lines: list[bytes]) -> int | None:
    counts = [int(m.group(1)) for m in (re.match(rb"\* (\d+) RECENT$", line) for line in lines) if m]
    return counts[-1] if counts else None


def recent_uids(raw) -> set[int]:
    lines = raw.command("FETCH 1:* (UID FLAGS)")
    return {
        int(re.search(rb"UID (\d+)", line).group(1))
        for line in lines
        if b" FETCH " in line and b"\\Recent" in line
    }


def search(raw, criteria: str) -> list[int]:
    line = next(line for line in raw.command(f"SEARCH {criteria}") if line.startswith(b"* SEARCH"))
    return [int(n) for n in line.split()[2:]]


def test_the_first_select_claims_new_messages_as_recent_and_the_next_one_sees_none(imap):
    imap.deliver(message("one"))
    imap.deliver(message("two"))
    watcher = imap.raw(login=ALICE)
    assert b"(RECENT 2 MESSAGES 2)" in watcher.command("STATUS INBOX (RECENT MESSAGES)")[0]
    first = imap.raw(login=ALICE)
    assert recent_count(first.command("SELECT INBOX")) == 2
    assert recent_uids(first) == {1, 2}
    assert b"(RECENT 0)" in watcher.command("STATUS INBOX (RECENT)")[0]
    second = imap.raw(login=ALICE)
    assert recent_count(second.command("SELECT INBOX")) == 0
    assert recent_uids(second) == set()
    # Reselecting does not give them back: they were this session's to see, once.
    assert recent_count(first.command("SELECT INBOX")) == 0


def test_examine_shows_recent_messages_without_taking_them(imap):
    imap.deliver(message("one"))
    looker = imap.raw(login=ALICE)
    assert recent_count(looker.command("EXAMINE INBOX")) == 1
    assert recent_uids(looker) == {1}
    assert b"(RECENT 1)" in imap.raw(login=ALICE).command("STATUS INBOX (RECENT)")[0]
    selecter = imap.raw(login=ALICE)
    assert recent_count(selecter.command("SELECT INBOX")) == 1
    assert recent_uids(selecter) == {1}


def test_a_message_arriving_while_selected_is_recent_in_exactly_one_session(imap):
    imap.deliver(message("old"))
    sessions = [imap.raw(login=ALICE) for _ in range(3)]
    for raw in sessions:
        raw.command("SELECT INBOX")
    imap.deliver(message("new"))
    updates = [raw.command("NOOP") for raw in sessions]
    for lines in updates:
        assert lines[0] == b"* 2 EXISTS"
        assert re.match(rb"\* \d RECENT$", lines[1])  # RFC 3501 7.3.2: with every size change
    seen_new = [2 in recent_uids(raw) for raw in sessions]
    assert seen_new == [True, False, False]  # the first to hear of it
    assert recent_count(updates[0]) == 2  # message 1 was claimed by its SELECT too
    assert recent_count(updates[1]) == 0


def test_new_mail_waking_many_idle_sessions_at_once_is_recent_in_exactly_one(imap):
    """One delivery wakes every idler in the same moment and each asks to claim the message; the
    claims this process answers without a write (one covers the others) must still leave exactly
    one owner, and a later message must be claimable again."""
    imap.deliver(message("old"))
    idlers = [imap.raw(login=ALICE) for _ in range(12)]
    for raw in idlers:
        raw.command("SELECT INBOX")
        raw.send(b"I1 IDLE\r\n")
        assert raw.line() == b"+ idling"
    counts = [1] + [0] * (len(idlers) - 1)  # the first SELECT took message 1
    for uid in (2, 3):
        imap.deliver(message(f"new {uid}"))
        before, counts = counts, []
        for raw in idlers:
            assert raw.line() == f"* {uid} EXISTS".encode()
            counts.append(int(re.match(rb"\* (\d+) RECENT$", raw.line()).group(1)))
        grown = sorted(now - then for now, then in zip(counts, before, strict=True))
        assert grown == [0] * (len(idlers) - 1) + [1]  # one session took the new message
    owners = []
    for raw in idlers:
        raw.send(b"DONE\r\n")
        assert raw.line() == b"I1 OK IDLE terminated"
        owners.append(recent_uids(raw) & {2, 3})
    assert sorted(uid for uids in owners for uid in uids) == [2, 3]


def test_search_recent_new_and_old(imap):
    """RFC 3501 6.4.4: NEW is RECENT UNSEEN, OLD is NOT RECENT."""
    imap.deliver(message("claimed earlier"))
    imap.raw(login=ALICE).command("SELECT INBOX")
    imap.deliver(message("recent and read"))
    imap.deliver(message("recent and unread"))
    raw = imap.raw(login=ALICE)
    raw.command("SELECT INBOX")
    raw.command("STORE 2 +FLAGS.SILENT (\\Seen)")
    assert search(raw, "RECENT") == [2, 3]
    assert search(raw, "NEW") == [3]
    assert search(raw, "OLD") == [1]
    assert search(raw, "NOT RECENT") == [1]
    assert search(raw, "OR NEW OLD") == [1, 3]
    assert recent_uids(raw) == {2, 3}


def test_store_cannot_set_or_clear_recent(imap):
    imap.deliver(message("one"))
    raw = imap.raw(login=ALICE)
    raw.command("SELECT INBOX")
    assert raw.command("STORE 1 -FLAGS (\\Recent)")[0] == b"* 1 FETCH (UID 1 FLAGS (\\Recent))"
    assert raw.command("STORE 1 FLAGS (\\Seen)")[0] == b"* 1 FETCH (UID 1 FLAGS (\\Recent \\Seen))"


def test_imap4rev2_sessions_neither_see_nor_take_recent(imap):
    imap.deliver(message("one"))
    rev2 = imap.raw(login=ALICE)
    rev2.command("ENABLE IMAP4rev2")
    lines = rev2.command("SELECT INBOX")
    assert recent_count(lines) is None
    assert recent_uids(rev2) == set()
    imap.deliver(message("two"))
    assert not any(b"RECENT" in line for line in rev2.command("NOOP"))
    rev1 = imap.raw(login=ALICE)
    assert recent_count(rev1.command("SELECT INBOX")) == 2


def test_recent_through_imapclient(imap):
    imap.deliver(message("one"))
    with IMAPClient(
        "127.0.0.1", imap.ports["imaps"], ssl=True, ssl_context=client_tls(), timeout=10
    ) as client:
        client.login(ALICE, PASSWORD)
        assert client.folder_status("INBOX", ["RECENT"])[b"RECENT"] == 1
        assert client.select_folder("INBOX")[b"RECENT"] == 1
        assert client.search("RECENT") == [1]
        assert b"\\Recent" in client.get_flags([1])[1]
        assert client.folder_status("INBOX", ["RECENT"])[b"RECENT"] == 0


# ---------------------------------------------------------------------------- FLAGS updates


def flags_of(line: bytes) -> set[bytes]:
    return set(re.search(rb"\(([^)]*)\)", line).group(1).split())


def test_a_new_keyword_is_announced_in_flags_before_the_fetch_that_shows_it(imap):
    imap.deliver(message("one"))
    actor, watcher, looker = (imap.raw(login=ALICE) for _ in range(3))
    actor.command("SELECT INBOX")
    watcher.command("SELECT INBOX")
    looker.command("EXAMINE INBOX")
    lines = actor.command("STORE 1 +FLAGS ($Important)")
    assert lines[0].startswith(b"* FLAGS ") and b"$Important" in flags_of(lines[0])
    assert lines[1].startswith(b"* OK [PERMANENTFLAGS (") and b"$Important" in flags_of(lines[1])
    assert lines[1].split(b")]")[0].endswith(b"\\*")
    assert lines[2].startswith(b"* 1 FETCH (") and b"$Important" in lines[2]
    for session, permanent in ((watcher, b"$Important"), (looker, None)):
        lines = session.command("NOOP")
        assert lines[0].startswith(b"* FLAGS ") and b"$Important" in flags_of(lines[0])
        assert lines[1].startswith(b"* OK [PERMANENTFLAGS (")
        assert (permanent in flags_of(lines[1])) if permanent else flags_of(lines[1]) == set()
        assert lines[2].startswith(b"* 1 FETCH (") and b"$Important" in lines[2]
    # Known from now on: no second FLAGS for the same keyword.
    assert not actor.command("STORE 1 -FLAGS ($Important)")[0].startswith(b"* FLAGS")
    assert not actor.command("STORE 1 +FLAGS ($Important)")[0].startswith(b"* FLAGS")
    assert watcher.command("NOOP")[0].startswith(b"* 1 FETCH")


def test_a_new_message_with_a_new_keyword_brings_flags_before_exists(imap):
    watcher = imap.raw(login=ALICE)
    watcher.command("SELECT INBOX")
    appender = imap.raw(login=ALICE)
    data = message("tagged")
    appender.send(b"A1 APPEND INBOX (Project-X) {%d+}\r\n" % len(data) + data + b"\r\n")
    assert b"A1 OK" in appender.until_tagged("A1")[-1]
    lines = watcher.command("NOOP")
    assert lines[0].startswith(b"* FLAGS ") and b"Project-X" in flags_of(lines[0])
    assert lines[1].startswith(b"* OK [PERMANENTFLAGS (")
    assert lines[2] == b"* 1 EXISTS"
    assert b"Project-X" in watcher.command("FETCH 1 FLAGS")[0]
