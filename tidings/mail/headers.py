"""Raw RFC 5322 header blocks: fields with byte offsets, unfolding, RFC 2047 and RFC 2231 decoding.

Everything here works on the stored message bytes and keeps byte offsets, because IMAP needs
byte-exact header extraction (FETCH BODY[HEADER.FIELDS ...], RFC 3501 section 6.4.5). Pure
functions: no I/O, and no function here raises on malformed input -- bad syntax degrades to
"no such field" or to the undecoded text.

Line endings: both CRLF and bare LF end a line (messages appended by clients may use bare LF).
"""

from __future__ import annotations

import binascii
import codecs
import re
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

# More fields than this in one header block are not indexed: the rest of the block is skipped
# quickly to its blank line. Protects against headers made of millions of tiny lines.
MAX_HEADER_FIELDS = 10_000
# Structured values (Content-Type, address lists) longer than this are cut before parsing.
MAX_STRUCTURED_VALUE = 128 * 1024
# Field values handed out as text (envelope, subject, search) are cut to this many octets, so
# one giant header line cannot blow up the stored JSON. Byte-exact extraction is unaffected.
MAX_FIELD_TEXT = 64 * 1024

# field-name = 1*ftext (printable ASCII except ":"), RFC 5322 section 3.6.8; obsolete syntax allows
# whitespace before the colon (section 4.5).
_FIELD_NAME = re.compile(rb"([!-9;-~]+)[ \t]*:")
_FOLD = re.compile(rb"\r?\n(?=[ \t])")


@dataclass(frozen=True, slots=True)
class HeaderField:
    """One header field: `raw[start:end]` is the field exactly as stored, folded lines included."""

    name: str
    start: int
    value_start: int
    end: int

    def raw_value(self, raw: bytes) -> bytes:
        """The value after the colon, still folded, line ending included."""
        return raw[self.value_start : self.end]


@dataclass(slots=True)
class HeaderBlock:
    """A header block from `start` up to `body_start` (which is just after the blank line, if any).

    `fields` is every field of the block unless one of the flags says the reading stopped early:
    `over_field_limit` (more fields than asked for; the rest were skipped) or `ended_at_junk` (a line
    that is neither a field nor a continuation ended the header; the body starts there). Anyone
    deciding on the header's authority (who sent it, what gets signed) must refuse such a block:
    another parser may read on and see fields we did not.
    """

    start: int
    body_start: int
    fields: list[HeaderField] = field(default_factory=list)
    over_field_limit: bool = False
    ended_at_junk: bool = False

    @property
    def complete(self) -> bool:
        """Every line of the block was read as a field (or continuation) up to a blank line or the end."""
        return not (self.over_field_limit or self.ended_at_junk)

    def first(self, name: str) -> HeaderField | None:
        wanted = name.lower()
        for f in self.fields:
            if f.name.lower() == wanted:
                return f
        return None

    def all(self, name: str) -> list[HeaderField]:
        wanted = name.lower()
        return [f for f in self.fields if f.name.lower() == wanted]

    def text(self, raw: bytes, name: str) -> str | None:
        """The first field's value, unfolded and trimmed but not RFC 2047 decoded; None if absent."""
        f = self.first(name)
        return None if f is None else field_text(raw, f)


