"""RFC 5256: base subject, ORDEREDSUBJECT and REFERENCES threading, THREAD response format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tidings.mail.message import analyse, thread_message
from tidings.mail.threading import (
    ThreadMessage,
    ThreadNode,
    base_subject,
    base_subject_and_reply,
    format_threads,
    thread_orderedsubject,
    thread_references,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def msg(id, subject, day=None, message_id=None, references=(), in_reply_to=None):
    base, is_reply = base_subject_and_reply(subject)
    return ThreadMessage(
        id=id,
        base_subject=base,
        sent_date=T0 + timedelta(days=id if day is None else day),
        message_id=message_id,
        references=list(references),
        in_reply_to=in_reply_to,
        is_reply=is_reply,
    )


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Hello", "Hello"),
        ("Re: Hello", "Hello"),
        ("RE: re:  Fwd: Hello", "Hello"),
        ("Re[2]: Hello", "Hello"),
        ("[list] Re: Hello", "Hello"),
        ("Re: [list] Hello", "Hello"),
        ("Hello (fwd) (FWD)  ", "Hello"),
        ("[Fwd: Re: Hello]", "Hello"),
        ("Fw: Hello", "Hello"),
        ("  Hello\t  world ", "Hello world"),
        ("[only a blob]", "[only a blob]"),
        ("Ref: Hello", "Ref: Hello"),
        ("Re: (fwd)", ""),
        ("=?utf-8?q?Re=3A_Gr=C3=BC=C3=9Fe?=", "Grüße"),
    ],
)
def test_base_subject_follows_rfc5256_section_2_1(subject, expected):
    assert base_subject(subject) == expected


def test_reply_or_forward_is_detected():
    assert base_subject_and_reply("Re: x") == ("x", True)
    assert base_subject_and_reply("x (fwd)") == ("x", True)
    assert base_subject_and_reply("[list] x") == ("x", False)


def test_format_threads_matches_the_rfc_examples():
    tree = ThreadNode(
        3,
        [ThreadNode(6, [ThreadNode(4, [ThreadNode(23)]), ThreadNode(44, [ThreadNode(7, [ThreadNode(96)])])])],
    )
    assert format_threads([ThreadNode(2), tree]) == "(2)(3 6 (4 23)(44 7 96))"
    assert format_threads([ThreadNode(None, [ThreadNode(1), ThreadNode(2)])]) == "((1)(2))"
    assert format_threads([]) == ""


def test_orderedsubject_groups_by_base_subject_and_orders_by_first_date():
    messages = [
        msg(1, "A"),
        msg(2, "Re: A", day=3),
        msg(3, "B", day=2),
        msg(4, "re: a", day=4),
        msg(5, "b", day=5),
    ]
    assert format_threads(thread_orderedsubject(messages)) == "(1 (2)(4))(3 5)"


def test_references_builds_chains_branches_and_dummy_roots():
    messages = [
        msg(1, "A", message_id="<1>"),
        msg(2, "Re: A", message_id="<2>", references=["<1>"]),
        msg(3, "Re: A", message_id="<3>", references=["<1>", "<2>"]),
        msg(4, "Re: A", message_id="<4>", references=["<1>"]),
        msg(5, "B", message_id="<5>"),
        msg(6, "Re: C", message_id="<6>", references=["<gone>"]),
        msg(7, "Re: C", message_id="<7>", references=["<gone>"]),
    ]
    assert format_threads(thread_references(messages)) == "(1 (2 3)(4))(5)((6)(7))"


def test_references_uses_in_reply_to_when_there_are_no_references():
    messages = [msg(1, "A", message_id="<1>"), msg(2, "Re: A", message_id="<2>", in_reply_to="<1>")]
    assert format_threads(thread_references(messages)) == "(1 2)"


def test_references_merges_threads_by_subject():
    messages = [
        msg(1, "B", message_id="<1>"),
        msg(2, "Re: B", message_id="<2>"),  # a reply without references joins the original
        msg(3, "D", message_id="<3>"),
        msg(4, "D", message_id="<4>"),  # two originals with one subject go under a dummy
    ]
    assert format_threads(thread_references(messages)) == "(1 2)((3)(4))"


def test_references_survives_loops_duplicates_and_missing_ids():
    messages = [
        msg(1, "x", message_id="<1>", references=["<2>"]),
        msg(2, "y", message_id="<2>", references=["<1>"]),
        msg(3, "z", message_id="<1>"),  # duplicate Message-ID
        msg(4, "w"),  # no Message-ID
        msg(5, "v", message_id="<5>", references=["<5>"]),  # refers to itself
    ]
    output = format_threads(thread_references(messages))
    for number in "12345":
        assert number in output


def test_deep_reply_chains_do_not_recurse():
    messages = [msg(1, "root", message_id="<1>")]
    messages += [
        msg(i, "Re: root", message_id=f"<{i}>", references=[f"<{j}>" for j in range(max(1, i - 5), i)])
        for i in range(2, 3001)
    ]
    assert format_threads(thread_references(messages)) == "(" + " ".join(str(i) for i in range(1, 3001)) + ")"


def test_thread_message_from_summary_falls_back_to_internal_date():
    summary = analyse(b"Subject: Re: hi\r\nMessage-ID: <a@b>\r\nReferences: <r@b>\r\n\r\n")
    internal = datetime(2020, 5, 5, tzinfo=UTC)
    message = thread_message(summary, 7, internal)
    assert message == ThreadMessage(7, "hi", internal, "<a@b>", ["<r@b>"], None, True)
