"""Contacts: address books (own and shared), the domain directory, contacts and groups to add,
edit and delete, photos, vCard import and export, and the recipient suggestions of compose.

A contact's page is its edit form; the form carries the ETag it was loaded with, so saving over
an edit made meanwhile elsewhere (another tab, a CardDAV client) is refused with a message
instead of overwriting it. Groups are vCards of kind group whose members are cards of the same
address book; `/contacts/suggest` offers them with their addresses, so compose can put a whole
group in To.
"""

from __future__ import annotations

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tidings.pim import InvalidObject
from tidings.pim.contacts import MAX_PHOTO_BYTES, PHOTO_TYPES, Contact, member_ref
from tidings.store import NotFound, StoreError
from tidings.store.pim import ADDRESSBOOK, PreconditionFailed
from tidings.store.web_sessions import WebSession
from tidings.web.pim_pages import (
    CHANGED_ELSEWHERE,
    download,
    int_param,
    path_id,
    share_collection,
    uploaded_text,
)
from tidings.web.session import action, page, safe_next, tidings
from tidings.web.templating import render

EMAIL_TYPES = ("work", "home", "other")
PHONE_TYPES = ("cell", "work", "home", "fax", "other")
# Empty rows the form offers for new addresses and numbers.
SPARE_ROWS = 2


async def books(request: Request, session: WebSession):
    return await tidings(request).store.pim.collections(session.account_id, ADDRESSBOOK)


async def book_page(request: Request, session: WebSession, book_id: int | None, **extra) -> Response:
    pim = tidings(request).store.pim
    all_books = await books(request, session)
    book = await pim.collection(session.account_id, book_id) if book_id else all_books[0]
    query = request.query_params.get("q", "").strip()
    if query:
        found = await pim.search(session.account_id, book.id, query, component="VCARD")
        found.sort(key=lambda o: (o.card_kind != "group", o.title.lower()))
    else:
        found = await pim.objects(session.account_id, book.id, component="VCARD")
        found.sort(key=lambda o: (o.card_kind != "group", o.title.lower()))
    shares = await pim.shares(session.account_id, book.id) if book.access == "owner" else []
    return render(
        request,
        "contacts/book.html",
        shares=shares,
        area="contacts",
        title=book.display_name,
        books=all_books,
        book=book,
        contacts=found,
        query=query,
        **extra,
    )


@page
async def show_default(request: Request, session: WebSession) -> Response:
    return await book_page(request, session, None)


@page
async def show_book(request: Request, session: WebSession) -> Response:
    return await book_page(request, session, path_id(request, "book_id"))


@page
async def show_directory(request: Request, session: WebSession) -> Response:
    entries = await tidings(request).store.pim.directory(session.account_id)
    query = request.query_params.get("q", "").strip().lower()
    if query:
        entries = [e for e in entries if query in e.address or query in e.name.lower()]
    return render(
        request,
        "contacts/directory.html",
        area="contacts",
        title="Directory",
        books=await books(request, session),
        entries=entries,
        query=query,
    )


def contact_from_form(form: FormData, photo: tuple[str, bytes] | None) -> Contact:
    emails = list(zip(form.getlist("email_type"), form.getlist("email"), strict=False))
    phones = list(zip(form.getlist("phone_type"), form.getlist("phone"), strict=False))
    return Contact(
        name=str(form.get("name", "")).strip(),
        given=str(form.get("given", "")).strip(),
        family=str(form.get("family", "")).strip(),
        emails=[(t if t in EMAIL_TYPES else "other", str(v).strip()) for t, v in emails if str(v).strip()],
        phones=[(t if t in PHONE_TYPES else "other", str(v).strip()) for t, v in phones if str(v).strip()],
        organisation=str(form.get("organisation", "")).strip(),
        job_title=str(form.get("job_title", "")).strip(),
        note=str(form.get("note", "")).strip(),
        photo=photo,
        is_group=form.get("is_group") == "1",
        members=[str(m) for m in form.getlist("member")],
    )


async def photo_from_form(form: FormData, current: tuple[str, bytes] | None) -> tuple[str, bytes] | None:
    if form.get("remove_photo") == "1":
        return None
    upload = form.get("photo")
    if isinstance(upload, UploadFile) and upload.filename:
        data = await upload.read(MAX_PHOTO_BYTES + 1)
        if len(data) > MAX_PHOTO_BYTES:
            raise InvalidObject(f"a photo is at most {MAX_PHOTO_BYTES // 1024} KiB")
        mime = (upload.content_type or "").split(";")[0].strip().lower()
        if mime not in PHOTO_TYPES:
            raise InvalidObject("a photo is a JPEG, PNG, GIF or WebP picture")
        return mime, data
    return current


