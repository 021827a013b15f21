"""Incremental IMAP command parser: bytes in, typed events out (RFC 3501 / RFC 9051).

:class:`ImapParser` frames the client's byte stream into commands — lines, synchronising
literals ``{n}``, non-synchronising literals ``{n+}`` (LITERAL+, RFC 7888) and literal8 ``~{n}``
(BINARY, RFC 3516) — and hands each complete command to :mod:`tidings.imap.grammar`.
``feed()`` returns a list of events, in order:

* a :class:`~tidings.imap.commands.Command` dataclass;
* :class:`ContinuationNeeded` — send ``+ <text>``: the client announced a synchronising literal,
  the command so far is valid and the literal is within limits;
* :class:`ParseError` — reply ``<tag> BAD <text>`` (``* BAD`` when ``tag`` is ``None``), or
  ``<tag> NO [<code>] <text>`` when :attr:`ParseError.reply_status` is ``"NO"`` (TOOBIG,
  BADCHARSET) — except that a refused non-synchronising literal is always ``BAD [TOOBIG]``
  (RFC 7888 section 4).  When ``fatal`` is true the session must send ``* BYE`` and close: the
  stream can no longer be framed (e.g. an oversized non-synchronising literal is on its way);
* :class:`RawLine` — a line read verbatim after :meth:`ImapParser.expect_raw_line` (SASL
  responses during AUTHENTICATE, ``DONE`` ending IDLE).

After AUTHENTICATE, IDLE and STARTTLS the parser *pauses*: bytes already received stay buffered
and unparsed until the session calls :meth:`~ImapParser.expect_raw_line` (one raw line, then
paused again) or :meth:`~ImapParser.resume`, and then ``feed(b"")`` to process what is buffered.
After STARTTLS the session calls :meth:`~ImapParser.discard_buffered` before resuming, so that
plaintext sent ahead of the TLS handshake cannot be injected into the protected session.

Memory is bounded: a line holds at most ``max_line`` bytes, a literal ``max_literal`` bytes and
a whole command ``max_command`` bytes with at most ``max_literals_per_command`` literals.  The
session starts with small literal limits and raises them with :meth:`ImapParser.set_literal_limits`
after login; LOGIN pauses the parser like AUTHENTICATE, so commands pipelined behind it are framed
with the limits of the state they will run in.

Pure: no I/O, no clocks; feeding the same bytes split at any boundaries gives the same events.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, replace
from typing import TypeAlias

from tidings.imap import commands
from tidings.imap.grammar import parse_command
from tidings.imap.reader import Bad, Incomplete, LiteralMarker, Reader, guess_tag

_LITERAL_MARKER = re.compile(rb"(~?)\{([0-9]+)(\+?)\}\Z")
_MAX_DIGITS = 19
_MARKER_TAIL = 32  # enough bytes to recognise a literal marker at the end of a discarded line

NO_CODES = frozenset({"TOOBIG", "BADCHARSET"})
"""Response codes that are answered with ``NO`` rather than ``BAD`` (RFC 9051 7.1, RFC 4469)."""

PAUSING_COMMANDS = (commands.Authenticate, commands.Idle, commands.StartTls, commands.Login)


@dataclass(frozen=True)
class ContinuationNeeded:
    """The session must send ``+ {text}`` so the client sends its synchronising literal."""

    text: str = "Ready for literal data"


@dataclass(frozen=True)
class ParseError:
    """A command that could not be parsed; see the module docstring for how to answer it."""

    tag: str | None
    text: str
    code: str | None = None
    fatal: bool = False
    status: str | None = None  # forces the reply status (BAD for a refused {n+}, RFC 7888 section 4)

    @property
    def reply_status(self) -> str:
        """``"NO"`` for TOOBIG and BADCHARSET, ``"BAD"`` otherwise (unless ``status`` says)."""
        if self.status is not None:
            return self.status
        return "NO" if self.code in NO_CODES else "BAD"


@dataclass(frozen=True)
class RawLine:
    """One line, without its CRLF, read after :meth:`ImapParser.expect_raw_line`."""

    data: bytes


Event: TypeAlias = commands.Command | ContinuationNeeded | ParseError | RawLine


class _Mode(enum.Enum):
    LINE = "reading a line"
    LITERAL = "reading literal bytes"
    DISCARD_LINE = "discarding the rest of an overlong or rejected line"
    SKIP_LITERAL = "skipping the bytes of a rejected non-synchronising literal"


class ImapParser:
    """Turns the client's bytes into :data:`Event` values.  One instance per connection."""

    def __init__(
        self,
        max_literal: int = 64 * 1024 * 1024,
        max_line: int = 64 * 1024,
        max_command: int | None = None,
        max_literals_per_command: int = 1000,
        max_search_depth: int = 64,
    ) -> None:
        self.max_literal = max_literal
        self.max_line = max_line
        self.max_command = max_command if max_command is not None else 4 * max_literal + max_line
        self.max_literals_per_command = max_literals_per_command
        self.max_search_depth = max_search_depth
        self._buffer = bytearray()
        self._offset = 0  # bytes of _buffer already consumed
        self._scan = 0  # where to resume looking for a newline
        self._mode = _Mode.LINE
        self._remaining = 0  # literal bytes still expected (LITERAL, SKIP_LITERAL)
        self._literal_data = bytearray()
        self._lines: list[bytes] = []
        self._markers: list[LiteralMarker] = []
        self._literals: list[bytes] = []
        self._command_size = 0
        self._discard_tail = b""
        self._discard_is_raw = False
        self._paused = False
        self._raw_expected = False
        self._closed = False

    # ------------------------------------------------------------------ public API

    def feed(self, data: bytes) -> list[Event]:
        """Add received bytes; return the events they complete (possibly none)."""
        if self._closed:
            return []
        events: list[Event] = []
        self._buffer += data
        if self._paused and not self._raw_expected and self.buffered > self.max_line + 2:
            # The session keeps reading while it has not said how to go on (resume() or
            # expect_raw_line()); refuse to buffer without bound.
            self._fail(events, ParseError(None, "Too much data sent while a reply was pending", fatal=True))
            return events
        self._run(events)
        if self._offset:
            del self._buffer[: self._offset]
            self._scan -= self._offset
            self._offset = 0
        return events

    def set_literal_limits(self, max_literal: int, max_command: int | None = None) -> None:
        """Limits for the commands parsed from now on (``max_command`` defaults as in the
        constructor).  Before login a command may carry only a few KiB of literals; after it,
        APPEND needs the configured limit."""
        self.max_literal = max_literal
        self.max_command = max_command if max_command is not None else 4 * max_literal + self.max_line

    def expect_raw_line(self) -> None:
        """Return the next line verbatim as :class:`RawLine` (for SASL and IDLE's ``DONE``).

        The parser stays paused afterwards; call again for another line, or :meth:`resume`.
        Call ``feed(b"")`` to process a line that is already buffered.
        """
        self._raw_expected = True

    def resume(self) -> None:
        """Go back to parsing commands (after AUTHENTICATE, IDLE or STARTTLS completes)."""
        self._paused = False
        self._raw_expected = False

    def discard_buffered(self) -> int:
        """Drop bytes received but not yet parsed; return how many (for STARTTLS, RFC 9051 6.2.1)."""
        dropped = len(self._buffer) - self._offset
        self._buffer.clear()
        self._offset = self._scan = 0
        return dropped

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def closed(self) -> bool:
        """True after a fatal error: the session must close the connection."""
        return self._closed

    @property
    def buffered(self) -> int:
        """Bytes received but not yet turned into events."""
        return len(self._buffer) - self._offset

    # ------------------------------------------------------------------ framing

    def _run(self, events: list[Event]) -> None:
        buffer = self._buffer
        while not self._closed:
            available = len(buffer) - self._offset
            if self._mode in (_Mode.LITERAL, _Mode.SKIP_LITERAL):
                if available == 0 and self._remaining > 0:
                    return
                take = min(self._remaining, available)
                if self._mode is _Mode.LITERAL:
                    self._literal_data += buffer[self._offset : self._offset + take]
                self._offset += take
                self._scan = self._offset
                self._remaining -= take
                if self._remaining == 0:
                    if self._mode is _Mode.LITERAL:
                        self._literals.append(bytes(self._literal_data))
                        self._literal_data = bytearray()
                        self._mode = _Mode.LINE
                    else:
                        self._start_discard(b"", raw=False)
                continue
            if self._paused and not self._raw_expected and self._mode is _Mode.LINE and not self._lines:
                return
            newline = buffer.find(b"\n", max(self._scan, self._offset))
            if newline < 0:
                self._scan = len(buffer)
                if self._mode is _Mode.DISCARD_LINE:
                    self._discard_tail = (self._discard_tail + buffer[self._offset :])[-_MARKER_TAIL:]
                    self._offset = len(buffer)
                elif available > self.max_line + 1:
                    self._line_too_long(bytes(buffer[self._offset :]), events)
                    self._offset = len(buffer)
                return
            line = bytes(buffer[self._offset : newline])
            self._offset = self._scan = newline + 1
            if self._mode is _Mode.DISCARD_LINE:
                self._discard_tail = (self._discard_tail + line)[-_MARKER_TAIL:]
                self._end_discard(events)
                continue
            if len(line) - line.endswith(b"\r") > self.max_line:
                self._line_too_long(line, events)  # with its CR, as if it had arrived in pieces
                self._end_discard(events)
                continue
            if line.endswith(b"\r"):
                line = line[:-1]
            if self._raw_expected and not self._lines:
                self._raw_expected = False
                events.append(RawLine(line))
                continue
            self._command_line(line, events)

    def _command_line(self, line: bytes, events: list[Event]) -> None:
        """Handle one complete line (or line fragment) of a command."""
        if not self._lines and not line:
            return  # tolerate stray empty lines between commands
        self._command_size += len(line) + 2
        match = _LITERAL_MARKER.search(line)
        if match is None:
            self._lines.append(line)
            self._finish_command(events)
            return
        digits = match.group(2)
        size = int(digits) if len(digits) <= _MAX_DIGITS else self.max_command + 1
        marker = LiteralMarker(size=size, synchronising=not match.group(3), binary=bool(match.group(1)))
        self._lines.append(line[: match.start()])
        self._markers.append(marker)
        # Only a synchronising literal needs checking before its bytes arrive (we must not invite
        # a doomed literal); a non-synchronising one is checked with the whole command, which keeps
        # a command with many small {n+} literals linear.
        error = self._validate_prefix() if marker.synchronising else None
        if error is None and (
            size > self.max_literal
            or self._command_size + size > self.max_command
            or len(self._markers) > self.max_literals_per_command
        ):
            error = ParseError(guess_tag(self._lines[0]), "Literal too large", code="TOOBIG")
        if error is not None:
            self._reset_command()
            if marker.synchronising:
                events.append(error)  # the client will not send the literal
                return
            error = replace(error, status="BAD")  # RFC 7888 section 4
            if size > self.max_literal:
                self._fail(events, replace(error, fatal=True))
            else:
                events.append(error)
                self._mode = _Mode.SKIP_LITERAL
                self._remaining = size
            return
        if marker.synchronising:
            events.append(ContinuationNeeded())
        self._command_size += size
        self._mode = _Mode.LITERAL
        self._remaining = size

    def _validate_prefix(self) -> ParseError | None:
        """Check the command up to its pending literal, so bad commands are refused before the
        client is invited to send literal bytes."""
        try:
            parse_command(self._reader())
        except Incomplete:
            return None
        except Bad as error:
            return ParseError(error.tag, error.text, error.code)
        return ParseError(guess_tag(self._lines[0]), "Unexpected literal")

    def _finish_command(self, events: list[Event]) -> None:
        try:
            command = parse_command(self._reader())
        except Bad as error:
            events.append(ParseError(error.tag, error.text, error.code))
        except Incomplete:  # cannot happen: every literal has arrived
            events.append(ParseError(guess_tag(self._lines[0]), "Incomplete command"))
        else:
            events.append(command)
            if isinstance(command, PAUSING_COMMANDS):
                self._paused = True
        self._reset_command()

    def _reader(self) -> Reader:
        return Reader(self._lines, self._markers, self._literals, self.max_search_depth)

    def _reset_command(self) -> None:
        self._lines = []
        self._markers = []
        self._literals = []
        self._literal_data = bytearray()
        self._command_size = 0
        self._mode = _Mode.LINE

    # ------------------------------------------------------------------ recovery

    def _line_too_long(self, start: bytes, events: list[Event]) -> None:
        raw = self._raw_expected and not self._lines
        # Only the first max_line bytes are looked at, so the tag found does not depend on how
        # much of the line had arrived when it was found too long.
        tag = None if raw else guess_tag(self._lines[0] if self._lines else start[: self.max_line])
        events.append(ParseError(tag, "Line too long"))
        self._reset_command()
        self._start_discard(start, raw)

    def _start_discard(self, start: bytes, raw: bool) -> None:
        self._mode = _Mode.DISCARD_LINE
        self._discard_tail = start[-_MARKER_TAIL:]
        self._discard_is_raw = raw
        if raw:
            self._raw_expected = False

    def _end_discard(self, events: list[Event]) -> None:
        """The discarded line has ended; if it announced a non-synchronising literal, its bytes
        are coming and must be skipped too."""
        tail = self._discard_tail.removesuffix(b"\r")
        self._discard_tail = b""
        self._mode = _Mode.LINE
        if self._discard_is_raw:
            return
        match = _LITERAL_MARKER.search(tail)
        if match is None or not match.group(3):
            return
        digits = match.group(2)
        if len(digits) > _MAX_DIGITS or int(digits) > self.max_literal:
            self._fail(events, ParseError(None, "Literal too large", code="TOOBIG", fatal=True, status="BAD"))
            return
        self._mode = _Mode.SKIP_LITERAL
        self._remaining = int(digits)

    def _fail(self, events: list[Event], error: ParseError) -> None:
        events.append(error)
        self._closed = True
        self._reset_command()
        self._buffer.clear()
        self._offset = self._scan = 0
