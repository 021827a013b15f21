"""Events and journal entries as a person edits them, and their iCalendar objects.

`Event` holds what the calendar's form shows (title, place, notes, start and end in a time zone
or all day, a simple repetition rule, reminders); `Event.to_calendar` writes it into a calendar
object, keeping what the form does not show (attendees, a DAV client's X- properties) and, when
the start and the rule did not change, the series' exceptions. One instance of a series is
changed with `edit_instance` (an overriding component with RECURRENCE-ID, RFC 5545 3.8.4.4) or
removed with `cancel_instance` (an EXDATE). `Entry` is the same for a VJOURNAL.

Invitations (iTIP/iMIP, RFC 5546/6047) are not made here: an event's ATTENDEE and ORGANIZER
lines are kept as they are, and a scheduling module can read and write them on the same objects.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from icalendar import Alarm, Calendar, Component, vRecur
from icalendar import Event as VEvent
from icalendar import Journal as VJournal

from tidings.pim import InvalidObject
from tidings.pim.ical import items, new_calendar, parse_calendar

REPEATS = ("", "DAILY", "WEEKLY", "MONTHLY", "YEARLY")
MAX_REMINDERS = 5


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidObject(f"unknown time zone {name!r}") from None


@dataclass
class Event:
    title: str = ""
    start: datetime | date = field(default_factory=lambda: datetime.now(UTC).replace(second=0, microsecond=0))
    end: datetime | date | None = None  # all day: the day after the last (DTEND is exclusive)
    all_day: bool = False
    timezone: str = "UTC"
    location: str = ""
    description: str = ""
    repeat: str = ""  # one of REPEATS
    interval: int = 1
    until: date | None = None
    count: int | None = None
    reminders: list[int] = field(default_factory=list)  # minutes before the start
    categories: list[str] = field(default_factory=list)

    @classmethod
    def from_calendar(cls, text: str, recurrence_id: str | None = None) -> Event:
        """The master's fields, or those of one instance (its override if it has one)."""
        calendar = parse_calendar(text)
        master = _master(calendar)
        component = master
        if recurrence_id is not None:
            component = _override(calendar, recurrence_id) or master
        start = component["DTSTART"].dt
        end = component.get("DTEND").dt if component.get("DTEND") is not None else None
        if end is None and component.get("DURATION") is not None:
            end = start + component["DURATION"].dt
        if recurrence_id is not None and component is master:
            start, end = _instance_times(master, recurrence_id, start, end)
        found = cls(
            title=str(component.get("SUMMARY", "")),
            start=start,
            end=end,
            all_day=not isinstance(start, datetime),
            timezone=_zone_name(start),
            location=str(component.get("LOCATION", "")),
            description=str(component.get("DESCRIPTION", "")),
            reminders=_reminders(component),
            categories=[str(c) for c in getattr(component.get("CATEGORIES"), "cats", []) or []],
        )
        rule = master.get("RRULE")
        if rule is not None and recurrence_id is None:
            found.repeat = str((rule.get("FREQ") or [""])[0])
            found.interval = int((rule.get("INTERVAL") or [1])[0])
            if rule.get("COUNT"):
                found.count = int(rule["COUNT"][0])
            if rule.get("UNTIL"):
                until = rule["UNTIL"][0]
                found.until = until.date() if isinstance(until, datetime) else until
        return found

    def check(self) -> None:
        if not self.title.strip():
            raise InvalidObject("an event needs a title")
        if self.repeat not in REPEATS:
            raise InvalidObject(f"unknown repetition {self.repeat!r}")
        if self.end is not None and _key(self.end) < _key(self.start):
            raise InvalidObject("an event cannot end before it starts")
        if len(self.reminders) > MAX_REMINDERS or any(m < 0 or m > 40320 for m in self.reminders):
            raise InvalidObject("reminders are 0 to 40,320 minutes before the start, five at most")
        if (
            self.interval < 1
            or self.interval > 999
            or (self.count is not None and not 0 < self.count <= 9999)
        ):
            raise InvalidObject("the repetition's interval or count is out of range")

    def to_calendar(self, existing: str | None = None, uid: str | None = None) -> str:
        self.check()
        calendar = parse_calendar(existing) if existing is not None else new_calendar()
        master = _master(calendar) if existing is not None else None
        if master is None:
            master = VEvent()
            master.add("UID", uid or str(uuid.uuid4()))
            master.add("CREATED", datetime.now(UTC))
            calendar.add_component(master)
        same_series = (
            existing is not None
            and master.get("DTSTART") is not None
            and _key(master["DTSTART"].dt) == _key(_normalised(self)[0])
            and _rule_text(master) == _rule_text_of(self)
        )
        if not same_series:
            # A new start or rule moves every instance: old exceptions no longer name one.
            master.pop("EXDATE", None)
            for old in [c for c in items(calendar) if "RECURRENCE-ID" in c]:
                calendar.subcomponents.remove(old)
        _set_fields(master, self)
        if self.repeat:
            rule: dict = {"FREQ": self.repeat}
            if self.interval > 1:
                rule["INTERVAL"] = self.interval
            if self.count:
                rule["COUNT"] = self.count
            elif self.until:
                rule["UNTIL"] = _until(self.until, self.start)
            master.pop("RRULE", None)
            master.add("RRULE", vRecur(rule))
        else:
            master.pop("RRULE", None)
        _touch(master)
        return _finish(calendar)


