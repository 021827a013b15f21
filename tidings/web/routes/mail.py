"""Mail: the folder list, a mailbox's message list (sorted, paged), actions on selected messages
(read/unread, flag, move, delete to Trash) and managing folders (create, rename, delete).

Every store call names the session's account; the store answers NotFound for another account's
mailbox, which the app turns into 404. Actions are plain HTML forms (they work without
JavaScript) and redirect back to the page they came from.
"""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from tidings.store import NotFound, StoreError
from tidings.store.cache import LruCache
from tidings.store.web_sessions import WebSession
from tidings.web import listing
from tidings.web.session import action, page, safe_next, tidings
from tidings.web.templating import render

MAX_SELECTED = 5000
COUNTS_CACHED = 10_000


# A mailbox's counts by its object id (random per mailbox, never reused): (HIGHESTMODSEQ,
# (messages, unseen)). Every change to a mailbox's messages raises its HIGHESTMODSEQ, so counts
# read at the same value are still right: the folder list on every page costs one query when
# nothing changed, and two index-only counts for all the account's folders when something did.
_counts: LruCache[str, tuple[int, tuple[int, int]]] = LruCache(COUNTS_CACHED)


async def folder_list(store, account_id: int) -> list[listing.Folder]:
    boxes = await store.mailboxes.list(account_id)
    cached = [_counts.get(box.object_id) for box in boxes]
    if any(entry is None or entry[0] != box.highestmodseq for box, entry in zip(boxes, cached, strict=True)):
        # Read after the list: counts as new as the HIGHESTMODSEQ they are kept under, or newer
        # (then that value has gone up meanwhile, and the next page reads them again).
        counts = await store.mail_views.counts(account_id)
        for box in boxes:
            _counts.put(box.object_id, (box.highestmodseq, counts.get(box.id, (0, 0))))
        cached = [_counts.get(box.object_id) for box in boxes]
    return listing.folders([(box, *entry[1]) for box, entry in zip(boxes, cached, strict=True)])


def int_param(value, default: int = 0) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default


async def mailbox_page(request: Request, session: WebSession, mailbox_id: int) -> dict:
    """What the mailbox templates need: folders, the mailbox, one page of its messages (or of its
    conversations, `?view=threads`). Only the page is read from the store, however big the
    mailbox (its size comes with the folder list's counts)."""
    store = tidings(request).store
    account = session.account_id
    folders = await folder_list(store, account)
    current = next((f for f in folders if f.id == mailbox_id), None)
    if current is None:
        raise NotFound("no such mailbox")
    threads = request.query_params.get("view") == "threads"
    sort, descending = listing.parse_sort(request.query_params.get("sort"))
    number = max(1, int_param(request.query_params.get("page"), 1))
    views = store.mail_views
    if threads:
        sort, descending = "date", True  # conversations come newest first
        total, groups = await store.mail_threads.page(
            account, mailbox_id, (number - 1) * listing.PAGE_SIZE, listing.PAGE_SIZE
        )
        if number > listing.page_count(total):
            number = listing.page_count(total)
            total, groups = await store.mail_threads.page(
                account, mailbox_id, (number - 1) * listing.PAGE_SIZE, listing.PAGE_SIZE
            )
        by_uid = {
            ref.uid: ref for ref in await views.messages(account, mailbox_id, [g.newest_uid for g in groups])
        }
        shown = [(by_uid[g.newest_uid], g.messages, g.thread_id) for g in groups if g.newest_uid in by_uid]
    else:
        total = current.messages
        number = listing.clamp_page(number, total)
        offset = (number - 1) * listing.PAGE_SIZE
        refs = await views.page(account, mailbox_id, sort, descending, offset, listing.PAGE_SIZE)
        shown = [(ref, 1, None) for ref in refs]
    summaries = await store.mailboxes.summaries(account, [ref for ref, _, _ in shown])
    rows = [listing.make_row(ref, summaries.get(ref.message_id), *more) for ref, *more in shown]
    sort_param = ("-" if descending else "") + sort
    return {
        "area": "mail",
        "folders": folders,
        "mailbox": current,
        "folder": current,
        "title": current.label,
        "page": listing.Page(rows, number, listing.page_count(total), total, sort, descending),
        "sort_param": sort_param,
        "threads": threads,
        "list_query": f"sort={sort_param}" + ("&view=threads" if threads else ""),
    }


@page
async def inbox(request: Request, session: WebSession) -> Response:
    box = await tidings(request).store.mailboxes.get(session.account_id, "INBOX")
    return RedirectResponse(f"/mail/{box.id}", status_code=303)


@page
async def show_mailbox(request: Request, session: WebSession) -> Response:
    context = await mailbox_page(request, session, request.path_params["mailbox_id"])
    return render(request, "mail/mailbox.html", **context)


@page
async def mailbox_fragment(request: Request, session: WebSession) -> Response:
    """The folder list and the message list alone, for live updates (tidings.js)."""
    context = await mailbox_page(request, session, request.path_params["mailbox_id"])
    return render(request, "mail/fragment.html", **context)


def selected_uids(form: FormData) -> list[int]:
    uids = []
    for value in form.getlist("uid")[:MAX_SELECTED]:
        uid = int_param(value, -1)
        if uid > 0:
            uids.append(uid)
    return uids


