"""Compose's work with the store: drafts kept in the account's Drafts mailbox, and sending.

A draft is a message in Drafts (flags \\Draft \\Seen), saved through the same APPEND path IMAP
uses; every save appends the new version and removes the one before, so the draft's UID changes
and the page carries the latest. Attachments live in the draft itself: an upload is a save with
more parts, and nothing waits in temporary files between requests.

Sending takes the route SMTP submission takes, with the shared rules of tidings.policy: the From
address must be one the account may send as (`sender_allowed`, the header's authors read by
`mail.authorship` as the submission check reads them), each recipient is routed by
`route_recipient` (local accounts, aliases, remote domains), and `store.delivery.accept` stores
the message for local recipients and queues the rest, or all of it for a scheduled time (send
later: the queue's `release_at`). A copy goes to Sent, with Bcc shown.
"""

from __future__ import annotations

import email.utils
import html
import re
import secrets
import time
from dataclasses import dataclass

from tidings.mail.authorship import read_authors
from tidings.mail.compose import Attachment, BadAddresses, Draft, build_message, envelope_recipients
from tidings.mail.headers import parse_header_block
from tidings.mail.message import MessageSummary
from tidings.mail.sections import decode_section_binary
from tidings.policy import MAX_HOLD_SECONDS, PolicyRefusal, quota_refusal, route_recipient, sender_allowed
from tidings.store import Envelope, NotFound, StoreError
from tidings.web import mailview

DRAFT_FLAGS = ("\\Draft", "\\Seen")
_TAG = re.compile(r"<[^>]*>?")
_HIDDEN = re.compile(r"<(script|style|head)\b.*?(</\1\s*>|\Z)", re.I | re.S)


class SendRefused(StoreError):
    """Why a message was not sent (shown to the user; nothing was stored or queued)."""


@dataclass(frozen=True)
class Sent:
    queue_id: int | None
    release_at: float | None
    delivered: list[str]


async def special_mailbox(store, account_id: int, special_use: str, create_as: str | None = None):
    for box in await store.mailboxes.list(account_id):
        if box.special_use == special_use:
            return box
    if create_as is None:
        return None
    try:
        return await store.mailboxes.create(account_id, create_as, special_use)
    except StoreError:
        return await store.mailboxes.get(account_id, create_as)


async def identities(store, account_id: int) -> list[str]:
    """The addresses the account may send as (its own first): the SMTP submission rule."""
    account = await store.accounts.get_user_by_id(account_id)
    allowed = await store.accounts.senders_allowed(account)
    return [account.address] + sorted(allowed - {account.address})


def body_text(raw: bytes, summary: MessageSummary) -> str:
    """The message's text for quoting: its plain part, else its HTML part without markup."""
    text, html_part = mailview.choose_body(summary)
    if text is not None:
        return mailview.part_text(raw, text)
    if html_part is not None:
        markup = mailview.part_text(raw, html_part)
        plain = html.unescape(
            _TAG.sub("", _HIDDEN.sub("", markup.replace("<br", "\n<br").replace("</p>", "\n")))
        )
        return "\n".join(line.rstrip() for line in plain.splitlines())
    return ""


def attachments_of(raw: bytes, summary: MessageSummary) -> tuple[Attachment, ...]:
    """The message's attachments (as the reading page lists them), decoded."""
    out = []
    for item in mailview.view(raw, summary).attachments:
        data = decode_section_binary(raw, summary, item.section)
        if data is None:
            continue
        out.append(Attachment(item.filename, item.content_type, bytes(data)))
    return tuple(out)


def _formatted(addresses) -> str:
    return ", ".join(
        email.utils.formataddr((a.name, a.addr_spec)) if a.name else a.addr_spec
        for a in addresses
        if a.addr_spec
    )


async def load_draft(store, account_id: int, uid: int) -> Draft:
    """The draft `uid` of the account's Drafts mailbox, as compose fields."""
    drafts = await special_mailbox(store, account_id, "\\Drafts")
    if drafts is None:
        raise NotFound("no such draft")
    ref = await store.mail_views.message(account_id, drafts.id, uid)
    summary = (await store.mailboxes.summaries(account_id, [ref])).get(ref.message_id)
    if summary is None:
        raise NotFound("no such draft")
    raw = await store.mailboxes.read_blob(ref.blob_hash)
    sender = summary.from_addr
    return Draft(
        from_addr=sender.addr_spec if sender else "",
        from_name=sender.name if sender else "",
        to=_formatted(summary.to_addrs),
        cc=_formatted(summary.cc_addrs),
        bcc=_formatted(summary.bcc_addrs),
        subject=summary.subject or "",
        text=body_text(raw, summary),
        in_reply_to=summary.in_reply_to or "",
        references=" ".join(summary.references),
        attachments=attachments_of(raw, summary),
    )


def new_message_id(hostname: str) -> str:
    return f"<{secrets.token_hex(12)}@{hostname}>"


