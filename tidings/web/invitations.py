"""The web client's side of invitations: what the message view shows of a scheduling message,
sending iMIP mail, and free/busy as a day's bar.

A message with a text/calendar part is read through its stored structure (the part found by
mailview's leaves, decoded by its section), so an invitation beside a large attachment costs
only the calendar part. Sending goes through the web client's one submission path
(`tidings.web.drafts.submit`, which compose uses: the same sender check, recipient routing and
`store.delivery.accept` as SMTP submission); local attendees get the mail like remote ones.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from tidings.mail.message import MessageSummary
from tidings.mail.sections import decode_section_binary
from tidings.pim import InvalidObject, imip, itip
from tidings.pim.events import zone
from tidings.store import StoreError
from tidings.store.scheduling import from_address
from tidings.web import drafts

CALENDAR_TYPES = ("text/calendar", "application/ics")
MAX_ATTENDEE_TEXT = 20_000


class NotSent(StoreError):
    """A scheduling message the submission path refused (an unknown local address...)."""


@dataclass(frozen=True)
class InvitationView:
    """A scheduling message as the message page shows it."""

    message: itip.Scheduling
    me: str | None  # the reader's address among the attendees (REQUEST)
    trusted: bool  # From: is the organiser (REQUEST/CANCEL) or the attendee (REPLY)
    answer: str | None  # the reader's PARTSTAT in their calendar, if the event is there
    in_calendar: bool
    object_id: int | None

    @property
    def can_answer(self) -> bool:
        return self.message.method == itip.REQUEST and self.me is not None and self.trusted


def scheduling_part(raw: bytes, summary: MessageSummary) -> itip.Scheduling | None:
    """The message's scheduling object, from its first acceptable text/calendar leaf."""
    for part in summary.parts.values():
        if part.is_multipart or part.content_type not in CALENDAR_TYPES:
            continue
        if part.size > itip.MAX_ITIP_BYTES * 2:  # encoded size; the decoded limit is checked after
            continue
        data = decode_section_binary(raw, summary, part.section)
        found = imip.find_text(data) if data else None
        if found is not None:
            return found
    return None


async def invitation_of(store, account_id: int, raw: bytes, summary: MessageSummary) -> InvitationView | None:
    message = scheduling_part(raw, summary)
    if message is None:
        return None
    account = await store.accounts.get_user_by_id(account_id)
    mine = {a.lower() for a in await store.accounts.senders_allowed(account)}
    author = from_address(raw)
    if message.method == itip.REPLY:
        trusted = bool(message.attendees) and author == message.attendees[0].address
    else:
        trusted = author == message.organizer
    me = next((a.address for a in message.attendees if a.address in mine), None)
    copy = await store.scheduling.own_copy(account_id, message.uid)
    answer = None
    if copy is not None and me is not None:
        answer = itip.partstat_of(copy.data or "", me)
    return InvitationView(message, me, trusted, answer, copy is not None, copy.id if copy else None)


async def send(store, config, account_id: int, calendar_text: str, recipients: list[str]) -> None:
    """Mail a scheduling object (REQUEST, REPLY, CANCEL) from the account to `recipients`."""
    account = await store.accounts.get_user_by_id(account_id)
    raw = imip.build(
        from_addr=account.address,
        to=recipients,
        calendar_text=calendar_text,
        message_id=drafts.new_message_id(config.hostname),
        date=time.time(),
    )
    try:
        await drafts.submit(store, config, account_id, account.address, recipients, raw)
    except drafts.SendRefused as refusal:
        raise NotSent(f"the invitation mail was not sent: {refusal}") from None


# -- free/busy ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BusyBar:
    """One person's busy periods over a day, as percentages of the day for an SVG bar."""

    address: str
    blocks: list[tuple[float, float, str]]  # (x %, width %, "10:00–11:00")


