"""Token-level reading of one framed IMAP command (RFC 9051 section 9, formal syntax).

The framing layer in :mod:`tidings.imap.parser` hands over a command as line fragments, each
fragment but the last ending where a literal (``{n}``, ``{n+}``, ``~{n}``) was announced, plus the
literal payloads received so far.  :class:`Reader` walks that structure with one cursor and offers
the ABNF's basic productions (atom, astring, string, number, date, flag...).  Grammar mistakes raise
:class:`Bad`; reaching a literal whose bytes have not arrived yet raises :class:`Incomplete`, which
lets the framing layer validate a command's prefix before inviting the client to send a literal.

Pure: no I/O.
"""

from __future__ import annotations

import codecs
import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tidings.imap.sequence import SequenceSet, SequenceSetError

T = TypeVar("T")

MAX_NUMBER = 0xFFFFFFFF  # number / nz-number
MAX_NUMBER64 = 0x7FFFFFFFFFFFFFFF  # number64, mod-sequence-value (RFC 9051, RFC 7162)


class Bad(Exception):
    """The command does not follow the grammar (becomes ``BAD``, or ``NO`` for some codes)."""

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code
        self.tag: str | None = None


class Incomplete(Exception):
    """The grammar needs the bytes of a literal that has not been received yet."""


@dataclass(frozen=True)
class LiteralMarker:
    """A literal announced at the end of a line fragment."""

    size: int
    synchronising: bool  # {n} rather than {n+} (RFC 7888)
    binary: bool  # ~{n} literal8 (RFC 3516)


# Character classes from the ABNF, as regular expressions over bytes.  atom-char is every CHAR but
# atom-specials: ( ) { SP CTL % * " \ ]; so "}" (0x7d) is an atom character, only "{" is special.
_ATOM = re.compile(rb"[\x21\x23\x24\x26\x27\x2b-\x5b\x5e-\x7a\x7c-\x7e]+")
_ASTRING_CHARS = re.compile(rb"[\x21\x23\x24\x26\x27\x2b-\x5b\x5d\x5e-\x7a\x7c-\x7e]+")
_TAG = re.compile(rb"[\x21\x23\x24\x26\x27\x2c-\x5b\x5d\x5e-\x7a\x7c-\x7e]+")
_LIST_CHARS = re.compile(rb"[\x21\x23-\x27\x2a\x2b-\x5b\x5d\x5e-\x7a\x7c-\x7e]+")
_QUOTED = re.compile(rb'"((?:[^"\\\x00\r\n]|\\["\\])*)"')
_QUOTED_ESCAPE = re.compile(rb'\\(["\\])')
_DIGITS = re.compile(rb"[0-9]+")
_SEQUENCE_CHARS = re.compile(rb"[0-9:*,$]+")
_NAME = re.compile(rb"[A-Za-z0-9.\-]+")
_DATE = re.compile(rb'("?)([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})\1')
_MONTHS = {
    name: number
    for number, name in enumerate(
        (b"JAN", b"FEB", b"MAR", b"APR", b"MAY", b"JUN", b"JUL", b"AUG", b"SEP", b"OCT", b"NOV", b"DEC"), 1
    )
}
_SYSTEM_FLAGS = {
    flag.upper(): flag for flag in ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "\\Recent")
}


def guess_tag(line: bytes) -> str | None:
    """The tag at the start of a command line, if there is a valid one followed by a space."""
    match = _TAG.match(line)
    if match is None or line[match.end() : match.end() + 1] != b" ":
        return None
    return match.group().decode("ascii")


