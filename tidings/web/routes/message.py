"""Reading one message: its page (header fields, text body or the frame of its HTML body,
attachments), the HTML body itself, and its parts for download or preview.

The HTML body is served alone (`/body`) into an `<iframe sandbox>`, with its own policy
`Content-Security-Policy: sandbox`: no script runs even if one got past the sanitiser, the frame
has an origin of its own (it cannot read the web client's cookies or pages), and it may load no
image but our placeholder until the reader asks to see images for this message (`?images=1`).
Parts are served as attachments (Content-Disposition with a safe name) of a type the browser
cannot run; only images, PDF and plain text may be shown inline, each under a policy that
forbids scripts.
"""

from __future__ import annotations

import base64
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tidings.mail.sections import decode_section_binary, find_part
from tidings.store import NotFound
from tidings.store.web_sessions import WebSession
from tidings.web import invitations, listing, mailview
from tidings.web.routes.mail import folder_list
from tidings.web.sanitise import sanitise
from tidings.web.session import page, tidings
from tidings.web.templating import environment, render

BODY_POLICY = (
    "sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none'; "
    "style-src 'unsafe-inline'; img-src 'self' data:{remote}; frame-ancestors 'self'; "
    "form-action 'none'; base-uri 'none'"
)
PART_POLICY = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"
BODY_DOCUMENT = environment.get_template("mail/body.html")
INLINE_IMAGES_BYTES = 8 * 1024 * 1024  # cid: images embedded in one body, at most


async def load(request: Request, session: WebSession):
    """(store, ref, raw, summary) of the message the path names, or NotFound (-> 404)."""
    store = tidings(request).store
    mailbox_id, uid = request.path_params["mailbox_id"], request.path_params["uid"]
    ref = await store.mail_views.message(session.account_id, mailbox_id, uid)
    summaries = await store.mailboxes.summaries(session.account_id, [ref])
    summary = summaries.get(ref.message_id)
    if summary is None:
        raise NotFound("no such message")
    raw = await store.mailboxes.read_blob(ref.blob_hash)
    return store, ref, raw, summary


@page
async def show_message(request: Request, session: WebSession) -> Response:
    store, ref, raw, summary = await load(request, session)
    mailbox_id = request.path_params["mailbox_id"]
    box = await store.mailboxes.get_by_id(session.account_id, mailbox_id)
    if "\\Seen" not in ref.flags:
        await store.mailboxes.store_flags(session.account_id, mailbox_id, [ref.uid], "add", ["\\Seen"])
    message = mailview.view(raw, summary)
    folders = await folder_list(store, session.account_id)
    conversation = await conversation_of(store, session.account_id, mailbox_id, ref)
    # An invitation, answer or cancellation it carries (routes/invitations.py answers it).
    invitation = await invitations.invitation_of(store, session.account_id, raw, summary)
    return render(
        request,
        "mail/message.html",
        area="mail",
        title=summary.subject or "(no subject)",
        folders=folders,
        mailbox=box,
        folder=next((f for f in folders if f.id == box.id), None),
        ref=ref,
        summary=summary,
        message=message,
        images=request.query_params.get("images") == "1",
        flagged="\\Flagged" in ref.flags,
        back=safe_back(request.query_params.get("back"), mailbox_id),
        conversation=conversation,
        invitation=invitation,
        notice=_invitation_notice(request.query_params.get("invitation")),
    )


def _invitation_notice(value: str | None) -> str:
    if not value:
        return ""
    if value in ("accepted", "tentative", "declined"):
        return f"Your answer ({value}) is in your calendar and on its way to the organiser."
    return f"The invitation was not answered: {value[:200]}"


MAX_CONVERSATION = 100


