"""SORT keys (RFC 5256 section 3, DISPLAYFROM/DISPLAYTO from RFC 5957) from a MessageSummary.

`sort_key(summary, criterion, internal_date)` returns a value that compares correctly for one
criterion; the session combines several criteria, applies REVERSE and breaks ties by sequence
number itself.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

from tidings.mail.address_list import first_address_sort_fields
from tidings.mail.envelope import envelope_addresses
from tidings.mail.message import MessageSummary
from tidings.mail.threading import ascii_casemap

SORT_CRITERIA = ("ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO")
_EPOCH = datetime(1, 1, 1, tzinfo=UTC)


def _aware(date: datetime | None) -> datetime:
    if date is None:
        return _EPOCH
    return date if date.tzinfo else date.replace(tzinfo=UTC)


def _mailbox(summary: MessageSummary, header_name: str) -> str:
    """RFC 5256: the addr-mailbox of the first address (a group's name when the list opens with
    a group, as in the envelope), i;ascii-casemap; "" without addresses."""
    mailbox, _ = first_address_sort_fields(envelope_addresses(summary.envelope, header_name))
    return ascii_casemap(mailbox)


def unicode_casemap(text: str) -> str:
    """The i;unicode-casemap comparator key (RFC 5051 section 2): every character to its
    titlecase (the simple, one-character mapping), then Unicode normalization form KD.  Keys
    compare by code point, which is the octet order of their UTF-8 that the RFC prescribes."""
    titled = []
    for char in text:
        title = char.title()
        # str.title() applies the full mapping ("\u00df" -> "Ss"); the simple one keeps the char.
        titled.append(title if len(title) == 1 else char)
    return unicodedata.normalize("NFKD", "".join(titled))


def _display(summary: MessageSummary, header_name: str) -> str:
    """RFC 5957 section 3: the decoded display name of the first address, or its addr-spec when
    the name is missing or empty (a group's name for a group), compared with i;unicode-casemap."""
    _, display = first_address_sort_fields(envelope_addresses(summary.envelope, header_name))
    return unicode_casemap(display)


def sort_key(summary: MessageSummary, criterion: str, internal_date: datetime | None = None):
    """The key of `summary` for one SORT criterion (without REVERSE)."""
    criterion = criterion.upper()
    if criterion == "ARRIVAL":
        return _aware(internal_date)
    if criterion == "DATE":
        # "If the sent date cannot be determined ... the INTERNALDATE for that message is used"
        return _aware(summary.sent_date or internal_date)
    if criterion == "SIZE":
        return summary.size
    if criterion == "SUBJECT":
        return ascii_casemap(summary.base_subject)
    if criterion == "FROM":
        return _mailbox(summary, "From")
    if criterion == "TO":
        return _mailbox(summary, "To")
    if criterion == "CC":
        return _mailbox(summary, "Cc")
    if criterion == "DISPLAYFROM":
        return _display(summary, "From")
    if criterion == "DISPLAYTO":
        return _display(summary, "To")
    raise ValueError(f"unknown sort criterion {criterion!r}")
