"""IMAP session: SELECT/EXAMINE, FETCH, STORE (UNCHANGEDSINCE), COPY/MOVE with COPYUID,
EXPUNGE / UID EXPUNGE, CLOSE, UNSELECT, SEARCH/SORT/THREAD and CONDSTORE/QRESYNC selects."""

from __future__ import annotations

import re

import pytest
from imapclient import IMAPClient

from tests.imap.session_support import ALICE, PASSWORD, ImapTestServer, client_tls, message


@pytest.fixture
def imap(server) -> ImapTestServer:
    running = ImapTestServer(server)
    for subject in ("alpha", "bravo", "charlie"):
        running.deliver(message(subject))
    return running


def test_select_reports_mailbox_state(imap):
    raw = imap.raw(login=ALICE)
    lines = raw.command("SELECT INBOX")
    text = b"\r\n".join(lines)
    assert b"* 3 EXISTS" in lines and b"* 3 RECENT" in lines  # the first SELECT claims them
    assert b"* OK [UNSEEN 1]" in text and b"[UIDNEXT 4]" in text and b"[UIDVALIDITY " in text
    assert b"[PERMANENTFLAGS (\\Answered \\Deleted \\Draft \\Flagged \\Seen \\*)]" in text
    assert b"[HIGHESTMODSEQ " in text and b"[MAILBOXID (M" in text
    assert lines[-1] == b"T2 OK [READ-WRITE] SELECT completed"


def test_examine_is_read_only(imap):
    raw = imap.raw(login=ALICE)
    assert raw.command("EXAMINE INBOX")[-1] == b"T2 OK [READ-ONLY] EXAMINE completed"
    assert b"NO" in raw.command("STORE 1 +FLAGS (\\Seen)")[-1]
    raw.command("FETCH 1 BODY[]")
    assert all("\\Seen" not in ref.flags for ref in imap.mailbox_refs()[1])
    assert b"NO" in raw.command("EXPUNGE")[-1]


def test_select_missing_mailbox_is_nonexistent_and_leaves_selected_state(imap):
    raw = imap.raw(login=ALICE)
    raw.command("SELECT INBOX")
    assert b"NO [NONEXISTENT]" in raw.command("SELECT Nowhere")[-1]
    assert raw.command("FETCH 1 FLAGS")[-1].startswith(b"T4 BAD")


def test_rev2_select_omits_recent_and_unseen(imap):
    raw = imap.raw(login=ALICE)
    raw.command("ENABLE IMAP4rev2")
    lines = raw.command("SELECT INBOX")
    assert not any(b"RECENT" in line or b"[UNSEEN" in line for line in lines)
    assert b'* LIST () "/" INBOX' in lines


def test_fetch_body_sets_seen_and_peek_does_not(imap):
    client = imap.client()
    client.select("INBOX")
    _, data = client.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert b"Subject: alpha" in data[0][1]
    assert client.fetch("1", "FLAGS")[1] == [b"1 (FLAGS (\\Recent))"]
    _, data = client.fetch("2", "(BODY[TEXT])")
    assert data[0][1] == b"Hello.\r\n" and b"FLAGS (\\Seen \\Recent)" in data[0][0] + data[1]
    assert "\\Seen" in imap.mailbox_refs()[1][1].flags


def test_fetch_with_bad_sequence_number_is_bad(imap):
    raw = imap.raw(login=ALICE)
    raw.command("SELECT INBOX")
    assert raw.command("FETCH 9 FLAGS")[-1].startswith(b"T3 BAD")
    assert raw.command("UID FETCH 9 FLAGS")[-1] == b"T4 OK UID FETCH completed"
    assert raw.command("UID FETCH 2:* UID")[:2] == [b"* 2 FETCH (UID 2)", b"* 3 FETCH (UID 3)"]


