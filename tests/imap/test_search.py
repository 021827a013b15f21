"""SEARCH key evaluation and SEARCH/ESEARCH replies (RFC 9051 6.4.4, RFC 4731, RFC 5182, RFC 7162,
RFC 5032, RFC 8514, RFC 8474) over real messages held in memory."""

from __future__ import annotations

import dataclasses

import pytest

from tests.imap.message_samples import (
    ENCODED,
    LATIN1,
    MIXED,
    NESTED,
    PLAIN,
    Mailbox,
    parse,
    ref,
    run,
    timestamp,
)
from tidings.imap.message_data import MessageContext, email_id
from tidings.imap.search import check_charset, evaluate_search, format_esearch, format_search, search_reply
from tidings.imap.states import No

NOW = timestamp("2024-01-05 12:00:00")


def sample_mailbox() -> Mailbox:
    """Five messages, UIDs 3 5 8 9 12 (so UIDs and sequence numbers differ).

    Sizes: 320, 809, 610, 256, 219 octets.  Sent dates (Date:): 7-Feb-1994, 2-Jan-2024 -0500
    (3 Jan in UTC), 3-Jan-2024, 4-Jan-2024, none.
    """
    return Mailbox(
        [
            (
                ref(3, PLAIN, flags=["\\Seen", "\\Answered"], modseq=10, internal="2024-01-01 23:59:59",
                    saved="2024-02-01 08:00:00"),
                PLAIN,
            ),
            (
                ref(5, MIXED, flags=["\\Flagged", "$Work"], modseq=20, internal="2024-01-02 00:00:00",
                    saved="2024-02-02 08:00:00"),
                MIXED,
            ),
            (
                ref(8, NESTED, flags=["\\Deleted", "\\Seen"], modseq=30, internal="2024-01-03 12:00:00",
                    saved="2024-02-03 08:00:00"),
                NESTED,
            ),
            (ref(9, LATIN1, flags=["\\Draft"], modseq=40, internal="2024-01-04 12:00:00"), LATIN1),
            (ref(12, ENCODED, modseq=50, internal="2024-01-05 12:00:00"), ENCODED),
        ]
    )  # fmt: skip