def day_bars(busy, day_start: datetime) -> list[BusyBar]:
    """Busy periods cut to the day beginning at `day_start` (aware), as bars."""
    day_end = day_start + timedelta(days=1)
    tz = day_start.tzinfo or UTC
    out = []
    for person in busy:
        blocks = []
        for start, end in person.periods:
            start, end = _aware(start, tz), _aware(end, tz)
            start, end = max(start, day_start), min(end, day_end)
            if end <= start:
                continue
            x = (start - day_start).total_seconds() / 864
            width = max((end - start).total_seconds() / 864, 0.5)
            label = f"{start.astimezone(tz):%H:%M}–{end.astimezone(tz):%H:%M}"
            blocks.append((round(x, 2), round(width, 2), label))
        out.append(BusyBar(person.address, blocks))
    return out


def _aware(value: datetime | date, tz) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=tz)
    return datetime(value.year, value.month, value.day, tzinfo=tz)


# -- the calendar's event form -------------------------------------------------------------------


def parse_attendees(text: str) -> list[str]:
    """Addresses typed one per line or separated by commas/semicolons, "Name <a@b>" allowed."""
    out = []
    for piece in text[:MAX_ATTENDEE_TEXT].replace(";", ",").replace("\n", ",").split(","):
        piece = piece.strip()
        if "<" in piece and piece.endswith(">"):
            piece = piece[piece.rindex("<") + 1 : -1]
        if piece:
            out.append(piece.lower())
    return list(dict.fromkeys(out))


@dataclass(frozen=True)
class FormScheduling:
    """What the event form shows of invitations."""

    organiser: str
    attendees: list[itip.Attendee]
    is_organiser: bool  # the list is editable

    @property
    def text(self) -> str:
        return "\n".join(a.address for a in self.attendees)


def form_scheduling(text: str | None, address: str) -> FormScheduling:
    if not text:
        return FormScheduling("", [], True)
    try:
        organiser, people = itip.scheduling_of(text)
    except Exception:
        return FormScheduling("", [], True)
    return FormScheduling(organiser, people, not organiser or organiser == address.lower())


async def form_busy(store, account_id: int, scheduling: FormScheduling, event) -> tuple:
    """(bars, day) of the free/busy the event form shows: the attendees' for the event's day."""
    if not scheduling.attendees or not scheduling.is_organiser:
        return [], None
    day = event.start.date() if isinstance(event.start, datetime) else event.start
    try:
        day_start = datetime.combine(day, datetime.min.time()).replace(tzinfo=zone(event.timezone))
    except InvalidObject:
        return [], None
    addresses = [a.address for a in scheduling.attendees]
    busy = await store.scheduling.busy(account_id, addresses, day_start, day_start + timedelta(days=1))
    return day_bars(busy, day_start), day


def with_form_attendees(text: str, organiser: str, form) -> str:
    """The event text with the attendees of the form's `attendees` field (unchanged when the
    form has no such field, or the event is someone else's invitation)."""
    if "attendees" not in form:
        return text
    current, _ = itip.scheduling_of(text)
    if current and current != organiser.lower():
        return text  # an attendee's copy: its list is the organiser's to change
    return itip.set_attendees(text, organiser, parse_attendees(str(form.get("attendees", ""))))


async def schedule(store, config, account_id: int, before: str | None, after: str | None) -> None:
    """After the organiser saved (or, `after` None, deleted) an event: the REQUEST of its new
    version to everyone invited, a CANCEL to those taken off the list (everyone, on deletion).
    Nothing for an event without attendees, or for a copy the account does not organise."""
    account = await store.accounts.get_user_by_id(account_id)
    mine = {a.lower() for a in await store.accounts.senders_allowed(account)}
    organiser, people = itip.scheduling_of(after) if after else ("", [])
    old_organiser, old_people = itip.scheduling_of(before) if before else ("", [])
    if (organiser and organiser not in mine) or (old_organiser and old_organiser not in mine):
        return
    removed = [p.address for p in old_people if p.address not in {q.address for q in people}]
    if removed and before:
        await send(store, config, account_id, itip.make_cancel(itip.cancelled(before)), removed)
    if people and after:
        await send(store, config, account_id, itip.make_request(after), [p.address for p in people])
