"""SEARCH address keys, SORT by address and THREAD=REFERENCES over a real IMAP connection,
checked against the mailboxes and answers of Dovecot's imaptest conformance scripts
(search-addresses, sort-addresses, sort-display-to, thread, thread2..thread8,
thread-orderedsubject2) and the RFC 5256 section 4 example.

Each mailbox is written as imaptest writes it: mbox text whose "From " lines give the
INTERNALDATE the message is appended with (RFC 5256 section 2.2 uses it when Date: is missing).
"""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from tests.imap.session_support import ALICE, ImapTestServer, RawImap

_FROM_LINE = re.compile(r"^From \S+\s+(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})( [+-]\d{4})?$")


def mbox_messages(text: str) -> list[tuple[str, bytes]]:
    """(IMAP date-time, message bytes) for each message of an mbox text."""
    messages: list[tuple[str, list[str]]] = []
    for line in text.strip("\n").split("\n"):
        match = _FROM_LINE.match(line)
        if match:
            when = datetime.strptime(" ".join(match.group(1).split()), "%a %b %d %H:%M:%S %Y")
            zone = (match.group(2) or " +0000").strip()
            messages.append((when.strftime("%d-%b-%Y %H:%M:%S ") + zone, []))
        else:
            messages[-1][1].append(line)
    return [(date, ("\r\n".join(lines).rstrip("\r\n") + "\r\n").encode()) for date, lines in messages]


def append_mbox(raw: RawImap, text: str, mailbox: str = "INBOX") -> None:
    for date, body in mbox_messages(text):
        tagged = raw.command(f'APPEND {mailbox} "{date}" {{{len(body)}+}}\r\n'.encode() + body)[-1]
        assert b" OK " in tagged, tagged


def answer(raw: RawImap, command: str) -> bytes:
    """The one untagged answer of ``command`` (upper-cased keyword), checking the tagged OK."""
    lines = raw.command(command)
    assert b" OK " in lines[-1], lines
    (untagged,) = [line for line in lines[:-1] if not line.startswith(b"* OK")]
    return untagged


@pytest.fixture
def imap(server) -> ImapTestServer:
    return ImapTestServer(server)


def session_with(imap: ImapTestServer, text: str) -> RawImap:
    raw = imap.raw(login=ALICE)
    append_mbox(raw, text)
    raw.command("SELECT INBOX")
    return raw


# --------------------------------------------------------------------------- SEARCH FROM/TO/CC/BCC

SEARCH_ADDRESSES = """\
From user@domain  Fri Feb 22 17:06:23 2008
From: user-from@domain.org
To: user-to@domain.org
Cc: user-cc@domain.org
Bcc: user-bcc@domain.org

body

From user@domain  Fri Feb 22 17:06:23 2008
From: RealFrom <user-from@domain.org>
To: RealTo <user-to@domain.org>
Cc: RealCc <user-cc@domain.org>
Bcc: RealBcc <user-bcc@domain.org>

body2

From user@domain  Fri Feb 22 17:06:23 2008
From: <user-from (comment)@ (comment) domain.org>
To: <user-to@domain.org>
Cc: <user-cc@domain.org>
Bcc: <user-bcc@domain.org>

body3

From user@domain  Fri Feb 22 17:06:23 2008
From: user-from@domain.org (RealFrom)
To: user-to@domain.org (RealTo)
Cc: user-cc@domain.org (RealCc)
Bcc: user-bcc@domain.org (RealBcc)

body4

From user@domain  Fri Feb 22 17:06:23 2008
From: user-from1@domain.org, user-from2@domain.org
Cc: user-cc@domain.org

body5

From user@domain  Fri Feb 22 17:06:23 2008
From: RealFrom <user-from@domain.org>
To: groupname: groupuser1@domain.org, groupuser2@domain.org;,
  groupname2: groupuser3@domain.org;

body6

From user@domain  Fri Feb 22 17:06:23 2008
From: RealFrom <user-from@domain.org>
To: groupname:;

body7
"""


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        # whole addresses, whatever the display form around them
        ("FROM user-from@domain.org", "1 2 3 4 6 7"),
        ("TO user-to@domain.org", "1 2 3 4"),
        ("CC user-cc@domain.org", "1 2 3 4 5"),
        ("BCC user-bcc@domain.org", "1 2 3 4"),
        # display names, also the old "addr (Name)" comment form
        ("FROM realfrom", "2 4 6 7"),
        ("TO realto", "2 4"),
        ("CC realcc", "2 4"),
        ("BCC realbcc", "2 4"),
        # substrings of local parts and display names
        ("FROM ser-fro", "1 2 3 4 5 6 7"),
        ("TO ser-t", "1 2 3 4"),
        ("BCC ealbc", "2 4"),
        # domains, and every address of a list
        ("FROM domain.org", "1 2 3 4 5 6 7"),
        ("FROM user-from2", "5"),
        # group names and the members of groups
        ("TO groupname", "6 7"),
        ("TO groupname2", "6"),
        ("TO groupuser3", "6"),
        ("TO groupuser4", ""),
        # an empty string matches every message with the field, even a group with no members
        ('TO ""', "1 2 3 4 6 7"),
        ('HEADER TO ""', "1 2 3 4 6 7"),
    ],
)
def test_search_address_keys_match_names_local_parts_domains_and_groups(imap, keys, expected):
    raw = session_with(imap, SEARCH_ADDRESSES)
    assert answer(raw, f"SEARCH {keys}") == f"* SEARCH {expected}".rstrip().encode()


