"""Calendar: month, week, day and agenda views of the account's calendars (own and shared),
events to create, edit and delete — in a time zone or all day, repeating with exceptions (one
occurrence moved or cancelled), with reminders shown in the page — and .ics import and export.

Times are shown in the reader's zone (the `tidings_tz` cookie tidings.js sets from the browser,
UTC without it); an event keeps the zone it was made in. Saving carries the ETag the form was
loaded with, so an edit made meanwhile elsewhere is never overwritten.

Invitations (iTIP/iMIP) are a later step: events keep their ATTENDEE/ORGANIZER lines untouched
(tidings.pim.events), and `save_event` is where sending invitations would hook in.
"""

from __future__ import annotations

import calendar as monthly
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from tidings.pim import InvalidObject
from tidings.pim.events import REPEATS, Event, cancel_instance, edit_instance, zone
from tidings.store import NotFound, StoreError
from tidings.store.pim import CALENDAR, Collection, Instance, PreconditionFailed
from tidings.store.web_sessions import WebSession
from tidings.web import invitations
from tidings.web.pim_pages import (
    CHANGED_ELSEWHERE,
    download,
    int_param,
    path_id,
    reader_zone,
    share_collection,
    uploaded_text,
    zone_names,
)
from tidings.web.session import action, page, safe_next, tidings
from tidings.web.templating import render

VIEWS = ("month", "week", "day", "agenda")
AGENDA_DAYS = 30
REMINDER_CHOICES = (
    (-1, "No reminder"),
    (0, "At the start"),
    (5, "5 minutes before"),
    (10, "10 minutes before"),
    (15, "15 minutes before"),
    (30, "30 minutes before"),
    (60, "1 hour before"),
    (120, "2 hours before"),
    (1440, "1 day before"),
    (2880, "2 days before"),
)
# Notices after a redirect are named, never echoed from the URL (no text injection by link).
NOTICES = {"added": "Event added.", "saved": "Event saved.", "deleted": "Event deleted."}
REPEAT_LABELS = {
    "": "Does not repeat",
    "DAILY": "Daily",
    "WEEKLY": "Weekly",
    "MONTHLY": "Monthly",
    "YEARLY": "Yearly",
}


@dataclass
class Shown:
    """An instance as a view shows it, in the reader's zone."""

    instance: Instance
    start: datetime
    end: datetime
    all_day: bool
    title: str
    link: str
    colour_index: int

    @property
    def time_label(self) -> str:
        return "All day" if self.all_day else self.start.strftime("%H:%M")


@dataclass
class Reminder:
    title: str
    start: datetime
    fires: datetime
    link: str


async def event_calendars(request: Request, session: WebSession) -> list[Collection]:
    found = await tidings(request).store.pim.collections(session.account_id, CALENDAR)
    return [c for c in found if "VEVENT" in c.components]


def parse_day(value: str | None, default: date) -> date:
    try:
        return date.fromisoformat(str(value)) if value else default
    except ValueError:
        return default


def view_range(view: str, day: date) -> tuple[date, date]:
    """The first day shown and the day after the last."""
    if view == "month":
        first = day.replace(day=1)
        start = first - timedelta(days=first.weekday())
        last = first.replace(day=monthly.monthrange(first.year, first.month)[1])
        end = last + timedelta(days=7 - last.weekday())
        return start, end
    if view == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    if view == "day":
        return day, day + timedelta(days=1)
    return day, day + timedelta(days=AGENDA_DAYS)


def step(view: str, day: date, direction: int) -> date:
    if view == "month":
        month = day.month - 1 + direction
        year = day.year + month // 12
        return date(year, month % 12 + 1, 1)
    return day + timedelta(days=direction * {"week": 7, "day": 1}.get(view, AGENDA_DAYS))


def to_reader(value: datetime | date, tz: ZoneInfo) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(tz) if value.tzinfo else value.replace(tzinfo=tz)
    return datetime.combine(value, time.min, tz)


