"""POP3 command parsing (RFC 1939/2449/5034) and response encoding, without a server."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.pop3 import parser as p
from tidings.pop3 import wire
from tidings.pop3.wire import multiline, multiline_lines, status, top_of, with_crlf


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"CAPA\r\n", p.Capa()),
        (b"stls\r\n", p.Stls()),
        (b"USER alice@example.test\r\n", p.User("alice@example.test")),
        (b"STAT\r\n", p.Stat()),
        (b"LIST\r\n", p.List()),
        (b"LIST 3\r\n", p.List(3)),
        (b"RETR 12\r\n", p.Retr(12)),
        (b"TOP 1 0\r\n", p.Top(1, 0)),
        (b"Uidl\r\n", p.Uidl()),
        (b"UIDL 2\r\n", p.Uidl(2)),
        (b"DELE 1\r\n", p.Dele(1)),
        (b"RSET\r\n", p.Rset()),
        (b"NOOP\r\n", p.Noop()),
        (b"QUIT\r\n", p.Quit()),
        (b"AUTH\r\n", p.Auth()),
        (b"AUTH plain\r\n", p.Auth("PLAIN")),
        (b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n", p.Auth("PLAIN", "AGFsaWNlAHNlY3JldA==")),
        (b"AUTH PLAIN =\r\n", p.Auth("PLAIN", "=")),
        (b"QUIT\n", p.Quit()),  # bare LF tolerated
        (b"QUIT", p.Quit()),
    ],
)
def test_valid_commands_parse_to_their_dataclass(line, expected):
    assert p.parse_command(line) == expected


def test_pass_keeps_the_rest_of_the_line_including_spaces():
    assert p.parse_command(b"PASS correct horse 1 \r\n") == p.Pass("correct horse 1 ")


def test_pass_accepts_utf8_passwords():
    assert p.parse_command("PASS pässwörd\r\n".encode()) == p.Pass("pässwörd")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"\r\n", "empty command"),
        (b"XYZZY\r\n", "unknown command"),
        (b"APOP alice 0123\r\n", "unknown command"),
        (b"RETR\r\n", "needs one message number"),
        (b"RETR 1 2\r\n", "needs one message number"),
        (b"RETR one\r\n", "decimal number"),
        (b"RETR -1\r\n", "decimal number"),
        (b"RETR 0\r\n", "at least 1"),
        (b"DELE \xd9\xa3\r\n", "decimal number"),  # Arabic-Indic digit three: not ASCII
        (b"LIST 99999999999999999999\r\n", "decimal number"),
        (b"TOP 1\r\n", "line count"),
        (b"TOP 1 x\r\n", "decimal number"),
        (b"STAT now\r\n", "no arguments"),
        (b"USER\r\n", "one user name"),
        (b"PASS\r\n", "needs a password"),
        (b"AUTH PLAIN a b\r\n", "at most one initial response"),
        (b"USER \xff\xfe\r\n", "not valid UTF-8"),
        (b"NOOP\x00\r\n", "control characters"),
        (b"NOOP" + b" " * 2000 + b"\r\n", "too long"),
    ],
)
def test_invalid_lines_raise_parse_error_with_a_reason(line, message):
    with pytest.raises(p.ParseError, match=message):
        p.parse_command(line)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_either_parse_or_raise_parse_error(data):
    try:
        result = p.parse_command(data)
    except p.ParseError:
        return
    assert isinstance(result, p.Command)


def test_sasl_response_star_cancels_and_text_is_returned_verbatim():
    assert p.parse_sasl_response(b"*\r\n") is None
    assert p.parse_sasl_response(b"AGEAYg==\r\n") == "AGEAYg=="
    with pytest.raises(p.ParseError):
        p.parse_sasl_response(b"\xff\r\n")


def test_status_lines_carry_response_codes_in_brackets():
    assert status(True) == b"+OK\r\n"
    assert status(False, "no such message") == b"-ERR no such message\r\n"
    assert status(False, "locked", "IN-USE") == b"-ERR [IN-USE] locked\r\n"


def test_multiline_byte_stuffs_leading_dots_and_terminates():
    assert multiline(b".hidden\r\nplain\r\n..two\r\n") == b"..hidden\r\nplain\r\n...two\r\n.\r\n"
    assert multiline(b"no final newline") == b"no final newline\r\n.\r\n"
    assert multiline(b"") == b".\r\n"
    assert multiline_lines(["TOP", "UIDL"]) == b"TOP\r\nUIDL\r\n.\r\n"


def test_with_crlf_turns_bare_lf_into_crlf_and_leaves_crlf_alone():
    assert with_crlf(b"a\nb\r\nc\n") == b"a\r\nb\r\nc\r\n"


def test_top_returns_header_blank_line_and_first_body_lines():
    raw = b"Subject: x\r\nFrom: y\r\n\r\none\r\ntwo\r\nthree\r\n"
    assert top_of(raw, 0) == b"Subject: x\r\nFrom: y\r\n\r\n"
    assert top_of(raw, 2) == b"Subject: x\r\nFrom: y\r\n\r\none\r\ntwo\r\n"
    assert top_of(raw, 10) == raw


def test_top_of_message_without_body_or_header():
    assert top_of(b"Subject: only header\r\n", 5) == b"Subject: only header\r\n"
    assert top_of(b"\r\nbody one\r\nbody two\r\n", 1) == b"\r\nbody one\r\n"
    assert top_of(b"Subject: x\r\n\r\nunterminated", 3) == b"Subject: x\r\n\r\nunterminated"


@pytest.mark.parametrize("piece_size", [1, 2, 3, 7, 64, 256 * 1024])
def test_message_pieces_equal_the_whole_reply_at_any_piece_size(monkeypatch, piece_size):
    monkeypatch.setattr(wire, "PIECE_SIZE", piece_size)
    samples = [
        b"",
        b"a",
        b".",
        b"Subject: x\r\n\r\n.dot\r\n..two\r\nend",
        b"Subject: x\n\n.bare\n.lf\n",
        b"Subject: x\r\n\r\nlong " + b"y" * 50 + b"\r\n.\r\n",
        b"\r\n.body only\r\n",
        b"odd\r\rline\r\n.x\r",
    ]
    for raw in samples:
        expected = multiline(with_crlf(raw))
        assert b"".join(wire.message_pieces(raw)) == expected, raw
        for lines in (0, 1, 2, 10**8):
            top = multiline(top_of(with_crlf(raw), lines))
            assert b"".join(wire.message_pieces(raw, wire.top_length(raw, lines))) == top, (raw, lines)


@given(st.binary(max_size=60).map(lambda b: bytes(b"a.\r\n"[x % 4] for x in b)), st.integers(0, 5))
def test_message_pieces_match_the_whole_reply_for_any_text(raw, lines):
    original = wire.PIECE_SIZE
    wire.PIECE_SIZE = 5
    try:
        assert b"".join(wire.message_pieces(raw)) == multiline(with_crlf(raw))
        top = multiline(top_of(with_crlf(raw), lines))
        assert b"".join(wire.message_pieces(raw, wire.top_length(raw, lines))) == top
    finally:
        wire.PIECE_SIZE = original
