"""CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 section 4) over real IMAP connections: updating
searches told of messages joining or leaving their result by ADDTO / REMOVEFROM.

The first tests follow Dovecot's imaptest scripts search-context-update, -update2 and -update3.
"""

from __future__ import annotations

import pytest

from tests.imap.session_support import ALICE, ImapTestServer, RawImap, message, ok


@pytest.fixture
def imap(server) -> ImapTestServer:
    return ImapTestServer(server)


def with_messages(imap: ImapTestServer, subjects: list[str]) -> RawImap:
    for subject in subjects:
        imap.deliver(message(subject, body="body\r\n"))
    raw = imap.raw(login=ALICE)
    ok(raw, "SELECT INBOX")
    return raw


def test_context_capabilities_are_advertised(imap):
    capabilities = imap.raw(login=ALICE).command("CAPABILITY")[0].split()
    assert b"CONTEXT=SEARCH" in capabilities and b"CONTEXT=SORT" in capabilities


def test_search_update_follows_flag_changes_and_expunges(imap):
    """imaptest search-context-update: RETURN (UPDATE) answers the bare correlator, then
    ADDTO / REMOVEFROM as this session's own STORE and EXPUNGE change the result; REMOVEFROM
    comes before the EXPUNGE it explains (RFC 5267 4.3.4)."""
    raw = with_messages(imap, ["s1", "s2", "s3", "s4", "s5"])
    assert ok(raw, "SEARCH RETURN (UPDATE) BODY body SEEN") == [b'* ESEARCH (TAG "T3")']
    assert ok(raw, "STORE 1,2,4 +FLAGS.SILENT (\\Seen)") == [b'* ESEARCH (TAG "T3") ADDTO (0 1:2,4)']
    assert ok(raw, "STORE 1,2 -FLAGS.SILENT (\\Seen)") == [b'* ESEARCH (TAG "T3") REMOVEFROM (0 1:2)']
    ok(raw, "STORE 3:5 +FLAGS.SILENT (\\Deleted)")
    assert ok(raw, "EXPUNGE") == [
        b'* ESEARCH (TAG "T3") REMOVEFROM (0 4)',
        b"* 5 EXPUNGE",
        b"* 4 EXPUNGE",
        b"* 3 EXPUNGE",
    ]
    # a new matching message: EXISTS first, then ADDTO with its (now valid) number
    imap.deliver(message("s6", body="body\r\n"))
    raw.command("STORE 1 FLAGS.SILENT ()")  # any command lets the update out
    tagged = ok(raw, "APPEND INBOX (\\Seen) {21+}\r\nSubject: s7\r\n\r\nbody\r\n")
    assert b"* 4 EXISTS" in tagged and tagged.index(b'* ESEARCH (TAG "T3") ADDTO (0 4)') > tagged.index(
        b"* 4 EXISTS"
    )
    ok(raw, 'CANCELUPDATE "T3"')
    assert ok(raw, "STORE 1 +FLAGS.SILENT (\\Seen)") == []


def test_search_update_with_all_gives_the_result_then_changes(imap):
    """imaptest search-context-update2: RETURN (UPDATE ALL) answers ALL, then the changes."""
    raw = with_messages(imap, ["s1", "s2", "s3", "s4", "s5"])
    ok(raw, "STORE 1,2 +FLAGS.SILENT (\\Seen)")
    assert ok(raw, "SEARCH RETURN (UPDATE ALL) OR SEEN SUBJECT s22") == [b'* ESEARCH (TAG "T4") ALL 1:2']
    assert ok(raw, "STORE 3:5 +FLAGS.SILENT (\\Seen)") == [b'* ESEARCH (TAG "T4") ADDTO (0 3:5)']
    assert ok(raw, "STORE 1:5 -FLAGS.SILENT (\\Seen)") == [b'* ESEARCH (TAG "T4") REMOVEFROM (0 1:5)']
    assert ok(raw, "STORE 3,4 +FLAGS.SILENT (\\Seen)") == [b'* ESEARCH (TAG "T4") ADDTO (0 3:4)']
    ok(raw, "STORE 3 +FLAGS.SILENT (\\Deleted)")
    assert ok(raw, "EXPUNGE") == [b'* ESEARCH (TAG "T4") REMOVEFROM (0 3)', b"* 3 EXPUNGE"]


def test_uid_search_update_speaks_uids(imap):
    """imaptest search-context-update3: a UID SEARCH context names UIDs (RFC 5267 4.3.2)."""
    raw = with_messages(imap, ["s0", "s1", "s2", "s3", "s4", "s5"])
    ok(raw, "STORE 1 +FLAGS.SILENT (\\Deleted)")
    ok(raw, "EXPUNGE")
    ok(raw, "STORE 1,2 +FLAGS.SILENT (\\Seen)")
    assert ok(raw, "UID SEARCH RETURN (UPDATE ALL) OR SEEN SUBJECT s33") == [
        b'* ESEARCH (TAG "T6") UID ALL 2:3'
    ]
    assert ok(raw, "STORE 3:5 +FLAGS.SILENT (\\Seen)") == [b'* ESEARCH (TAG "T6") UID ADDTO (0 4:6)']
    assert ok(raw, "UID STORE 5,6 -FLAGS.SILENT (\\Seen)") == [b'* ESEARCH (TAG "T6") UID REMOVEFROM (0 5:6)']
    ok(raw, "STORE 3 +FLAGS.SILENT (\\Deleted)")
    assert ok(raw, "EXPUNGE") == [b'* ESEARCH (TAG "T6") UID REMOVEFROM (0 4)', b"* 3 EXPUNGE"]