def shown(instances: list[Instance], tz: ZoneInfo, colours: dict[int, int]) -> list[Shown]:
    out = []
    for item in instances:
        o = item.occurrence
        link = f"/calendar/event/{item.object_id}"
        if o.recurrence_id:
            link += f"?rid={o.recurrence_id}"
        out.append(
            Shown(
                item,
                to_reader(o.start, tz),
                to_reader(o.end, tz),
                o.all_day,
                o.title or "(no title)",
                link,
                colours.get(item.collection_id, 0),
            )
        )
    return out


def by_day(items: list[Shown], start: date, end: date) -> dict[date, list[Shown]]:
    """Each day of [start, end) with the instances on it (a long event on every day it covers)."""
    days: dict[date, list[Shown]] = {start + timedelta(days=i): [] for i in range((end - start).days)}
    for item in items:
        first = item.start.date()
        last_moment = item.end - timedelta(seconds=1) if item.end > item.start else item.start
        last = last_moment.date()
        day = max(first, start)
        while day <= last and day < end:
            days[day].append(item)
            day += timedelta(days=1)
    for value in days.values():
        value.sort(key=lambda s: (not s.all_day, s.start, s.title))
    return days


def reminders(items: list[Shown], now: datetime) -> list[Reminder]:
    """Reminders that fire from an hour ago to a day from now, for instances not yet over."""
    out = []
    for item in items:
        for before in item.instance.occurrence.alarms:
            fires = item.start - before
            if now - timedelta(hours=1) <= fires <= now + timedelta(days=1) and item.end >= now:
                out.append(Reminder(item.title, item.start, fires, item.link))
    return sorted(out, key=lambda r: r.fires)


@page
async def show_calendar(request: Request, session: WebSession) -> Response:
    pim = tidings(request).store.pim
    tz = reader_zone(request)
    now = datetime.now(tz)
    view = request.query_params.get("view", "month")
    view = view if view in VIEWS else "month"
    day = parse_day(request.query_params.get("date"), now.date())
    calendars = await event_calendars(request, session)
    selected = int_param(request.query_params.get("cal"), 0)
    current = next((c for c in calendars if c.id == selected), None)
    if selected and current is None:
        current = await pim.collection(session.account_id, selected)  # NotFound for another's
    ids = [current.id] if current else [c.id for c in calendars]
    start, end = view_range(view, day)
    colours = {c.id: i % 6 for i, c in enumerate(calendars)}
    found = await pim.instances(
        session.account_id,
        datetime.combine(start, time.min, tz),
        datetime.combine(end, time.min, tz),
        collection_ids=ids,
    )
    items = shown(found, tz, colours)
    soon = await pim.instances(
        session.account_id, now - timedelta(hours=1), now + timedelta(days=3), collection_ids=ids
    )
    weeks = []
    days = by_day(items, start, end)
    if view == "month":
        ordered = list(days.items())
        weeks = [ordered[i : i + 7] for i in range(0, len(ordered), 7)]
    title = {
        "month": day.strftime("%B %Y"),
        "week": f"Week of {start.strftime('%d %b %Y')}",
        "day": day.strftime("%A %d %B %Y"),
        "agenda": f"From {start.strftime('%d %b %Y')}",
    }[view]
    query = f"&cal={current.id}" if current else ""
    shares = await pim.shares(session.account_id, current.id) if current and current.access == "owner" else []
    return render(
        request,
        "calendar/view.html",
        area="calendar",
        title=title,
        view=view,
        day=day,
        today=now.date(),
        calendars=calendars,
        current=current,
        days=days,
        weeks=weeks,
        month=day.month,
        previous=step(view, day, -1).isoformat(),
        following=step(view, day, 1).isoformat(),
        query=query,
        zone=tz.key,
        reminders=reminders(shown(soon, tz, colours), now),
        views=VIEWS,
        shares=shares,
        notice=notice_from(request),
    )


def notice_from(request: Request) -> str | None:
    params = request.query_params
    if params.get("notice") == "imported":
        added, updated = int_param(params.get("added")), int_param(params.get("updated"))
        text = f"Imported {added} new and {updated} updated events."
        failed = int_param(params.get("failed"))
        return text + (f" {failed} could not be read." if failed else "")
    if params.get("notice") == "import-failed":
        return "Nothing was imported: the file is not an iCalendar file."
    return NOTICES.get(params.get("notice", ""))


