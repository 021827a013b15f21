"""POP3 response encoding: status lines with response codes and byte-stuffed multi-line bodies.

Pure functions, no I/O. RFC 1939 section 3: every line ends in CRLF; a multi-line response ends with
a line holding only "."; lines of the body that begin with "." get one more "." in front.
RFC 2449 section 8: response codes in square brackets right after "+OK "/"-ERR ".
"""

from __future__ import annotations

import re

_LINE_END = re.compile(rb"\r?\n")
_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)
# A blank line ends the header; with CRLF line ends that is the first CRLFCRLF (or CRLF at offset 0).
_HEADER_END = b"\r\n\r\n"


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
    return _LINE_END.sub(b"\r\n", raw)


def multiline(body: bytes) -> bytes:
    """A multi-line response body (already CRLF) byte-stuffed and terminated: RFC 1939 section 3."""
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    return _LEADING_DOT.sub(b"..", body) + b".\r\n"


def multiline_lines(lines: list[str]) -> bytes:
    """A multi-line response made of text lines (CAPA, LIST, UIDL listings)."""
    return multiline("".join(f"{line}\r\n" for line in lines).encode("utf-8", "replace"))


def top_of(message: bytes, body_lines: int) -> bytes:
    """RFC 1939 TOP: the header, the blank line after it, and the first `body_lines` body lines.

    `message` must already be CRLF (see `with_crlf`). A message without a blank line is all header.
    """
    if message.startswith(b"\r\n"):
        header_end = 2  # empty header: the first line is the blank separator
    else:
        found = message.find(_HEADER_END)
        if found < 0:
            return message
        header_end = found + 4
    head, body = message[:header_end], message[header_end:]
    if body_lines == 0 or not body:
        return head
    cut = 0
    for _ in range(body_lines):
        next_end = body.find(b"\r\n", cut)
        if next_end < 0:
            cut = len(body)
            break
        cut = next_end + 2
    return head + body[:cut]