def search(line: str, mailbox: Mailbox | None = None, saved_uids=()) -> list[int]:
    """Run ``line`` (a SEARCH command) and answer the sequence numbers or UIDs matched."""
    mailbox = mailbox or sample_mailbox()
    command = parse(line)
    matched = run(
        evaluate_search(command.criteria, mailbox.contexts, mailbox.loader, saved_uids=saved_uids, now=NOW)
    )
    return [c.uid if command.uid else c.seq for c in matched]


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        # flags
        ("ALL", [1, 2, 3, 4, 5]),
        ("ANSWERED", [1]),
        ("UNANSWERED", [2, 3, 4, 5]),
        ("DELETED", [3]),
        ("UNDELETED", [1, 2, 4, 5]),
        ("DRAFT", [4]),
        ("UNDRAFT", [1, 2, 3, 5]),
        ("FLAGGED", [2]),
        ("UNFLAGGED", [1, 3, 4, 5]),
        ("SEEN", [1, 3]),
        ("UNSEEN", [2, 4, 5]),
        ("KEYWORD $work", [2]),
        ("UNKEYWORD $Work", [1, 3, 4, 5]),
        ("KEYWORD $Missing", []),
        ("NEW", []),
        ("RECENT", []),
        ("OLD", [1, 2, 3, 4, 5]),
        # sizes
        ("LARGER 320", [2, 3]),
        ("SMALLER 320", [4, 5]),
        ("LARGER 319 SMALLER 321", [1]),
        # internal date, as a UTC calendar day
        ("BEFORE 2-Jan-2024", [1]),
        ("ON 2-Jan-2024", [2]),
        ("SINCE 3-Jan-2024", [3, 4, 5]),
        ('ON "1-Jan-2024"', [1]),
        # Date: header, the day it names in its own zone; no Date: never matches
        ("SENTBEFORE 1-Jan-2024", [1]),
        ("SENTON 2-Jan-2024", [2]),
        ("SENTON 3-Jan-2024", [3]),
        ("SENTSINCE 3-Jan-2024", [3, 4]),
        ("NOT SENTSINCE 3-Jan-2024", [1, 2, 5]),
        # save date (RFC 8514); a message saved when it arrived has the internal date
        ("SAVEDBEFORE 2-Feb-2024", [1, 4, 5]),
        ("SAVEDON 3-Feb-2024", [3]),
        ("SAVEDSINCE 2-Feb-2024", [2, 3]),
        ("SAVEDATESUPPORTED", [1, 2, 3, 4, 5]),
        # OLDER / YOUNGER (RFC 5032), now = 5-Jan-2024 12:00 UTC
        ("YOUNGER 100000", [4, 5]),
        ("OLDER 100000", [1, 2, 3]),
        ("YOUNGER 0", [5]),
        # addresses and subject, RFC 2047 decoded, case-insensitive
        ('FROM "jane@EXAMPLE.org"', [2]),
        ('FROM "Doe, Jane"', [2]),
        ('CHARSET UTF-8 FROM "müller"', [5]),
        ('FROM "JÖRG"', [5]),
        ('TO "bob"', [2, 4]),
        ('TO "carol@example.net"', [2, 5]),
        ('CC "dave"', [2]),
        ('BCC "dave"', []),
        ('SUBJECT "REPORT"', [2]),
        ('SUBJECT "grüße aus"', [5]),
        ('SUBJECT "plans"', [3]),
        ('SUBJECT ""', [1, 2, 3, 4, 5]),
        ('CC ""', [2]),
        # any header, body, whole text
        ('HEADER X-Priority "3"', [2]),
        ('HEADER x-priority ""', [2]),
        ('HEADER Message-ID "example.DE"', [4, 5]),
        ('HEADER Received ""', []),
        ('BODY "café"', [2]),
        ('BODY "köln"', [4]),
        ('BODY "HARBOUR"', [3]),
        ('BODY "afternoon"', []),
        ('TEXT "afternoon"', [1]),
        ('TEXT "harbour"', [3]),
        ('TEXT "X-Priority: 3"', [2]),
        # UIDs and sequence numbers; * is the last message / largest UID
        ("UID 5:9", [2, 3, 4]),
        ("UID 10:*", [5]),
        ("UID 20:*", [5]),
        ("UID *", [5]),
        ("UID 1,4,6", []),
        ("2:3", [2, 3]),
        ("*", [5]),
        ("4:*", [4, 5]),
        ("1,3,5", [1, 3, 5]),
        # CONDSTORE
        ("MODSEQ 30", [3, 4, 5]),
        ('MODSEQ "/flags/\\\\draft" all 41', [5]),
        # object ids (RFC 8474)
        (f"EMAILID {email_id(ref(5, MIXED))}", [2]),
        ("EMAILID E0", []),
        ("THREADID T1", []),
        # nesting
        ("NOT SEEN", [2, 4, 5]),
        ("OR FLAGGED DRAFT", [2, 4]),
        ("(SEEN ANSWERED)", [1]),
        ("SEEN UNANSWERED", [3]),
        ("NOT (OR SEEN FLAGGED)", [4, 5]),
        ("OR (SEEN ANSWERED) NOT UID 1:8", [1, 4, 5]),
        ('OR BODY "harbour" (FLAGGED BODY "café")', [2, 3]),
        ('NOT OR BODY "harbour" FROM "jane"', [1, 4, 5]),
        ("NOT NOT DRAFT", [4]),
    ],
)
def test_search_key(keys, expected):
    assert search(f"t SEARCH {keys}") == expected


