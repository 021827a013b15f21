"""iTIP by mail (iMIP, RFC 6047): the message that carries a scheduling object, and finding it.

`build` writes a multipart/alternative of a readable text/plain part and the
`text/calendar; method=...` part (RFC 6047 2.4: the METHOD parameter equals the object's
METHOD); `summary_text` is that readable part. `find` reads a received message's scheduling
object back, bounded: it looks only at text/calendar leaves no larger than
itip.MAX_ITIP_BYTES, so an invitation with a huge attachment beside it costs no more than the
parse of its structure. Pure: bytes in, bytes out; sending is the caller's (store/scheduling.py).
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import re
from datetime import date, datetime
from email.message import EmailMessage

from tidings.pim import InvalidObject
from tidings.pim.itip import CANCEL, MAX_ITIP_BYTES, REPLY, REQUEST, Scheduling, parse

_POLICY = email.policy.SMTP.clone(max_line_length=78)
# A message larger than this is not searched for a calendar part at delivery.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
# A first look that copies nothing: a message without this cannot hold a calendar part.
MAY_CARRY_CALENDAR = re.compile(rb"(?i)text/calendar")


def _when(value: datetime | date | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        zone = getattr(value.tzinfo, "key", None) or (value.tzname() if value.tzinfo else "")
        return value.strftime("%A %d %B %Y, %H:%M") + (f" ({zone})" if zone else "")
    return value.strftime("%A %d %B %Y")


def subject_for(message: Scheduling, answerer: str = "") -> str:
    title = message.summary or "(no title)"
    if message.method == REQUEST:
        return f"Invitation: {title}"
    if message.method == CANCEL:
        return f"Cancelled: {title}"
    answer = message.attendees[0].partstat.lower() if message.attendees else "answered"
    return f"{answerer or 'An attendee'} {answer}: {title}"


def summary_text(message: Scheduling) -> str:
    """What a person reads in the text part (and a mail program without calendar support shows)."""
    lines = []
    if message.method == REQUEST:
        lines.append(f"{message.organizer_name or message.organizer} invites you to an event.")
    elif message.method == CANCEL:
        lines.append(f"{message.organizer_name or message.organizer} cancelled this event.")
    else:
        for a in message.attendees:
            lines.append(f"{a.name or a.address} answered: {a.partstat.lower()}.")
    lines += ["", f"Title: {message.summary or '(no title)'}"]
    if message.start is not None:
        lines.append(f"When: {_when(message.start)}" + (" (repeats)" if message.recurs else ""))
    lines.append(f"Organiser: {message.organizer}")
    if message.method != REPLY and message.attendees:
        lines.append("Attendees: " + ", ".join(a.address for a in message.attendees))
    return "\n".join(lines) + "\n"


def build(
    *,
    from_addr: str,
    to: list[str],
    calendar_text: str,
    message_id: str,
    date: float,
    from_name: str = "",
    subject: str | None = None,
) -> bytes:
    """The iMIP message (RFC 6047 2.4) for a scheduling object, as RFC 5322 bytes (CRLF)."""
    message = parse(calendar_text)
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = email.utils.formataddr((from_name, from_addr)) if from_name else from_addr
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject or subject_for(message, from_name or from_addr)
    msg["Date"] = email.utils.formatdate(date, localtime=False)
    msg["Message-ID"] = message_id
    msg["MIME-Version"] = "1.0"
    msg.set_content(summary_text(message), cte="quoted-printable")
    msg.add_alternative(
        calendar_text.replace("\r\n", "\n"),
        subtype="calendar",
        params={"method": message.method, "name": "invite.ics"},
        cte="quoted-printable",
    )
    raw = msg.as_bytes(policy=_POLICY)
    return raw


def find(raw: bytes) -> Scheduling | None:
    """The scheduling object of a received message, or None when it has none we accept (no
    text/calendar part with a METHOD, too large, or not valid iTIP)."""
    if len(raw) > MAX_MESSAGE_BYTES or not MAY_CARRY_CALENDAR.search(raw):
        return None
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    for part in parsed.walk():
        if part.is_multipart() or part.get_content_type() != "text/calendar":
            continue
        payload = part.get_payload(decode=True) or b""
        if len(payload) > MAX_ITIP_BYTES:
            continue
        text = payload.decode(part.get_content_charset() or "utf-8", "replace")
        try:
            return parse(text)
        except InvalidObject:
            continue
    return None


def find_text(data: bytes) -> Scheduling | None:
    """A calendar part's decoded bytes (the web view finds the part itself) as a scheduling
    object, or None."""
    if len(data) > MAX_ITIP_BYTES:
        return None
    try:
        return parse(data.decode("utf-8", "replace"))
    except InvalidObject:
        return None