def parse_header_block(raw: bytes, start: int, end: int, max_fields: int = MAX_HEADER_FIELDS) -> HeaderBlock:
    """Index the header fields of the entity at raw[start:end].

    The block ends at the first empty line (which belongs to the header, as in BODY[HEADER]) or
    at the first line that is neither a field nor a continuation; in the latter case the body
    starts at that line, like most parsers do with such broken messages. After `max_fields`
    fields (at most MAX_HEADER_FIELDS) the rest of the block is skipped and flagged.

    This is the one header reader: indexing, the submission checks and DKIM signing all use it,
    so they can never disagree about which fields a message has.
    """
    max_fields = min(max_fields, MAX_HEADER_FIELDS)
    block = HeaderBlock(start, end)
    fields = block.fields
    pos = start
    current: tuple[str, int, int] | None = None
    while pos < end:
        newline = raw.find(b"\n", pos, end)
        line_end = end if newline < 0 else newline + 1
        content_end = end if newline < 0 else newline
        if content_end > pos and raw[content_end - 1] == 0x0D:
            content_end -= 1
        if content_end == pos:  # the blank line separating header and body
            if current is not None:
                fields.append(HeaderField(current[0], current[1], current[2], pos))
            block.body_start = line_end
            return block
        if raw[pos] in (0x20, 0x09):
            pos = line_end  # continuation of the current field (or stray leading whitespace)
            continue
        match = _FIELD_NAME.match(raw, pos, content_end)
        if current is not None:
            fields.append(HeaderField(current[0], current[1], current[2], pos))
            current = None
        if match is None:
            block.body_start = pos
            block.ended_at_junk = True
            return block
        if len(fields) >= max_fields:
            block.body_start = _skip_to_blank_line(raw, pos, end)
            block.over_field_limit = True
            return block
        current = (match.group(1).decode("ascii"), pos, match.end())
        pos = line_end
    if current is not None:
        fields.append(HeaderField(current[0], current[1], current[2], end))
    block.body_start = end
    return block


def _skip_to_blank_line(raw: bytes, pos: int, end: int) -> int:
    """Offset just after the next empty line at or after `pos` (a line start), or `end`."""
    search_from = pos - 1
    candidates = []
    for blank in (b"\n\n", b"\n\r\n"):
        found = raw.find(blank, search_from, end)
        if found >= 0:
            candidates.append(found + len(blank))
    return min(candidates) if candidates else end


def unfold(value: bytes) -> bytes:
    """RFC 5322 section 2.2.3 unfolding: drop line breaks that precede whitespace."""
    return _FOLD.sub(b"", value)


def bytes_to_text(value: bytes) -> str:
    """Header bytes as text: UTF-8 (RFC 6532), invalid bytes replaced, NULs dropped (never valid)."""
    return value.decode("utf-8", "replace").replace("\x00", "")


def field_text(raw: bytes, f: HeaderField) -> str:
    """A field's value unfolded and trimmed, RFC 2047 encoded words left as they are."""
    value = raw[f.value_start : min(f.end, f.value_start + MAX_FIELD_TEXT)]
    return bytes_to_text(unfold(value).strip(b" \t\r\n"))


# --- RFC 2047 encoded words -------------------------------------------------------------------

_ENCODED_WORD = re.compile(r"=\?([^?\s*]+)(?:\*[^?\s]*)?\?([bBqQ])\?([^?\s]*)\?=")
_QP_HEX = re.compile(rb"=([0-9A-Fa-f]{2})")


def _decode_word_payload(encoding: str, payload: str) -> bytes:
    data = payload.encode("ascii", "replace")
    if encoding in "bB":
        return decode_base64_lenient(data)
    data = data.replace(b"_", b" ")
    return _QP_HEX.sub(lambda m: bytes([int(m.group(1), 16)]), data)


def _charset_name(charset: str | None) -> str:
    name = (charset or "utf-8").strip().strip('"').lower() or "utf-8"
    if name in ("us-ascii", "ascii", "unknown-8bit", "x-unknown"):
        name = "utf-8"  # 8-bit bytes under a wrong label are most often UTF-8
    try:
        codecs.lookup(name)
    except (LookupError, ValueError):
        name = "utf-8"
    return name


def decode_charset(data: bytes, charset: str | None) -> str:
    """Bytes in a declared charset to text; unknown charsets fall back to UTF-8, never raise."""
    name = _charset_name(charset)
    try:
        return data.decode(name, "replace")
    except Exception:  # some codecs raise odd errors on malformed input
        return data.decode("utf-8", "replace")