def _finish(calendar: Calendar) -> str:
    calendar.add_missing_timezones()
    # VTIMEZONEs first, as clients expect them.
    calendar.subcomponents.sort(key=lambda c: c.name != "VTIMEZONE")
    return calendar.to_ical().decode()


def _set_fields(component: Component, event: Event) -> None:
    start, end = _normalised(event)
    for name in ("DTSTART", "DTEND", "DURATION", "SUMMARY", "LOCATION", "DESCRIPTION", "CATEGORIES"):
        component.pop(name, None)
    component.add("DTSTART", start)
    component.add("DTEND", end)
    component.add("SUMMARY", event.title.strip())
    if event.location.strip():
        component.add("LOCATION", event.location.strip())
    if event.description.strip():
        component.add("DESCRIPTION", event.description.strip())
    if event.categories:
        component.add("CATEGORIES", event.categories)
    component.subcomponents = [c for c in component.subcomponents if c.name != "VALARM"]
    for minutes in event.reminders:
        alarm = Alarm()
        alarm.add("ACTION", "DISPLAY")
        alarm.add("DESCRIPTION", event.title.strip())
        alarm.add("TRIGGER", timedelta(minutes=-minutes))
        component.add_component(alarm)


def _normalised(event: Event) -> tuple[datetime | date, datetime | date]:
    """Start and end as written: dates for an all-day event (end exclusive, at least a day
    after), times in the event's zone otherwise (an hour long if no end was given)."""
    if event.all_day:
        start = event.start.date() if isinstance(event.start, datetime) else event.start
        end = event.end.date() if isinstance(event.end, datetime) else event.end
        return start, end if end is not None and end > start else start + timedelta(days=1)
    tz = zone(event.timezone)
    start = (
        event.start
        if isinstance(event.start, datetime)
        else datetime.combine(event.start, datetime.min.time())
    )
    start = start.replace(tzinfo=tz) if start.tzinfo is None else start.astimezone(tz)
    end = event.end
    if end is None:
        end = start + timedelta(hours=1)
    elif not isinstance(end, datetime):
        end = datetime.combine(end, datetime.min.time())
    end = end.replace(tzinfo=tz) if end.tzinfo is None else end.astimezone(tz)
    return _utc_if(start, tz), _utc_if(end, tz)


def _utc_if(value: datetime, tz: ZoneInfo) -> datetime:
    return value.astimezone(UTC) if tz.key == "UTC" else value


def _until(day: date, start: datetime | date) -> date | datetime:
    """RFC 5545 3.3.10: UNTIL has DTSTART's value type, and is UTC when DTSTART has a zone."""
    if isinstance(start, datetime):
        end_of_day = datetime.combine(day, datetime.max.time().replace(microsecond=0))
        tz = start.tzinfo or UTC
        return end_of_day.replace(tzinfo=tz).astimezone(UTC)
    return day


def _rule_text(component: Component) -> str:
    rule = component.get("RRULE")
    return rule.to_ical().decode() if rule is not None else ""


def _rule_text_of(event: Event) -> str:
    probe = VEvent()
    if event.repeat:
        rule: dict = {"FREQ": event.repeat}
        if event.interval > 1:
            rule["INTERVAL"] = event.interval
        if event.count:
            rule["COUNT"] = event.count
        elif event.until:
            rule["UNTIL"] = _until(event.until, _normalised(event)[0])
        probe.add("RRULE", vRecur(rule))
    return _rule_text(probe)


def _key(value: datetime | date) -> tuple:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).replace(tzinfo=None), 1
    return datetime.combine(value, datetime.min.time()), 0


def _touch(component: Component) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    for name in ("DTSTAMP", "LAST-MODIFIED"):
        component.pop(name, None)
        component.add(name, now)
    sequence = int(component.pop("SEQUENCE", 0) or 0)
    component.add("SEQUENCE", sequence + 1)


def _zone_name(value: datetime | date) -> str:
    if isinstance(value, datetime) and value.tzinfo is not None:
        key = getattr(value.tzinfo, "key", None) or getattr(value.tzinfo, "zone", None)
        if key:
            return str(key)
        if value.utcoffset() == timedelta(0):
            return "UTC"
        return str(value.tzinfo)
    return "UTC"


