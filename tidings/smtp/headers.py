"""Header fields the SMTP server adds or reads: Received, Message-ID, Date, X-Tidings-Send-At, From.

Pure functions over message bytes. The MX path only prepends a `Received:` field (the header block
is read for its size limits, never rewritten, so broken or non-UTF-8 headers pass untouched); the
submission path also reads From:/Sender: (through `mail.authorship`, the one reading the DKIM
signer uses too) and the scheduling header and completes Date / Message-ID (RFC 6409 section 8).

`X-Tidings-Send-At: <RFC 5322 date>` is our scheduling header: a mail client that cannot speak
FUTURERELEASE sets it, the server holds the message until that time and strips the field before
storing, so recipients never see it.
"""

from __future__ import annotations

import email.utils
import itertools
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tidings.mail.authorship import Authors, read_authors
from tidings.mail.headers import HeaderBlock

SEND_AT_HEADER = "X-Tidings-Send-At"

_ids = itertools.count(1)
_ID_PREFIX = f"{int(time.time()):x}{os.getpid():x}"


def transaction_id() -> str:
    """A short id, unique within this process's lifetime and across restarts, for logs and Received."""
    return f"{_ID_PREFIX}.{next(_ids):x}"


def message_id(hostname: str) -> str:
    """A new RFC 5322 section 3.6.4 msg-id."""
    return f"<{os.urandom(9).hex()}.{transaction_id()}@{hostname}>"


_date_cache: tuple[int, str] = (0, "")


def rfc5322_date(now: float | None = None) -> str:
    """The current time as an RFC 5322 date (cached per second: called for every message)."""
    global _date_cache
    now = time.time() if now is None else now
    second = int(now)
    if _date_cache[0] != second:
        _date_cache = (second, email.utils.formatdate(second, localtime=True))
    return _date_cache[1]


def protocol_name(extended: bool, tls: bool, authenticated: bool, smtputf8: bool) -> str:
    """The "with" keyword: RFC 3848 (ESMTP, ESMTPS, ESMTPA, ESMTPSA) and RFC 6531 (UTF8SMTP...)."""
    base = "UTF8SMTP" if smtputf8 else "ESMTP" if extended else "SMTP"
    if not extended and not smtputf8:
        return base
    return base + ("S" if tls else "") + ("A" if authenticated else "")


def received_header(
    *,
    helo: str,
    ip: str,
    hostname: str,
    protocol: str,
    id: str,
    recipient: str | None,
    tls_info: str | None = None,
    now: float | None = None,
) -> bytes:
    """A trace field (RFC 5321 section 4.4): from EHLO-name ([ip]) by us with protocol id ...; date."""
    helo = "".join(ch if " " < ch < "\x7f" and ch not in "()" else "?" for ch in helo)[:255]
    with_line = f"by {hostname} (Tidings) with {protocol}" + (f" ({tls_info})" if tls_info else "")
    lines = [f"Received: from {helo} ([{ip}])", with_line, f"id {id}"]
    if recipient:
        lines.append(f"for <{recipient}>")
    lines[-1] += f"; {rfc5322_date(now)}"
    return ("\r\n\t".join(lines) + "\r\n").encode("utf-8", "replace")


@dataclass
class SubmittedHeaders:
    """What the submission path needs from a message's header block."""

    authors: Authors = field(default_factory=Authors)
    send_at: str | None = None  # raw value of X-Tidings-Send-At
    has_date: bool = False
    has_message_id: bool = False
    remove: list[tuple[int, int]] = field(default_factory=list)  # byte ranges to strip
    body_start: int = 0
    has_fields: bool = False


def read_submitted_headers(raw: bytes, block: HeaderBlock) -> SubmittedHeaders:
    """What submission needs from the header block `block` of `raw`; never raises on malformed input."""
    out = SubmittedHeaders(
        authors=read_authors(raw, block), body_start=block.body_start, has_fields=bool(block.fields)
    )
    for f in block.fields:
        name = f.name.lower()
        if name == "date":
            out.has_date = True
        elif name == "message-id":
            out.has_message_id = True
        elif name == SEND_AT_HEADER.lower():
            out.send_at = raw[f.value_start : f.end].decode("ascii", "replace").strip()
            out.remove.append((f.start, f.end))
    return out


def parse_send_at(value: str) -> float | None:
    """The POSIX time of an RFC 5322 date, or None if it cannot be read."""
    try:
        parsed: datetime = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:  # RFC 5322 "-0000": no zone information; take it as UTC
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def complete_submission(
    raw: bytes, headers: SubmittedHeaders, hostname: str, now: float | None = None
) -> bytes:
    """Strip the scheduling header and add Date / Message-ID when missing (RFC 6409 section 8.2/8.3)."""
    added = b""
    if not headers.has_date:
        added += f"Date: {rfc5322_date(now)}\r\n".encode()
    if not headers.has_message_id:
        added += f"Message-ID: {message_id(hostname)}\r\n".encode()
    if not headers.has_fields and added:
        added += b"\r\n"  # no header block at all: everything was body, keep it so
    if not headers.remove:
        return added + raw
    pieces, pos = [added], 0
    for start, end in headers.remove:
        pieces.append(raw[pos:start])
        pos = end
    pieces.append(raw[pos:])
    return b"".join(pieces)