def test_store_add_remove_replace_and_silent(imap):
    raw = imap.raw(login=ALICE)
    raw.command("SELECT INBOX")
    assert raw.command("STORE 1:2 +FLAGS (\\Flagged)")[:2] == [
        b"* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent))",
        b"* 2 FETCH (UID 2 FLAGS (\\Flagged \\Recent))",
    ]
    assert raw.command("STORE 1 -FLAGS (\\Flagged)")[0] == b"* 1 FETCH (UID 1 FLAGS (\\Recent))"
    # Silent, but $Work is new to the mailbox: its FLAGS and PERMANENTFLAGS are sent again.
    assert raw.command("UID STORE 3 FLAGS.SILENT (\\Seen $Work)") == [
        b"* FLAGS ($Work \\Answered \\Deleted \\Draft \\Flagged \\Seen)",
        b"* OK [PERMANENTFLAGS (\\Answered \\Deleted \\Draft \\Flagged \\Seen $Work \\*)] Flags permitted",
        b"T5 OK UID STORE completed",
    ]
    flags = [ref.flags for ref in imap.mailbox_refs()[1]]
    assert flags == [frozenset(), frozenset({"\\Flagged"}), frozenset({"\\Seen", "$Work"})]


def test_store_unchangedsince_reports_modified(imap):
    raw = imap.raw(login=ALICE)
    lines = raw.command("SELECT INBOX (CONDSTORE)")
    modseq = int(re.search(rb"HIGHESTMODSEQ (\d+)", b" ".join(lines)).group(1))
    first = raw.command(f"STORE 1 (UNCHANGEDSINCE {modseq}) +FLAGS (\\Seen)")
    assert re.match(rb"\* 1 FETCH \(UID 1 FLAGS \(\\Recent \\Seen\) MODSEQ \((\d+)\)\)", first[0])
    second = raw.command(f"STORE 1,2 (UNCHANGEDSINCE {modseq}) +FLAGS (\\Answered)")
    assert second[-1].startswith(b"T4 OK [MODIFIED 1]")
    assert imap.mailbox_refs()[1][0].flags == frozenset({"\\Seen"})


def test_copy_and_move_report_copyuid(imap):
    raw = imap.raw(login=ALICE)
    raw.command("SELECT INBOX")
    tagged = raw.command("COPY 1:2 Archive")[-1]
    assert re.match(rb"T3 OK \[COPYUID \d+ 1:2 1:2\] COPY completed", tagged)
    lines = raw.command("UID MOVE 3 Archive")
    assert re.match(rb"\* OK \[COPYUID \d+ 3 3\]", lines[0])
    assert lines[1] == b"* 3 EXPUNGE"
    assert lines[-1] == b"T4 OK UID MOVE completed"
    assert len(imap.mailbox_refs("Archive")[1]) == 3 and len(imap.mailbox_refs()[1]) == 2
    assert b"NO [TRYCREATE]" in raw.command("COPY 1 Nowhere")[-1]


def test_expunge_and_uid_expunge(imap):
    raw = imap.raw(login=ALICE)
    raw.command("SELECT INBOX")
    raw.command("STORE 1:3 +FLAGS.SILENT (\\Deleted)")
    assert raw.command("UID EXPUNGE 2") == [b"* 2 EXPUNGE", b"T4 OK UID EXPUNGE completed"]
    assert raw.command("EXPUNGE") == [b"* 2 EXPUNGE", b"* 1 EXPUNGE", b"T5 OK EXPUNGE completed"]
    assert imap.mailbox_refs()[1] == []


