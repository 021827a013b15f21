"""IMAP ENVELOPE structure from a header block (RFC 3501 section 7.4.2, RFC 9051 section 7.5.2).

The envelope is a nested list ready for the IMAP formatter: str for strings, None for NIL:
`[date, subject, from, sender, reply-to, to, cc, bcc, in-reply-to, message-id]`, each address
list a list of `[name, adl, mailbox, host]` or None. Values are unfolded but otherwise raw:
RFC 2047 encoded words are left for the client to decode, as IMAP specifies.
"""

from __future__ import annotations

from tidings.mail.address_list import ImapAddress, parse_address_list
from tidings.mail.headers import HeaderBlock

Envelope = list

# Positions of the address lists in an envelope.
_ADDRESS_FIELDS = {"from": 2, "sender": 3, "reply-to": 4, "to": 5, "cc": 6, "bcc": 7}


def _text(raw: bytes, header: HeaderBlock, name: str) -> str | None:
    value = header.text(raw, name)
    return value or None  # absent or empty: NIL


def _addresses(raw: bytes, header: HeaderBlock, name: str) -> list[ImapAddress] | None:
    return parse_address_list(header.text(raw, name)) or None


def build_envelope(raw: bytes, header: HeaderBlock) -> Envelope:
    """The ENVELOPE of the message whose header block is `header`."""
    from_ = _addresses(raw, header, "From")
    # "If the Sender or Reply-To lines are absent in the [RFC-2822] header, or are present but
    # empty, the server sets the corresponding member of the envelope to be the same value as
    # the from member" (RFC 3501 section 7.4.2).
    sender = _addresses(raw, header, "Sender") or from_
    reply_to = _addresses(raw, header, "Reply-To") or from_
    return [
        _text(raw, header, "Date"),
        _text(raw, header, "Subject"),
        from_,
        sender,
        reply_to,
        _addresses(raw, header, "To"),
        _addresses(raw, header, "Cc"),
        _addresses(raw, header, "Bcc"),
        _text(raw, header, "In-Reply-To"),
        _text(raw, header, "Message-ID"),
    ]


def envelope_addresses(envelope: Envelope, header_name: str) -> list[ImapAddress]:
    """The address list of `header_name` (From, Sender, Reply-To, To, Cc, Bcc) in `envelope`,
    group markers included; `[]` for NIL.  SEARCH and SORT read addresses here so that group
    names count as IMAP shows them (a group opens with `[None, None, group-name, None]`)."""
    return envelope[_ADDRESS_FIELDS[header_name.lower()]] or []