def _reminders(component: Component) -> list[int]:
    out = []
    for alarm in component.subcomponents:
        if alarm.name == "VALARM" and alarm.get("TRIGGER") is not None:
            trigger = alarm["TRIGGER"].dt
            if isinstance(trigger, timedelta):
                out.append(int(-trigger.total_seconds() // 60))
    return out


def _master(calendar: Calendar) -> Component:
    found = [c for c in items(calendar) if "RECURRENCE-ID" not in c]
    if not found:
        raise InvalidObject("the object has no master component")
    return found[0]


def _override(calendar: Calendar, recurrence_id: str) -> Component | None:
    for component in items(calendar):
        rid = component.get("RECURRENCE-ID")
        if rid is not None and rid.to_ical().decode() == recurrence_id:
            return component
    return None


def instance_start(master: Component, recurrence_id: str) -> datetime | date:
    """The original start of an instance, from its RECURRENCE-ID text and the master's DTSTART
    (whose zone a RECURRENCE-ID without Z shares)."""
    start = master["DTSTART"].dt
    try:
        if len(recurrence_id) == 8:
            return datetime.strptime(recurrence_id, "%Y%m%d").date()
        if recurrence_id.endswith("Z"):
            return datetime.strptime(recurrence_id, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        value = datetime.strptime(recurrence_id, "%Y%m%dT%H%M%S")
    except ValueError:
        raise InvalidObject(f"not a recurrence id: {recurrence_id!r}") from None
    return value.replace(tzinfo=start.tzinfo) if isinstance(start, datetime) else value


def _instance_times(master, recurrence_id, start, end):
    at = instance_start(master, recurrence_id)
    length = (end - start) if end is not None else timedelta(0)
    return at, at + length


def cancel_instance(text: str, recurrence_id: str) -> str:
    """The series without one instance: an EXDATE in the master, its override removed."""
    calendar = parse_calendar(text)
    master = _master(calendar)
    if master.get("RRULE") is None and master.get("RDATE") is None:
        raise InvalidObject("the event does not repeat")
    override = _override(calendar, recurrence_id)
    if override is not None:
        calendar.subcomponents.remove(override)
    master.add("EXDATE", instance_start(master, recurrence_id))
    _touch(master)
    return _finish(calendar)


def edit_instance(text: str, recurrence_id: str, event: Event) -> str:
    """The series with one instance changed (an overriding component for it)."""
    event.repeat = ""
    event.check()
    calendar = parse_calendar(text)
    master = _master(calendar)
    if master.get("RRULE") is None and master.get("RDATE") is None:
        raise InvalidObject("the event does not repeat")
    override = _override(calendar, recurrence_id)
    if override is None:
        override = VEvent()
        override.add("UID", master["UID"])
        override.add("RECURRENCE-ID", instance_start(master, recurrence_id))
        calendar.add_component(override)
    _set_fields(override, event)
    _touch(override)
    return _finish(calendar)


# -- journal entries ---------------------------------------------------------------------------


@dataclass
class Entry:
    """A dated journal entry with text and tags (a VJOURNAL)."""

    day: date = field(default_factory=lambda: datetime.now(UTC).date())
    title: str = ""
    text: str = ""
    tags: list[str] = field(default_factory=list)

    @classmethod
    def from_calendar(cls, text: str) -> Entry:
        component = _master(parse_calendar(text))
        start = component.get("DTSTART")
        day = start.dt if start is not None else datetime.now(UTC).date()
        categories = component.get("CATEGORIES")
        tags: list[str] = []
        for value in categories if isinstance(categories, list) else [categories] if categories else []:
            tags += [str(c) for c in getattr(value, "cats", [])]
        descriptions = component.get("DESCRIPTION")
        if isinstance(descriptions, list):  # VJOURNAL may have several
            body = "\n\n".join(str(d) for d in descriptions)
        else:
            body = str(descriptions or "")
        return cls(
            day=day.date() if isinstance(day, datetime) else day,
            title=str(component.get("SUMMARY", "")),
            text=body,
            tags=tags,
        )

    def to_calendar(self, existing: str | None = None, uid: str | None = None) -> str:
        if not (self.title.strip() or self.text.strip()):
            raise InvalidObject("an entry needs a title or some text")
        calendar = parse_calendar(existing) if existing is not None else new_calendar()
        if existing is not None:
            component = _master(calendar)
        else:
            component = VJournal()
            component.add("UID", uid or str(uuid.uuid4()))
            component.add("CREATED", datetime.now(UTC))
            calendar.add_component(component)
        for name in ("DTSTART", "SUMMARY", "DESCRIPTION", "CATEGORIES"):
            component.pop(name, None)
        component.add("DTSTART", self.day)
        component.add("SUMMARY", self.title.strip() or self.text.strip().splitlines()[0][:80])
        if self.text.strip():
            component.add("DESCRIPTION", self.text.strip())
        tags = [t.strip() for t in self.tags if t.strip()]
        if tags:
            component.add("CATEGORIES", tags)
        _touch(component)
        return _finish(calendar)
