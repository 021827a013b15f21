"""LIST patterns (RFC 9051 6.3.9) match as the obvious regular expression would, without its
backtracking."""

from __future__ import annotations

import random
import re
import time

import pytest

from tidings.imap.mailbox_pattern import MailboxPattern


def backtracking_reading(pattern: str) -> re.Pattern[str]:
    """``*`` is ``.*`` and ``%`` is ``[^/]*``: the meaning, fine for short names only."""
    parts = [".*" if c == "*" else "[^/]*" if c == "%" else re.escape(c) for c in pattern]
    return re.compile("".join(parts), re.DOTALL)


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("*", "a/b/c", True),
        ("%", "a/b", False),
        ("%", "abc", True),
        ("a/%", "a/b", True),
        ("a/%", "a/b/c", False),
        ("a/*", "a/b/c", True),
        ("a%b", "a/ab", False),
        ("%a%b", "a/ab", False),
        ("*a%b", "a/ab", True),
        ("", "", True),
        ("", "a", False),
        ("INBOX", "INBOX", True),
        ("%/%", "Sent/2024", True),
        ("*%*", "", True),
        ("a.b", "axb", False),
    ],
)
def test_examples(pattern: str, name: str, expected: bool) -> None:
    assert MailboxPattern.compile(pattern).matches(name) is expected


def test_agrees_with_the_regular_expression_reading_on_random_patterns() -> None:
    rnd = random.Random(7)
    for _ in range(20_000):
        pattern = "".join(rnd.choice("ab/*%") for _ in range(rnd.randint(0, 7)))
        name = "".join(rnd.choice("ab/") for _ in range(rnd.randint(0, 9)))
        expected = bool(backtracking_reading(pattern).fullmatch(name))
        assert MailboxPattern.compile(pattern).matches(name) is expected, (pattern, name)


def test_many_wildcards_against_a_long_name_take_no_time() -> None:
    started = time.process_time()
    assert not MailboxPattern.compile("*a" * 12 + "*b").matches("a" * 1000)
    assert not MailboxPattern.compile("%a" * 500 + "%b").matches("a" * 1000)
    assert MailboxPattern.compile("*a" * 500).matches("a" * 1000)
    assert time.process_time() - started < 0.5