async def members_of_book(request: Request, session: WebSession, book_id: int):
    """The individual contacts a group of this book can hold."""
    found = await tidings(request).store.pim.objects(session.account_id, book_id, component="VCARD")
    return [o for o in found if o.card_kind != "group"]


async def form_page(
    request: Request,
    session: WebSession,
    book,
    contact: Contact,
    *,
    obj=None,
    error: str | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    candidates = await members_of_book(request, session, book.id) if contact.is_group else []
    return render(
        request,
        "contacts/contact.html",
        status_code=status_code,
        area="contacts",
        title=contact.label or ("New group" if contact.is_group else "New contact"),
        books=await books(request, session),
        book=book,
        contact=contact,
        obj=obj,
        error=error,
        notice=notice,
        candidates=[(member_ref(o.uid), o.title, o.emails) for o in candidates],
        email_rows=contact.emails + [("work", "")] * SPARE_ROWS,
        phone_rows=contact.phones + [("cell", "")] * SPARE_ROWS,
        email_types=EMAIL_TYPES,
        phone_types=PHONE_TYPES,
    )


@page
async def new_contact(request: Request, session: WebSession) -> Response:
    book = await tidings(request).store.pim.collection(session.account_id, path_id(request, "book_id"))
    return await form_page(request, session, book, Contact(is_group=request.query_params.get("group") == "1"))


@action
async def create_contact(request: Request, session: WebSession, form: FormData) -> Response:
    pim = tidings(request).store.pim
    book = await pim.collection(session.account_id, path_id(request, "book_id"))
    contact = contact_from_form(form, None)
    try:
        contact.photo = await photo_from_form(form, None)
        stored = await pim.put(session.account_id, book.id, None, contact.to_card())
    except (InvalidObject, StoreError) as error:
        if isinstance(error, NotFound):
            raise
        return await form_page(request, session, book, contact, error=str(error), status_code=400)
    return RedirectResponse(f"/contacts/{stored.id}?saved=1", status_code=303)


@page
async def show_contact(request: Request, session: WebSession) -> Response:
    pim = tidings(request).store.pim
    obj = await pim.object(session.account_id, path_id(request, "contact_id"))
    if obj.component != "VCARD":
        raise NotFound("not a contact")
    book = await pim.collection(session.account_id, obj.collection_id)
    notice = "Saved." if request.query_params.get("saved") else None
    return await _show(request, session, book, obj, notice=notice)


async def _show(request, session, book, obj, *, error=None, notice=None, status_code=200) -> Response:
    try:
        contact = Contact.from_card(obj.data or "")
    except InvalidObject as problem:
        return render(
            request, "error.html", status_code=500, title="Unreadable contact", message=str(problem)
        )
    return await form_page(
        request, session, book, contact, obj=obj, error=error, notice=notice, status_code=status_code
    )


@action
async def save_contact(request: Request, session: WebSession, form: FormData) -> Response:
    pim = tidings(request).store.pim
    obj = await pim.object(session.account_id, path_id(request, "contact_id"))
    book = await pim.collection(session.account_id, obj.collection_id)
    current = Contact.from_card(obj.data or "")
    contact = contact_from_form(form, None)
    contact.is_group = current.is_group
    try:
        contact.photo = await photo_from_form(form, current.photo)
        text = contact.to_card(existing=obj.data)
        await pim.put(session.account_id, book.id, obj.href, text, if_match=str(form.get("etag", "")))
    except PreconditionFailed:
        fresh = await pim.object(session.account_id, obj.id)
        return await _show(
            request,
            session,
            book,
            fresh,
            error=CHANGED_ELSEWHERE,
            status_code=409,
        )
    except (InvalidObject, StoreError) as error:
        if isinstance(error, NotFound):
            raise
        return await form_page(request, session, book, contact, obj=obj, error=str(error), status_code=400)
    return RedirectResponse(f"/contacts/{obj.id}?saved=1", status_code=303)


@action
async def delete_contact(request: Request, session: WebSession, form: FormData) -> Response:
    pim = tidings(request).store.pim
    obj = await pim.object(session.account_id, path_id(request, "contact_id"))
    await pim.delete_object(session.account_id, obj.id)
    return RedirectResponse(f"/contacts/book/{obj.collection_id}", status_code=303)


@page
async def contact_photo(request: Request, session: WebSession) -> Response:
    obj = await tidings(request).store.pim.object(session.account_id, path_id(request, "contact_id"))
    if obj.component != "VCARD":
        raise NotFound("not a contact")
    photo = Contact.from_card(obj.data or "").photo
    if photo is None or photo[0] not in PHOTO_TYPES:
        raise NotFound("no photo")
    return Response(photo[1], media_type=photo[0], headers={"Cache-Control": "private, max-age=300"})


@page
async def export_book(request: Request, session: WebSession) -> Response:
    pim = tidings(request).store.pim
    book = await pim.collection(session.account_id, path_id(request, "book_id"))
    version = request.query_params.get("version", "3.0")
    version = version if version in ("3.0", "4.0") else "3.0"
    text = await pim.export_text(session.account_id, book.id, version)
    return download(text, f"{book.display_name}.vcf", "text/vcard; charset=utf-8")


@action
async def import_book(request: Request, session: WebSession, form: FormData) -> Response:
    pim = tidings(request).store.pim
    book = await pim.collection(session.account_id, path_id(request, "book_id"))
    try:
        text = await uploaded_text(form)
        if not text.strip():
            raise InvalidObject("choose a .vcf file to import")
        result = await pim.import_text(session.account_id, book.id, text)
    except (InvalidObject, ValueError) as error:
        return await book_page(request, session, book.id, error=str(error))
    message = f"Imported {result.added} new and {result.updated} updated contacts."
    if result.failed:
        message += f" {len(result.failed)} could not be read: {result.failed[0]}"
    return await book_page(request, session, book.id, notice=message)


@action
async def create_book(request: Request, session: WebSession, form: FormData) -> Response:
    name = str(form.get("name", "")).strip()
    if not name:
        return RedirectResponse("/contacts", status_code=303)
    book = await tidings(request).store.pim.create_collection(session.account_id, ADDRESSBOOK, name)
    return RedirectResponse(f"/contacts/book/{book.id}", status_code=303)


@action
async def delete_book(request: Request, session: WebSession, form: FormData) -> Response:
    await tidings(request).store.pim.delete_collection(session.account_id, path_id(request, "book_id"))
    return RedirectResponse("/contacts", status_code=303)


@action
async def share_book(request: Request, session: WebSession, form: FormData) -> Response:
    book_id = path_id(request, "book_id")
    refused = await share_collection(tidings(request).store, session.account_id, book_id, form)
    if refused:
        raise StoreError(refused)
    return RedirectResponse(
        safe_next(str(form.get("back", "")), f"/contacts/book/{book_id}"), status_code=303
    )


@page
async def suggest(request: Request, session: WebSession) -> Response:
    """Recipients for compose: [{"name", "email", "source", "addresses"}], JSON.
    A group's `addresses` are its members' (put them all in To)."""
    pim = tidings(request).store.pim
    query = request.query_params.get("q", "")[:100]
    limit = max(1, min(int_param(request.query_params.get("limit"), 10), 25))
    out = []
    for found in await pim.suggest(session.account_id, query, limit):
        addresses = [found.email] if found.email else []
        if found.source == "group" and found.object_id is not None:
            addresses = await pim.group_addresses(session.account_id, found.object_id)
        out.append({"name": found.name, "email": found.email, "source": found.source, "addresses": addresses})
    return JSONResponse(out, headers={"Cache-Control": "no-store"})


routes = [
    Route("/contacts", show_default, methods=["GET"]),
    Route("/contacts/directory", show_directory, methods=["GET"]),
    Route("/contacts/suggest", suggest, methods=["GET"]),
    Route("/contacts/books", create_book, methods=["POST"]),
    Route("/contacts/book/{book_id:int}", show_book, methods=["GET"]),
    Route("/contacts/book/{book_id:int}/new", new_contact, methods=["GET"]),
    Route("/contacts/book/{book_id:int}/new", create_contact, methods=["POST"]),
    Route("/contacts/book/{book_id:int}/export", export_book, methods=["GET"]),
    Route("/contacts/book/{book_id:int}/import", import_book, methods=["POST"]),
    Route("/contacts/book/{book_id:int}/delete", delete_book, methods=["POST"]),
    Route("/contacts/book/{book_id:int}/share", share_book, methods=["POST"]),
    Route("/contacts/{contact_id:int}", show_contact, methods=["GET"]),
    Route("/contacts/{contact_id:int}", save_contact, methods=["POST"]),
    Route("/contacts/{contact_id:int}/photo", contact_photo, methods=["GET"]),
    Route("/contacts/{contact_id:int}/delete", delete_contact, methods=["POST"]),
]
