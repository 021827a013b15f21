"""Journal: dated entries with text and tags, stored as iCalendar VJOURNALs in the account's
journal collections (the default "Journal", and any other calendar of VJOURNALs, own or shared);
a list newest first with search by words and by tag, a form to write, edit and delete entries.
"""

from __future__ import annotations

from datetime import date, datetime

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from tidings.pim import InvalidObject
from tidings.pim.events import Entry
from tidings.store import NotFound, StoreError
from tidings.store.pim import CALENDAR, PreconditionFailed
from tidings.store.web_sessions import WebSession
from tidings.web.pim_pages import CHANGED_ELSEWHERE, int_param, path_id, reader_zone
from tidings.web.session import action, page, tidings
from tidings.web.templating import render

MAX_TAGS = 20


async def journals(request: Request, session: WebSession):
    found = await tidings(request).store.pim.collections(session.account_id, CALENDAR)
    return [c for c in found if "VJOURNAL" in c.components]


def tags_from(value: str) -> list[str]:
    tags = [t.strip().lstrip("#") for t in value.replace(";", ",").split(",")]
    return list(dict.fromkeys(t for t in tags if t))[:MAX_TAGS]


async def list_page(
    request: Request, session: WebSession, *, entry: Entry | None = None, error=None, status_code: int = 200
) -> Response:
    pim = tidings(request).store.pim
    books = await journals(request, session)
    wanted = int_param(request.query_params.get("j"), 0)
    current = next((j for j in books if j.id == wanted), None)
    if wanted and current is None:
        current = await pim.collection(session.account_id, wanted)  # NotFound for another's
    if current is None:
        current = next((j for j in books if j.name == "journal" and j.access == "owner"), None)
        current = current or await pim.default_collection(session.account_id, "journal")
    query = request.query_params.get("q", "").strip()[:200]
    tag = request.query_params.get("tag", "").strip()[:100]
    found = await pim.search(
        session.account_id, current.id, query, category=tag or None, component="VJOURNAL"
    )
    texts = await pim.objects(session.account_id, current.id, hrefs=[o.href for o in found], with_data=True)
    entries = []
    for obj in texts:
        try:
            entries.append((obj, Entry.from_calendar(obj.data or "")))
        except InvalidObject:
            continue
    entries.sort(key=lambda pair: (pair[1].day, pair[0].id), reverse=True)
    tagged = await pim.search(session.account_id, current.id, component="VJOURNAL", limit=1000)
    all_tags = sorted({t for o in tagged for t in o.categories}, key=str.lower)
    shares = await pim.shares(session.account_id, current.id) if current.access == "owner" else []
    return render(
        request,
        "journal/index.html",
        shares=shares,
        status_code=status_code,
        area="journal",
        title=current.display_name,
        journals=books,
        journal=current,
        entries=entries,
        query=query,
        tag=tag,
        tags=all_tags,
        draft=entry or Entry(day=datetime.now(reader_zone(request)).date()),
        error=error,
        notice={"saved": "Entry saved.", "deleted": "Entry deleted."}.get(
            request.query_params.get("notice", "")
        ),
    )


@page
async def show_journal(request: Request, session: WebSession) -> Response:
    return await list_page(request, session)


def entry_from_form(form: FormData) -> Entry:
    try:
        day = date.fromisoformat(str(form.get("day", "")))
    except ValueError:
        day = date.today()
    return Entry(
        day=day,
        title=str(form.get("title", "")).strip()[:500],
        text=str(form.get("text", "")).strip()[:100000],
        tags=tags_from(str(form.get("tags", ""))),
    )


@action
async def create_entry(request: Request, session: WebSession, form: FormData) -> Response:
    pim = tidings(request).store.pim
    journal = await pim.collection(session.account_id, int_param(form.get("journal"), 0))
    entry = entry_from_form(form)
    try:
        await pim.put(session.account_id, journal.id, None, entry.to_calendar())
    except (InvalidObject, StoreError) as error:
        if isinstance(error, NotFound):
            raise
        return await list_page(request, session, entry=entry, error=str(error), status_code=400)
    return RedirectResponse(f"/journal?j={journal.id}&notice=saved", status_code=303)


async def _entry(request: Request, session: WebSession):
    pim = tidings(request).store.pim
    obj = await pim.object(session.account_id, path_id(request, "entry_id"))
    if obj.component != "VJOURNAL":
        raise NotFound("not a journal entry")
    return obj, await pim.collection(session.account_id, obj.collection_id)


async def entry_page(request, session, obj, journal, entry, *, error=None, status_code=200) -> Response:
    return render(
        request,
        "journal/entry.html",
        status_code=status_code,
        area="journal",
        title=entry.title or entry.day.isoformat(),
        journal=journal,
        obj=obj,
        entry=entry,
        error=error,
    )


@page
async def show_entry(request: Request, session: WebSession) -> Response:
    obj, journal = await _entry(request, session)
    return await entry_page(request, session, obj, journal, Entry.from_calendar(obj.data or ""))


@action
async def save_entry(request: Request, session: WebSession, form: FormData) -> Response:
    pim = tidings(request).store.pim
    obj, journal = await _entry(request, session)
    entry = entry_from_form(form)
    try:
        text = entry.to_calendar(existing=obj.data)
        await pim.put(session.account_id, journal.id, obj.href, text, if_match=str(form.get("etag", "")))
    except PreconditionFailed:
        fresh = await pim.object(session.account_id, obj.id)
        return await entry_page(
            request,
            session,
            fresh,
            journal,
            Entry.from_calendar(fresh.data or ""),
            status_code=409,
            error=CHANGED_ELSEWHERE,
        )
    except (InvalidObject, StoreError) as error:
        if isinstance(error, NotFound):
            raise
        return await entry_page(request, session, obj, journal, entry, error=str(error), status_code=400)
    return RedirectResponse(f"/journal?j={journal.id}&notice=saved", status_code=303)


@action
async def delete_entry(request: Request, session: WebSession, form: FormData) -> Response:
    obj, journal = await _entry(request, session)
    await tidings(request).store.pim.delete_object(session.account_id, obj.id)
    return RedirectResponse(f"/journal?j={journal.id}&notice=deleted", status_code=303)


routes = [
    Route("/journal", show_journal, methods=["GET"]),
    Route("/journal/new", create_entry, methods=["POST"]),
    Route("/journal/{entry_id:int}", show_entry, methods=["GET"]),
    Route("/journal/{entry_id:int}", save_entry, methods=["POST"]),
    Route("/journal/{entry_id:int}/delete", delete_entry, methods=["POST"]),
]