def test_uid_search_answers_uids():
    assert search("t UID SEARCH UNSEEN") == [5, 9, 12]
    assert search("t UID SEARCH 2:3") == [5, 8]


def test_saved_result_dollar_names_the_saved_uids_in_both_numberings():
    assert search("t SEARCH $", saved_uids=[5, 9]) == [2, 4]
    assert search("t UID SEARCH UID $", saved_uids=[5, 9]) == [5, 9]
    assert search("t SEARCH 1,$ SEEN", saved_uids=[8]) == [1, 3]
    assert search("t SEARCH $") == []


def test_search_of_an_empty_mailbox_matches_nothing():
    empty = Mailbox([])
    assert search("t SEARCH ALL", empty) == []
    assert search("t SEARCH 1:*", empty) == []
    assert search("t SEARCH UID *", empty) == []


def test_charsets_other_than_utf8_and_ascii_are_refused_with_badcharset():
    check_charset(None)
    check_charset("UTF-8")
    check_charset("us-ascii")
    with pytest.raises(No) as failure:
        check_charset("ISO-8859-1")
    assert failure.value.code == "BADCHARSET (UTF-8 US-ASCII)"


# --------------------------------------------------------------------------- staged loading


def test_keys_answered_from_the_ref_load_nothing():
    mailbox = sample_mailbox()
    search("t SEARCH SEEN LARGER 10 SINCE 1-Jan-2024 UID 1:* MODSEQ 1 NOT KEYWORD x 1:*", mailbox)
    assert (mailbox.loader.summary_loads, mailbox.loader.blob_loads) == (0, 0)


def test_body_search_reads_only_the_messages_cheap_keys_leave_undecided():
    mailbox = sample_mailbox()
    assert search('t SEARCH FLAGGED BODY "café"', mailbox) == [2]
    assert (mailbox.loader.summary_loads, mailbox.loader.blob_loads) == (1, 1)


def test_an_or_with_a_true_cheap_side_needs_no_loading_for_that_message():
    mailbox = sample_mailbox()
    assert search('t SEARCH OR SEEN BODY "köln"', mailbox) == [1, 3, 4]
    assert mailbox.loader.blob_loads == 3  # messages 2, 4 and 5 only


def test_address_and_date_keys_need_the_summary_but_not_the_bytes():
    mailbox = sample_mailbox()
    assert search('t SEARCH FROM "jane" SENTSINCE 1-Jan-2024', mailbox) == [2]
    assert mailbox.loader.summary_loads == 5
    assert mailbox.loader.blob_loads == 0


def test_a_message_gone_from_the_store_does_not_match():
    mailbox = sample_mailbox()
    gone = dataclasses.replace(mailbox.contexts[1].ref, blob_hash="missing")
    mailbox.contexts[1] = MessageContext(2, gone)
    assert search('t SEARCH OR FLAGGED TEXT "report"', mailbox) == [2]  # decided by the ref alone
    assert search('t SEARCH TEXT "report"', mailbox) == []


# --------------------------------------------------------------------------- replies


def reply(line: str, *, esearch: bool = False, saved_uids=()):
    mailbox = sample_mailbox()
    command = parse(line)
    matched = run(
        evaluate_search(command.criteria, mailbox.contexts, mailbox.loader, saved_uids=saved_uids, now=NOW)
    )
    return search_reply(command, matched, esearch=esearch)


def test_classic_search_reply_lists_numbers():
    assert reply("t SEARCH UNSEEN").response == b"* SEARCH 2 4 5\r\n"
    assert reply("t UID SEARCH UNSEEN").response == b"* SEARCH 5 9 12\r\n"
    assert reply("t SEARCH KEYWORD nothing").response == b"* SEARCH\r\n"
    assert reply("t SEARCH UNSEEN").saved_uids is None


