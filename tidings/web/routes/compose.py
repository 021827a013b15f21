"""Compose: a new message, reply, reply to all, forward (inline or as an attachment), with
attachments, drafts saved as one writes, recipients suggested from contacts and the directory, and
send now or later (the scheduled messages listed, each cancellable).

One form does it all, and works without JavaScript: `POST /mail/compose` (multipart) with `op`
save, send, attach (its files), or remove-N (attachment N). static/compose.js adds the
conveniences: saving a few seconds after each change, uploads with a progress bar, the address
suggestions (`GET /mail/compose/suggest?q=`). The body is bounded by the submission size limit
before it is read. Drafts and sending: tidings/web/drafts.py.
"""

from __future__ import annotations

import email.utils
import time
from datetime import datetime, timedelta, timezone

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tidings.mail.compose import Attachment, Draft, forward_draft, reply_draft
from tidings.mail.headers import decoded_field, parse_header_block
from tidings.store import NotFound
from tidings.store.web_sessions import WebSession
from tidings.web import drafts
from tidings.web.routes.mail import folder_list, int_param
from tidings.web.session import action, page, tidings
from tidings.web.templating import render

# Multipart framing and the other fields, beside the attachments.
UPLOAD_SLACK = 1024 * 1024


def upload_limit(request: Request) -> int:
    return tidings(request).config.limits.message_size + UPLOAD_SLACK


def wants_json(request: Request) -> bool:
    return request.headers.get("accept", "").startswith("application/json")


async def compose_page(request: Request, session: WebSession, draft: Draft, uid: int | None, error: str = ""):
    store = tidings(request).store
    senders = await drafts.identities(store, session.account_id)
    folders = await folder_list(store, session.account_id)
    return render(
        request,
        "mail/compose.html",
        area="mail",
        title="New message" if not draft.subject else draft.subject,
        folders=folders,
        draft=draft,
        draft_uid=uid or "",
        senders=senders,
        error=error,
        max_size=tidings(request).config.limits.message_size,
        status_code=400 if error else 200,
    )


@page
async def show_compose(request: Request, session: WebSession) -> Response:
    store = tidings(request).store
    uid = int_param(request.query_params.get("draft"), 0)
    if uid:
        draft = await drafts.load_draft(store, session.account_id, uid)
    else:
        senders = await drafts.identities(store, session.account_id)
        draft = Draft(from_addr=senders[0], to=request.query_params.get("to", "")[:1000])
    return await compose_page(request, session, draft, uid or None)


def draft_from_form(form: FormData, attachments: tuple[Attachment, ...]) -> Draft:
    text = lambda name, limit=10_000: str(form.get(name, ""))[:limit]  # noqa: E731
    return Draft(
        from_addr=text("from", 320).strip(),
        to=text("to"),
        cc=text("cc"),
        bcc=text("bcc"),
        subject=text("subject", 1000).replace("\r", " ").replace("\n", " "),
        text=text("text", 5_000_000),
        in_reply_to=text("in_reply_to", 1000).strip(),
        references=text("references", 20_000).strip(),
        attachments=attachments,
    )


async def uploaded(form: FormData) -> list[Attachment]:
    out = []
    for item in form.getlist("files"):
        if isinstance(item, UploadFile) and item.filename:
            data = await item.read()
            kind = (item.content_type or "application/octet-stream").split(";")[0].strip().lower()
            if "/" not in kind:
                kind = "application/octet-stream"
            out.append(Attachment(item.filename[-150:], kind, data))
    return out


def release_time(form: FormData) -> float | None:
    """The send-later time: `send_at` (datetime-local, in the browser's zone given in minutes
    east of UTC by `tz_offset`, UTC without it), or None."""
    value = str(form.get("send_at", "")).strip()
    if not value:
        return None
    try:
        local = datetime.fromisoformat(value)
    except ValueError:
        raise drafts.SendRefused("Send later: the time cannot be read.") from None
    offset = max(-16 * 60, min(16 * 60, int_param(form.get("tz_offset"), 0)))
    return local.replace(tzinfo=timezone(timedelta(minutes=offset))).timestamp()


@action(max_body=upload_limit)
async def submit_compose(request: Request, session: WebSession, form: FormData) -> Response:
    store = tidings(request).store
    config = tidings(request).config
    account = session.account_id
    uid = int_param(form.get("draft"), 0) or None
    op = str(form.get("op", "save"))
    attachments: tuple[Attachment, ...] = ()
    if uid:
        attachments = (await drafts.load_draft(store, account, uid)).attachments
    if op.startswith("remove-"):
        index = int_param(op.partition("-")[2], -1)
        attachments = tuple(a for i, a in enumerate(attachments) if i != index)
    attachments += tuple(await uploaded(form))
    draft = draft_from_form(form, attachments)
    if sum(len(a.data) for a in attachments) * 4 // 3 > config.limits.message_size:
        error = f"Attachments are larger than the limit of {config.limits.message_size // 1048576} MB."
        if wants_json(request):
            return JSONResponse({"error": error}, status_code=413)
        return await compose_page(request, session, draft, uid, error)
    if op in ("send", "schedule"):
        try:
            release_at = release_time(form) if op == "schedule" else None
            sent = await drafts.send(store, config, account, draft, release_at)
        except drafts.SendRefused as refused:
            if wants_json(request):
                return JSONResponse({"error": str(refused)}, status_code=400)
            return await compose_page(request, session, draft, uid, str(refused))
        if uid:
            await drafts.discard_draft(store, account, uid)
        target = "/mail/scheduled" if sent.release_at else "/mail"
        if wants_json(request):
            return JSONResponse({"sent": True, "location": target})
        return RedirectResponse(target + ("?notice=scheduled" if sent.release_at else ""), status_code=303)
    if op == "discard":
        if uid:
            await drafts.discard_draft(store, account, uid)
        return RedirectResponse("/mail", status_code=303)
    new_uid = await drafts.save_draft(store, account, draft, uid, config.hostname)
    if wants_json(request):
        return JSONResponse(
            {
                "draft": new_uid,
                "saved_at": time.time(),
                "attachments": [
                    {"index": i, "name": a.filename, "type": a.content_type, "size": len(a.data)}
                    for i, a in enumerate(attachments)
                ],
            }
        )
    return RedirectResponse(f"/mail/compose?draft={new_uid}", status_code=303)


