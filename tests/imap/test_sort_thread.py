"""SORT (RFC 5256 section 3, RFC 5957 DISPLAYFROM/DISPLAYTO, RFC 5267 ESORT) and THREAD
(RFC 5256 REFERENCES and ORDEREDSUBJECT) over real messages held in memory."""

from __future__ import annotations

import dataclasses

import pytest

from tests.imap.message_samples import Mailbox, crlf, parse, ref, run
from tidings.imap.search import evaluate_search
from tidings.imap.sort_thread import format_sort, format_thread, sort_messages, sort_reply, thread_messages
from tidings.imap.states import Bad


def message(
    subject: str,
    *,
    date: str | None,
    sender: str = "someone@example.com",
    to: str = "list@example.com",
    cc: str | None = None,
    message_id: str | None = None,
    references: str | None = None,
) -> bytes:
    lines = [f"From: {sender}", f"To: {to}", f"Subject: {subject}"]
    if cc:
        lines.append(f"Cc: {cc}")
    if date:
        lines.append(f"Date: {date}")
    if message_id:
        lines.append(f"Message-ID: {message_id}")
    if references:
        lines.append(f"References: {references}")
    return crlf("\n".join(lines) + "\n\nbody\n")


def sized(uid: int, raw: bytes, size: int, **options):
    return dataclasses.replace(ref(uid, raw, **options), size=size), raw


def sort_mailbox() -> Mailbox:
    """Five messages, UIDs 10..50.  Seq 4 has no Date: (its internal date, 7 Jan, stands in)."""
    return Mailbox(
        [
            sized(10, message("Re: banana", date="Wed, 03 Jan 2024 10:00:00 +0000",
                              sender="Zoe Adams <adams@example.com>", to="carl@example.com"),
                  500, internal="2024-01-10 00:00:00", flags=["\\Seen"], modseq=11),
            sized(20, message("apple", date="Mon, 01 Jan 2024 10:00:00 +0000", sender="bob@example.com",
                              to="Ann <zed@example.com>", cc="b@example.com"),
                  100, internal="2024-01-09 00:00:00", modseq=22),
            sized(30, message("[list] Banana", date="Tue, 02 Jan 2024 23:00:00 -0500",
                              sender="Amy <carol@example.com>", to="Bea <alpha@example.com>"),
                  300, internal="2024-01-08 00:00:00", flags=["\\Seen"], modseq=33),
            sized(40, message("Fwd: cherry", date=None, sender="=?UTF-8?Q?=C3=89mile?= <dan@example.com>",
                              to="Ann <yan@example.com>", cc="a@example.com"),
                  200, internal="2024-01-07 00:00:00", modseq=44),
            sized(50, message("apple", date="Mon, 01 Jan 2024 10:00:00 +0000", sender="bob@example.com",
                              to="carl@example.com"),
                  150, internal="2024-01-09 00:00:00", modseq=55),
        ]
    )  # fmt: skip


def sorted_numbers(line: str, mailbox: Mailbox | None = None) -> list[int]:
    mailbox = mailbox or sort_mailbox()
    command = parse(line)

    async def go():
        matched = await evaluate_search(command.search, mailbox.contexts, mailbox.loader)
        return await sort_messages(command.criteria, matched, mailbox.loader)

    return [c.uid if command.uid else c.seq for c in run(go())]


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ("ARRIVAL", [4, 3, 2, 5, 1]),  # 2 and 5 arrived together: sequence order breaks the tie
        ("REVERSE ARRIVAL", [1, 2, 5, 3, 4]),
        ("DATE", [2, 5, 3, 1, 4]),  # 3 is 04:00 UTC on 3 Jan; 4 falls back to its internal date
        ("REVERSE DATE", [4, 1, 3, 2, 5]),
        ("SIZE", [2, 5, 4, 3, 1]),
        ("SUBJECT", [2, 5, 1, 3, 4]),  # base subjects: apple, banana (Re:, [list] removed), cherry
        ("FROM", [1, 2, 5, 3, 4]),  # local parts: adams bob bob carol dan
        ("TO", [3, 1, 5, 4, 2]),  # alpha carl carl yan zed
        ("CC", [1, 3, 5, 4, 2]),  # no Cc sorts first
        # i;unicode-casemap (RFC 5051): Émile folds to E + combining acute, so it sorts before Zoe
        ("DISPLAYFROM", [3, 2, 5, 4, 1]),  # Amy, bob@..., bob@..., Émile, Zoe Adams
        ("DISPLAYTO", [2, 4, 3, 1, 5]),  # Ann, Ann, Bea, carl@..., carl@...
        ("REVERSE SUBJECT DATE", [4, 3, 1, 2, 5]),
        ("FROM REVERSE SIZE", [1, 5, 2, 3, 4]),
        ("SUBJECT REVERSE ARRIVAL", [2, 5, 1, 3, 4]),
    ],
)
def test_sort_criterion(criteria, expected):
    assert sorted_numbers(f"t SORT ({criteria}) UTF-8 ALL") == expected


def test_uid_sort_of_search_results_answers_uids():
    assert sorted_numbers("t UID SORT (REVERSE SIZE) UTF-8 UNSEEN") == [40, 50, 20]


def test_sorting_by_arrival_or_size_loads_no_summaries():
    mailbox = sort_mailbox()
    sorted_numbers("t SORT (ARRIVAL REVERSE SIZE) UTF-8 ALL", mailbox)
    assert (mailbox.loader.summary_loads, mailbox.loader.blob_loads) == (0, 0)
    sorted_numbers("t SORT (SUBJECT) UTF-8 ALL", mailbox)
    assert (mailbox.loader.summary_loads, mailbox.loader.blob_loads) == (5, 0)


