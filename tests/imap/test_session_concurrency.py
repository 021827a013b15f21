"""IMAP session: several sessions on one mailbox see each other's changes at the moments RFC 3501
7.4.1 allows, and IDLE hears about SMTP deliveries at once."""

from __future__ import annotations

import smtplib
import time

import pytest

from tests.imap.session_support import ALICE, ImapTestServer, message


@pytest.fixture
def imap(server) -> ImapTestServer:
    running = ImapTestServer(server)
    for subject in ("alpha", "bravo", "charlie"):
        running.deliver(message(subject))
    return running


def two_sessions(imap, select: str = "SELECT INBOX"):
    first, second = imap.raw(login=ALICE), imap.raw(login=ALICE)
    first.command(select)
    second.command("SELECT INBOX")
    return first, second


def test_new_message_is_announced_with_exists_at_next_command(imap):
    watcher, _ = two_sessions(imap)
    imap.deliver(message("delta"))
    # The watcher's SELECT claimed messages 1-3 as \Recent, and it hears of 4 first.
    assert watcher.command("NOOP") == [b"* 4 EXISTS", b"* 4 RECENT", b"T3 OK NOOP completed"]
    assert watcher.command("NOOP") == [b"T4 OK NOOP completed"]


def test_flag_change_by_another_session_is_announced(imap):
    watcher, actor = two_sessions(imap)
    actor.command("STORE 2 +FLAGS.SILENT (\\Flagged)")
    expected = b"* 2 FETCH (UID 2 FLAGS (\\Flagged \\Recent))"  # the watcher selected first
    assert watcher.command("NOOP") == [expected, b"T3 OK NOOP completed"]


def test_expunge_waits_until_a_command_that_allows_it(imap):
    watcher, actor = two_sessions(imap)
    actor.command("STORE 1 +FLAGS.SILENT (\\Deleted)")
    actor.command("EXPUNGE")
    # During FETCH, STORE and SEARCH the numbers must not shift: message 1 is still there.
    lines = watcher.command("FETCH 1:* UID")
    assert not any(b"EXPUNGE" in line for line in lines)
    assert [line for line in lines if b"FETCH (UID" in line][:3] == [
        b"* 1 FETCH (UID 1)",
        b"* 2 FETCH (UID 2)",
        b"* 3 FETCH (UID 3)",
    ]
    assert watcher.command("SEARCH ALL")[0] == b"* SEARCH 1 2 3"
    assert watcher.command("NOOP")[:1] == [b"* 1 EXPUNGE"]
    assert watcher.command("SEARCH ALL")[0] == b"* SEARCH 1 2"


def test_uid_commands_may_carry_expunges(imap):
    watcher, actor = two_sessions(imap)
    actor.command("STORE 3 +FLAGS.SILENT (\\Deleted)")
    actor.command("EXPUNGE")
    lines = watcher.command("UID FETCH 1:* UID")
    assert b"* 3 EXPUNGE" in lines and lines[-1].startswith(b"T3 OK")