async def special_mailbox(store, account_id: int, special_use: str):
    for box in await store.mailboxes.list(account_id):
        if box.special_use == special_use:
            return box
    return None


async def apply(store, account_id: int, mailbox_id: int, op: str, uids: list[int], form: FormData) -> None:
    """One action on messages of the account's mailbox (ownership checked by the store)."""
    boxes = store.mailboxes
    if op in ("read", "unread", "flag", "unflag"):
        flag = "\\Seen" if op in ("read", "unread") else "\\Flagged"
        mode = "add" if op in ("read", "flag") else "remove"
        await boxes.store_flags(account_id, mailbox_id, uids, mode, [flag])
    elif op == "move":
        target = int_param(form.get("target"), 0)
        if target > 0 and target != mailbox_id:  # 0: "Move to…" left unchosen
            await boxes.copy(account_id, mailbox_id, uids, target, move=True)
    elif op in ("delete", "archive", "junk"):
        special = {"delete": "\\Trash", "archive": "\\Archive", "junk": "\\Junk"}[op]
        target = await special_mailbox(store, account_id, special)
        if target is None and op != "delete":
            raise StoreError(f"there is no {special.lstrip(chr(92))} folder")
        if target is None or target.id == mailbox_id:
            # Deleting in Trash (or without one) deletes for good.
            await boxes.store_flags(account_id, mailbox_id, uids, "add", ["\\Deleted"])
            await boxes.expunge(account_id, mailbox_id, uids)
        else:
            await boxes.copy(account_id, mailbox_id, uids, target.id, move=True)
    else:
        raise StoreError(f"unknown action {op!r}")


@action
async def act_on_messages(request: Request, session: WebSession, form: FormData) -> Response:
    mailbox_id = request.path_params["mailbox_id"]
    store = tidings(request).store
    await store.mailboxes.get_by_id(session.account_id, mailbox_id)  # 404 before anything else
    uids = selected_uids(form)
    for thread in form.getlist("thread")[:MAX_SELECTED]:  # whole conversations
        if int_param(thread, -1) > 0:
            uids += await store.mail_threads.uids(session.account_id, mailbox_id, int_param(thread))
    if uids:
        await apply(store, session.account_id, mailbox_id, str(form.get("op", "")), uids, form)
    back = safe_next(str(form.get("back", "")), f"/mail/{mailbox_id}")
    if request.headers.get("accept", "").startswith("application/json"):
        return Response(status_code=204)
    return RedirectResponse(back, status_code=303)


# -- folders -----------------------------------------------------------------------------------


@page
async def manage_folders(request: Request, session: WebSession) -> Response:
    folders = await folder_list(tidings(request).store, session.account_id)
    error = request.query_params.get("error", "")[:200]
    return render(request, "mail/folders.html", area="mail", title="Folders", folders=folders, error=error)


def back_to_folders(error: str = "") -> RedirectResponse:
    from urllib.parse import quote

    return RedirectResponse("/mail/folders" + (f"?error={quote(error)}" if error else ""), status_code=303)


@action
async def create_folder(request: Request, session: WebSession, form: FormData) -> Response:
    store = tidings(request).store
    name = str(form.get("name", "")).strip()
    parent_id = int_param(form.get("parent"), 0)
    try:
        if parent_id:
            parent = await store.mailboxes.get_by_id(session.account_id, parent_id)
            name = f"{parent.name}/{name}"
        await store.mailboxes.create(session.account_id, name)
    except NotFound:
        raise
    except StoreError as refused:
        return back_to_folders(str(refused))
    return back_to_folders()


@action
async def rename_folder(request: Request, session: WebSession, form: FormData) -> Response:
    store = tidings(request).store
    box = await store.mailboxes.get_by_id(session.account_id, request.path_params["mailbox_id"])
    new = str(form.get("name", "")).strip()
    if box.name == "INBOX":
        return back_to_folders("The inbox cannot be renamed here.")
    try:
        await store.mailboxes.rename(session.account_id, box.name, new)
    except NotFound:
        raise
    except StoreError as refused:
        return back_to_folders(str(refused))
    return back_to_folders()


@action
async def delete_folder(request: Request, session: WebSession, form: FormData) -> Response:
    store = tidings(request).store
    box = await store.mailboxes.get_by_id(session.account_id, request.path_params["mailbox_id"])
    try:
        await store.mailboxes.delete(session.account_id, box.name)
    except NotFound:
        raise
    except StoreError as refused:
        return back_to_folders(str(refused))
    return back_to_folders()


routes = [
    Route("/mail", inbox, methods=["GET"]),
    Route("/mail/folders", manage_folders, methods=["GET"]),
    Route("/mail/folders", create_folder, methods=["POST"]),
    Route("/mail/folders/{mailbox_id:int}/rename", rename_folder, methods=["POST"]),
    Route("/mail/folders/{mailbox_id:int}/delete", delete_folder, methods=["POST"]),
    Route("/mail/{mailbox_id:int}", show_mailbox, methods=["GET"]),
    Route("/mail/{mailbox_id:int}/fragment", mailbox_fragment, methods=["GET"]),
    Route("/mail/{mailbox_id:int}/act", act_on_messages, methods=["POST"]),
]