class Reader:
    """A cursor over one command: ``lines[i]`` is followed by literal ``i`` when ``i < len(markers)``."""

    def __init__(
        self, lines: list[bytes], markers: list[LiteralMarker], literals: list[bytes], max_depth: int = 64
    ) -> None:
        self._lines = lines
        self._markers = markers
        self._literals = literals
        self._index = 0
        self._pos = 0
        self.max_depth = max_depth
        self.charset: str | None = None  # for decoding SEARCH strings

    # ------------------------------------------------------------------ position

    @property
    def _line(self) -> bytes:
        return self._lines[self._index]

    def peek(self) -> int | None:
        """The next byte of the current line, or ``None`` at a literal or the end."""
        line = self._line
        return line[self._pos] if self._pos < len(line) else None

    def peek_is(self, token: bytes) -> bool:
        return self._line.startswith(token, self._pos)

    def at_literal(self) -> bool:
        return self._pos == len(self._line) and self._index < len(self._markers)

    def at_end(self) -> bool:
        return self._pos == len(self._line) and self._index == len(self._lines) - 1

    def end(self) -> None:
        if not self.at_end():
            raise Bad("Unexpected characters at end of command")

    def _match(self, pattern: re.Pattern[bytes]) -> re.Match[bytes] | None:
        match = pattern.match(self._line, self._pos)
        if match is not None:
            self._pos = match.end()
        return match

    # ------------------------------------------------------------------ punctuation

    def accept(self, token: bytes) -> bool:
        if self.peek_is(token):
            self._pos += len(token)
            return True
        return False

    def expect(self, token: bytes, what: str | None = None) -> None:
        if not self.accept(token):
            raise Bad(f"Expected {what or repr(token.decode())}")

    def sp(self) -> None:
        if not self.accept(b" "):
            raise Bad("Expected a space" if not self.at_end() else "Missing arguments")

    def accept_keyword(self, word: bytes) -> bool:
        """Consume ``word`` (case-insensitive) if it stands as a whole token here."""
        end = self._pos + len(word)
        line = self._line
        if line[self._pos : end].upper() != word:
            return False
        if end < len(line) and _ATOM.match(line, end):
            return False
        self._pos = end
        return True

    # ------------------------------------------------------------------ tokens

    def tag(self) -> str:
        match = self._match(_TAG)
        if match is None:
            raise Bad("Missing or invalid tag")
        if self.peek() is not None and self.peek() != 0x20:
            raise Bad("Invalid character in tag")
        return match.group().decode("ascii")

    def atom(self, what: str = "an atom") -> str:
        match = self._match(_ATOM)
        if match is None:
            raise Bad(f"Expected {what}")
        return match.group().decode("ascii")

    def name(self, what: str) -> str:
        """A run of letters, digits, ``.`` and ``-``, upper-cased (fetch items, STORE verbs)."""
        match = self._match(_NAME)
        if match is None:
            raise Bad(f"Expected {what}")
        return match.group().decode("ascii").upper()

    def peek_name(self) -> str:
        """What :meth:`name` would return, without consuming it (``""`` if nothing)."""
        match = _NAME.match(self._line, self._pos)
        return match.group().decode("ascii").upper() if match else ""

    def number(self, limit: int = MAX_NUMBER, what: str = "a number") -> int:
        match = self._match(_DIGITS)
        if match is None:
            raise Bad(f"Expected {what}")
        digits = match.group()
        if len(digits) > 20 or int(digits) > limit:
            raise Bad(f"Number too large for {what}")
        return int(digits)

    def nz_number(self, limit: int = MAX_NUMBER, what: str = "a non-zero number") -> int:
        value = self.number(limit, what)
        if value == 0:
            raise Bad(f"Expected {what}")
        return value

    def literal(self, allow_binary: bool = False) -> tuple[bytes, bool]:
        """The payload of the literal at the cursor and whether it was a literal8."""
        if not self.at_literal():
            raise Bad("Expected a literal")
        marker = self._markers[self._index]
        if marker.binary and not allow_binary:
            raise Bad("literal8 is only allowed in APPEND")
        if self._index >= len(self._literals):
            raise Incomplete()
        data = self._literals[self._index]
        self._index += 1
        self._pos = 0
        return data, marker.binary

    def quoted(self) -> bytes:
        match = self._match(_QUOTED)
        if match is None:
            raise Bad("Invalid quoted string")
        return _QUOTED_ESCAPE.sub(rb"\1", match.group(1))

    def string(self) -> bytes:
        if self.peek() == 0x22:
            return self.quoted()
        if self.at_literal():
            return self.literal()[0]
        raise Bad("Expected a string")

    def astring(self) -> bytes:
        if self.peek() == 0x22 or self.at_literal():
            return self.string()
        match = self._match(_ASTRING_CHARS)
        if match is None:
            raise Bad("Expected a string or atom")
        return match.group()

    def astring_text(self, what: str = "string") -> str:
        return _utf8(self.astring(), what)

    def nstring_text(self) -> str | None:
        if self.accept_keyword(b"NIL"):
            return None
        return _utf8(self.string(), "string")

    def mailbox(self) -> str:
        return _utf8(self.astring(), "mailbox name")

    def list_mailbox(self) -> str:
        """``list-mailbox``: a string, or atom characters plus ``%``, ``*`` and ``]``."""
        if self.peek() == 0x22 or self.at_literal():
            return _utf8(self.string(), "mailbox pattern")
        match = self._match(_LIST_CHARS)
        if match is None:
            raise Bad("Expected a mailbox pattern")
        return _utf8(match.group(), "mailbox pattern")

    def search_string(self) -> str:
        """An astring in a SEARCH key, decoded with the command's CHARSET (default UTF-8)."""
        raw = self.astring()
        charset = self.charset or "UTF-8"
        try:
            return raw.decode(charset)
        except LookupError as exc:
            raise Bad(f"Unsupported charset {charset}", code="BADCHARSET") from exc
        except UnicodeDecodeError as exc:
            raise Bad(f"Search string is not valid {charset}") from exc

    def set_charset(self, charset: str) -> None:
        try:
            info = codecs.lookup(charset)
            b"".decode(info.name)
        except LookupError as exc:
            raise Bad(f"Unsupported charset {charset}", code="BADCHARSET") from exc
        self.charset = charset

    def sequence_set(self) -> SequenceSet:
        match = self._match(_SEQUENCE_CHARS)
        if match is None:
            raise Bad("Expected a sequence set")
        try:
            return SequenceSet.parse(match.group())
        except SequenceSetError as exc:
            raise Bad(f"Invalid sequence set: {exc}") from exc

    def date(self) -> datetime.date:
        """``date`` (RFC 9051): ``d-Mon-yyyy``, optionally quoted."""
        match = self._match(_DATE)
        if match is None:
            raise Bad("Expected a date like 1-Feb-2024")
        month = _MONTHS.get(match.group(3).upper())
        try:
            if month is None:
                raise ValueError("month")
            return datetime.date(int(match.group(4)), month, int(match.group(2)))
        except ValueError as exc:
            raise Bad("Invalid date") from exc

    def flag(self) -> str:
        """A flag: ``\\`` atom (system flags get canonical case) or a keyword atom."""
        if self.accept(b"\\"):
            name = "\\" + self.atom("a flag name")
            return _SYSTEM_FLAGS.get(name.upper(), name)
        return self.atom("a flag")

    def flag_list(self) -> tuple[str, ...]:
        return tuple(self.parenthesised(self.flag, allow_empty=True))

    def parenthesised(self, item: Callable[[], T], allow_empty: bool = False) -> list[T]:
        """``"(" item *(SP item) ")"``, calling ``item()`` for each element."""
        self.expect(b"(")
        if self.accept(b")"):
            if not allow_empty:
                raise Bad("Empty list")
            return []
        items = [item()]
        while self.accept(b" "):
            items.append(item())
        self.expect(b")")
        return items


def _utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Bad(f"Invalid UTF-8 in {what}") from exc