async def save_draft(store, account_id: int, draft: Draft, old_uid: int | None, hostname: str) -> int:
    """Store `draft` in Drafts (replacing the version `old_uid`); its new UID."""
    drafts = await special_mailbox(store, account_id, "\\Drafts", create_as="Drafts")
    raw = build_message(draft, message_id=new_message_id(hostname), date=time.time(), include_bcc=True)
    _, uid = await store.mailboxes.append(account_id, drafts.id, raw, DRAFT_FLAGS)
    if old_uid:
        await discard_draft(store, account_id, old_uid)
    return uid


async def discard_draft(store, account_id: int, uid: int) -> None:
    drafts = await special_mailbox(store, account_id, "\\Drafts")
    if drafts is not None:
        await store.mailboxes.delete_messages(account_id, drafts.id, [uid])


async def send(store, config, account_id: int, draft: Draft, release_at: float | None) -> Sent:
    """Send `draft` now or at `release_at`, as SMTP submission would; SendRefused says why not."""
    if not await _may_send_as(store, account_id, draft.from_addr):
        raise SendRefused(f"{draft.from_addr} is not one of your addresses")
    try:
        recipients = envelope_recipients(draft)
    except BadAddresses as bad:
        raise SendRefused(str(bad)) from None
    if not recipients:
        raise SendRefused("Add at least one recipient.")
    if len(recipients) > config.limits.recipients:
        raise SendRefused(f"At most {config.limits.recipients} recipients.")
    if release_at is not None:
        if release_at - time.time() > MAX_HOLD_SECONDS:
            raise SendRefused(f"Send later: at most {MAX_HOLD_SECONDS // 86400} days ahead.")
        if release_at <= time.time():
            release_at = None
    message_id = new_message_id(config.hostname)
    now = time.time()
    raw = build_message(draft, message_id=message_id, date=now, include_bcc=False)
    if len(raw) > config.limits.message_size:
        raise SendRefused(
            f"The message is larger than the limit of {config.limits.message_size // 1048576} MB."
        )
    result = await submit(store, config, account_id, draft.from_addr, recipients, raw, release_at)
    sent_box = await special_mailbox(store, account_id, "\\Sent", create_as="Sent")
    copy = build_message(draft, message_id=message_id, date=now, include_bcc=True)
    await store.mailboxes.append(account_id, sent_box.id, copy, ["\\Seen"], now)
    return Sent(result.queue_id, release_at, result.delivered)


async def submit(
    store,
    config,
    account_id: int,
    sender: str,
    recipients: list[str],
    raw: bytes,
    release_at: float | None = None,
):
    """Hand a finished message to the store as SMTP submission would: the envelope sender and
    the message's From/Sender must be the account's (`sender_allowed`, authors read by
    `mail.authorship`), each recipient is routed by `route_recipient`, and `store.delivery.accept`
    delivers locally and queues the rest (everything, for a `release_at` ahead). The web
    client's one way to send (compose, invitations); SendRefused says why not, nothing stored."""
    allowed = set(await identities(store, account_id))
    if not sender_allowed(sender, allowed):
        raise SendRefused(f"{sender} is not one of your addresses")
    authors = read_authors(raw, parse_header_block(raw, 0, len(raw)))
    if authors.unreadable or not all(sender_allowed(a, allowed) for a in authors.addresses):
        raise SendRefused("The From address cannot be used.")
    local: dict[str, None] = {}
    remote: dict[str, None] = {}
    for address in recipients:
        try:
            route = await route_recipient(
                store,
                address,
                authenticated=True,
                default_domain=config.default_domain,
                declared_size=len(raw),
            )
        except PolicyRefusal as refusal:
            raise SendRefused(refusal.text) from None
        local.update(dict.fromkeys(route.local))
        remote.update(dict.fromkeys(route.remote))
    envelope = Envelope(
        sender=sender,
        local=list(local),
        remote=[(address, None, None) for address in remote],
        release_at=release_at,
        smtputf8=not sender.isascii() or not all(a.isascii() for a in recipients),
        body_8bit=False,
        account_id=account_id,
    )
    result = await store.delivery.accept(envelope, raw)
    if result.over_quota:
        _, _, text = await quota_refusal(store, result.over_quota, len(raw))
        raise SendRefused(text)
    return result


async def _may_send_as(store, account_id: int, address: str) -> bool:
    return sender_allowed(address, set(await identities(store, account_id)))


async def cancel_scheduled(store, account_id: int, queue_id: int, hostname: str) -> int:
    """Take a scheduled message back from the queue: it returns to Drafts (to edit or send
    again; its copy in Sent stays). The new draft's UID."""
    entry = await store.queue.cancel_scheduled(account_id, queue_id)
    raw = await store.mailboxes.read_blob(entry.blob_hash)
    drafts = await special_mailbox(store, account_id, "\\Drafts", create_as="Drafts")
    _, uid = await store.mailboxes.append(account_id, drafts.id, raw, DRAFT_FLAGS)
    return uid