def incremental_charset_decoder(charset: str | None):
    """`decode(data, final) -> str` for text arriving in pieces, with the same reading of
    `charset` as `decode_charset`; multi-byte characters split between pieces survive."""
    name = _charset_name(charset)
    try:
        decoder = codecs.getincrementaldecoder(name)("replace")
    except (LookupError, ValueError, TypeError):
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
    fallback = codecs.getincrementaldecoder("utf-8")("replace")

    def decode(data: bytes, final: bool) -> str:
        try:
            return decoder.decode(data, final)
        except Exception:  # some codecs raise odd errors on malformed input
            return fallback.decode(data, final)

    return decode


def decode_rfc2047(text: str) -> str:
    """Decode RFC 2047 encoded words; whitespace between adjacent encoded words is dropped
    (section 6.2) and adjacent words in one charset are joined before decoding so that
    multi-byte characters split across words survive."""
    if "=?" not in text:
        return text
    out: list[str] = []
    pending: bytearray = bytearray()
    pending_charset: str | None = None
    pos = 0
    for match in _ENCODED_WORD.finditer(text):
        gap = text[pos : match.start()]
        charset = match.group(1).lower()
        if gap and not (pending_charset is not None and gap.isspace()):
            if pending_charset is not None:
                out.append(decode_charset(bytes(pending), pending_charset))
                pending, pending_charset = bytearray(), None
            out.append(gap)
        if pending_charset is not None and charset != pending_charset:
            out.append(decode_charset(bytes(pending), pending_charset))
            pending = bytearray()
        pending_charset = charset
        pending += _decode_word_payload(match.group(2), match.group(3))
        pos = match.end()
    if pending_charset is not None:
        out.append(decode_charset(bytes(pending), pending_charset))
    out.append(text[pos:])
    return "".join(out)


def decoded_field(raw: bytes, f: HeaderField) -> str:
    """A field's value unfolded, trimmed and RFC 2047 decoded: what a person would read."""
    return decode_rfc2047(field_text(raw, f))


_BASE64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")


def strip_base64_junk(data: bytes) -> bytes:
    """Only the base64 alphabet: line breaks, padding and stray characters go."""
    return _BASE64_JUNK.sub(b"", data)


def decode_base64_lenient(data: bytes) -> bytes:
    """Base64 decoding that skips junk characters and repairs missing padding."""
    clean = strip_base64_junk(data)
    clean = clean[: len(clean) - len(clean) % 4] if len(clean) % 4 == 1 else clean
    clean += b"=" * (-len(clean) % 4)
    try:
        return binascii.a2b_base64(clean)
    except binascii.Error:
        return b""


_QP_LINE = re.compile(rb"([^\r\n]*)(\r\n|\n|\r(?!\n)|$)")
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")


def _qp_byte(match: re.Match[bytes]) -> bytes:
    return bytes((int(match.group(1), 16),))


def decode_quoted_printable(data: bytes) -> bytes:
    """Quoted-printable decoding as RFC 2045 section 6.7 asks of a robust decoder.

    Trailing spaces and tabs on a line are deleted (transport may have added them); a line whose
    last remaining character is ``=`` is a soft line break and joins the next; ``=XX`` becomes
    the octet (lower-case hex accepted, as Dovecot does); an ``=`` not followed by two hex
    digits is kept as it is.  Hard line breaks keep the stored line ending.
    """
    out = []
    for match in _QP_LINE.finditer(data):
        line, ending = match.group(1), match.group(2)
        if not line and not ending:
            break  # the empty match at the very end
        line = line.rstrip(b" \t")
        if line.endswith(b"="):
            line, ending = line[:-1], b""
        out.append(_QP_ESCAPE.sub(_qp_byte, line) if b"=" in line else line)
        out.append(ending)
    return b"".join(out)


# --- Content-Type and friends (RFC 2045, RFC 2183, RFC 2231) ------------------------------------

