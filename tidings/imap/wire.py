"""Encoding values for IMAP server responses (RFC 9051 sections 4 and 9), and IMAP date-times.

Everything here returns ``bytes`` ready to be placed in a response line, because a string that
cannot be quoted becomes a literal (``{n}\\r\\n`` + bytes) and so spans lines.  Which form a value
takes:

* :class:`Atom` — written as is (flags such as ``\\Seen``, response keywords, ``BODY[1]``).
* ``str`` — a quoted string, or a literal when it holds CR, LF, NUL, is very long, or holds
  non-ASCII while the client has not enabled UTF-8 (RFC 6855 / RFC 9051 allow UTF-8 in quoted
  strings once it has).
* ``bytes`` — always a literal (message bodies, headers); :class:`Literal8` for ``~{n}``.
* ``None`` — ``NIL``; ``int`` — a number; lists and tuples — parenthesised lists.

Pure: no I/O.  Mailbox names must already be in the client's encoding (see
:mod:`tidings.imap.mutf7`) before they reach these functions.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable

MAX_QUOTED_LENGTH = 1024
"""Longer strings go out as literals: some clients limit the length of a line."""

_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ASTRING_SAFE = re.compile(r"[\x21\x23\x24\x26\x27\x2b-\x5b\x5d\x5e-\x7a\x7c\x7e]+")
_DATE_TIME = re.compile(
    r"\s?([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})"
)


class Atom(str):
    """A string written on the wire exactly as is: never quoted (flags, keywords, labels)."""

    __slots__ = ()


class Literal8(bytes):
    """Bytes sent as a ``~{n}`` literal8 (RFC 3516 BINARY fetch responses)."""

    __slots__ = ()


class Raw(bytes):
    """Bytes already in IMAP syntax, inserted unchanged (a pre-encoded ENVELOPE, say)."""

    __slots__ = ()


def literal(data: bytes, binary: bool = False) -> bytes:
    """``{n}\\r\\n`` followed by the data (``~{n}`` for a literal8)."""
    return b"%s{%d}\r\n%s" % (b"~" if binary else b"", len(data), data)


def quote(value: str | bytes, utf8: bool = False) -> bytes:
    """A quoted string when possible, otherwise a literal.

    ``utf8`` tells whether the client may receive UTF-8 in quoted strings (UTF8=ACCEPT enabled,
    or IMAP4rev2).  Without it, non-ASCII text is sent as a literal of its UTF-8 bytes.
    """
    raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if (
        len(raw) > MAX_QUOTED_LENGTH
        or b"\r" in raw
        or b"\n" in raw
        or b"\x00" in raw
        or (not utf8 and not raw.isascii())
        or (utf8 and isinstance(value, bytes) and not _is_utf8(raw))
    ):
        return literal(raw)
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def astring(value: str, utf8: bool = False) -> bytes:
    """An atom when the text is safe as one (and not ``NIL``, to avoid confusing clients), else
    :func:`quote`."""
    if _ASTRING_SAFE.fullmatch(value) and value.upper() != "NIL":
        return value.encode("ascii")
    return quote(value, utf8)


def nstring(value: str | bytes | None, utf8: bool = False) -> bytes:
    """``NIL`` for ``None``, otherwise :func:`quote`."""
    return b"NIL" if value is None else quote(value, utf8)


def encode_value(value: object, utf8: bool = False) -> bytes:
    """Encode one value by type (see the module docstring)."""
    if value is None:
        return b"NIL"
    if isinstance(value, Atom):
        return value.encode("utf-8")
    if isinstance(value, bool):
        raise TypeError("booleans have no IMAP encoding")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("IMAP numbers are unsigned")
        return str(value).encode("ascii")
    if isinstance(value, str):
        return quote(value, utf8)
    if isinstance(value, Raw):
        return bytes(value)
    if isinstance(value, Literal8):
        return literal(bytes(value), binary=True)
    if isinstance(value, bytes | bytearray | memoryview):
        return literal(bytes(value))
    if isinstance(value, list | tuple):
        return encode_list(value, utf8)
    raise TypeError(f"cannot encode {type(value).__name__} for IMAP")


def encode_list(items: Iterable[object], utf8: bool = False) -> bytes:
    """A parenthesised list, nesting as the Python lists nest: ``[Atom("\\\\Seen"), None, [1]]``
    gives ``(\\Seen NIL (1))``."""
    return b"(" + b" ".join(encode_value(item, utf8) for item in items) + b")"


def format_internaldate(moment: datetime.datetime) -> str:
    """``date-time`` text without the quotes, e.g. ``25-Nov-2026 15:14:09 +0000``.

    A naive datetime is taken as UTC.  The day is always two digits (``date-day-fixed`` allows a
    leading space too, but zero-padding is easier on clients that split on spaces).
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    offset = moment.utcoffset() or datetime.timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    return (
        f"{moment.day:02d}-{_MONTH_NAMES[moment.month - 1]}-{moment.year:04d} "
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d} {sign}{hours:02d}{minutes:02d}"
    )


def parse_date_time(text: str | bytes) -> datetime.datetime:
    """Parse a ``date-time`` (RFC 9051 section 9), with or without the surrounding quotes.

    Returns an aware datetime.  Raises ``ValueError`` for anything else.
    """
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        text = text[1:-1]
    match = _DATE_TIME.fullmatch(text)
    if match is None:
        raise ValueError(f"not an IMAP date-time: {text!r}")
    day, month_name, year, hour, minute, second, sign, zone_hours, zone_minutes = match.groups()
    try:
        month = [name.upper() for name in _MONTH_NAMES].index(month_name.upper()) + 1
    except ValueError:
        raise ValueError(f"unknown month {month_name!r}") from None
    if int(zone_minutes) >= 60:
        raise ValueError("zone minutes out of range")
    offset = datetime.timedelta(hours=int(zone_hours), minutes=int(zone_minutes))
    if offset >= datetime.timedelta(hours=24):
        raise ValueError("zone out of range")
    zone = datetime.timezone(-offset if sign == "-" else offset)
    return datetime.datetime(int(year), month, int(day), int(hour), int(minute), int(second), tzinfo=zone)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
