"""Incremental framing of SMTP input: command lines, DATA bodies and BDAT chunks.

Pure and synchronous: bytes go in with `feed`, framed units come out with `take_line`,
`take_data` and `take_chunk`, or None when more input is needed. The connection decides when to
read from the socket; the session decides which unit it expects next. Pipelined input (RFC 2920)
simply stays in the buffer until the session asks for it.

Policies decided here (and documented for operators):

- Command lines end at LF; a CR before it is dropped, so bare-LF clients work. A command line longer
  than the limit raises `LineTooLong` as soon as the limit is passed, without waiting for its end,
  so memory stays bounded whatever the client sends.
- DATA ends only at CRLF "." CRLF (RFC 5321 section 4.1.1.4). "\\n.\\n" and "\\r\\n.\\n" are
  ordinary content: treating them as the end is what "SMTP smuggling" exploits. Inside the body a
  bare LF is turned into CRLF, so stored and relayed messages have canonical line endings.
- A DATA body larger than the limit is read to its end and thrown away while being read (only a
  few bytes are kept to find the terminator); `take_data` then returns `TOO_BIG`.
"""

from __future__ import annotations

import re


class LineTooLong(Exception):
    """A command line passed the configured limit."""


class _TooBig:
    def __repr__(self) -> str:
        return "TOO_BIG"


TOO_BIG = _TooBig()

_TERMINATOR = b"\r\n.\r\n"
_BARE_LF = re.compile(rb"(?<!\r)\n")


def canonical_line_endings(body: bytes) -> bytes:
    """Bare LF -> CRLF (cheap check first: almost every message is already canonical)."""
    if body.count(b"\n") == body.count(b"\r\n"):
        return body
    return _BARE_LF.sub(b"\r\n", body)


# A DATA body at least this big is handed over without a copy and finished piece by piece.
PIECE = 1024 * 1024


def finish_data(wire: bytes | bytearray, start: int, end: int, max_size: int) -> bytes | _TooBig:
    """The message in wire[start:end] (a DATA body with the CRLF before its terminating dot):
    dot-unstuffed, with canonical line endings, or TOO_BIG.

    Done a `PIECE` at a time, each piece cut just before a CRLF so that no CRLF "." and no CRLF is
    split between two pieces: the result is the same as for the whole body at once, and no single
    C call runs over tens of megabytes (in a worker thread, that would still hold the GIL)."""
    pieces = []
    pos = start
    while pos < end:
        stop = end if end - pos <= PIECE else wire.find(b"\r\n", pos + PIECE, end)
        stop = end if stop < 0 else stop
        piece = bytes(wire[pos:stop])
        if pos == start and piece.startswith(b"."):
            piece = piece[1:]
        if b"\r\n." in piece:
            piece = piece.replace(b"\r\n.", b"\r\n")
        pieces.append(canonical_line_endings(piece))
        pos = stop
    body = pieces[0] if len(pieces) == 1 else b"".join(pieces)
    if len(body) > max_size:
        return TOO_BIG
    return body