_TYPE = re.compile(r"\s*([^\s/;()\"]+)\s*/\s*([^\s;()\"]+)")
_DISPOSITION_TYPE = re.compile(r"\s*([^\s;()\"]+)")
_PARAM = re.compile(r';\s*([^\s=;"]+)\s*=\s*("(?:[^"\\]|\\.)*"?|[^;]*)', re.S)
_COMMENT = re.compile(r"\([^()]*\)")
_QUOTED_PAIR = re.compile(r"\\(.)", re.S)


def parse_params(text: str) -> list[tuple[str, str]]:
    """`; key=value` pairs as written (keys keep their case, quoted values are unquoted)."""
    params: list[tuple[str, str]] = []
    for match in _PARAM.finditer(text[:MAX_STRUCTURED_VALUE]):
        key, value = match.group(1), match.group(2)
        if value.startswith('"'):
            value = value[1:-1] if len(value) > 1 and value.endswith('"') else value[1:]
            value = _QUOTED_PAIR.sub(r"\1", value)
        else:
            value = _COMMENT.sub("", value).strip()
        params.append((key, value))
    return params


def parse_content_type(text: str | None) -> tuple[str, str, list[tuple[str, str]]] | None:
    """(type, subtype, params) with lower-case type/subtype, or None when absent or unparsable
    (RFC 2045 section 5.2 then says: treat as text/plain; charset=us-ascii)."""
    if text is None:
        return None
    text = _COMMENT.sub("", text[:MAX_STRUCTURED_VALUE])
    match = _TYPE.match(text)
    if match is None:
        return None
    return match.group(1).lower(), match.group(2).lower(), parse_params(text[match.end() :])


def parse_disposition(text: str | None) -> tuple[str, list[tuple[str, str]]] | None:
    """RFC 2183 Content-Disposition: (lower-case type, params) or None."""
    if text is None:
        return None
    text = _COMMENT.sub("", text[:MAX_STRUCTURED_VALUE])
    match = _DISPOSITION_TYPE.match(text)
    if match is None:
        return None
    return match.group(1).lower(), parse_params(text[match.end() :])


def param_value(params: list[tuple[str, str]], name: str) -> str | None:
    """A parameter's value with RFC 2231 continuations and charset encoding decoded."""
    wanted = name.lower()
    plain: str | None = None
    pieces: dict[int, tuple[bool, str]] = {}
    for key, value in params:
        lower = key.lower()
        if lower == wanted:
            plain = value if plain is None else plain
        elif lower == wanted + "*":
            pieces.setdefault(0, (True, value))
        elif lower.startswith(wanted + "*"):
            rest = lower[len(wanted) + 1 :]
            encoded = rest.endswith("*")
            number = rest.rstrip("*")
            if number.isdigit() and len(number) < 4:
                pieces.setdefault(int(number), (encoded, value))
    if not pieces:
        return plain
    charset = "utf-8"
    data = bytearray()
    for index in sorted(pieces):
        encoded, value = pieces[index]
        if encoded:
            if index == sorted(pieces)[0] and value.count("'") >= 2:
                charset, _language, value = value.split("'", 2)
            data += unquote_to_bytes(value)
        else:
            data += value.encode("utf-8", "replace")
    return decode_charset(bytes(data), charset or "utf-8")


# --- Message-IDs (RFC 5322 section 3.6.4) ------------------------------------------------------

_MSG_ID = re.compile(r"<([^<>]*)>")


def extract_message_ids(text: str | None) -> list[str]:
    """All `<id>` tokens in a Message-ID / In-Reply-To / References value, whitespace removed."""
    if not text:
        return []
    ids = []
    for match in _MSG_ID.finditer(text[:MAX_STRUCTURED_VALUE]):
        inner = "".join(match.group(1).split())
        if inner:
            ids.append(f"<{inner}>")
    return ids
