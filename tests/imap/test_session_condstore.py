"""CONDSTORE and QRESYNC answers strict clients rely on (RFC 7162), over a real socket: which
commands enable CONDSTORE, the HIGHESTMODSEQ reported when one does so with a mailbox selected,
MODSEQ on every later untagged FETCH, the SEARCH MODSEQ entry syntax, and HIGHESTMODSEQ in the
tagged OK of EXPUNGE, UID EXPUNGE and UID MOVE once QRESYNC is enabled."""

from __future__ import annotations

import re

import pytest

from tests.imap.session_support import ALICE, ImapTestServer, message


@pytest.fixture
def imap(server) -> ImapTestServer:
    running = ImapTestServer(server)
    for subject in ("alpha", "bravo", "charlie"):
        running.deliver(message(subject))
    return running


def highestmodseq(lines: list[bytes]) -> int:
    return int(re.search(rb"HIGHESTMODSEQ (\d+)", b" ".join(lines)).group(1))


def store_highestmodseq(imap: ImapTestServer, name: str = "INBOX") -> int:
    mailbox, _refs = imap.mailbox_refs(name)
    return mailbox.highestmodseq


@pytest.mark.parametrize(
    "enabling",
    [
        "FETCH 1 (MODSEQ)",
        "FETCH 1 (FLAGS) (CHANGEDSINCE 1)",
        'SEARCH MODSEQ "/flags/\\\\seen" all 1',
        "STORE 1 (UNCHANGEDSINCE 99999) +FLAGS (\\Draft)",
        "STATUS INBOX (HIGHESTMODSEQ)",
        "ENABLE CONDSTORE",
    ],
)
def test_a_condstore_enabling_command_reports_highestmodseq_once_then_fetches_carry_modseq(imap, enabling):
    """RFC 7162 3.1: each of these enables CONDSTORE; the first one issued while a mailbox is
    selected reports that mailbox's HIGHESTMODSEQ (Dovecot sends an untagged OK first), and
    from then on every untagged FETCH -- after STORE too -- carries MODSEQ (RFC 7162 3.1.3)."""
    raw = imap.raw(login=ALICE)
    modseq = highestmodseq(raw.command("SELECT INBOX"))
    lines = raw.command(enabling)
    assert lines[-1].startswith(b"T3 OK"), lines
    assert f"* OK [HIGHESTMODSEQ {modseq}] Highest".encode() in lines, lines
    assert not any(
        b"HIGHESTMODSEQ" in line for line in raw.command(enabling)[:-1] if line.startswith(b"* OK")
    )
    stored = raw.command("STORE 2 +FLAGS (\\Flagged)")
    expected = rb"\* 2 FETCH \(UID 2 FLAGS \(\\Flagged \\Recent\) MODSEQ \(\d+\)\)"
    assert re.fullmatch(expected, stored[0]), stored


def test_search_modseq_with_an_entry_name_and_each_entry_type_parses(imap):
    """RFC 7162 3.1.5 grammar: ``MODSEQ [SP entry-name SP entry-type-req] SP mod-sequence-valzer``
    with the RFC's own example spelling (``"/flags/\\\\draft" all``) and priv/shared; the
    entry name may also come as a literal (as Dovecot accepts it)."""
    raw = imap.raw(login=ALICE)
    raw.command("SELECT INBOX")
    raw.command("STORE 2 +FLAGS.SILENT (\\Draft)")
    modseq = store_highestmodseq(imap)
    for entry in ('"/flags/\\\\draft" all', '"/flags/\\\\Seen" priv', '"/flags/$Label1" shared', ""):
        lines = raw.command(f"SEARCH MODSEQ {entry} {modseq}".replace("  ", " "))
        assert lines[-1].startswith(b"T"), lines
        assert b" OK " in lines[-1], lines
        assert f"* SEARCH 2 (MODSEQ {modseq})".encode() in lines, lines
    literal = raw.command(b"SEARCH MODSEQ {12+}\r\n/flags/\\seen all %d" % modseq)
    assert literal[0] == f"* SEARCH 2 (MODSEQ {modseq})".encode(), literal
    assert b" BAD " in raw.command('SEARCH MODSEQ "/flags/\\\\seen" everything 1')[-1]


def test_qresync_expunge_and_uid_expunge_tagged_ok_carry_highestmodseq(imap):
    """RFC 7162 3.2.10: with QRESYNC enabled, the tagged OK of EXPUNGE and UID EXPUNGE carries
    the mailbox's new HIGHESTMODSEQ (Dovecot: ``OK [HIGHESTMODSEQ 13] Expunge completed``)."""
    raw = imap.raw(login=ALICE)
    raw.command("ENABLE QRESYNC")
    raw.command("SELECT INBOX")
    raw.command("STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    lines = raw.command("UID EXPUNGE 1")
    assert lines == [
        b"* VANISHED 1",
        f"T5 OK [HIGHESTMODSEQ {store_highestmodseq(imap)}] UID EXPUNGE completed".encode(),
    ]
    lines = raw.command("EXPUNGE")
    assert lines == [
        b"* VANISHED 2",
        f"T6 OK [HIGHESTMODSEQ {store_highestmodseq(imap)}] EXPUNGE completed".encode(),
    ]


def test_qresync_uid_move_tagged_ok_carries_highestmodseq(imap):
    raw = imap.raw(login=ALICE)
    raw.command("ENABLE QRESYNC")
    raw.command("SELECT INBOX")
    lines = raw.command("UID MOVE 2 Archive")
    assert re.fullmatch(rb"\* OK \[COPYUID \d+ 2 1\] Moved", lines[0]), lines
    assert lines[1:] == [
        b"* VANISHED 2",
        f"T4 OK [HIGHESTMODSEQ {store_highestmodseq(imap)}] UID MOVE completed".encode(),
    ]


def test_without_qresync_expunge_tagged_ok_has_no_code(imap):
    raw = imap.raw(login=ALICE)
    raw.command("SELECT INBOX")
    raw.command("STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert raw.command("EXPUNGE") == [b"* 1 EXPUNGE", b"T4 OK EXPUNGE completed"]