async def conversation_of(store, account_id: int, mailbox_id: int, ref) -> list[tuple]:
    """The other messages of `ref`'s conversation in this mailbox, as (uid, sender, date, is this
    one), oldest first; [] when it is alone."""
    thread = (await store.threads.thread_ids(account_id, [ref])).get(ref.message_id)
    if thread is None:
        return []
    uids = await store.mail_threads.uids(account_id, mailbox_id, thread)
    if len(uids) < 2:
        return []
    members = await store.mail_views.messages(account_id, mailbox_id, uids[-MAX_CONVERSATION:])
    summaries = await store.mailboxes.summaries(account_id, members)
    out = []
    for member in members:
        row = listing.make_row(member, summaries.get(member.message_id))
        out.append((member.uid, row.sender or "(unknown sender)", row.date, member.uid == ref.uid))
    return out


def safe_back(value: str | None, mailbox_id: int) -> str:
    default = f"/mail/{mailbox_id}"
    if value and value.startswith(default) and "//" not in value:
        return value
    return default


@page
async def message_body(request: Request, session: WebSession) -> Response:
    _, ref, raw, summary = await load(request, session)
    message = mailview.view(raw, summary)
    if message.html_section is None:
        raise NotFound("no HTML body")
    part = find_part(summary, message.html_section)
    images = request.query_params.get("images") == "1"
    budget = [INLINE_IMAGES_BYTES]

    def inline_url(cid: str) -> str | None:
        """A `cid:` image of this message, as a data: URL. Not a URL of ours: the sandboxed frame
        has an origin of its own, so the browser would not send the session cookie with it."""
        section = message.content_ids.get(cid.strip("<>"))
        part = find_part(summary, section) if section else None
        if part is None or part.content_type not in mailview.IMAGE_PREVIEW or part.size > budget[0]:
            return None
        data = mailview.decode_part(raw, part)
        budget[0] -= len(data)
        return f"data:{part.content_type};base64,{base64.b64encode(data).decode('ascii')}"

    html, remote = sanitise(mailview.part_text(raw, part), images=images, inline_url=inline_url)
    document = BODY_DOCUMENT.render(body=html)
    policy = BODY_POLICY.format(remote=" https: http:" if images else "")
    return Response(
        document,
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": policy, "X-Remote-Images": str(remote)},
    )


@page
async def message_part(request: Request, session: WebSession) -> Response:
    _, ref, raw, summary = await load(request, session)
    section = request.path_params["section"]
    part = find_part(summary, section)
    if part is None or part.is_multipart:
        raise NotFound("no such part")
    data = decode_section_binary(raw, summary, section)
    if data is None:
        data = raw[part.body_start : part.end]
    name = mailview.safe_filename(part.filename or mailview.default_filename(part))
    inline = request.query_params.get("inline") == "1" and part.content_type in mailview.INLINE_TYPES
    media_type = part.content_type if inline else "application/octet-stream"
    if inline and part.content_type == "text/plain":
        data = mailview.part_text(raw, part).encode("utf-8")
        media_type = "text/plain; charset=utf-8"
    disposition = "inline" if inline else "attachment"
    ascii_name = name.encode("ascii", "replace").decode("ascii").replace("?", "_")
    headers = {
        "Content-Disposition": f"{disposition}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}",
    }
    if part.content_type != "application/pdf" or not inline:
        headers["Content-Security-Policy"] = PART_POLICY
    return Response(data, media_type=media_type, headers=headers)


@page
async def message_source(request: Request, session: WebSession) -> Response:
    """The message as stored, as a file (to save it or open it in another program)."""
    _, ref, raw, _summary = await load(request, session)
    return Response(
        raw,
        media_type="message/rfc822",
        headers={
            "Content-Disposition": f'attachment; filename="message-{ref.uid}.eml"',
            "Content-Security-Policy": PART_POLICY,
        },
    )


routes = [
    Route("/mail/{mailbox_id:int}/{uid:int}", show_message, methods=["GET"]),
    Route("/mail/{mailbox_id:int}/{uid:int}/body", message_body, methods=["GET"]),
    Route("/mail/{mailbox_id:int}/{uid:int}/part/{section}", message_part, methods=["GET"]),
    Route("/mail/{mailbox_id:int}/{uid:int}/source", message_source, methods=["GET"]),
]
