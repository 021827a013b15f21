"""iCalendar objects (RFC 5545) as CalDAV stores them (RFC 4791 4.1): checking, indexing, expanding.

One calendar object resource holds the components of one UID — a master VEVENT, VTODO or
VJOURNAL and its overridden instances (RECURRENCE-ID) — plus the VTIMEZONEs they use.
`index_calendar` checks that and derives what the store indexes; `split_calendar` turns an
imported file into such objects, `join_calendars` makes one file of many for export, and
`expand` lists the instances in a time range, exceptions applied, by `recurring-ical-events`.
Nothing here touches the store or the network.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import recurring_ical_events
from icalendar import Calendar, Component

from tidings.pim import InvalidObject

COMPONENTS = ("VEVENT", "VTODO", "VJOURNAL")
PRODID = "-//Tidings//Tidings//EN"
# A finite recurrence is expanded when stored, to know where it ends; past this many instances
# it is indexed as never ending (queries then expand it over the asked range only).
MAX_INDEXED_INSTANCES = 2000
# The widest UTC offset: floating times and dates are indexed as UTC, so a range query widens
# its bounds by this much to find them whatever the reader's time zone.
FLOATING_SLACK = 14 * 3600.0


@dataclass(frozen=True)
class CalendarIndex:
    """What the store keeps beside an object's text (see store/schema.py pim_objects)."""

    uid: str
    component: str
    title: str
    categories: tuple[str, ...]
    search_text: str
    first_start: float | None
    last_end: float | None  # None: the recurrence never ends
    recurs: bool
    all_day: bool


@dataclass(frozen=True)
class Occurrence:
    """One instance of an event, task or journal entry, as a calendar view shows it."""

    uid: str
    component: str
    # The instance's RECURRENCE-ID as iCalendar text ("20261202T100000Z", "20261202"), None for
    # a non-recurring object: names the instance an exception is made for.
    recurrence_id: str | None
    start: datetime | date
    end: datetime | date
    all_day: bool
    title: str
    location: str
    description: str
    categories: tuple[str, ...]
    recurs: bool
    # Reminders: how long before the start each VALARM fires (relative triggers only).
    alarms: tuple[timedelta, ...]
    # For free/busy (RFC 5545 3.8.2.7, 3.8.1.11): a cancelled or transparent instance is free.
    cancelled: bool = False
    transparent: bool = False


def parse_calendar(text: str) -> Calendar:
    """One VCALENDAR, or InvalidObject."""
    try:
        calendar = Calendar.from_ical(text)
    except Exception as error:  # icalendar raises ValueError, KeyError, IndexError...
        raise InvalidObject(f"not an iCalendar object: {error}") from None
    if calendar.name != "VCALENDAR":
        raise InvalidObject("not an iCalendar object: no VCALENDAR")
    return calendar


def items(calendar: Component) -> list[Component]:
    """The VEVENT, VTODO and VJOURNAL components (not VTIMEZONE or VALARM)."""
    return [c for c in calendar.subcomponents if c.name in COMPONENTS]


def index_calendar(text: str, allowed: Iterable[str] = COMPONENTS) -> tuple[Calendar, CalendarIndex]:
    """Check that `text` is one calendar object resource whose components are `allowed`, and
    derive its index. RFC 4791 4.1: one UID, one component type, VTIMEZONEs beside them."""
    calendar = parse_calendar(text)
    found = items(calendar)
    if not found:
        raise InvalidObject("the calendar holds no VEVENT, VTODO or VJOURNAL")
    for c in calendar.subcomponents:
        if c.name not in (*COMPONENTS, "VTIMEZONE"):
            raise InvalidObject(f"{c.name} is not stored in a calendar collection")
    names = {c.name for c in found}
    if len(names) != 1:
        raise InvalidObject("one calendar object holds one type of component")
    component = names.pop()
    if component not in set(allowed):
        raise InvalidObject(f"this calendar does not take {component}")
    uids = {str(c.get("UID", "")) for c in found}
    if len(uids) != 1 or "" in uids:
        raise InvalidObject("every component of a calendar object has the same, non-empty UID")
    uid = uids.pop()
    masters = [c for c in found if "RECURRENCE-ID" not in c]
    if len(masters) > 1:
        raise InvalidObject("a calendar object has at most one component without RECURRENCE-ID")
    master = masters[0] if masters else found[0]
    recurs = bool(masters) and ("RRULE" in master or "RDATE" in master)
    first_start, last_end, all_day = _time_span(calendar, found, component, master, recurs)
    categories = tuple(dict.fromkeys(itertools.chain.from_iterable(_categories(c) for c in found)))
    title = str(master.get("SUMMARY", ""))
    words = [title, str(master.get("DESCRIPTION", "")), str(master.get("LOCATION", "")), *categories]
    index = CalendarIndex(
        uid=uid,
        component=component,
        title=title,
        categories=categories,
        search_text="\n".join(w for w in words if w).lower(),
        first_start=first_start,
        last_end=last_end,
        recurs=recurs,
        all_day=all_day,
    )
    return calendar, index


def _categories(component: Component) -> list[str]:
    value = component.get("CATEGORIES")
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    out: list[str] = []
    for v in values:
        cats = getattr(v, "cats", None)
        out.extend(str(c) for c in (cats if cats is not None else str(v).split(",")))
    return [c.strip() for c in out if c.strip()]


def epoch(value: datetime | date) -> float:
    """Seconds since the epoch; a floating time or a date is read as UTC (see FLOATING_SLACK)."""
    if isinstance(value, datetime):
        return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).timestamp()
    return datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp()