def test_close_expunges_silently_and_unselect_does_not(imap):
    raw = imap.raw(login=ALICE)
    raw.command("SELECT INBOX")
    raw.command("STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert raw.command("UNSELECT") == [b"T4 OK UNSELECT completed"]
    assert len(imap.mailbox_refs()[1]) == 3
    raw.command("SELECT INBOX")
    assert raw.command("CLOSE") == [b"T6 OK CLOSE completed"]
    assert len(imap.mailbox_refs()[1]) == 2
    assert raw.command("FETCH 1 FLAGS")[-1].startswith(b"T7 BAD")


def test_search_sort_thread_delegate_to_engines(imap):
    raw = imap.raw(login=ALICE)
    raw.command("SELECT INBOX")
    raw.command("STORE 2 +FLAGS.SILENT (\\Flagged)")
    assert raw.command("SEARCH FLAGGED")[0] == b"* SEARCH 2"
    assert raw.command("UID SEARCH SUBJECT charlie")[0] == b"* SEARCH 3"
    assert raw.command("SEARCH RETURN (COUNT MIN) ALL")[0] == b'* ESEARCH (TAG "T6") MIN 1 COUNT 3'
    assert raw.command("SORT (REVERSE SUBJECT) UTF-8 ALL")[0] == b"* SORT 3 2 1"
    assert raw.command("THREAD ORDEREDSUBJECT UTF-8 ALL")[0] == b"* THREAD (1)(2)(3)"
    assert b"NO [BADCHARSET" in raw.command("SEARCH CHARSET KOI8-R ALL")[-1]


def test_searchres_saves_result_for_dollar(imap):
    raw = imap.raw(login=ALICE)
    raw.command("SELECT INBOX")
    assert raw.command("SEARCH RETURN (SAVE) SUBJECT bravo") == [b"T3 OK SEARCH completed"]
    assert raw.command("FETCH $ UID")[0] == b"* 2 FETCH (UID 2)"


def test_qresync_select_reports_vanished_and_changed(imap):
    raw = imap.raw(login=ALICE)
    raw.command("ENABLE QRESYNC")
    lines = raw.command("SELECT INBOX")
    text = b" ".join(lines)
    uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", text).group(1))
    modseq = int(re.search(rb"HIGHESTMODSEQ (\d+)", text).group(1))
    raw.command("STORE 1 +FLAGS.SILENT (\\Seen)")
    raw.command("STORE 3 +FLAGS.SILENT (\\Deleted)")
    raw.command("EXPUNGE")
    lines = raw.command(f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq} 1:3))")
    assert lines[0] == b"* OK [CLOSED] Previous mailbox closed"
    assert b"* VANISHED (EARLIER) 3" in lines
    assert any(re.match(rb"\* 1 FETCH \(UID 1 FLAGS \(\\Seen\) MODSEQ \(\d+\)\)", line) for line in lines)
    assert raw.command("UID EXPUNGE 1")[-1].startswith(b"T8 OK")


def test_fetch_changedsince_vanished(imap):
    raw = imap.raw(login=ALICE)
    raw.command("ENABLE QRESYNC")
    lines = raw.command("SELECT INBOX")
    modseq = int(re.search(rb"HIGHESTMODSEQ (\d+)", b" ".join(lines)).group(1))
    raw.command("UID STORE 2 +FLAGS.SILENT (\\Deleted)")
    raw.command("UID EXPUNGE 2")
    raw.command("UID STORE 3 +FLAGS.SILENT (\\Flagged)")
    lines = raw.command(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)")
    assert lines[0] == b"* VANISHED (EARLIER) 2"
    assert re.match(rb"\* 2 FETCH \(UID 3 FLAGS \(\\Flagged \\Recent\) MODSEQ \(\d+\)\)", lines[1])
    assert len(lines) == 3


def test_imapclient_message_workflow(imap):
    with IMAPClient(
        "127.0.0.1", imap.ports["imaps"], ssl=True, ssl_context=client_tls(), timeout=10
    ) as client:
        client.login(ALICE, PASSWORD)
        info = client.select_folder("INBOX")
        assert info[b"EXISTS"] == 3
        assert client.search(["SUBJECT", "bravo"]) == [2]
        client.add_flags([1], [b"\\Answered"])
        assert client.get_flags([1])[1] == (b"\\Answered", b"\\Recent")
        client.move([3], "Trash")
        assert client.folder_status("Trash", ["MESSAGES"])[b"MESSAGES"] == 1
        fetched = client.fetch([1, 2], ["ENVELOPE", "RFC822.SIZE"])
        assert fetched[2][b"ENVELOPE"].subject == b"bravo"
        client.delete_messages([1])
        client.expunge()
        assert client.search("ALL") == [2]  # imapclient searches by UID