def test_an_updating_search_hears_of_a_matching_message_delivered_meanwhile(imap):
    """A delivery (another session's change) that matches: EXISTS, then ADDTO -- at the next
    command and inside IDLE (RFC 5267 4.3.2: at any time)."""
    raw = with_messages(imap, ["hello", "other"])
    assert ok(raw, 'UID SEARCH RETURN (COUNT UPDATE) SUBJECT "hello"') == [
        b'* ESEARCH (TAG "T3") UID COUNT 1'
    ]
    imap.deliver(message("hello again"))
    imap.deliver(message("unrelated"))
    # RECENT goes with EXISTS for an IMAP4rev1 client (RFC 3501 7.3.2); this session claims them.
    assert ok(raw, "NOOP") == [b"* 4 EXISTS", b"* 4 RECENT", b'* ESEARCH (TAG "T3") UID ADDTO (0 3)']
    raw.send(b"I1 IDLE\r\n")
    assert raw.line().startswith(b"+ ")
    imap.deliver(message("hello once more"))
    assert [raw.line(), raw.line(), raw.line()] == [
        b"* 5 EXISTS",
        b"* 5 RECENT",
        b'* ESEARCH (TAG "T3") UID ADDTO (0 5)',
    ]
    raw.send(b"DONE\r\n")
    assert raw.line().startswith(b"I1 OK")


def test_notify_pushes_context_updates_between_commands(imap):
    """With NOTIFY SELECTED the ADDTO arrives without any command (RFC 5465 section 7)."""
    raw = with_messages(imap, ["hello"])
    ok(raw, "NOTIFY SET (selected (MessageNew MessageExpunge))")
    ok(raw, "SEARCH RETURN (UPDATE) SUBJECT hello")
    imap.deliver(message("hello there"))
    assert [raw.line(), raw.line(), raw.line()] == [
        b"* 2 EXISTS",
        b"* 2 RECENT",
        b'* ESEARCH (TAG "T4") ADDTO (0 2)',
    ]


def test_sort_update_places_new_messages_at_their_sort_position(imap):
    """CONTEXT=SORT: ADDTO / REMOVEFROM name positions in the sort order (RFC 5267 4.3.3)."""
    raw = with_messages(imap, ["b", "d"])
    assert ok(raw, "UID SORT RETURN (UPDATE ALL) (SUBJECT) UTF-8 UNDELETED") == [
        b'* ESEARCH (TAG "T3") UID ALL 1:2'
    ]
    imap.deliver(message("a"))
    imap.deliver(message("c"))
    assert ok(raw, "NOOP") == [b"* 4 EXISTS", b"* 4 RECENT", b'* ESEARCH (TAG "T3") UID ADDTO (1 3 3 4)']
    # sorted now: a(3) b(1) c(4) d(2); deleting b and d leaves positions 2 then 3 (after the first)
    assert ok(raw, "STORE 1:2 +FLAGS.SILENT (\\Deleted)") == [
        b'* ESEARCH (TAG "T3") UID REMOVEFROM (2 1 3 2)'
    ]
    assert ok(raw, "SORT RETURN (UPDATE COUNT) (REVERSE SUBJECT) UTF-8 UNDELETED") == [
        b'* ESEARCH (TAG "T6") COUNT 2'
    ]
    assert ok(raw, "STORE 1 -FLAGS.SILENT (\\Deleted)") == [
        b'* ESEARCH (TAG "T3") UID ADDTO (2 1)',
        b'* ESEARCH (TAG "T6") ADDTO (2 1)',
    ]


def test_context_hint_is_accepted_and_changes_nothing(imap):
    raw = with_messages(imap, ["a", "b"])
    assert ok(raw, "SEARCH RETURN (CONTEXT COUNT) ALL") == [b'* ESEARCH (TAG "T3") COUNT 2']
    assert ok(raw, "SEARCH RETURN (CONTEXT) ALL") == [b'* ESEARCH (TAG "T4") ALL 1:2']


def test_tag_reuse_cancel_and_limits(imap):
    """RFC 5267 4.3: UPDATE with a tag in use is BAD; 4.3.5 CANCELUPDATE; 4.3.1 NOUPDATE past
    the limit, the search itself still answered."""
    raw = with_messages(imap, ["a"])
    raw.send(b"u1 SEARCH RETURN (UPDATE) ALL\r\n")
    assert raw.until_tagged("u1")[-1].startswith(b"u1 OK")
    raw.send(b"u1 SEARCH RETURN (UPDATE) ALL\r\n")
    assert raw.until_tagged("u1")[-1].startswith(b"u1 BAD")
    assert raw.command('CANCELUPDATE "nosuch"')[-1].split()[1] == b"NO"
    ok(raw, 'CANCELUPDATE "u1"')
    for n in range(16):
        raw.send(f"c{n} SEARCH RETURN (UPDATE) ALL\r\n".encode())
        assert raw.until_tagged(f"c{n}")[-1].startswith(f"c{n} OK".encode())
    raw.send(b"c16 SEARCH RETURN (UPDATE COUNT) ALL\r\n")
    assert raw.until_tagged("c16") == [
        b'* ESEARCH (TAG "c16") COUNT 1',
        b'* NO [NOUPDATE "c16"] Too many updating searches',
        b"c16 OK SEARCH completed",
    ]
    # contexts end with the selection
    ok(raw, "SELECT INBOX")
    raw.send(b"c0 SEARCH RETURN (UPDATE) ALL\r\n")
    assert raw.until_tagged("c0")[-1].startswith(b"c0 OK")
