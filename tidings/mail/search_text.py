"""Text matching for IMAP SEARCH (RFC 3501 section 6.4.4, RFC 9051 section 6.4.4).

SEARCH string keys match "case-insensitively" as substrings; we compare Unicode case-folded
text after RFC 2047 decoding of headers and after transfer-encoding and charset decoding of
body text parts. Address keys (FROM, TO, CC, BCC) match each address as it reads in the
header, `Name <local@host>` decoded, and each group name (from the stored envelope, so no
message bytes are read): display names, local parts, domains and group names all match.
Headers searched are the top-level message's; the body is every text/* part, including those
inside attached messages.

The full-text index (tidings/store/search.py) reads messages through the same decoding: its
document and its word rule (`search_document`, `search_words`) are at the end of this module.
"""

from __future__ import annotations

import functools
import html
import re
import unicodedata
from dataclasses import dataclass

from tidings.mail.address_list import address_search_texts
from tidings.mail.envelope import Envelope, envelope_addresses
from tidings.mail.headers import (
    decode_base64_lenient,
    decode_quoted_printable,
    decoded_field,
    incremental_charset_decoder,
    parse_header_block,
    strip_base64_junk,
)
from tidings.mail.message import MessageSummary, PartInfo

# Decoded text beyond this many octets per part is not searched (bounded work per message).
MAX_SEARCH_PART = 32 * 1024 * 1024
# Encoded octets decoded and searched at a time: a few milliseconds of C calls each, after
# which a thread doing this work lets the event loop's thread have the GIL (see tidings/offload.py).
CHUNK = 1024 * 1024


def _fold(text: str) -> str:
    return text.casefold()


def header_values(raw: bytes, summary: MessageSummary, header_name: str) -> list[str]:
    """Decoded values of every top-level field named `header_name`."""
    block = parse_header_block(raw, 0, summary.header_size)
    return [decoded_field(raw, f) for f in block.all(header_name)]


def header_contains(raw: bytes, summary: MessageSummary, header_name: str, needle: str) -> bool:
    """SEARCH HEADER/FROM/TO/CC/BCC/SUBJECT: some field contains `needle`. An empty needle matches
    every message that has the field (RFC 3501 section 6.4.4, HEADER)."""
    values = header_values(raw, summary, header_name)
    if not needle:
        return bool(values)
    wanted = _fold(needle)
    return any(wanted in _fold(value) for value in values)


def address_list_contains(envelope: Envelope, header_name: str, needle: str) -> bool:
    """SEARCH FROM/TO/CC/BCC: some address or group name of the field contains `needle`; an
    empty needle matches a field with any address or group (even an empty group)."""
    addresses = envelope_addresses(envelope, header_name)
    if not needle:
        return bool(addresses)
    wanted = _fold(needle)
    return any(wanted in _fold(text) for text in address_search_texts(addresses))


def body_contains(raw: bytes, summary: MessageSummary, needle: str) -> bool:
    """SEARCH BODY: some decoded text part contains `needle`, case-insensitively.

    Each part is decoded, case-folded and searched piece by piece (about `CHUNK` encoded octets
    at a time, with an overlap of the needle's length), never as one string: one C call over
    tens of megabytes would hold the GIL, and so the event loop, for the whole of it."""
    wanted = _fold(needle)
    if not wanted:
        return True
    for info in summary.parts.values():
        if info.content_type.startswith("text/") and _pieces_contain(_text_pieces(raw, info), wanted):
            return True
    return False


def _pieces_contain(pieces, wanted: str) -> bool:
    keep = len(wanted) - 1
    tail = ""
    for piece in pieces:
        folded = tail + _fold(piece)
        if wanted in folded:
            return True
        tail = folded[-keep:] if keep else ""
    return False


def _text_pieces(raw: bytes, info: PartInfo):
    """The part's text, transfer- and charset-decoded, in pieces (see `body_contains`)."""
    end = min(info.end, info.body_start + MAX_SEARCH_PART)
    encoding = info.encoding.lower()
    decoder = incremental_charset_decoder(info.charset)
    base64_rest = b""
    for start, stop in _line_pieces(raw, info.body_start, end):
        data = raw[start:stop]
        if encoding == "quoted-printable":
            data = decode_quoted_printable(data)  # whole lines: the same as decoding at once
        elif encoding == "base64":
            clean = base64_rest + strip_base64_junk(data)
            usable = len(clean) - len(clean) % 4
            data, base64_rest = decode_base64_lenient(clean[:usable]), clean[usable:]
        yield decoder(data, False)
    if base64_rest:
        yield decoder(decode_base64_lenient(base64_rest), False)
    yield decoder(b"", True)


def _line_pieces(raw: bytes, start: int, end: int):
    """(start, stop) ranges of at least `CHUNK` octets covering raw[start:end], each ending after
    a line break (quoted-printable decodes line by line; a part without line breaks is one
    piece)."""
    while start < end:
        stop = start + CHUNK
        if stop >= end:
            stop = end
        else:
            newline = raw.find(b"\n", stop - 1, end)
            stop = newline + 1 if newline >= 0 else end
        yield start, stop
        start = stop


def text_contains(raw: bytes, summary: MessageSummary, needle: str) -> bool:
    """SEARCH TEXT: the decoded header or body contains `needle`."""
    wanted = _fold(needle)
    if not wanted:
        return True
    block = parse_header_block(raw, 0, summary.header_size)
    for f in block.fields:
        if wanted in _fold(f"{f.name}: {decoded_field(raw, f)}"):
            return True
    return body_contains(raw, summary, needle)