# -- the event form ----------------------------------------------------------------------------


def event_from_form(form: FormData, tz_default: str) -> Event:
    all_day = form.get("all_day") == "1"
    tz_name = str(form.get("timezone") or tz_default)
    start_day = parse_day(form.get("start_date"), date.today())
    end_day = parse_day(form.get("end_date"), start_day)
    repeat = str(form.get("repeat", ""))
    reminders = sorted({int_param(v, -1) for v in form.getlist("reminder")} - {-1})
    if all_day:
        start: datetime | date = start_day
        end: datetime | date = end_day + timedelta(days=1)  # the form's end day is inclusive
    else:
        start = datetime.combine(start_day, _time(form.get("start_time"), time(9, 0)))
        end = datetime.combine(end_day, _time(form.get("end_time"), (start + timedelta(hours=1)).time()))
    ends = str(form.get("ends", "never"))
    return Event(
        title=str(form.get("title", "")).strip()[:500],
        start=start,
        end=end,
        all_day=all_day,
        timezone=tz_name,
        location=str(form.get("location", "")).strip()[:500],
        description=str(form.get("description", "")).strip()[:20000],
        repeat=repeat if repeat in REPEATS else "",
        interval=max(1, int_param(form.get("interval"), 1)),
        until=parse_day(form.get("until"), date.today()) if ends == "until" and form.get("until") else None,
        count=int_param(form.get("count"), 0) or None if ends == "count" else None,
        reminders=reminders,
    )


def _time(value, default: time) -> time:
    try:
        return time.fromisoformat(str(value)) if value else default
    except ValueError:
        return default


def form_values(event: Event, tz: ZoneInfo) -> dict:
    """What the form's inputs show for `event` (times in the event's own zone)."""
    start, end = event.start, event.end
    if event.all_day:
        start_day = start if not isinstance(start, datetime) else start.date()
        end_day = end if end is not None and not isinstance(end, datetime) else start_day + timedelta(days=1)
        end_day = max(start_day, end_day - timedelta(days=1))
        start_time, end_time = "09:00", "10:00"
    else:
        event_zone = zone(event.timezone) if event.timezone else tz
        start = start.astimezone(event_zone) if start.tzinfo else start
        end = (
            end.astimezone(event_zone)
            if end is not None and end.tzinfo
            else (end or start + timedelta(hours=1))
        )
        start_day, end_day = start.date(), end.date()
        start_time, end_time = start.strftime("%H:%M"), end.strftime("%H:%M")
    return {
        "start_date": start_day.isoformat(),
        "end_date": end_day.isoformat(),
        "start_time": start_time,
        "end_time": end_time,
        "ends": "count" if event.count else "until" if event.until else "never",
    }


