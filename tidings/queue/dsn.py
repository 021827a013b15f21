"""Delivery status notifications (RFC 3464) and the bounce that carries them back to the sender.

A DSN is a multipart/report (RFC 6522) with report-type=delivery-status: a human-readable part, a
message/delivery-status part (per-message fields, then one field group per recipient) and the
original's header section as text/rfc822-headers (RFC 3462 / RFC 6522 section 3). Only a sender who
authenticated to us and asked for RET=FULL (RFC 3461 section 4.3) gets the whole message back: for
anyone else the reverse-path may be forged, and returning whole messages to it would turn us into a
reflector of spam (backscatter). A body missing from storage leaves the third part out (it is
optional). It is sent from MAILER-DAEMON with
the null reverse-path, so it can never cause another DSN (RFC 5321 section 4.5.5); a message whose
own sender is null is never bounced, only logged.

Which recipients get reported follows their NOTIFY parameter (RFC 3461 section 4.1); without one we
report failures and delays (the "FAILURE,DELAY" default that section allows).

`bounce(app, original, reports)` also serves callers without a queue entry (`Original`).
"""

from __future__ import annotations

import email.utils
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Literal, Protocol

from tidings.mail.address import BadAddress
from tidings.store import NotFound
from tidings.store.delivery import Envelope

log = logging.getLogger(__name__)

Action = Literal["failed", "delayed", "delivered", "relayed", "expanded"]

_NOTIFY_KEYWORD = {
    "failed": "FAILURE",
    "delayed": "DELAY",
    "delivered": "SUCCESS",
    "relayed": "SUCCESS",
    "expanded": "SUCCESS",
}
_SUBJECTS = {
    "failed": "Undelivered Mail Returned to Sender",
    "delayed": "Delayed Mail (still being retried)",
    "delivered": "Successful Mail Delivery Report",
}


class OriginalMessage(Protocol):
    """What a DSN needs to know about the message it reports on; a `store.queue.QueueEntry` fits, and
    so does `Original` below (for callers without a queue entry)."""

    sender: str
    blob_hash: str
    created_at: float
    envid: str | None
    ret: str | None
    account_id: int | None  # set when the sender authenticated to us


@dataclass(frozen=True)
class Original:
    """A message that never was in the queue."""

    sender: str
    blob_hash: str
    created_at: float
    envid: str | None = None
    ret: str | None = None
    account_id: int | None = None


@dataclass(frozen=True)
class RecipientReport:
    """One recipient's per-recipient fields (RFC 3464 section 2.3)."""

    address: str  # Final-Recipient
    action: Action
    status: str  # "5.1.1"
    diagnostic: str | None = None  # the remote reply "550 5.1.1 no such user", or our own explanation
    remote_mta: str | None = None  # set when `diagnostic` is a reply from that SMTP server
    orcpt: str | None = None  # "rfc822;user@example.org" as the sender gave it
    notify: str | None = None  # the recipient's NOTIFY parameter, to decide whether it is reported
    last_attempt: float | None = None
    will_retry_until: float | None = None


def notify_allows(notify: str | None, action: Action) -> bool:
    """Whether a DSN with `action` is wanted for a recipient with this NOTIFY (RFC 3461 section 4.1)."""
    if notify is None or not notify.strip():
        return action in ("failed", "delayed")
    keywords = {k.strip().upper() for k in notify.split(",")}
    return "NEVER" not in keywords and _NOTIFY_KEYWORD[action] in keywords


def build_dsn(
    *,
    reporting_mta: str,
    original: OriginalMessage,
    reports: list[RecipientReport],
    message: bytes | None,
    now: float | None = None,
) -> bytes:
    """The DSN message (CRLF line ends) reporting `reports` about `message` (None: body lost)."""
    now = time.time() if now is None else now
    action = reports[0].action
    kind = "failed" if action == "failed" else "delayed" if action == "delayed" else "delivered"
    boundary = f"=_dsn_{secrets.token_hex(12)}"

    human = _human_text(reporting_mta, kind, reports)
    status_fields = [f"Reporting-MTA: dns; {reporting_mta}"]
    if original.envid:
        status_fields.append(f"Original-Envelope-Id: {original.envid}")
    status_fields.append(f"Arrival-Date: {email.utils.formatdate(original.created_at, localtime=True)}")
    for report in reports:
        status_fields.append("")
        status_fields.extend(_recipient_fields(report))

    lines = [
        f"From: Mail Delivery System <MAILER-DAEMON@{reporting_mta}>",
        f"To: <{original.sender}>",
        f"Subject: {_SUBJECTS[kind]}",
        f"Date: {email.utils.formatdate(now, localtime=True)}",
        f"Message-ID: <dsn.{secrets.token_hex(10)}@{reporting_mta}>",
        "Auto-Submitted: auto-replied",  # RFC 3834 section 5
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "",
        "This is a MIME-encapsulated message reporting on the delivery of your message.",
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Transfer-Encoding: {'7bit' if human.isascii() else '8bit'}",
        "",
        human,
        f"--{boundary}",
        "Content-Type: message/delivery-status",
        "",
        *status_fields,
        "",
    ]
    head = "\r\n".join(lines).encode("utf-8")
    if message is None:
        return head + f"\r\n--{boundary}--\r\n".encode()
    return_full = (
        kind == "failed" and (original.ret or "").upper() == "FULL" and original.account_id is not None
    )
    returned = message if return_full else _split_message(message)[0]
    returned_type = "message/rfc822" if return_full else "text/rfc822-headers"
    encoding = b"7bit" if returned.isascii() else b"8bit"
    body = (
        f"--{boundary}\r\nContent-Type: {returned_type}\r\n".encode()
        + b"Content-Transfer-Encoding: "
        + encoding
        + b"\r\n\r\n"
        + _crlf(returned).rstrip(b"\r\n")
        + b"\r\n"
        + f"--{boundary}--\r\n".encode()
    )
    return head + b"\r\n" + body


