"""ESORT (RFC 5267 section 3) and SORT=DISPLAY (RFC 5957) over a real IMAP connection."""

from __future__ import annotations

import pytest

from tests.imap.session_support import ALICE, ImapTestServer


def letter(subject: str, sender: str, date: str) -> bytes:
    return (
        f"From: {sender}\r\nTo: {ALICE}\r\nSubject: {subject}\r\nDate: {date}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@example.test>\r\n\r\nHello.\r\n"
    ).encode()


@pytest.fixture
def imap(server) -> ImapTestServer:
    running = ImapTestServer(server)
    # seq 1..4; dates out of arrival order, display names that sort apart from their addresses
    running.deliver(letter("one", "Zoe <aaa@example.test>", "Thu, 03 Feb 1994 10:00:00 +0000"))
    running.deliver(letter("two", "bob@example.test", "Tue, 01 Feb 1994 10:00:00 +0000"))
    running.deliver(
        letter("three", "=?UTF-8?Q?=C3=89mile?= <zzz@example.test>", "Wed, 02 Feb 1994 10:00:00 +0000")
    )
    running.deliver(letter("four", "Amy <yyy@example.test>", "Mon, 31 Jan 1994 10:00:00 +0000"))
    return running


def test_esort_and_sort_display_are_advertised(imap):
    raw = imap.raw(login=ALICE)
    capabilities = raw.command("CAPABILITY")[0].split()
    assert b"ESORT" in capabilities and b"SORT=DISPLAY" in capabilities and b"SORT" in capabilities


def test_esort_return_options_answer_in_sort_order(imap):
    """RFC 5267 3.3: SORT RETURN (...) answers ESEARCH; MIN and MAX are the first and last in
    sort order, ALL lists the result in sort order."""
    raw = imap.raw(login=ALICE)
    raw.command("SELECT INBOX")
    assert raw.command("SORT RETURN (MIN COUNT) (DATE) UTF-8 SENTSINCE 1-Feb-1994")[0] == (
        b'* ESEARCH (TAG "T3") MIN 2 COUNT 3'
    )
    assert raw.command("SORT RETURN (ALL) (DATE) UTF-8 ALL")[0] == b'* ESEARCH (TAG "T4") ALL 4,2:3,1'
    assert raw.command("SORT RETURN (MIN MAX) (REVERSE DATE) UTF-8 ALL")[0] == (
        b'* ESEARCH (TAG "T5") MIN 1 MAX 4'
    )
    assert raw.command("UID SORT RETURN () (DATE) UTF-8 ALL")[0] == b'* ESEARCH (TAG "T6") UID ALL 4,2:3,1'
    assert (
        raw.command("SORT RETURN (COUNT) (DATE) UTF-8 SUBJECT nothing")[0] == b'* ESEARCH (TAG "T7") COUNT 0'
    )
    # a plain SORT keeps its RFC 5256 answer
    assert raw.command("SORT (DATE) UTF-8 ALL")[0] == b"* SORT 4 2 3 1"
    assert raw.command("SORT RETURN (BOGUS) (DATE) UTF-8 ALL")[-1].startswith(b"T9 BAD")


def test_esort_save_feeds_dollar(imap):
    raw = imap.raw(login=ALICE)
    raw.command("SELECT INBOX")
    assert raw.command("SORT RETURN (SAVE) (DATE) UTF-8 SENTSINCE 2-Feb-1994") == [b"T3 OK SORT completed"]
    assert raw.command("UID SEARCH UID $")[0] == b"* SEARCH 1 3"


def test_sort_displayfrom_uses_display_names_with_unicode_casemap(imap):
    """RFC 5957 section 3: the display name, else the addr-spec, compared with i;unicode-casemap
    (RFC 5051): Amy, bob@example.test, Émile (as E), Zoe; FROM sorts by local part instead."""
    raw = imap.raw(login=ALICE)
    raw.command("SELECT INBOX")
    assert raw.command("SORT (DISPLAYFROM) UTF-8 ALL")[0] == b"* SORT 4 2 3 1"
    assert raw.command("SORT (REVERSE DISPLAYFROM) UTF-8 ALL")[0] == b"* SORT 1 3 2 4"
    assert raw.command("SORT (FROM) UTF-8 ALL")[0] == b"* SORT 1 2 4 3"
    assert raw.command("SORT (DISPLAYTO) UTF-8 ALL")[0] == b"* SORT 1 2 3 4"
