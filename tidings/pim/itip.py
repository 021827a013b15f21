"""Scheduling messages for events: iTIP (RFC 5546) REQUEST, REPLY and CANCEL, and applying them.

The organiser's stored event (an object of store/pim.py) holds ORGANIZER and ATTENDEE lines;
from it `make_request` and `make_cancel` write what goes to the attendees, and `make_reply`
writes an attendee's answer from the request they got. `apply_reply` updates the organiser's
copy from a reply, `apply_request` and `apply_cancel` the attendee's copy from the organiser's
messages. The rules of RFC 5546 2.1.4/2.1.5 decide which message is newer: a higher SEQUENCE,
or the same SEQUENCE and a later DTSTAMP; an older one is refused (`Stale`), never applied.

Who may change what is decided here, from addresses the caller vouches for (`sender`: the
address the message is known to come from; see store/scheduling.py for what is trusted):
a REPLY changes only the PARTSTAT of the one ATTENDEE it names, that attendee must already be
invited and must be the sender, and the copy must be organised by the account applying it;
a REQUEST or CANCEL must come from the ORGANIZER of the copy it changes. Anything else raises
`Refused` and changes nothing.

Pure: text in, text out; the mail around it (RFC 6047) is in pim/imip.py, the store side in
store/scheduling.py. CalDAV scheduling (RFC 6638) reuses the same functions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from icalendar import Calendar, Component, vCalAddress

from tidings.pim import InvalidObject
from tidings.pim.ical import items, new_calendar, parse_calendar

REQUEST, REPLY, CANCEL = "REQUEST", "REPLY", "CANCEL"
METHODS = (REQUEST, REPLY, CANCEL)
PARTSTATS = ("NEEDS-ACTION", "ACCEPTED", "TENTATIVE", "DECLINED")
ANSWERS = ("ACCEPTED", "TENTATIVE", "DECLINED")
# An invitation is a few kilobytes; one with inline attachments beyond this is not processed.
MAX_ITIP_BYTES = 512 * 1024
MAX_ATTENDEES = 500
# Properties an attendee's copy and the messages leave out: the organiser's own reminders.
_PRIVATE_COMPONENTS = ("VALARM",)


class Refused(ValueError):
    """The message may not change this copy (wrong organiser, unknown attendee, forged sender)."""


class Stale(Refused):
    """The message is older than the copy (RFC 5546 2.1.5: SEQUENCE, then DTSTAMP)."""


@dataclass(frozen=True)
class Attendee:
    address: str  # lower-case addr-spec, no "mailto:"
    name: str
    partstat: str
    role: str
    rsvp: bool


@dataclass(frozen=True)
class Scheduling:
    """What a scheduling message says, read by `parse`."""

    method: str
    uid: str
    sequence: int
    dtstamp: datetime | None
    organizer: str  # lower-case address
    organizer_name: str
    attendees: tuple[Attendee, ...]
    summary: str
    start: datetime | None
    end: datetime | None
    recurs: bool
    recurrence_id: str | None  # a message about one instance only
    text: str  # the iCalendar text


def address_of(value: object) -> str:
    """The lower-case addr-spec of a calendar user address ("mailto:Bob@X" -> "bob@x")."""
    text = str(value or "").strip()
    if text.lower().startswith("mailto:"):
        text = text[7:]
    return text.strip().lower()


def cal_address(address: str, name: str = "", **params: str) -> vCalAddress:
    value = vCalAddress(f"mailto:{address}")
    if name:
        value.params["CN"] = name
    for key, param in params.items():
        value.params[key.replace("_", "-").upper()] = param
    return value


def _attendee_values(component: Component) -> list[vCalAddress]:
    found = component.get("ATTENDEE")
    if found is None:
        return []
    return list(found) if isinstance(found, list) else [found]


def attendees(component: Component) -> list[Attendee]:
    out = []
    for value in _attendee_values(component):
        params = getattr(value, "params", {})
        out.append(
            Attendee(
                address=address_of(value),
                name=str(params.get("CN", "")),
                partstat=str(params.get("PARTSTAT", "NEEDS-ACTION")).upper(),
                role=str(params.get("ROLE", "REQ-PARTICIPANT")).upper(),
                rsvp=str(params.get("RSVP", "FALSE")).upper() == "TRUE",
            )
        )
    return out


def organizer(component: Component) -> str:
    return address_of(component.get("ORGANIZER"))


def _sequence(component: Component) -> int:
    try:
        return int(component.get("SEQUENCE", 0) or 0)
    except (TypeError, ValueError):
        return 0


def _dtstamp(component: Component) -> datetime | None:
    value = component.get("DTSTAMP")
    if value is None:
        return None
    dt = value.dt
    if not isinstance(dt, datetime):
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _events(calendar: Calendar) -> list[Component]:
    found = items(calendar)
    if not found:
        raise InvalidObject("the scheduling message holds no event")
    if any(c.name != "VEVENT" for c in found):
        raise InvalidObject("only events (VEVENT) are scheduled here")
    uids = {str(c.get("UID", "")).strip() for c in found}
    if len(uids) != 1 or "" in uids:
        raise InvalidObject("a scheduling message is about one UID, and has it")
    return found


def _master(found: list[Component]) -> Component:
    masters = [c for c in found if "RECURRENCE-ID" not in c]
    return masters[0] if masters else found[0]


def parse(text: str) -> Scheduling:
    """Read a scheduling message; InvalidObject for anything RFC 5546 3.2 does not allow here."""
    if len(text.encode("utf-8", "replace")) > MAX_ITIP_BYTES:
        raise InvalidObject("the scheduling message is too large")
    calendar = parse_calendar(text)
    method = str(calendar.get("METHOD", "")).strip().upper()
    if method not in METHODS:
        raise InvalidObject(f"unsupported iTIP method {method or '(none)'}")
    found = _events(calendar)
    master = _master(found)
    who = organizer(master)
    if "@" not in who:
        raise InvalidObject("the scheduling message has no ORGANIZER")
    people = attendees(master)
    if len(people) > MAX_ATTENDEES:
        raise InvalidObject("too many attendees")
    if method == REPLY and len({a.address for c in found for a in attendees(c)}) != 1:
        raise InvalidObject("a REPLY names exactly one ATTENDEE (RFC 5546 3.2.3)")
    if method == REPLY and people and people[0].partstat not in PARTSTATS:
        raise InvalidObject(f"unknown PARTSTAT {people[0].partstat}")
    start = master.get("DTSTART")
    end = master.get("DTEND")
    rid = master.get("RECURRENCE-ID") if "RECURRENCE-ID" in master and len(found) == 1 else None
    return Scheduling(
        method=method,
        uid=str(master["UID"]).strip(),
        sequence=_sequence(master),
        dtstamp=_dtstamp(master),
        organizer=who,
        organizer_name=str(getattr(master.get("ORGANIZER"), "params", {}).get("CN", "")),
        attendees=tuple(people),
        summary=str(master.get("SUMMARY", "")),
        start=start.dt if start is not None else None,
        end=end.dt if end is not None else None,
        recurs="RRULE" in master or "RDATE" in master,
        recurrence_id=rid.to_ical().decode() if rid is not None else None,
        text=text,
    )


# -- the organiser's side ----------------------------------------------------------------------


def set_attendees(
    text: str, organizer_address: str, addresses: Iterable[str], organizer_name: str = ""
) -> str:
    """The organiser's event with ORGANIZER and these ATTENDEEs (the form's list): attendees kept
    keep their PARTSTAT, new ones get NEEDS-ACTION and RSVP, removed ones go. No attendees: the
    event is a plain one again (no ORGANIZER either)."""
    calendar = parse_calendar(text)
    wanted = list(dict.fromkeys(a.strip().lower() for a in addresses if a.strip()))
    if len(wanted) > MAX_ATTENDEES:
        raise InvalidObject("too many attendees")
    for address in wanted:
        local, _, domain = address.rpartition("@")
        if not local or "." not in domain or any(c in address for c in ' <>,;:"\r\n'):
            raise InvalidObject(f"not a mail address: {address}")
    for component in items(calendar):
        old = {a.address: v for a, v in zip(attendees(component), _attendee_values(component), strict=True)}
        component.pop("ATTENDEE", None)
        component.pop("ORGANIZER", None)
        if not wanted:
            continue
        component.add("ORGANIZER", cal_address(organizer_address.lower(), organizer_name))
        for address in wanted:
            if address in old:
                component.add("ATTENDEE", old[address])
            else:
                component.add(
                    "ATTENDEE",
                    cal_address(address, ROLE="REQ-PARTICIPANT", PARTSTAT="NEEDS-ACTION", RSVP="TRUE"),
                )
    return calendar.to_ical().decode()


def _message(text: str, method: str, keep: Iterable[str] | None = None) -> Calendar:
    """A copy of the stored object as a scheduling message: METHOD set, alarms left out."""
    stored = parse_calendar(text)
    out = new_calendar()
    out.add("METHOD", method)
    for component in stored.subcomponents:
        if component.name == "VTIMEZONE":
            out.add_component(component)
        elif component.name == "VEVENT":
            component.subcomponents = [
                c for c in component.subcomponents if c.name not in _PRIVATE_COMPONENTS
            ]
            out.add_component(component)
    return out


def make_request(text: str) -> str:
    """METHOD:REQUEST of the organiser's event, for every attendee (RFC 5546 3.2.2)."""
    calendar = _message(text, REQUEST)
    _check_organised(calendar)
    return calendar.to_ical().decode()


