"""Response encoding: strings, literals, lists, atoms and IMAP date-times."""

from __future__ import annotations

import datetime

import pytest

from tidings.imap.wire import (
    MAX_QUOTED_LENGTH,
    Atom,
    Literal8,
    Raw,
    astring,
    encode_list,
    encode_value,
    format_internaldate,
    literal,
    nstring,
    parse_date_time,
    quote,
)


def test_plain_text_is_quoted_with_escapes() -> None:
    assert quote("hello world") == b'"hello world"'
    assert quote('say "hi" \\ bye') == b'"say \\"hi\\" \\\\ bye"'
    assert quote("") == b'""'


@pytest.mark.parametrize("text", ["line\r\nbreak", "bare\nLF", "nul\x00", "x" * (MAX_QUOTED_LENGTH + 1)])
def test_unquotable_text_becomes_a_literal(text: str) -> None:
    raw = text.encode()
    assert quote(text) == b"{%d}\r\n%s" % (len(raw), raw)


def test_non_ascii_is_a_literal_unless_utf8_is_enabled() -> None:
    assert quote("Grüße") == b"{7}\r\nGr\xc3\xbc\xc3\x9fe"
    assert quote("Grüße", utf8=True) == '"Grüße"'.encode()


def test_invalid_utf8_bytes_are_never_quoted() -> None:
    assert quote(b"\xff", utf8=True) == b"{1}\r\n\xff"


def test_literal_and_literal8() -> None:
    assert literal(b"abc") == b"{3}\r\nabc"
    assert literal(b"\x00", binary=True) == b"~{1}\r\n\x00"
    assert literal(b"") == b"{0}\r\n"


def test_astring_uses_atoms_when_safe() -> None:
    assert astring("INBOX") == b"INBOX"
    assert astring("Sent]") == b"Sent]"
    assert astring("two words") == b'"two words"'
    assert astring("") == b'""'
    assert astring("NIL") == b'"NIL"'
    assert astring("a%b") == b'"a%b"'
    assert astring("a*") == b'"a*"'


def test_nstring() -> None:
    assert nstring(None) == b"NIL"
    assert nstring("NIL") == b'"NIL"'
    assert nstring("x") == b'"x"'


def test_encode_list_nests_and_types() -> None:
    value = [Atom("\\Seen"), Atom("$Junk"), None, 42, "a b", [b"xy", []], Raw(b"(1 2)")]
    assert encode_list(value) == b'(\\Seen $Junk NIL 42 "a b" ({2}\r\nxy ()) (1 2))'


def test_encode_value_literal8_and_errors() -> None:
    assert encode_value(Literal8(b"\x00\x01")) == b"~{2}\r\n\x00\x01"
    assert encode_value(("a",)) == b'("a")'
    with pytest.raises(TypeError):
        encode_value(True)
    with pytest.raises(ValueError):
        encode_value(-1)
    with pytest.raises(TypeError):
        encode_value(1.5)


def test_flags_response_example() -> None:
    flags = [Atom(f) for f in ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")]
    assert b"* FLAGS " + encode_list(flags) == b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)"


def test_format_internaldate() -> None:
    utc = datetime.datetime(2026, 11, 25, 15, 14, 9, tzinfo=datetime.UTC)
    assert format_internaldate(utc) == "25-Nov-2026 15:14:09 +0000"
    pst = datetime.timezone(-datetime.timedelta(hours=7, minutes=30))
    assert (
        format_internaldate(datetime.datetime(1996, 7, 1, 2, 44, 25, tzinfo=pst))
        == "01-Jul-1996 02:44:25 -0730"
    )
    assert format_internaldate(datetime.datetime(2020, 1, 2, 3, 4, 5)) == "02-Jan-2020 03:04:05 +0000"


@pytest.mark.parametrize(
    "text",
    [
        '"17-Jul-1996 02:44:25 -0700"',
        "17-Jul-1996 02:44:25 -0700",
        '" 7-jul-1996 02:44:25 +0000"',
        b"07-JUL-1996 02:44:25 +1400",
    ],
)
def test_parse_date_time_accepts_rfc_forms(text: str | bytes) -> None:
    parsed = parse_date_time(text)
    assert parsed.tzinfo is not None and parsed.month == 7 and parsed.year == 1996


def test_parse_date_time_round_trips_format_internaldate() -> None:
    moment = datetime.datetime(
        2024, 2, 29, 23, 59, 59, tzinfo=datetime.timezone(datetime.timedelta(hours=5, minutes=45))
    )
    assert parse_date_time(format_internaldate(moment)) == moment


@pytest.mark.parametrize(
    "text",
    [
        "17-Jul-1996",
        "31-Feb-2020 00:00:00 +0000",
        "17-Foo-1996 02:44:25 -0700",
        "17-Jul-1996 25:00:00 +0000",
        "17-Jul-1996 02:44:25 +0060",
        "17-Jul-1996 02:44:25 0700",
        "",
        "17-Jul-1996 02:44:25 +2400",
    ],
)
def test_parse_date_time_rejects_invalid(text: str) -> None:
    with pytest.raises(ValueError):
        parse_date_time(text)