async def _original(request: Request, session: WebSession):
    store = tidings(request).store
    mailbox_id, uid = request.path_params["mailbox_id"], request.path_params["uid"]
    ref = await store.mail_views.message(session.account_id, mailbox_id, uid)
    summary = (await store.mailboxes.summaries(session.account_id, [ref])).get(ref.message_id)
    if summary is None:
        raise NotFound("no such message")
    raw = await store.mailboxes.read_blob(ref.blob_hash)
    return store, ref, raw, summary


def _identity_for(summary, senders: list[str]) -> str:
    """Answer from the address the message was sent to, when it is one of ours."""
    mine = {s.lower(): s for s in senders}
    for address in summary.to_addrs + summary.cc_addrs:
        if address.addr_spec.lower() in mine:
            return mine[address.addr_spec.lower()]
    return senders[0]


ANSWERS = ("reply", "reply-all", "forward", "forward-attached")


def answer_as(kind: str):
    """Reply / reply all / forward: a draft made from the message, then the compose page."""

    @action
    async def start(request: Request, session: WebSession, form: FormData) -> Response:
        store, ref, raw, summary = await _original(request, session)
        senders = await drafts.identities(store, session.account_id)
        from_addr = _identity_for(summary, senders)
        text = drafts.body_text(raw, summary)
        if kind in ("reply", "reply-all"):
            me = {s.lower() for s in senders}
            draft = reply_draft(summary, text, me=me, from_addr=from_addr, reply_all=kind == "reply-all")
        elif kind == "forward":
            attachments = drafts.attachments_of(raw, summary)
            draft = forward_draft(
                summary, text, raw, from_addr=from_addr, as_attachment=False, attachments=attachments
            )
        else:
            draft = forward_draft(summary, text, raw, from_addr=from_addr, as_attachment=True)
        uid = await drafts.save_draft(
            store, session.account_id, draft, None, tidings(request).config.hostname
        )
        return RedirectResponse(f"/mail/compose?draft={uid}", status_code=303)

    start.__name__ = f"start_{kind.replace('-', '_')}"
    return start


@page
async def suggest(request: Request, session: WebSession) -> Response:
    """Recipients for the address fields: contacts and groups, the domain's accounts."""
    text = request.query_params.get("q", "")[:100]
    found = await tidings(request).store.pim.suggest(session.account_id, text, 8) if len(text) >= 2 else []
    return JSONResponse(
        [
            {
                "name": s.name,
                "email": s.email,
                "source": s.source,
                "value": ", ".join(s.members) if s.members else email.utils.formataddr((s.name, s.email)),
            }
            for s in found
        ]
    )


@page
async def scheduled(request: Request, session: WebSession) -> Response:
    store = tidings(request).store
    entries = await store.queue.scheduled(session.account_id)
    rows = []
    for entry in entries:
        subject = ""
        try:
            raw = await store.mailboxes.read_blob(entry.blob_hash)
            field = parse_header_block(raw, 0, min(len(raw), 64 * 1024)).first("Subject")
            subject = decoded_field(raw, field) if field is not None else ""
        except NotFound:
            pass
        rows.append(
            {
                "id": entry.id,
                "release_at": entry.release_at,
                "subject": subject,
                "recipients": [r.address for r in entry.recipients],
            }
        )
    folders = await folder_list(store, session.account_id)
    notice = "The message will be sent at the time you chose." if request.query_params.get("notice") else ""
    return render(
        request,
        "mail/scheduled.html",
        area="mail",
        title="Scheduled",
        folders=folders,
        rows=rows,
        notice=notice,
    )


@action
async def cancel(request: Request, session: WebSession, form: FormData) -> Response:
    store = tidings(request).store
    uid = await drafts.cancel_scheduled(
        store, session.account_id, request.path_params["queue_id"], tidings(request).config.hostname
    )
    return RedirectResponse(f"/mail/compose?draft={uid}", status_code=303)


routes = [
    Route("/mail/compose", show_compose, methods=["GET"]),
    Route("/mail/compose", submit_compose, methods=["POST"]),
    Route("/mail/compose/suggest", suggest, methods=["GET"]),
    Route("/mail/scheduled", scheduled, methods=["GET"]),
    Route("/mail/scheduled/{queue_id:int}/cancel", cancel, methods=["POST"]),
    *(
        Route(f"/mail/{{mailbox_id:int}}/{{uid:int}}/{kind}", answer_as(kind), methods=["POST"])
        for kind in ANSWERS
    ),
]