def test_a_modseq_search_reports_the_highest_modseq_of_the_matches():
    assert reply("t SEARCH MODSEQ 15 UNSEEN").response == b"* SEARCH 2 4 5 (MODSEQ 50)\r\n"
    assert reply("t SEARCH MODSEQ 15 SEEN").response == b"* SEARCH 3 (MODSEQ 30)\r\n"
    assert reply("t SEARCH MODSEQ 99").response == b"* SEARCH\r\n"
    assert reply("t SEARCH RETURN (ALL) MODSEQ 15").response == b'* ESEARCH (TAG "t") ALL 2:5 MODSEQ 50\r\n'


def test_esearch_return_options():
    assert (
        reply("A282 SEARCH RETURN (MIN COUNT) UNSEEN").response == b'* ESEARCH (TAG "A282") MIN 2 COUNT 3\r\n'
    )
    assert reply("A283 SEARCH RETURN () UNDRAFT").response == b'* ESEARCH (TAG "A283") ALL 1:3,5\r\n'
    assert reply("A284 UID SEARCH RETURN (MIN MAX) UNDRAFT").response == (
        b'* ESEARCH (TAG "A284") UID MIN 3 MAX 12\r\n'
    )
    assert reply("A285 UID SEARCH RETURN (ALL COUNT MAX MIN) ALL").response == (
        b'* ESEARCH (TAG "A285") UID MIN 3 MAX 12 COUNT 5 ALL 3,5,8:9,12\r\n'
    )


def test_esearch_with_no_match_keeps_only_count():
    assert reply("t SEARCH RETURN (MIN MAX ALL COUNT) KEYWORD none").response == (
        b'* ESEARCH (TAG "t") COUNT 0\r\n'
    )
    assert reply("t UID SEARCH RETURN (MIN) KEYWORD none").response == b'* ESEARCH (TAG "t") UID\r\n'


def test_imap4rev2_clients_get_esearch_for_a_plain_search():
    assert reply("t SEARCH UNSEEN", esearch=True).response == b'* ESEARCH (TAG "t") ALL 2,4:5\r\n'
    assert reply("t UID SEARCH KEYWORD none", esearch=True).response == b'* ESEARCH (TAG "t") UID\r\n'


def test_a_tag_with_quotes_is_escaped():
    assert format_esearch('a"b', [1], ["COUNT"], uid=False) == b'* ESEARCH (TAG "a\\"b") COUNT 1\r\n'


def test_return_save_alone_saves_every_match_and_answers_nothing():
    result = reply("t SEARCH RETURN (SAVE) UNSEEN")
    assert (result.response, result.saved_uids) == (b"", [5, 9, 12])


def test_return_save_with_min_or_max_saves_only_those():
    result = reply("t SEARCH RETURN (SAVE MIN) UNSEEN")
    assert (result.response, result.saved_uids) == (b'* ESEARCH (TAG "t") MIN 2\r\n', [5])
    assert reply("t SEARCH RETURN (SAVE MAX MIN) UNSEEN").saved_uids == [5, 12]
    assert reply("t SEARCH RETURN (SAVE MIN COUNT) UNSEEN").saved_uids == [5, 9, 12]
    assert reply("t SEARCH RETURN (SAVE MIN) KEYWORD none").saved_uids == []


def test_format_search_helpers():
    assert format_search([]) == b"* SEARCH\r\n"
    assert format_search([], modseq=7) == b"* SEARCH\r\n"
    assert format_search([4, 1], modseq=7) == b"* SEARCH 4 1 (MODSEQ 7)\r\n"


def test_a_set_of_many_ranges_over_a_large_mailbox():
    big = Mailbox([(ref(uid, PLAIN, blob="same"), PLAIN) for uid in range(1, 3001)])
    odd = ",".join(str(n) for n in range(1, 3001, 2))
    assert search(f"t SEARCH {odd}", big) == list(range(1, 3001, 2))
    assert search(f"t UID SEARCH UID {odd} NOT 1:2999", big) == []
    assert search("t SEARCH 2999:*", big) == [2999, 3000]