def _start_end(component: Component) -> tuple[datetime | date | None, datetime | date | None]:
    """A component's own start and end (RFC 5545 3.6.1 for a missing DTEND: one day for a date,
    the start itself for a date-time; a task's DUE, a journal's DTSTART)."""
    start = component.get("DTSTART")
    start = start.dt if start is not None else None
    if start is None and component.get("DUE") is not None:
        due = component.get("DUE").dt
        return due, due
    if start is None:
        return None, None
    if component.get("DTEND") is not None:
        return start, component.get("DTEND").dt
    if component.get("DUE") is not None:
        return start, component.get("DUE").dt
    if component.get("DURATION") is not None:
        return start, start + component.get("DURATION").dt
    return start, start if isinstance(start, datetime) else start + timedelta(days=1)


def _never_ends(master: Component) -> bool:
    rules = master.get("RRULE")
    if rules is None:
        return False
    for rule in rules if isinstance(rules, list) else [rules]:
        if "COUNT" not in rule and "UNTIL" not in rule:
            return True
    return False


def _time_span(
    calendar: Calendar, found: list[Component], component: str, master: Component, recurs: bool
) -> tuple[float | None, float | None, bool]:
    spans = [_start_end(c) for c in found]
    starts = [epoch(s) for s, _ in spans if s is not None]
    ends = [epoch(e) for _, e in spans if e is not None]
    all_day = isinstance(_start_end(master)[0], date) and not isinstance(_start_end(master)[0], datetime)
    if not starts:
        return None, None, all_day
    first, last = min(starts), max(ends)
    if recurs:
        if _never_ends(master):
            return first, None, all_day
        try:
            query = recurring_ical_events.of(calendar, components=[component])
            instances = list(itertools.islice(query.all(), MAX_INDEXED_INSTANCES + 1))
        except Exception as error:
            raise InvalidObject(f"the recurrence cannot be expanded: {error}") from None
        if len(instances) > MAX_INDEXED_INSTANCES:
            return first, None, all_day
        for instance in instances:
            start, end = _start_end(instance)
            if start is not None:
                first = min(first, epoch(start))
                last = max(last, epoch(end if end is not None else start))
    return first, last, all_day


def expand(
    text: str, start: datetime, end: datetime, components: Iterable[str] = ("VEVENT",)
) -> list[Occurrence]:
    """The instances of one stored object that meet [start, end), overridden instances and
    EXDATEs applied. Floating times are read in `start`'s time zone."""
    calendar = parse_calendar(text)
    master = next((c for c in items(calendar) if "RECURRENCE-ID" not in c), None)
    recurs = master is not None and ("RRULE" in master or "RDATE" in master)
    query = recurring_ical_events.of(calendar, components=list(components), skip_bad_series=True)
    out = []
    for instance in query.between(start, end):
        begin, finish = _start_end(instance)
        if begin is None:
            continue
        rid = instance.get("RECURRENCE-ID")
        out.append(
            Occurrence(
                uid=str(instance.get("UID", "")),
                component=instance.name,
                recurrence_id=rid.to_ical().decode() if recurs and rid is not None else None,
                start=begin,
                end=finish if finish is not None else begin,
                all_day=not isinstance(begin, datetime),
                title=str(instance.get("SUMMARY", "")),
                location=str(instance.get("LOCATION", "")),
                description=str(instance.get("DESCRIPTION", "")),
                categories=tuple(_categories(instance)),
                recurs=recurs,
                alarms=tuple(_alarms(instance)),
                cancelled=str(instance.get("STATUS", "")).upper() == "CANCELLED",
                transparent=str(instance.get("TRANSP", "")).upper() == "TRANSPARENT",
            )
        )
    return out


def _alarms(component: Component) -> Iterator[timedelta]:
    for alarm in component.subcomponents:
        if alarm.name != "VALARM" or alarm.get("TRIGGER") is None:
            continue
        trigger = alarm.get("TRIGGER").dt
        if isinstance(trigger, timedelta):
            yield -trigger


# -- import and export ----------------------------------------------------------------------


def new_calendar() -> Calendar:
    calendar = Calendar()
    calendar.add("PRODID", PRODID)
    calendar.add("VERSION", "2.0")
    return calendar


def split_calendar(text: str) -> list[str]:
    """An iCalendar file (one or more VCALENDARs, any number of UIDs) as calendar object
    resources: one per UID with the VTIMEZONEs it names. A component without UID gets one."""
    try:
        calendars = Calendar.from_ical(text, multiple=True)
    except Exception as error:
        raise InvalidObject(f"not an iCalendar file: {error}") from None
    out = []
    for calendar in calendars:
        zones = {str(z.get("TZID")): z for z in calendar.walk("VTIMEZONE")}
        groups: dict[str, list[Component]] = {}
        for component in items(calendar):
            if not component.get("UID"):
                component.add("UID", str(uuid.uuid4()))
            groups.setdefault(str(component["UID"]), []).append(component)
        for group in groups.values():
            resource = new_calendar()
            body = b"".join(c.to_ical() for c in group)
            for tzid, zone in zones.items():
                if f"TZID={tzid}".encode() in body or f'TZID="{tzid}"'.encode() in body:
                    resource.add_component(zone)
            for c in group:
                resource.add_component(c)
            out.append(resource.to_ical().decode())
    return out


def join_calendars(texts: Iterable[str], name: str | None = None) -> str:
    """Many calendar object resources as one iCalendar file (each VTIMEZONE once)."""
    joined = new_calendar()
    if name:
        joined.add("X-WR-CALNAME", name)
    zones: set[str] = set()
    for text in texts:
        calendar = parse_calendar(text)
        for component in calendar.subcomponents:
            if component.name == "VTIMEZONE":
                tzid = str(component.get("TZID"))
                if tzid in zones:
                    continue
                zones.add(tzid)
            joined.add_component(component)
    return joined.to_ical().decode()