def sort_response(line: str) -> bytes:
    mailbox = sort_mailbox()
    command = parse(line)

    async def go():
        matched = await evaluate_search(command.search, mailbox.contexts, mailbox.loader)
        return sort_reply(command, await sort_messages(command.criteria, matched, mailbox.loader))

    return run(go()).response


def test_sort_response_lines():
    assert sort_response("t SORT (ARRIVAL) UTF-8 ALL") == b"* SORT 4 3 2 5 1\r\n"
    assert sort_response("t UID SORT (DATE) US-ASCII SEEN") == b"* SORT 30 10\r\n"
    assert sort_response("t SORT (DATE) UTF-8 KEYWORD none") == b"* SORT\r\n"
    assert sort_response("t SORT (SIZE) UTF-8 MODSEQ 30") == b"* SORT 5 4 3 (MODSEQ 55)\r\n"
    assert format_sort([]) == b"* SORT\r\n"


def test_esort_return_options_keep_the_sort_order():
    assert sort_response("t UID SORT RETURN (MIN MAX COUNT ALL) (ARRIVAL) UTF-8 ALL") == (
        b'* ESEARCH (TAG "t") UID MIN 40 MAX 10 COUNT 5 ALL 40,30,20,50,10\r\n'
    )
    assert sort_response("t SORT RETURN (ALL) (FROM) UTF-8 ALL") == b'* ESEARCH (TAG "t") ALL 1:2,5,3:4\r\n'
    assert (
        sort_response("t SORT RETURN (COUNT) (FROM) UTF-8 KEYWORD none") == b'* ESEARCH (TAG "t") COUNT 0\r\n'
    )


# --------------------------------------------------------------------------- THREAD


def rfc5256_thread_mailbox() -> Mailbox:
    """Messages whose UIDs and references give the RFC 5256 section 4 example,
    ``(2)(3 6 (4 23)(44 7 96))``: 3 starts a thread, 6 answers it, 4 and 44 answer 6, 23
    answers 4, 7 answers 44 and 96 answers 7.  2 is alone."""

    def reply(uid: int, hour: int, *chain: int) -> tuple:
        references = " ".join(f"<{n}@example.com>" for n in chain)
        raw = message(
            "Re: topic" if chain else "topic",
            date=f"Tue, 02 Jan 2024 {hour:02d}:00:00 +0000",
            message_id=f"<{uid}@example.com>",
            references=references or None,
        )
        return ref(uid, raw), raw

    alone = message("lonely", date="Mon, 01 Jan 2024 09:00:00 +0000", message_id="<2@example.com>")
    entries = [
        (ref(2, alone), alone),
        reply(3, 0),
        reply(4, 2, 3, 6),
        reply(6, 1, 3),
        reply(7, 5, 3, 6, 44),
        reply(23, 3, 3, 6, 4),
        reply(44, 4, 3, 6),
        reply(96, 6, 3, 6, 44, 7),
    ]
    return Mailbox(entries)


def thread(line: str, mailbox: Mailbox) -> bytes:
    command = parse(line)

    async def go():
        matched = await evaluate_search(command.search, mailbox.contexts, mailbox.loader)
        return await thread_messages(command.algorithm, matched, mailbox.loader, uid=command.uid)

    return format_thread(run(go()))


def test_thread_references_reproduces_the_rfc5256_example():
    mailbox = rfc5256_thread_mailbox()
    assert thread("t UID THREAD REFERENCES UTF-8 ALL", mailbox) == b"* THREAD (2)(3 6 (4 23)(44 7 96))\r\n"
    # The same threads in sequence numbers (UID order: 2 3 4 6 7 23 44 96).
    assert thread("t THREAD REFERENCES UTF-8 ALL", mailbox) == b"* THREAD (1)(2 4 (3 6)(7 5 8))\r\n"


def test_thread_references_of_search_results_only():
    mailbox = rfc5256_thread_mailbox()
    # Without 6, its replies hang from 3 through the references they carry.
    assert (
        thread("t UID THREAD REFERENCES UTF-8 NOT UID 6", mailbox) == b"* THREAD (2)(3 (4 23)(44 7 96))\r\n"
    )


def test_thread_orderedsubject_groups_by_base_subject_under_the_earliest_message():
    mailbox = rfc5256_thread_mailbox()
    assert thread("t UID THREAD ORDEREDSUBJECT UTF-8 ALL", mailbox) == (
        b"* THREAD (2)(3 (6)(4)(23)(44)(7)(96))\r\n"
    )
    assert thread("t UID THREAD ORDEREDSUBJECT UTF-8 UID 2:4", mailbox) == b"* THREAD (2)(3 4)\r\n"


def test_thread_of_nothing_and_unknown_algorithms():
    mailbox = rfc5256_thread_mailbox()
    assert thread("t THREAD REFERENCES UTF-8 KEYWORD none", mailbox) == b"* THREAD\r\n"
    with pytest.raises(Bad):
        thread("t THREAD SUBJECTISH UTF-8 ALL", mailbox)


def test_thread_orders_threads_by_date_and_uses_internal_date_without_a_date_header():
    early = message("b", date=None, message_id="<b@example.com>")
    late = message("a", date="Fri, 05 Jan 2024 00:00:00 +0000", message_id="<a@example.com>")
    mailbox = Mailbox([(ref(1, late), late), (ref(2, early, internal="2024-01-02 00:00:00"), early)])
    assert thread("t THREAD REFERENCES UTF-8 ALL", mailbox) == b"* THREAD (2)(1)\r\n"
    assert thread("t THREAD ORDEREDSUBJECT UTF-8 ALL", mailbox) == b"* THREAD (2)(1)\r\n"