# --------------------------------------------------------------------------- SORT by address

SORT_ADDRESSES = """\
From user@domain  Fri Feb 22 00:06:23 2008
From: user2@domain2.org
To: foo bar <user2@domain2.org>
Cc: user2@domain2.org (foo bar)

1

From user@domain  Fri Feb 22 01:06:23 2008
From: user2@domain1.org
To: user2@domain1.org
Cc: user2: blah@domain1.org;

2

From user@domain  Fri Feb 22 02:06:23 2008
From: user1@domain1.org
To: user1@domain1.org
Cc: user1@domain1.org

3
"""


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        # RFC 5256 section 3: the addr-mailbox of the first address; a group's is its name
        # ("user2" for message 2's Cc, not the member "blah"); ties by sequence number.
        ("FROM", "3 1 2"),
        ("TO", "3 1 2"),
        ("CC", "3 1 2"),
        ("REVERSE FROM", "1 2 3"),
        ("REVERSE CC", "1 2 3"),
        ("CC REVERSE ARRIVAL", "3 2 1"),
    ],
)
def test_sort_by_address_uses_the_first_addresss_mailbox(imap, criteria, expected):
    raw = session_with(imap, SORT_ADDRESSES)
    assert answer(raw, f"SORT ({criteria}) US-ASCII ALL") == f"* SORT {expected}".encode()


SORT_DISPLAY_TO = "".join(
    f"From user@domain  Fri Feb 22 23:00:00 2008 +0200\nTo: {to}\n\n{n}\n\n"
    for n, to in enumerate(
        [
            "foo bar <a@b.c>",
            "b@c.d",
            "d",
            "=?iso-8859-1?q?foo_aar?= <e@f.g>",
            "=?iso-8859-1?q?foo_car?= <f@g.h>",
            "a: xx@xx.org, yy@yy.org;",
            "z: aa@aa.org, bb@bb.org;",
            "empty:;",
        ],
        start=1,
    )
)


def test_sort_displayto_takes_a_groups_name(imap):
    """RFC 5957 with groups, as Dovecot answers: the group name, not its first member."""
    raw = session_with(imap, SORT_DISPLAY_TO)
    assert answer(raw, "SORT (DISPLAYTO) US-ASCII ALL") == b"* SORT 6 2 3 8 4 1 5 7"
    assert answer(raw, "SORT (REVERSE DISPLAYTO) US-ASCII ALL") == b"* SORT 7 5 1 4 8 3 2 6"


# --------------------------------------------------------------------------- THREAD=REFERENCES


def rfc5256_example() -> str:
    """Messages whose references give the RFC 5256 section 4 example, ``(2)(3 6 (4 23)(44 7 96))``
    in the RFC's numbers; appended in the order 2 3 4 6 7 23 44 96, so sequence numbers 1..8."""
    chains = {2: [], 3: [], 4: [3, 6], 6: [3], 7: [3, 6, 44], 23: [3, 6, 4], 44: [3, 6], 96: [3, 6, 44, 7]}
    hours = {2: 0, 3: 1, 6: 2, 4: 3, 23: 4, 44: 5, 7: 6, 96: 7}
    out = []
    for uid, chain in chains.items():
        refs = " ".join(f"<{n}@example.com>" for n in chain)
        out.append(
            f"From user@domain  Fri Feb 22 0{hours[uid]}:00:00 2008\nMessage-ID: <{uid}@example.com>\n"
            + (f"References: {refs}\nSubject: Re: topic\n" if chain else f"Subject: topic {uid}\n")
            + "\nbody\n\n"
        )
    return "".join(out)


