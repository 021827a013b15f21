"""POP3 response encoding: status lines with response codes and byte-stuffed multi-line bodies.

Pure functions, no I/O. RFC 1939 section 3: every line ends in CRLF; a multi-line response ends with
a line holding only "."; lines of the body that begin with "." get one more "." in front.
RFC 2449 section 8: response codes in square brackets right after "+OK "/"-ERR ".
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_LINE_END = re.compile(rb"\r?\n")
PIECE_SIZE = 256 * 1024


def status(ok: bool, text: str = "", code: str | None = None) -> bytes:
    """One status line, e.g. status(False, "no such message") -> b"-ERR no such message\\r\\n"."""
    parts = ["+OK" if ok else "-ERR"]
    if code:
        parts.append(f"[{code}]")
    if text:
        parts.append(text)
    return " ".join(parts).encode("utf-8", "replace") + b"\r\n"


def with_crlf(raw: bytes) -> bytes:
    """The message with every line ending in CRLF (stored messages may have bare LFs)."""
    if raw.count(b"\n") == raw.count(b"\r\n"):
        return raw  # the usual case, checked at C speed
    return _LINE_END.sub(b"\r\n", raw)


def multiline(body: bytes) -> bytes:
    """A multi-line response body (already CRLF) byte-stuffed and terminated: RFC 1939 section 3."""
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    stuffed = body.replace(b"\r\n.", b"\r\n..")  # every line after the first
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return stuffed + b".\r\n"


def multiline_lines(lines: list[str]) -> bytes:
    """A multi-line response made of text lines (CAPA, LIST, UIDL listings)."""
    return multiline("".join(f"{line}\r\n" for line in lines).encode("utf-8", "replace"))


def top_length(message: bytes, body_lines: int) -> int:
    """How many leading bytes of the message RFC 1939 TOP sends: the header, the blank line after
    it, and the first `body_lines` body lines. A bare LF ends a line as CRLF does; a message
    without a blank line is all header.

    Newlines are counted a piece at a time at C speed, so `TOP 1 100000000` on a large message
    costs a few calls, not a Python loop over every line.
    """
    if message.startswith(b"\n"):
        header_end = 1
    elif message.startswith(b"\r\n"):
        header_end = 2  # empty header: the first line is the blank separator
    else:
        ends = [found for found in (message.find(b"\n\n"), message.find(b"\n\r\n")) if found >= 0]
        if not ends:
            return len(message)
        first = min(ends)
        header_end = first + (2 if message[first + 1 : first + 2] == b"\n" else 3)
    position, remaining = header_end, body_lines
    while remaining and position < len(message):
        piece_end = min(position + PIECE_SIZE, len(message))
        lines = message.count(b"\n", position, piece_end)
        if lines < remaining:
            remaining -= lines
            position = piece_end
            continue
        for _ in range(remaining):
            position = message.find(b"\n", position) + 1
        return position
    return position if remaining == 0 else len(message)


def top_of(message: bytes, body_lines: int) -> bytes:
    """The part of `message` TOP sends (see `top_length`)."""
    return message[: top_length(message, body_lines)]


def message_pieces(message: bytes, end: int | None = None) -> Iterator[bytes]:
    """The multi-line response carrying `message[:end]` (RETR, TOP): CRLF line ends, byte-stuffed
    and terminated (RFC 1939 section 3), in pieces of about PIECE_SIZE bytes cut after a line end.

    A large message is never copied or transformed whole: each piece costs a millisecond or two,
    so the session can yield to other clients and wait for this one to read between pieces.
    """
    end = len(message) if end is None else end
    start = 0
    while start < end:
        stop = min(start + PIECE_SIZE, end)
        if stop < end:
            cut = message.rfind(b"\n", start, stop)
            if cut >= 0:
                stop = cut + 1
            elif message[stop - 1 : stop + 1] == b"\r\n":
                stop += 1  # keep a CR with its LF
        piece = with_crlf(message[start:stop]).replace(b"\r\n.", b"\r\n..")
        if piece.startswith(b".") and (start == 0 or message[start - 1 : start] == b"\n"):
            piece = b"." + piece
        yield piece
        start = stop
    yield b".\r\n" if end == 0 or message[end - 1 : end] == b"\n" else b"\r\n.\r\n"