def make_cancel(text: str) -> str:
    """METHOD:CANCEL of the whole event (RFC 5546 3.2.5). The caller stores the organiser's copy
    with `cancelled(text)` first, so the SEQUENCE here is the raised one."""
    calendar = _message(text, CANCEL)
    _check_organised(calendar)
    for component in items(calendar):
        component.pop("STATUS", None)
        component.add("STATUS", "CANCELLED")
    return calendar.to_ical().decode()


def cancelled(text: str) -> str:
    """A copy marked STATUS:CANCELLED with SEQUENCE raised (the organiser's, before CANCEL)."""
    calendar = parse_calendar(text)
    for component in items(calendar):
        component.pop("STATUS", None)
        component.add("STATUS", "CANCELLED")
        _stamp(component, bump=True)
    return calendar.to_ical().decode()


def _check_organised(calendar: Calendar) -> None:
    found = _events(calendar)
    master = _master(found)
    if "@" not in organizer(master) or not attendees(master):
        raise InvalidObject("the event has no organiser or no attendees to schedule")


def _stamp(component: Component, bump: bool = False) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    component.pop("DTSTAMP", None)
    component.add("DTSTAMP", now)
    if bump:
        sequence = _sequence(component)
        component.pop("SEQUENCE", None)
        component.add("SEQUENCE", sequence + 1)