# -- the full-text index's document (tidings/store/search.py) -------------------------------------
#
# The index holds words, not text: both databases are handed words already normalised here (one
# rule for both, so SQLite and PostgreSQL agree on what matches), and a query's words are
# normalised the same way. Decoding is this module's, the one SEARCH BODY uses.

# Decoded body text read per message for the index (characters): enough for any letter, bounded
# work and index size for a message carrying a 30 MB log file.
MAX_INDEXED_TEXT = 256 * 1024
# Longer "words" are base64 runs, hashes and URLs' tails: nobody searches for them whole.
MAX_WORD = 64
_WORD = re.compile(r"[^\W_]+")
# ASCII characters other than letters and digits, to spaces (the first split of `search_words`).
_ASCII_SEPARATORS = {c: " " for c in range(128) if not chr(c).isalnum()}
_HTML_HIDDEN = re.compile(r"<(script|style|head)\b.*?(</\1\s*>|\Z)", re.I | re.S)
_HTML_TAG = re.compile(r"<[^>]*>?")


@dataclass(frozen=True, slots=True)
class SearchDocument:
    """What the full-text index keeps of one message: words per field, space-separated."""

    subject: str
    sender: str  # From and Sender: names, local parts, domains
    recipients: str  # To, Cc, Bcc
    body: str  # every text part's words, each word once, in the order first seen
    has_attachment: bool


def search_words(text: str) -> list[str]:
    """The words of `text` as the index and its queries see them: case-folded, diacritics
    removed ("Müller" and "muller" are one word), split at anything that is not a letter or
    a digit (so `alice@example.org` is alice, example, org)."""
    out: list[str] = []
    for token in text.casefold().translate(_ASCII_SEPARATORS).split():
        if token.isascii():
            if len(token) <= MAX_WORD:
                out.append(token)
        else:
            out += _plain_words(token)
    return out


def _distinct_search_words(text: str, seen: dict[str, None]) -> None:
    """`search_words(text)` added to `seen` (a body's words, each once), the costly steps taken
    once per distinct token. Splitting at ASCII separators by `str.translate` is four times
    faster than a regular expression over the whole text; what is left non-ASCII goes through
    `_plain_words`."""
    for token in dict.fromkeys(text.casefold().translate(_ASCII_SEPARATORS).split()):
        if token.isascii():
            if len(token) <= MAX_WORD:
                seen[token] = None
        else:
            seen.update(dict.fromkeys(_plain_words(token)))


@functools.lru_cache(maxsize=20_000)
def _plain_words(word: str) -> tuple[str, ...]:
    """The words of a token holding non-ASCII characters: without diacritics, compatibility forms
    unfolded, split at non-ASCII punctuation ("„Grüße“" is grusse; "½" is 1 and 2)."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))
    return tuple(w for w in _WORD.findall(plain) if len(w) <= MAX_WORD)


def search_document(raw: bytes, summary: MessageSummary) -> SearchDocument:
    """The index document of a stored message, from its summary and bytes (pure; at most
    `MAX_INDEXED_TEXT` characters of body text are decoded)."""
    envelope = summary.envelope
    sender = address_search_texts(envelope_addresses(envelope, "From"))
    if envelope_addresses(envelope, "Sender") != envelope_addresses(envelope, "From"):
        sender += address_search_texts(envelope_addresses(envelope, "Sender"))
    recipients = []
    for name in ("To", "Cc", "Bcc"):
        recipients += address_search_texts(envelope_addresses(envelope, name))
    body_words: dict[str, None] = {}
    budget = MAX_INDEXED_TEXT
    for section, info in summary.parts.items():
        if budget <= 0:
            break
        if not info.content_type.startswith("text/") or _plain_alternative_exists(summary, section):
            continue
        text = _part_text(raw, info, budget)
        budget -= len(text)
        if info.content_type == "text/html":
            text = html.unescape(_HTML_TAG.sub(" ", _HTML_HIDDEN.sub(" ", text)))
        _distinct_search_words(text, body_words)
    return SearchDocument(
        subject=" ".join(search_words(summary.subject or "")),
        sender=" ".join(search_words(" ".join(sender))),
        recipients=" ".join(search_words(" ".join(recipients))),
        body=" ".join(body_words),
        has_attachment=summary.has_attachments,
    )


def _plain_alternative_exists(summary: MessageSummary, section: str) -> bool:
    """An HTML part of a multipart/alternative that also has a text/plain version: the same
    words twice, and its markup to strip; the index reads the plain one only."""
    if summary.parts[section].content_type != "text/html":
        return False
    parent, _, _ = section.rpartition(".")
    if parent:
        info = summary.parts.get(parent)
        alternative = info is not None and info.content_type == "multipart/alternative"
    else:  # a child of the top-level body, whose subtype ends its BODY list
        alternative = isinstance(summary.body[0], list) and str(summary.body[-1]).upper() == "ALTERNATIVE"
    prefix = parent + "." if parent else ""
    return alternative and any(
        other.content_type == "text/plain"
        for key, other in summary.parts.items()
        if key.startswith(prefix) and "." not in key[len(prefix) :]
    )


def _part_text(raw: bytes, info: PartInfo, limit: int) -> str:
    """Up to about `limit` characters of the part's decoded text (whole pieces, then cut)."""
    pieces = []
    size = 0
    for piece in _text_pieces(raw, info):
        pieces.append(piece)
        size += len(piece)
        if size >= limit:
            break
    return "".join(pieces)[:limit]