THREAD_CASES = {
    # A message whose last reference is its own descendant loses its old parent and becomes a
    # root (RFC 5256 3.2 step 1.B: break the link first; make the new one only if no loop).
    "thread": (
        "From user@domain  Fri Feb 22 17:06:23 2008\nMessage-ID: <a@b>\n\nbody\n\n"
        "From user@domain  Fri Feb 22 15:06:23 2008\nMessage-Id: <b@b>\nReferences: <a@b> <c@b>\n\nbody\n\n"
        "From user@domain  Fri Feb 22 16:06:25 2008\nMessage-Id: <c@b>\nReferences: <b@b>\n\nbody\n",
        "(3 2)(1)",
    ),
    # A duplicate Message-ID gets an id of its own.
    "thread2": (
        "From user@domain  Fri Feb 22 15:06:23 2008\nMessage-Id: <a@b>\n\nbody\n\n"
        "From user@domain  Fri Feb 22 15:06:23 2008\nMessage-Id: <a@b>\n\nbody\n",
        "(1)(2)",
    ),
    # ... and is then gathered by its base subject, a reply under the original.
    "thread3": (
        "From user@domain  Fri Feb 22 15:06:23 2008\nMessage-Id: <a@b>\nSubject: foo\n\nbody\n\n"
        "From user@domain  Fri Feb 22 15:06:24 2008\nMessage-Id: <a@b>\nSubject: Re: foo\n\nbody\n",
        "(1 2)",
    ),
    # A lone dummy parent at the top is replaced by its one child, which subject gathering joins.
    "thread4": (
        "From user@domain  Fri Feb 22 15:06:23 2008\nMessage-Id: <a@b>\nSubject: foo\n\nbody\n\n"
        "From user@domain  Fri Feb 22 15:06:24 2008\nMessage-Id: <b@b>\nReferences: <c@b>\n"
        "Subject: Re: foo\n\nbody\n",
        "(1 2)",
    ),
    # Two messages without ids referring to one missing message: a dummy with two children.
    "thread6": (
        "From user@domain  Fri Feb 22 15:06:23 2008\nReferences: <a@b>\n\nbody\n\n"
        "From user@domain  Fri Feb 22 15:06:24 2008\nReferences: <a@b>\n\nbody\n",
        "((1)(2))",
    ),
    "thread7": (
        "From user@domain  Fri Feb 22 15:06:23 2008\nMessage-Id: <a@b>\n\nbody1\n\n"
        "From user@domain  Fri Feb 22 15:06:23 2008\nMessage-Id: <b@b>\nReferences: <a@b>\n\nbody2\n\n"
        "From user@domain  Fri Feb 22 15:06:23 2008\nMessage-Id: <c@b>\nReferences: <b@b>\n\nbody3\n\n"
        "From user@domain  Fri Feb 22 15:06:23 2008\nMessage-Id: <b@b>\nReferences: <a@b>\n\nbody4\n",
        "(1 (2 3)(4))",
    ),
    "rfc5256": (rfc5256_example(), "(1)(2 4 (3 6)(7 5 8))"),
}


@pytest.mark.parametrize("case", sorted(THREAD_CASES))
def test_thread_references_answers_as_dovecot_does(imap, case):
    text, expected = THREAD_CASES[case]
    raw = session_with(imap, text)
    assert answer(raw, "THREAD REFERENCES US-ASCII ALL") == f"* THREAD {expected}".encode()


def test_thread_references_after_expunge_rethreads_the_rest(imap):
    """imaptest thread and thread7: after EXPUNGE the remaining messages thread anew; the
    duplicate of an expunged Message-ID now owns it."""
    raw = session_with(imap, THREAD_CASES["thread"][0])
    raw.command("STORE 1 +FLAGS (\\Deleted)")
    raw.command("EXPUNGE")
    assert answer(raw, "THREAD REFERENCES US-ASCII ALL") == b"* THREAD (2 1)"
    second = imap.raw(login=ALICE)
    second.command("CREATE other")
    append_mbox(second, THREAD_CASES["thread7"][0], "other")
    second.command("SELECT other")
    second.command("STORE 2 +FLAGS (\\Deleted)")
    second.command("EXPUNGE")
    assert answer(second, "THREAD REFERENCES US-ASCII ALL") == b"* THREAD (1 3 2)"