def _newer(incoming: Component, stored: Component) -> bool:
    """RFC 5546 2.1.5: SEQUENCE first, then DTSTAMP; equal counts as not older."""
    a, b = _sequence(incoming), _sequence(stored)
    if a != b:
        return a > b
    new, old = _dtstamp(incoming), _dtstamp(stored)
    return new is None or old is None or new >= old


def apply_reply(stored: str, reply: str, owner_addresses: Iterable[str], sender: str) -> tuple[str, Attendee]:
    """The organiser's copy with the replying attendee's PARTSTAT (RFC 5546 3.2.3).

    `owner_addresses`: the addresses of the account whose copy this is (it must be the
    ORGANIZER); `sender`: the address the reply is known to come from (it must be the ATTENDEE
    the reply names). Only that attendee's PARTSTAT changes, and only if they were invited.
    A reply to an older SEQUENCE, or older than the last reply applied, is Stale.
    """
    message = parse(reply)
    if message.method != REPLY:
        raise InvalidObject("not a REPLY")
    calendar = parse_calendar(stored)
    found = _events(calendar)
    master = _master(found)
    if str(master["UID"]).strip() != message.uid:
        raise Refused("the reply is about another event")
    owners = {address_of(a) for a in owner_addresses}
    if organizer(master) not in owners or message.organizer != organizer(master):
        raise Refused("only the organiser's copy takes replies")
    answer = message.attendees[0]
    if address_of(sender) != answer.address:
        raise Refused(f"a reply for {answer.address} must come from {answer.address}")
    reply_master = _master(_events(parse_calendar(reply)))
    if message.sequence < _sequence(master):
        raise Stale("the reply answers an older version of the event")
    targets = found
    if message.recurrence_id is not None:
        targets = [
            c
            for c in found
            if "RECURRENCE-ID" in c and c["RECURRENCE-ID"].to_ical().decode() == message.recurrence_id
        ]
        if not targets:
            # One instance answered that has no override yet: record it on the series.
            targets = [master]
    changed = False
    for component in targets:
        for value in _attendee_values(component):
            if address_of(value) != answer.address:
                continue
            last = value.params.get("X-TIDINGS-REPLIED")
            stamp = _dtstamp(reply_master)
            if last and stamp is not None and stamp.strftime("%Y%m%dT%H%M%SZ") < str(last):
                raise Stale("a later reply from this attendee was already applied")
            value.params["PARTSTAT"] = answer.partstat
            value.params.pop("RSVP", None)
            if stamp is not None:
                value.params["X-TIDINGS-REPLIED"] = stamp.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
            changed = True
    if not changed:
        raise Refused(f"{answer.address} is not invited to this event")
    return calendar.to_ical().decode(), answer


# -- the attendee's side -----------------------------------------------------------------------


def make_reply(request: str, attendee: str, partstat: str) -> str:
    """The attendee's REPLY to a REQUEST (RFC 5546 3.2.3): the event's identity and time, the
    ORGANIZER, and this one ATTENDEE with its PARTSTAT; DTSTAMP now, SEQUENCE as received."""
    if partstat not in ANSWERS:
        raise InvalidObject(f"unknown answer {partstat}")
    message = parse(request)
    me = address_of(attendee)
    found = _events(parse_calendar(request))
    invited = next((a for a in message.attendees if a.address == me), None)
    if invited is None:
        raise Refused(f"{me} is not an attendee of this event")
    out = new_calendar()
    out.add("METHOD", REPLY)
    for component in found:
        reply = Component()
        reply.name = "VEVENT"
        for name in (
            "UID",
            "RECURRENCE-ID",
            "SEQUENCE",
            "DTSTART",
            "DTEND",
            "DURATION",
            "SUMMARY",
            "ORGANIZER",
        ):
            if name in component:
                reply.add(name, component[name])
        reply.add("ATTENDEE", cal_address(me, invited.name, PARTSTAT=partstat))
        _stamp(reply)
        out.add_component(reply)
    return out.to_ical().decode()