async def bounce(app, original: OriginalMessage, failed_recipients: list[RecipientReport]) -> bool:
    """Send a failure DSN for `failed_recipients` to the original sender. Recipients whose NOTIFY
    excludes FAILURE are left out; returns False when nothing was sent (null sender, NOTIFY=NEVER).

    Usable without a queue entry: `bounce(app, Original(sender, blob_hash, time.time(), envid, ret),
    [RecipientReport(address, "failed", "5.2.2", "552 5.2.2 mailbox full", notify=..., orcpt=...)])`.
    """
    return await send_report(app, original, [r for r in failed_recipients if r.action == "failed"])


async def send_report(app, original: OriginalMessage, reports: list[RecipientReport]) -> bool:
    """Build and send one DSN for `reports` (all of one kind: failed, delayed, or delivered/relayed)."""
    reports = [r for r in reports if notify_allows(r.notify, r.action)]
    if not reports:
        return False
    if not original.sender:
        # RFC 5321 section 4.5.5 / RFC 3464: never report on a report (or any null-sender message).
        log.warning(
            "not sending a DSN for a message with the null sender: %s",
            ", ".join(f"{r.address} {r.action} {r.status}" for r in reports),
        )
        return False
    store = app.store
    try:
        message = await store.blobs.get(original.blob_hash)
    except NotFound:
        message = None  # reported without the original rather than not at all
    report = build_dsn(reporting_mta=app.config.hostname, original=original, reports=reports, message=message)
    local, remote = await _report_recipients(store, original.sender)
    if not local and not remote:
        log.warning("dropping DSN for unknown local sender %s", original.sender)
        return False
    envelope = Envelope(
        sender="",
        local=local,
        remote=[(address, "NEVER", None) for address in remote],
        body_8bit=not report.isascii(),
        local_params={address: ("NEVER", None) for address in local},
        keep_over_quota=True,  # a sender whose mailbox is full gets the report once there is room
    )
    await store.delivery.accept(envelope, report)
    log.info(
        "sent %s DSN to %s for %s", reports[0].action, original.sender, ", ".join(r.address for r in reports)
    )
    return True


async def _report_recipients(store, sender: str) -> tuple[list[str], list[str]]:
    """Split the sender into local accounts (INBOX) and remote addresses (the queue)."""
    try:
        targets = await store.accounts.resolve(sender)
    except BadAddress:
        return [], []
    domain = sender.rpartition("@")[2]
    if targets is None:
        return ([], []) if await store.accounts.is_local_domain(domain) else ([], [sender])
    local, remote = [], []
    for target in targets:
        (local if await store.accounts.is_local_domain(target.rpartition("@")[2]) else remote).append(target)
    return local, remote


def _recipient_fields(report: RecipientReport) -> list[str]:
    fields = []
    if report.orcpt:
        addr_type, sep, address = report.orcpt.partition(";")
        fields.append(
            f"Original-Recipient: {addr_type.strip()};{address.strip()}"
            if sep
            else f"Original-Recipient: rfc822;{report.orcpt}"
        )
    fields += [
        f"Final-Recipient: rfc822;{report.address}",
        f"Action: {report.action}",
        f"Status: {report.status}",
    ]
    if report.remote_mta:
        fields.append(f"Remote-MTA: dns; {report.remote_mta}")
    if report.diagnostic:
        kind = "smtp" if report.remote_mta else "X-Tidings"
        fields.append(f"Diagnostic-Code: {kind}; {' '.join(report.diagnostic.split())}")
    if report.last_attempt:
        fields.append(f"Last-Attempt-Date: {email.utils.formatdate(report.last_attempt, localtime=True)}")
    if report.will_retry_until:
        fields.append(f"Will-Retry-Until: {email.utils.formatdate(report.will_retry_until, localtime=True)}")
    return fields


def _human_text(reporting_mta: str, kind: str, reports: list[RecipientReport]) -> str:
    intro = {
        "failed": "Your message could not be delivered to the following recipients. This is a permanent"
        " error; it will not be retried.",
        "delayed": "Your message has not been delivered yet to the following recipients. Delivery will be"
        " retried; you do not need to send it again.",
        "delivered": "Your message was delivered (or handed on to a system that does not report further) for"
        " the following recipients.",
    }[kind]
    lines = [f"This is the mail system at {reporting_mta}.", "", intro, ""]
    for report in reports:
        reason = report.diagnostic or report.status
        host = f" (from {report.remote_mta})" if report.remote_mta else ""
        lines.append(f"<{report.address}>: {reason}{host}")
    return "\r\n".join(lines) + "\r\n"


def _split_message(message: bytes) -> tuple[bytes, bytes]:
    """(header section with its final line end, body)."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        index = message.find(separator)
        if index >= 0:
            cut = index + len(separator) // 2
            return message[:cut], message[cut + len(separator) // 2 :]
    return message, b""


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
