"""Cut FETCH sections out of stored bytes using a `MessageSummary` (RFC 3501 section 6.4.5,
RFC 9051 section 6.4.5, RFC 3516 BINARY) and POP3 TOP (RFC 1939 section 7).

Every result is a slice of the stored bytes (or, for BINARY, its decoding), so sizes agree
with RFC822.SIZE and the part table. A section that does not exist yields b"" as RFC 3501
asks ("an empty string"); the session decides whether to answer NO instead.
"""

from __future__ import annotations

from tidings.mail.headers import decode_base64_lenient, decode_quoted_printable, parse_header_block
from tidings.mail.message import MessageSummary, PartInfo
from tidings.mail.mime import IDENTITY_ENCODINGS

SECTION_KINDS = ("", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME")


def _line_ending(raw: bytes, header_end: int) -> bytes:
    """The blank line's own line ending, so a bare-LF message stays bare LF."""
    return b"\r\n" if raw[max(0, header_end - 2) : header_end] == b"\r\n" or header_end == 0 else b"\n"


def filter_header(raw: bytes, start: int, end: int, fields: list[str], exclude: bool) -> bytes:
    """HEADER.FIELDS / HEADER.FIELDS.NOT of the header block at raw[start:end]: matching fields
    exactly as stored (folded lines intact, original order), then the empty line."""
    block = parse_header_block(raw, start, end)
    wanted = {name.strip().lower() for name in fields}
    kept = [raw[f.start : f.end] for f in block.fields if (f.name.lower() in wanted) != exclude]
    # A last field without a line ending (header with no body) still needs one.
    kept = [line if line.endswith(b"\n") else line + b"\r\n" for line in kept]
    return b"".join(kept) + _line_ending(raw, block.body_start)


def _header_kind(
    raw: bytes, start: int, body_start: int, end: int, kind: str, fields: list[str] | None
) -> bytes:
    if kind == "HEADER":
        return raw[start:body_start]
    if kind == "HEADER.FIELDS":
        return filter_header(raw, start, body_start, fields or [], exclude=False)
    if kind == "HEADER.FIELDS.NOT":
        return filter_header(raw, start, body_start, fields or [], exclude=True)
    if kind == "TEXT":
        return raw[body_start:end]
    return b""


def find_part(summary: MessageSummary, section: str) -> PartInfo | None:
    """The part numbered `section` ("1", "2.1.3"); None if the message has no such part.

    RFC 3501 6.4.5: a non-multipart entity has exactly one part, "1".  So a leaf part of a
    multipart, say "2", also answers to "2.1" -- itself, once (not "2.1.1").  The "1" of a
    non-multipart message already is that one part, so "1.1" of a plain single-part message
    names nothing.  This is Dovecot's reading too (``imap_msgpart_find``).
    """
    parts = summary.parts
    found = parts.get(section)
    if found is not None or not section.endswith(".1"):
        return found
    leaf = parts.get(section[:-2])
    if leaf is None or leaf.is_multipart or leaf.message_body_start is not None:
        return None
    return None if _is_message_body(parts, leaf) else leaf


def _is_message_body(parts: dict[str, PartInfo], info: PartInfo) -> bool:
    """Whether `info` is the one part "1" of a non-multipart message (top-level or attached):
    its MIME header is then the message's own header."""
    parent = info.section.rpartition(".")[0]
    if not parent:
        return info.header_start == 0
    message = parts.get(parent)
    return (
        message is not None
        and message.message_body_start is not None
        and (info.header_start == message.body_start)
    )


def extract_section(
    raw: bytes, summary: MessageSummary, section: str = "", kind: str = "", fields: list[str] | None = None
) -> bytes:
    """BODY[<section>.<kind> (<fields>)] of the message stored as `raw`.

    `section` is the part number without the kind ("" for the whole message), `kind` one of
    SECTION_KINDS in upper case. HEADER, HEADER.FIELDS[.NOT] and TEXT of a numbered part exist
    only if the part is a message/rfc822; MIME exists only for a numbered part.
    """
    kind = kind.upper()
    if not section:
        if kind == "":
            return raw
        if kind == "MIME":
            return b""
        return _header_kind(raw, 0, summary.header_size, len(raw), kind, fields)
    part = find_part(summary, section)
    if part is None:
        return b""
    if kind == "":
        return raw[part.body_start : part.end]
    if kind == "MIME":
        return raw[part.header_start : part.body_start]
    if part.message_body_start is None:
        return b""
    return _header_kind(raw, part.body_start, part.message_body_start, part.end, kind, fields)


def decode_transfer_encoding(data: bytes, encoding: str) -> bytes | None:
    """Undo a Content-Transfer-Encoding (RFC 2045 section 6); None for an unknown encoding."""
    encoding = encoding.lower()
    if encoding in IDENTITY_ENCODINGS:
        return data
    if encoding == "base64":
        return decode_base64_lenient(data)
    if encoding == "quoted-printable":
        return decode_quoted_printable(data)
    return None


def decode_section_binary(raw: bytes, summary: MessageSummary, section: str = "") -> bytes | None:
    """BINARY[<section>] (RFC 3516 / RFC 9051 section 6.4.5): the part with its transfer encoding
    undone. b"" for a missing part; None for an encoding we cannot decode, which the session
    answers with NO [UNKNOWN-CTE]. Multiparts and messages are returned as stored."""
    if not section:
        return raw
    part = find_part(summary, section)
    if part is None:
        return b""
    data = raw[part.body_start : part.end]
    if part.is_multipart or part.message_body_start is not None:
        return data
    return decode_transfer_encoding(data, part.encoding)


def extract_top(raw: bytes, summary: MessageSummary, lines: int) -> bytes:
    """POP3 TOP: the header, its blank line, and the first `lines` lines of the body."""
    end = summary.header_size
    for _ in range(max(0, lines)):
        if end >= len(raw):
            break
        newline = raw.find(b"\n", end)
        end = len(raw) if newline < 0 else newline + 1
    return raw[:end]