async def form_page(
    request: Request,
    session: WebSession,
    event: Event,
    *,
    obj=None,
    calendar: Collection | None = None,
    rid: str | None = None,
    error: str | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    calendars = [
        c for c in await event_calendars(request, session) if c.writable or (calendar and c.id == calendar.id)
    ]
    tz = reader_zone(request)
    scheduling = invitations.form_scheduling(obj.data if obj else None, session.address)
    return render(
        request,
        "calendar/event.html",
        status_code=status_code,
        area="calendar",
        title=event.title or "New event",
        event=event,
        obj=obj,
        scheduling=scheduling,
        busy=await invitations.form_busy(tidings(request).store, session.account_id, scheduling, event),
        calendar=calendar,
        calendars=calendars,
        editable=calendar is None or calendar.writable,
        rid=rid,
        error=error,
        notice=notice,
        values=form_values(event, tz),
        zones=zone_names(),
        repeats=REPEAT_LABELS,
        reminder_choices=REMINDER_CHOICES,
        reminder_rows=(event.reminders + [-1])[:3] if event.reminders else [-1],
    )


@page
async def new_event(request: Request, session: WebSession) -> Response:
    tz = reader_zone(request)
    day = parse_day(request.query_params.get("date"), datetime.now(tz).date())
    hour = max(0, min(23, int_param(request.query_params.get("hour"), 9)))
    start = datetime.combine(day, time(hour, 0))
    event = Event(start=start, end=start + timedelta(hours=1), timezone=tz.key)
    return await form_page(request, session, event)


@action
async def create_event(request: Request, session: WebSession, form: FormData) -> Response:
    pim = tidings(request).store.pim
    calendar_id = int_param(form.get("calendar"), 0)
    calendar = await pim.collection(session.account_id, calendar_id) if calendar_id else None
    if calendar is None:
        calendar = await pim.default_collection(session.account_id, "calendar")
    event = event_from_form(form, reader_zone(request).key)
    try:
        text = invitations.with_form_attendees(event.to_calendar(), session.address, form)
        stored = await pim.put(session.account_id, calendar.id, None, text)
        await invitations.schedule(
            tidings(request).store, tidings(request).config, session.account_id, None, text
        )
    except (InvalidObject, StoreError) as error:
        if isinstance(error, NotFound):
            raise
        return await form_page(request, session, event, error=str(error), status_code=400)
    return _back_to_view(stored, "added")


def _back_to_view(stored, notice: str) -> Response:
    day = datetime.fromtimestamp(stored.first_start or 0, UTC).date().isoformat()
    return RedirectResponse(f"/calendar?date={day}&notice={notice}", status_code=303)


async def _event_object(request: Request, session: WebSession):
    pim = tidings(request).store.pim
    obj = await pim.object(session.account_id, path_id(request, "event_id"))
    if obj.component != "VEVENT":
        raise NotFound("not an event")
    return obj, await pim.collection(session.account_id, obj.collection_id)


@page
async def show_event(request: Request, session: WebSession) -> Response:
    obj, calendar = await _event_object(request, session)
    rid = request.query_params.get("rid") or None
    try:
        event = Event.from_calendar(obj.data or "", rid)
    except InvalidObject as problem:
        raise NotFound(str(problem)) from None
    return await form_page(request, session, event, obj=obj, calendar=calendar, rid=rid)


async def _save(request, session, form, change) -> Response:
    """Run `change(text) -> new text` on the event and store it if its ETag still holds."""
    pim = tidings(request).store.pim
    obj, calendar = await _event_object(request, session)
    rid = str(form.get("rid") or "") or None
    event = event_from_form(form, reader_zone(request).key)
    try:
        text = invitations.with_form_attendees(change(obj.data or "", event, rid), session.address, form)
        stored = await pim.put(
            session.account_id, calendar.id, obj.href, text, if_match=str(form.get("etag", ""))
        )
        # Attendees get the new version, whole (an occurrence changed or cancelled included).
        await invitations.schedule(
            tidings(request).store, tidings(request).config, session.account_id, obj.data, text
        )
    except PreconditionFailed:
        fresh = await pim.object(session.account_id, obj.id)
        return await form_page(
            request,
            session,
            Event.from_calendar(fresh.data or "", rid),
            obj=fresh,
            calendar=calendar,
            rid=rid,
            error=CHANGED_ELSEWHERE,
            status_code=409,
        )
    except (InvalidObject, StoreError) as error:
        if isinstance(error, NotFound):
            raise
        return await form_page(
            request, session, event, obj=obj, calendar=calendar, rid=rid, error=str(error), status_code=400
        )
    target = int_param(form.get("calendar"), calendar.id)
    if target != calendar.id:
        stored = await pim.move(session.account_id, obj.id, target)
    return _back_to_view(stored, "saved")


@action
async def save_event(request: Request, session: WebSession, form: FormData) -> Response:
    """The whole series (or a single event); its attendees are sent the new version (iTIP)."""
    return await _save(request, session, form, lambda text, event, rid: event.to_calendar(existing=text))


@action
async def save_instance(request: Request, session: WebSession, form: FormData) -> Response:
    def change(text: str, event: Event, rid: str | None) -> str:
        if not rid:
            raise InvalidObject("which occurrence?")
        return edit_instance(text, rid, event)

    return await _save(request, session, form, change)


@action
async def cancel_occurrence(request: Request, session: WebSession, form: FormData) -> Response:
    def change(text: str, event: Event, rid: str | None) -> str:
        if not rid:
            raise InvalidObject("which occurrence?")
        return cancel_instance(text, rid)

    return await _save(request, session, form, change)


@action
async def delete_event(request: Request, session: WebSession, form: FormData) -> Response:
    pim = tidings(request).store.pim
    obj, _ = await _event_object(request, session)
    await pim.delete_object(session.account_id, obj.id)
    # The organiser deleting an event with attendees cancels it for them (iTIP CANCEL).
    await invitations.schedule(
        tidings(request).store, tidings(request).config, session.account_id, obj.data, None
    )
    return RedirectResponse("/calendar?notice=deleted", status_code=303)


# -- calendars -----------------------------------------------------------------------------------


@action
async def create_calendar(request: Request, session: WebSession, form: FormData) -> Response:
    name = str(form.get("name", "")).strip()
    if not name:
        return RedirectResponse("/calendar", status_code=303)
    made = await tidings(request).store.pim.create_collection(session.account_id, CALENDAR, name)
    return RedirectResponse(f"/calendar?cal={made.id}", status_code=303)


@action
async def delete_calendar(request: Request, session: WebSession, form: FormData) -> Response:
    await tidings(request).store.pim.delete_collection(session.account_id, path_id(request, "calendar_id"))
    return RedirectResponse("/calendar", status_code=303)


@page
async def export_calendar(request: Request, session: WebSession) -> Response:
    pim = tidings(request).store.pim
    found = await pim.collection(session.account_id, path_id(request, "calendar_id"))
    text = await pim.export_text(session.account_id, found.id)
    return download(text, f"{found.display_name}.ics", "text/calendar; charset=utf-8")


@action
async def import_calendar(request: Request, session: WebSession, form: FormData) -> Response:
    pim = tidings(request).store.pim
    found = await pim.collection(session.account_id, path_id(request, "calendar_id"))
    try:
        text = await uploaded_text(form)
        if not text.strip():
            raise InvalidObject("choose an .ics file to import")
        result = await pim.import_text(session.account_id, found.id, text)
    except (InvalidObject, ValueError, StoreError) as error:
        if isinstance(error, NotFound):
            raise
        return RedirectResponse(f"/calendar?cal={found.id}&notice=import-failed", status_code=303)
    counts = f"added={result.added}&updated={result.updated}&failed={len(result.failed)}"
    return RedirectResponse(f"/calendar?cal={found.id}&view=agenda&notice=imported&{counts}", status_code=303)


@action
async def share_calendar(request: Request, session: WebSession, form: FormData) -> Response:
    """Share a calendar (or a journal: a calendar of VJOURNALs) with someone or the domain."""
    calendar_id = path_id(request, "calendar_id")
    refused = await share_collection(tidings(request).store, session.account_id, calendar_id, form)
    if refused:
        raise StoreError(refused)
    return RedirectResponse(
        safe_next(str(form.get("back", "")), f"/calendar?cal={calendar_id}"), status_code=303
    )


routes = [
    Route("/calendar", show_calendar, methods=["GET"]),
    Route("/calendar/new", new_event, methods=["GET"]),
    Route("/calendar/new", create_event, methods=["POST"]),
    Route("/calendar/calendars", create_calendar, methods=["POST"]),
    Route("/calendar/event/{event_id:int}", show_event, methods=["GET"]),
    Route("/calendar/event/{event_id:int}", save_event, methods=["POST"]),
    Route("/calendar/event/{event_id:int}/instance", save_instance, methods=["POST"]),
    Route("/calendar/event/{event_id:int}/cancel", cancel_occurrence, methods=["POST"]),
    Route("/calendar/event/{event_id:int}/delete", delete_event, methods=["POST"]),
    Route("/calendar/{calendar_id:int}/export", export_calendar, methods=["GET"]),
    Route("/calendar/{calendar_id:int}/import", import_calendar, methods=["POST"]),
    Route("/calendar/{calendar_id:int}/delete", delete_calendar, methods=["POST"]),
    Route("/calendar/{calendar_id:int}/share", share_calendar, methods=["POST"]),
]