def attendee_copy(request: str, attendee: str, partstat: str, stored: str | None = None) -> str:
    """The event as the attendee keeps it: the request's components with METHOD removed and
    their own PARTSTAT set. With `stored` (a copy they already have), the request must come
    from the same organiser and not be older (RFC 5546 3.2.2.2 rescheduling)."""
    message = parse(request)
    if message.method != REQUEST:
        raise InvalidObject("not a REQUEST")
    incoming = parse_calendar(request)
    found = _events(incoming)
    if stored is not None:
        _check_same_organiser(stored, message, found)
    me = address_of(attendee)
    out = new_calendar()
    for component in incoming.subcomponents:
        if component.name == "VTIMEZONE":
            out.add_component(component)
    for component in found:
        for value in _attendee_values(component):
            if address_of(value) == me:
                value.params["PARTSTAT"] = partstat
                value.params.pop("RSVP", None)
        out.add_component(component)
    return out.to_ical().decode()


def apply_request(stored: str, request: str, attendee: str) -> str:
    """An update of an event the attendee already holds (same organiser, newer): their copy
    becomes the organiser's new version, keeping their answer when the time did not move."""
    message = parse(request)
    calendar = parse_calendar(stored)
    master = _master(_events(calendar))
    mine = next((a for a in attendees(master) if a.address == address_of(attendee)), None)
    new_master = _master(_events(parse_calendar(request)))
    same_time = all(
        (master.get(n).to_ical() if n in master else None)
        == (new_master.get(n).to_ical() if n in new_master else None)
        for n in ("DTSTART", "DTEND", "RRULE")
    )
    partstat = mine.partstat if mine is not None and same_time else "NEEDS-ACTION"
    if not any(a.address == address_of(attendee) for a in message.attendees):
        # Removed from the attendee list: for this attendee the event is cancelled.
        return _mark_cancelled(stored)
    return attendee_copy(request, attendee, partstat, stored)


def apply_cancel(stored: str, cancel: str) -> str:
    """The attendee's copy after the organiser's CANCEL (RFC 5546 3.2.5): the whole event marked
    STATUS:CANCELLED, or one instance removed (an EXDATE) when the CANCEL names it."""
    message = parse(cancel)
    if message.method != CANCEL:
        raise InvalidObject("not a CANCEL")
    found = _events(parse_calendar(cancel))
    _check_same_organiser(stored, message, found)
    if message.recurrence_id is not None:
        from tidings.pim.events import cancel_instance

        return cancel_instance(stored, message.recurrence_id)
    return _mark_cancelled(stored, message.sequence)


def _mark_cancelled(stored: str, sequence: int | None = None) -> str:
    calendar = parse_calendar(stored)
    for component in items(calendar):
        component.pop("STATUS", None)
        component.add("STATUS", "CANCELLED")
        if sequence is not None and sequence > _sequence(component):
            component.pop("SEQUENCE", None)
            component.add("SEQUENCE", sequence)
    return calendar.to_ical().decode()


def _check_same_organiser(stored: str, message: Scheduling, found: list[Component]) -> None:
    calendar = parse_calendar(stored)
    master = _master(_events(calendar))
    if str(master["UID"]).strip() != message.uid:
        raise Refused("the message is about another event")
    if organizer(master) != message.organizer:
        raise Refused(f"only {organizer(master) or 'the organiser'} may change this event")
    if not _newer(_master(found), master):
        raise Stale("the message is older than the copy held")


def is_cancelled(text: str) -> bool:
    try:
        calendar = parse_calendar(text)
        return str(_master(_events(calendar)).get("STATUS", "")).upper() == "CANCELLED"
    except InvalidObject:
        return False


def partstat_of(text: str, address: str) -> str | None:
    """The PARTSTAT of `address` in a stored event (its master), None if not invited."""
    master = _master(_events(parse_calendar(text)))
    me = address_of(address)
    return next((a.partstat for a in attendees(master) if a.address == me), None)


def scheduling_of(text: str) -> tuple[str, list[Attendee]]:
    """(organiser, attendees) of a stored event's master: what the calendar page shows."""
    master = _master(_events(parse_calendar(text)))
    return organizer(master), attendees(master)