class InputBuffer:
    """Unconsumed input of one connection."""

    def __init__(self, line_limit: int) -> None:
        self.line_limit = line_limit
        self._buf = bytearray()
        self._pos = 0
        # DATA state: where to resume the terminator search, and whether we are discarding.
        self._search_from = -1
        self._discarding = False
        # BDAT state: bytes still to throw away for a refused chunk.
        self._skip_remaining = 0

    def feed(self, data: bytes) -> None:
        if self._pos and self._pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
            if self._search_from >= 0:
                self._search_from = 0
        self._buf += data

    def __len__(self) -> int:
        return len(self._buf) - self._pos

    def clear(self) -> None:
        """Forget everything unconsumed (after STARTTLS, RFC 3207 section 4.2)."""
        self._buf.clear()
        self._pos = 0
        self._search_from = -1
        self._discarding = False

    def _consume_to(self, end: int) -> None:
        self._pos = end
        if end == len(self._buf):
            self._buf.clear()
            self._pos = 0
        elif end > 65536 and end > len(self._buf) // 2:
            del self._buf[:end]
            self._pos = 0

    # -- command lines -----------------------------------------------------------------------

    def take_line(self) -> bytes | None:
        """The next command line without its line ending, or None if it is not complete yet."""
        buf, pos = self._buf, self._pos
        newline = buf.find(b"\n", pos, pos + self.line_limit + 2)
        if newline < 0:
            if len(buf) - pos > self.line_limit + 1:
                raise LineTooLong()
            return None
        end = newline - 1 if newline > pos and buf[newline - 1] == 0x0D else newline
        if end - pos > self.line_limit:
            raise LineTooLong()
        line = bytes(buf[pos:end])
        self._consume_to(newline + 1)
        return line

    def skip_line(self) -> int | None:
        """Throw away input through the next LF (the rest of a refused over-long line): the number
        of bytes dropped so far if the LF has not arrived yet, else None."""
        newline = self._buf.find(b"\n", self._pos)
        if newline >= 0:
            self._consume_to(newline + 1)
            return None
        dropped = len(self)
        self._consume_to(len(self._buf))
        return dropped

    def has_line(self) -> bool:
        return self._buf.find(b"\n", self._pos) >= 0

    # -- DATA --------------------------------------------------------------------------------

    def take_data(self, max_size: int) -> bytes | _TooBig | None:
        """The DATA body (dot-unstuffed, canonical CRLF), TOO_BIG, or None if not complete yet."""
        wire = self.take_wire_data(max_size)
        if wire is None or wire is TOO_BIG:
            return wire
        return finish_data(*wire, max_size)

    def take_wire_data(self, max_size: int) -> tuple[bytes | bytearray, int, int] | _TooBig | None:
        """Like `take_data`, but the body as it came over the wire: `(buffer, start, end)` to be
        given to `finish_data` (which a connection may run in a thread for a big body). The buffer
        then belongs to the caller: a big body is handed over without being copied."""
        buf, pos = self._buf, self._pos
        if self._search_from < 0:  # first call for this body
            self._search_from = pos
            self._discarding = False
        if not self._discarding and buf.startswith(b".\r\n", pos):
            # The CRLF ending the DATA command line counts as the terminator's first CRLF.
            self._search_from = -1
            self._consume_to(pos + 3)
            return b"", 0, 0
        found = buf.find(_TERMINATOR, max(self._search_from, pos))
        if found < 0:
            keep_from = max(pos, len(buf) - len(_TERMINATOR) + 1)
            self._search_from = keep_from
            # Dot-stuffing can make the wire form slightly larger than the message; allow 1%.
            if self._discarding or keep_from - pos > max_size + max_size // 100:
                self._discarding = True
                del buf[pos:keep_from]
                self._search_from = pos
            return None
        self._search_from = -1
        if self._discarding:
            self._discarding = False
            self._consume_to(found + len(_TERMINATOR))
            return TOO_BIG
        if found + 2 - pos >= PIECE:
            # A big body keeps this buffer; what follows the terminator (pipelined commands)
            # moves to a new one. Copying 50 MB here would hold up every session on the loop.
            self._buf = bytearray(buf[found + len(_TERMINATOR) :])
            self._pos = 0
            return buf, pos, found + 2
        body = bytes(buf[pos : found + 2])
        self._consume_to(found + len(_TERMINATOR))
        return body, 0, len(body)

    # -- BDAT --------------------------------------------------------------------------------

    def take_chunk(self, size: int) -> bytes | None:
        """Exactly `size` bytes (RFC 3030 chunks are not dot-stuffed), or None if not all here yet."""
        if len(self) < size:
            return None
        chunk = bytes(self._buf[self._pos : self._pos + size])
        self._consume_to(self._pos + size)
        return chunk

    def skip_chunk(self, size: int) -> bool:
        """Throw away a refused chunk of `size` bytes as it arrives; True once all of it is gone."""
        if self._skip_remaining == 0:
            self._skip_remaining = size
        n = min(self._skip_remaining, len(self))
        self._skip_remaining -= n
        self._consume_to(self._pos + n)
        return self._skip_remaining == 0
