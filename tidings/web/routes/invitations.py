"""Invitations (iTIP over iMIP, RFC 5546/6047) in the web client.

- `POST /mail/<mailbox>/<uid>/invitation`: answer the invitation a message carries (Accept,
  Tentative, Decline): the event goes into the reader's default calendar with that PARTSTAT and
  the REPLY is mailed to the organiser. Only for a REQUEST whose From: is its ORGANIZER and that
  names the reader as an attendee.
- `GET/POST /calendar/invite`: a new event with attendees, with the free/busy of the attendees
  who are colleagues (same domain) for its day; saving mails the REQUEST.
- `GET/POST /calendar/event/<id>/attendees`: who is invited to an event and what they answered;
  changing the list mails a REQUEST to everyone still invited (SEQUENCE raised) and a CANCEL to
  those taken off. Only the organiser's copy is edited here; an attendee's copy is read-only.

The store decides ownership (`session.account_id` on every call); iTIP rules are pim/itip.py's.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from urllib.parse import urlencode

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from tidings.pim import InvalidObject, itip
from tidings.pim.events import REPEATS, Event, zone
from tidings.store import NotFound, StoreError
from tidings.store.web_sessions import WebSession
from tidings.web import invitations
from tidings.web.routes.message import load
from tidings.web.session import action, page, tidings
from tidings.web.templating import render

# -- answering an invitation ----------------------------------------------------------------


@action
async def answer(request: Request, session: WebSession, form: FormData) -> Response:
    store, ref, raw, summary = await load(request, session)
    mailbox_id = request.path_params["mailbox_id"]
    back = f"/mail/{mailbox_id}/{ref.uid}"
    partstat = str(form.get("answer", "")).upper()
    if partstat not in itip.ANSWERS:
        return RedirectResponse(back, status_code=303)
    view = await invitations.invitation_of(store, session.account_id, raw, summary)
    if view is None or not view.can_answer:
        return RedirectResponse(back + "?" + urlencode({"invitation": "refused"}), status_code=303)
    try:
        _, reply = await store.scheduling.answer_invitation(session.account_id, view.message.text, partstat)
        await invitations.send(
            store, tidings(request).config, session.account_id, reply, [view.message.organizer]
        )
    except (itip.Refused, InvalidObject, StoreError) as refused:
        return RedirectResponse(back + "?" + urlencode({"invitation": str(refused)[:200]}), status_code=303)
    return RedirectResponse(back + "?" + urlencode({"invitation": partstat.lower()}), status_code=303)


# -- the organiser's pages ----------------------------------------------------------------------


def _local(value: str, tz_name: str) -> datetime:
    try:
        naive = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidObject(f"not a date and time: {value[:40]!r}") from None
    return naive.replace(tzinfo=zone(tz_name)) if naive.tzinfo is None else naive


async def _busy_bars(request: Request, session: WebSession, addresses: list[str], day: date, tz_name: str):
    store = tidings(request).store
    day_start = datetime.combine(day, datetime.min.time()).replace(tzinfo=zone(tz_name))
    busy = await store.scheduling.busy(
        session.account_id, addresses, day_start, day_start + timedelta(days=1)
    )
    return invitations.day_bars(busy, day_start)


def _form_values(source) -> dict:
    now = datetime.now().replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    get = lambda name, default="": str(source.get(name, default))[: invitations.MAX_ATTENDEE_TEXT]  # noqa: E731
    return {
        "title": get("title")[:500],
        "start": get("start", now.strftime("%Y-%m-%dT%H:%M"))[:20],
        "end": get("end", (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))[:20],
        "timezone": get("timezone", "UTC")[:64] or "UTC",
        "repeat": get("repeat") if get("repeat") in REPEATS else "",
        "count": get("count")[:4],
        "location": get("location")[:500],
        "attendees": get("attendees"),
    }


async def _invite_page(request: Request, session: WebSession, values: dict, error: str = "") -> Response:
    addresses = invitations.parse_attendees(values["attendees"])
    bars, day = [], None
    try:
        day = _local(values["start"], values["timezone"]).date()
        bars = await _busy_bars(request, session, addresses, day, values["timezone"])
    except InvalidObject as bad:
        error = error or str(bad)
    return render(
        request,
        "calendar/invite.html",
        area="calendar",
        title="Invite",
        values=values,
        repeats=REPEATS,
        bars=bars,
        day=day,
        error=error,
        status_code=400 if error else 200,
    )


@page
async def invite_form(request: Request, session: WebSession) -> Response:
    return await _invite_page(request, session, _form_values(request.query_params))


@action
async def create_invitation(request: Request, session: WebSession, form: FormData) -> Response:
    store = tidings(request).store
    values = _form_values(form)
    addresses = invitations.parse_attendees(values["attendees"])
    try:
        if not addresses:
            raise InvalidObject("add at least one attendee")
        event = Event(
            title=values["title"],
            start=_local(values["start"], values["timezone"]).replace(tzinfo=None),
            end=_local(values["end"], values["timezone"]).replace(tzinfo=None),
            timezone=values["timezone"],
            location=values["location"],
            repeat=values["repeat"],
            count=int(values["count"]) if values["count"].isdigit() else None,
        )
        account = await store.accounts.get_user_by_id(session.account_id)
        text = itip.set_attendees(event.to_calendar(), account.address, addresses)
        calendar = await store.pim.default_collection(session.account_id, "calendar")
        stored = await store.pim.put(session.account_id, calendar.id, None, text)
        await invitations.send(
            store, tidings(request).config, session.account_id, itip.make_request(text), addresses
        )
    except (InvalidObject, StoreError, ValueError) as refused:
        return await _invite_page(request, session, values, str(refused))
    return RedirectResponse(f"/calendar/event/{stored.id}/attendees", status_code=303)


@page
async def show_attendees(request: Request, session: WebSession) -> Response:
    store = tidings(request).store
    found = await store.pim.object(session.account_id, request.path_params["event_id"])
    if found.component != "VEVENT":
        raise NotFound("not an event")
    return await _attendees_page(request, session, found)


async def _attendees_page(request: Request, session: WebSession, found, error: str = "") -> Response:
    store = tidings(request).store
    account = await store.accounts.get_user_by_id(session.account_id)
    organiser, people = itip.scheduling_of(found.data or "")
    mine = {a.lower() for a in await store.accounts.senders_allowed(account)}
    event = Event.from_calendar(found.data or "")
    tz_name = event.timezone
    day = (
        event.start
        if isinstance(event.start, date) and not isinstance(event.start, datetime)
        else event.start.date()
    )
    bars = await _busy_bars(request, session, [p.address for p in people], day, tz_name)
    return render(
        request,
        "calendar/attendees.html",
        area="calendar",
        title=event.title or "Event",
        found=found,
        event=event,
        organiser=organiser,
        people=people,
        is_organiser=not organiser or organiser in mine,
        cancelled=itip.is_cancelled(found.data or ""),
        bars=bars,
        day=day,
        error=error,
        status_code=400 if error else 200,
    )


@action
async def save_attendees(request: Request, session: WebSession, form: FormData) -> Response:
    store = tidings(request).store
    found = await store.pim.object(session.account_id, request.path_params["event_id"])
    if found.component != "VEVENT":
        raise NotFound("not an event")
    account = await store.accounts.get_user_by_id(session.account_id)
    mine = {a.lower() for a in await store.accounts.senders_allowed(account)}
    organiser, people = itip.scheduling_of(found.data or "")
    if organiser and organiser not in mine:
        return await _attendees_page(request, session, found, "Only the organiser changes who is invited.")
    wanted = invitations.parse_attendees(str(form.get("attendees", "")))
    removed = [p.address for p in people if p.address not in wanted]
    config = tidings(request).config
    try:
        text = itip.set_attendees(found.data or "", account.address, wanted)
        # The new list is a new version for the attendees (RFC 5546 2.1.4).
        edited = Event.from_calendar(text).to_calendar(existing=text)
        stored = await store.pim.put(
            session.account_id, found.collection_id, found.href, edited, if_match=found.etag
        )
        if removed and people:
            await invitations.send(
                store, config, session.account_id, itip.make_cancel(itip.cancelled(found.data or "")), removed
            )
        if wanted:
            await invitations.send(store, config, session.account_id, itip.make_request(edited), wanted)
    except (InvalidObject, StoreError) as refused:
        return await _attendees_page(request, session, found, str(refused))
    return RedirectResponse(f"/calendar/event/{stored.id}/attendees", status_code=303)


routes = [
    Route("/mail/{mailbox_id:int}/{uid:int}/invitation", answer, methods=["POST"]),
    Route("/calendar/invite", invite_form, methods=["GET"]),
    Route("/calendar/invite", create_invitation, methods=["POST"]),
    Route("/calendar/event/{event_id:int}/attendees", show_attendees, methods=["GET"]),
    Route("/calendar/event/{event_id:int}/attendees", save_attendees, methods=["POST"]),
]
