"""PARTIAL (RFC 9394): paged SEARCH, SORT and FETCH results over a real IMAP connection."""

from __future__ import annotations

import pytest

from tests.imap.session_support import ALICE, ImapTestServer, message
from tidings.imap.commands import PartialRange


@pytest.fixture
def imap(server) -> ImapTestServer:
    running = ImapTestServer(server)
    for number in range(1, 11):
        running.deliver(message(f"note {number:02d}"))
    return running


def selected(imap):
    raw = imap.raw(login=ALICE)
    raw.command("SELECT INBOX")
    # messages 3 and 4 are deleted: UNDELETED matches UIDs 1,2,5,6,7,8,9,10
    raw.command("STORE 3:4 +FLAGS.SILENT (\\Deleted)")
    return raw


def test_partial_is_advertised(imap):
    raw = imap.raw(login=ALICE)
    assert b"PARTIAL" in raw.command("CAPABILITY")[0].split()


def test_search_partial_first_and_last_pages(imap):
    """RFC 9394 3.1: ``PARTIAL 1:500`` pages from the first result, ``-1:-100`` from the last;
    the reply echoes the range and lists the results at those positions."""
    raw = selected(imap)
    assert raw.command("UID SEARCH RETURN (PARTIAL 1:3) UNDELETED")[0] == (
        b'* ESEARCH (TAG "T4") UID PARTIAL (1:3 1:2,5)'
    )
    assert raw.command("UID SEARCH RETURN (PARTIAL 4:6) UNDELETED")[0] == (
        b'* ESEARCH (TAG "T5") UID PARTIAL (4:6 6:8)'
    )
    assert raw.command("UID SEARCH RETURN (PARTIAL -1:-3) UNDELETED")[0] == (
        b'* ESEARCH (TAG "T6") UID PARTIAL (-1:-3 8:10)'
    )
    # a window past the end answers what is there, or NIL
    assert (
        raw.command("SEARCH RETURN (PARTIAL 7:500) UNDELETED")[0]
        == b'* ESEARCH (TAG "T7") PARTIAL (7:500 9:10)'
    )
    assert (
        raw.command("SEARCH RETURN (PARTIAL 20:30) UNDELETED")[0]
        == b'* ESEARCH (TAG "T8") PARTIAL (20:30 NIL)'
    )
    assert raw.command("SEARCH RETURN (PARTIAL -5:-1) SUBJECT nothing")[0] == (
        b'* ESEARCH (TAG "T9") PARTIAL (-5:-1 NIL)'
    )


def test_search_partial_combines_with_count_min_max_but_not_all(imap):
    raw = selected(imap)
    assert raw.command("SEARCH RETURN (COUNT MIN MAX PARTIAL 1:2) UNDELETED")[0] == (
        b'* ESEARCH (TAG "T4") MIN 1 MAX 10 COUNT 8 PARTIAL (1:2 1:2)'
    )
    assert raw.command("SEARCH RETURN (ALL PARTIAL 1:2) UNDELETED")[-1].startswith(b"T5 BAD")
    for bad in ("PARTIAL 0:5", "PARTIAL 1:-5", "PARTIAL -1:5", "PARTIAL 5", "PARTIAL 1:2 PARTIAL 3:4"):
        assert raw.command(f"SEARCH RETURN ({bad}) ALL")[-1].split()[1] == b"BAD", bad


def test_search_partial_with_save_keeps_only_the_window(imap):
    raw = selected(imap)
    assert raw.command("UID SEARCH RETURN (SAVE PARTIAL -1:-2) UNDELETED")[0] == (
        b'* ESEARCH (TAG "T4") UID PARTIAL (-1:-2 9:10)'
    )
    assert raw.command("UID SEARCH UID $")[0] == b"* SEARCH 9 10"


def test_sort_partial_pages_in_sort_order(imap):
    raw = selected(imap)
    assert raw.command("UID SORT RETURN (PARTIAL 1:3) (REVERSE SUBJECT) UTF-8 UNDELETED")[0] == (
        b'* ESEARCH (TAG "T4") UID PARTIAL (1:3 10,9,8)'
    )
    assert raw.command("SORT RETURN (COUNT PARTIAL -1:-2) (REVERSE SUBJECT) UTF-8 UNDELETED")[0] == (
        b'* ESEARCH (TAG "T5") COUNT 8 PARTIAL (-1:-2 2,1)'
    )


def test_uid_fetch_partial_answers_only_the_window(imap):
    """RFC 9394 3.2: ``UID FETCH 1:* (FLAGS) (PARTIAL -1:-3)`` fetches the last three."""
    raw = selected(imap)
    lines = raw.command("UID FETCH 1:* (FLAGS) (PARTIAL -1:-3)")
    assert [line.split(b" (")[0] for line in lines[:-1]] == [b"* 8 FETCH", b"* 9 FETCH", b"* 10 FETCH"]
    assert lines[-1].startswith(b"T4 OK")
    lines = raw.command("UID FETCH 2:* (FLAGS) (PARTIAL 1:2)")
    assert [line.split(b" (")[0] for line in lines[:-1]] == [b"* 2 FETCH", b"* 3 FETCH"]
    assert raw.command("UID FETCH 1:* (FLAGS) (PARTIAL 50:60)") == [b"T6 OK UID FETCH completed"]


def test_fetch_partial_applies_after_changedsince(imap):
    raw = selected(imap)
    # FETCH MODSEQ enables CONDSTORE, so an OK [HIGHESTMODSEQ] comes first (RFC 7162 3.1).
    modseq = int(raw.command("FETCH 10 (MODSEQ)")[-2].split(b"MODSEQ (")[1].split(b")")[0])
    raw.command("STORE 2,5,7 +FLAGS.SILENT (\\Flagged)")
    lines = raw.command(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} PARTIAL -1:-2)")
    assert [line.split(b" (")[0] for line in lines[:-1]] == [b"* 5 FETCH", b"* 7 FETCH"]


def test_partial_range_window_counts_positions_from_either_end():
    items = list("abcdefg")
    assert PartialRange(1, 3).window(items) == list("abc")
    assert PartialRange(3, 1).window(items) == list("abc")
    assert PartialRange(-1, -3).window(items) == list("efg")
    assert PartialRange(-3, -1).window(items) == list("efg")
    assert PartialRange(6, 100).window(items) == list("fg")
    assert PartialRange(-100, -6).window(items) == list("ab")
    assert PartialRange(8, 9).window(items) == [] and PartialRange(-9, -8).window(items) == []