def test_thread_references_with_in_reply_to_and_later_arrivals(imap):
    """imaptest thread5: In-Reply-To alone links; expunging parents leaves dummies that a new
    arrival's reference fills out again."""
    messages = [
        ("Fri Feb 22 17:06:23 2008", "<1@b>", None),
        ("Fri Feb 22 15:06:23 2008", "<2@b>", "<1@b>"),
        ("Fri Feb 22 15:06:23 2008", "<3@b>", "<1@b>"),
        ("Fri Feb 22 15:06:23 2008", "<4@b>", "<2@b>"),
        ("Fri Feb 22 15:06:23 2008", "<5@b>", "<2@b>"),
    ]
    texts = [
        f"From user@domain  {date}\nMessage-Id: {mid}\n"
        + (f"In-Reply-To: {parent}\n" if parent else "")
        + "\nbody\n"
        for date, mid, parent in messages
    ]
    raw = session_with(imap, "\n".join(texts[:4]))
    assert answer(raw, "THREAD REFERENCES US-ASCII ALL") == b"* THREAD (1 (2 4)(3))"
    raw.command("STORE 1,2 +FLAGS (\\Deleted)")
    raw.command("EXPUNGE")
    assert answer(raw, "THREAD REFERENCES US-ASCII ALL") == b"* THREAD (1)(2)"
    append_mbox(raw, texts[4])
    raw.command("NOOP")
    assert answer(raw, "THREAD REFERENCES US-ASCII ALL") == b"* THREAD (1)((2)(3))"


ORDEREDSUBJECT2 = "".join(
    f"From user@domain  Fri Feb 22 {arrival} 2008 +0200\n"
    + (f"Date: Fri, 22 Feb 2008 {sent} +0200\n" if sent else "")
    + f"Subject: {subject}\n\n{n}\n\n"
    for n, (arrival, sent, subject) in enumerate(
        [
            ("23:00:01", "22:00:10", "a"),
            ("23:00:02", "22:00:09", "b"),
            ("23:00:03", "22:00:08", "a"),
            ("23:00:04", "22:00:07", "b"),
            ("22:00:30", None, "a"),
            ("22:00:29", None, "b"),
            ("22:00:28", None, "a"),
            ("22:00:27", None, "b"),
        ],
        start=1,
    )
)


def test_thread_orderedsubject_orders_by_sent_date_with_the_internal_date_standing_in(imap):
    raw = session_with(imap, ORDEREDSUBJECT2)
    assert answer(raw, "THREAD ORDEREDSUBJECT US-ASCII ALL") == b"* THREAD (4 (2)(8)(6))(3 (1)(7)(5))"


ORDEREDSUBJECT_SUBJECTS = [
    "a",
    "C",
    "b",
    "_",
    "[foo] Fwd: [bar] Re: fw: b (fWd)  (fwd)",
    "b (a)",
    "Re: [FWD: c]",
    "[xyz]",
    None,
    "=?iso-8859-1?q?_?=",
    "Re: =?utf-8?q?b?=",
    "=?iso-8859-1?q?RE:_C?=",
    "=?us-ascii?b?UmU6IGM=?=",
    "Ad: Re: Ad: Re: Ad: x",
    "re: [fwd: [fwd: re: [fwd: babylon]]]",
]


def test_thread_orderedsubject_gathers_by_base_subject(imap):
    """imaptest thread-orderedsubject: RFC 5256 section 2.1 base subjects (encoded words,
    Re:/Fwd:/[blob] leaders, (fwd) trailers, [fwd: ...] wrappers); a missing and a blank
    subject share the empty base subject."""
    text = "".join(
        "From user@domain  Fri Feb 22 23:00:00 2008 +0200\n"
        + (f"Subject: {subject}\n" if subject is not None else "")
        + f"\n{n}\n\n"
        for n, subject in enumerate(ORDEREDSUBJECT_SUBJECTS, start=1)
    )
    raw = session_with(imap, text)
    assert answer(raw, "THREAD ORDEREDSUBJECT US-ASCII ALL") == (
        b"* THREAD (1)(2 (7)(12)(13))(3 (5)(11))(4)(6)(8)(9 10)(14)(15)"
    )