def test_qresync_sessions_get_vanished_instead_of_expunge(imap):
    watcher, actor = imap.raw(login=ALICE), imap.raw(login=ALICE)
    watcher.command("ENABLE QRESYNC")
    watcher.command("SELECT INBOX")
    actor.command("SELECT INBOX")
    actor.command("STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    actor.command("EXPUNGE")
    lines = watcher.command("NOOP")
    assert lines[0] == b"* VANISHED 1:2"
    assert watcher.command("FETCH 1 UID")[0].startswith(b"* 1 FETCH (UID 3")


def test_move_is_seen_by_the_other_session(imap):
    watcher, actor = two_sessions(imap)
    actor.command("MOVE 2 Archive")
    assert watcher.command("NOOP")[:1] == [b"* 2 EXPUNGE"]


def test_idle_reports_changes_from_another_session(imap):
    idler, actor = two_sessions(imap)
    idler.send(b"I1 IDLE\r\n")
    assert idler.line() == b"+ idling"
    actor.command("STORE 3 +FLAGS.SILENT (\\Seen)")
    assert idler.line() == b"* 3 FETCH (UID 3 FLAGS (\\Recent \\Seen))"
    actor.command("STORE 3 +FLAGS.SILENT (\\Deleted)")
    actor.command("EXPUNGE")
    seen = [idler.line()]
    while seen[-1] != b"* 3 EXPUNGE" and len(seen) < 3:
        seen.append(idler.line())
    assert seen[-1] == b"* 3 EXPUNGE"
    idler.send(b"DONE\r\n")
    assert idler.line() == b"I1 OK IDLE terminated"


def test_idle_hears_an_smtp_delivery_within_100_ms(imap):
    idler = imap.raw(login=ALICE)
    idler.command("SELECT INBOX")
    idler.send(b"I1 IDLE\r\n")
    assert idler.line() == b"+ idling"
    with smtplib.SMTP("127.0.0.1", imap.ports["smtp"], timeout=10) as smtp:
        smtp.ehlo("client.example.test")
        smtp.sendmail("dave@elsewhere.test", [ALICE], message("by smtp", sender="dave@elsewhere.test"))
        accepted_at = time.monotonic()  # the 250 came back: the message is committed
        assert idler.line() == b"* 4 EXISTS"
        latency = time.monotonic() - accepted_at
        assert idler.line() == b"* 4 RECENT"
    assert latency < 0.1, f"IDLE heard of the delivery after {latency * 1000:.0f} ms"
    idler.send(b"DONE\r\n")
    assert idler.line() == b"I1 OK IDLE terminated"


def test_idle_in_authenticated_state_and_done_case_insensitive(imap):
    raw = imap.raw(login=ALICE)
    raw.send(b"I1 IDLE\r\n")
    assert raw.line() == b"+ idling"
    raw.send(b"done\r\n")
    assert raw.line() == b"I1 OK IDLE terminated"
    raw.send(b"I2 IDLE\r\n")
    assert raw.line() == b"+ idling"
    raw.send(b"NOT DONE\r\n")
    assert raw.line().startswith(b"I2 BAD")
    assert raw.command("NOOP")[-1] == b"T2 OK NOOP completed"


def test_pipelined_commands_answer_in_order(imap):
    raw = imap.raw(login=ALICE)
    raw.send(b"P1 SELECT INBOX\r\nP2 FETCH 1 UID\r\nP3 STORE 1 +FLAGS (\\Seen)\r\nP4 NOOP\r\n")
    lines = raw.until_tagged("P4")
    tagged = [line.split(b" ")[0] for line in lines if line.startswith(b"P")]
    assert tagged == [b"P1", b"P2", b"P3", b"P4"]


def test_append_to_the_selected_mailbox_announces_exists(imap):
    raw = imap.raw(login=ALICE)
    raw.command("SELECT INBOX")
    body = message("appended")
    raw.send(b"A1 APPEND INBOX {%d+}\r\n%s\r\n" % (len(body), body))
    lines = raw.until_tagged("A1")
    assert lines[0] == b"* 4 EXISTS" and lines[-1].startswith(b"A1 OK [APPENDUID")


def test_large_expunge_by_another_session_renumbers_correctly(imap):
    for index in range(40):
        imap.deliver(message(f"bulk {index}"))
    watcher, actor = two_sessions(imap)
    actor.command("STORE 2:42 +FLAGS.SILENT (\\Deleted)")
    actor.command("EXPUNGE")
    lines = watcher.command("NOOP")
    assert lines[:2] == [b"* 42 EXPUNGE", b"* 41 EXPUNGE"] and len(lines) == 42
    assert watcher.command("FETCH 1:* UID")[:2] == [b"* 1 FETCH (UID 1)", b"* 2 FETCH (UID 43)"]


def test_imapclient_idle_check_sees_new_mail(imap):
    from imapclient import IMAPClient

    from tests.imap.session_support import PASSWORD, client_tls

    with IMAPClient(
        "127.0.0.1", imap.ports["imaps"], ssl=True, ssl_context=client_tls(), timeout=10
    ) as client:
        client.login(ALICE, PASSWORD)
        client.select_folder("INBOX")
        client.idle()
        imap.deliver(message("while idling"))
        responses = client.idle_check(timeout=5)
        client.idle_done()
        assert (4, b"EXISTS") in responses
