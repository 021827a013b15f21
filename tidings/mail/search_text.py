"""Text matching for IMAP SEARCH (RFC 3501 section 6.4.4, RFC 9051 section 6.4.4).

SEARCH string keys match "case-insensitively" as substrings; we compare Unicode case-folded
text after RFC 2047 decoding of headers and after transfer-encoding and charset decoding of
body text parts. Address keys (FROM, TO, CC, BCC) match each address as it reads in the
header, `Name <local@host>` decoded, and each group name (from the stored envelope, so no
message bytes are read): display names, local parts, domains and group names all match.
Headers searched are the top-level message's; the body is every text/* part, including those
inside attached messages.
"""

from __future__ import annotations

from tidings.mail.address_list import address_search_texts
from tidings.mail.envelope import Envelope, envelope_addresses
from tidings.mail.headers import decode_charset, decoded_field, parse_header_block
from tidings.mail.message import MessageSummary
from tidings.mail.sections import decode_transfer_encoding

# Decoded text beyond this many octets per part is not searched (bounded work per message).
MAX_SEARCH_PART = 32 * 1024 * 1024


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


def body_texts(raw: bytes, summary: MessageSummary):
    """Decoded text of each text/* leaf part, in section order."""
    for info in summary.parts.values():
        if not info.content_type.startswith("text/"):
            continue
        data = decode_transfer_encoding(raw[info.body_start : info.end][:MAX_SEARCH_PART], info.encoding)
        if data is None:
            data = raw[info.body_start : info.end][:MAX_SEARCH_PART]
        yield decode_charset(data, info.charset)


def body_contains(raw: bytes, summary: MessageSummary, needle: str) -> bool:
    """SEARCH BODY: some decoded text part contains `needle`, case-insensitively."""
    wanted = _fold(needle)
    if not wanted:
        return True
    return any(wanted in _fold(text) for text in body_texts(raw, summary))


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
