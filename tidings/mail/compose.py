"""Writing messages: what the web client's compose builds, and how a reply or a forward starts.

`build_message` turns a `Draft` (what the compose form holds) into RFC 5322 bytes with CRLF line
ends: header fields encoded as RFC 2047 where they are not ASCII, the text as UTF-8 in
quoted-printable, attachments in base64 (a forwarded message as message/rfc822). `reply_draft`
and `forward_draft` start a draft from a stored message: recipients, "Re:"/"Fwd:" subject,
In-Reply-To and References (RFC 5322 section 3.6.4), the quoted or forwarded text.

Pure: no I/O, no store. Who may send as whom and where the message goes are decided by
tidings.policy, as for SMTP submission; the text of a stored message is read by the caller
(the web client's mailview) and handed in.
"""

from __future__ import annotations

import email.policy
import email.utils
from dataclasses import dataclass, field, replace
from email.headerregistry import Address
from email.message import EmailMessage

from tidings.mail.address_list import mail_addresses, parse_address_list
from tidings.mail.message import MessageSummary

# One header line per address list is fine; the policy folds long ones.
_POLICY = email.policy.SMTP.clone(max_line_length=78)
MAX_REFERENCES = 20


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str  # "type/subtype"
    data: bytes


@dataclass(frozen=True)
class Draft:
    from_addr: str  # one of the account's addresses
    from_name: str = ""
    to: str = ""  # as typed: "Name <a@b>, c@d"
    cc: str = ""
    bcc: str = ""
    subject: str = ""
    text: str = ""
    in_reply_to: str = ""  # "<id>" of the message answered
    references: str = ""  # "<id> <id> ..."
    attachments: tuple[Attachment, ...] = field(default_factory=tuple)


class BadAddresses(ValueError):
    """A recipient field that does not read as mail addresses."""


def parse_recipients(text: str) -> list[tuple[str, str]]:
    """(display name, addr-spec) of each address typed in a recipient field; BadAddresses for
    anything that is not one (a word without @, an unclosed bracket)."""
    if not text.strip():
        return []
    out = []
    for address in mail_addresses(parse_address_list(" ".join(text.split()))):
        if not address.mailbox or not address.host:
            raise BadAddresses(f"not a mail address: {address.addr_spec or address.name}")
        out.append((address.name, address.addr_spec))
    pieces = [p for p in text.replace(";", ",").split(",") if p.strip()]
    if len(out) < len(pieces) and not any('"' in p for p in pieces):
        raise BadAddresses(f"not a mail address: {text.strip()[:200]}")
    return out


def envelope_recipients(draft: Draft) -> list[str]:
    """Every addr-spec of To, Cc and Bcc, once each, in order."""
    seen: dict[str, None] = {}
    for field_text in (draft.to, draft.cc, draft.bcc):
        for _, addr in parse_recipients(field_text):
            seen.setdefault(addr, None)
    return list(seen)


def _address(name: str, addr: str) -> Address:
    local, _, domain = addr.rpartition("@")
    return Address(display_name=name, username=local, domain=domain)


def build_message(
    draft: Draft,
    *,
    message_id: str,
    date: float,
    include_bcc: bool,
    extra_headers: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """The message as RFC 5322 bytes. `include_bcc`: the copy kept in Sent and Drafts shows Bcc;
    the copy sent never does (RFC 5322 section 3.6.3, the first way)."""
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = _address(draft.from_name, draft.from_addr)
    for name, value in (("To", draft.to), ("Cc", draft.cc)) + ((("Bcc", draft.bcc),) if include_bcc else ()):
        addresses = [_address(n, a) for n, a in parse_recipients(value)]
        if addresses:
            msg[name] = addresses
    msg["Subject"] = draft.subject
    msg["Date"] = email.utils.formatdate(date, localtime=True)
    msg["Message-ID"] = message_id
    if draft.in_reply_to:
        msg["In-Reply-To"] = draft.in_reply_to
    if draft.references:
        msg["References"] = draft.references
    for name, value in extra_headers:
        msg[name] = value
    msg["MIME-Version"] = "1.0"
    msg.set_content(draft.text.replace("\r\n", "\n"), cte="quoted-printable")
    for attachment in draft.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        if attachment.content_type == "message/rfc822":
            inner = email.message_from_bytes(attachment.data, policy=email.policy.compat32)
            msg.add_attachment(inner, filename=attachment.filename)
        else:
            msg.add_attachment(
                attachment.data,
                maintype=maintype or "application",
                subtype=subtype or "octet-stream",
                filename=attachment.filename,
            )
    return msg.as_bytes(policy=_POLICY)


def reply_subject(subject: str) -> str:
    return subject if subject[:3].lower() == "re:" else f"Re: {subject}"


def forward_subject(subject: str) -> str:
    return subject if subject[:4].lower() == "fwd:" else f"Fwd: {subject}"


def _format(name: str, addr: str) -> str:
    return str(_address(name, addr)) if name else addr


def quote_text(summary: MessageSummary, text: str | None) -> str:
    """The text of a reply: "On <date>, <sender> wrote:" and the original, each line quoted."""
    sender = summary.from_addr
    who = (sender.name or sender.addr_spec) if sender else "someone"
    when = summary.sent_date.strftime("%a, %d %b %Y %H:%M") if summary.sent_date else ""
    lines = (text or "").replace("\r\n", "\n").rstrip("\n").split("\n")
    quoted = "\n".join(("> " + line) if line else ">" for line in lines)
    lead = f"On {when}, {who} wrote:" if when else f"{who} wrote:"
    return f"\n\n{lead}\n{quoted}\n"


def reply_draft(
    summary: MessageSummary, text: str | None, *, me: set[str], from_addr: str, reply_all: bool
) -> Draft:
    """A reply to the message `summary` (its text `text`): to its Reply-To (or From); with
    `reply_all`, also to everyone in To and Cc but the account's own addresses `me`."""
    reply_to = summary.envelope[4] or []  # Reply-To, which IMAP sets to From when absent
    targets = [(name, f"{mailbox}@{host}") for name, _adl, mailbox, host in reply_to if mailbox and host]
    if not targets:
        targets = [(a.name, a.addr_spec) for a in summary.from_addrs]
    to = [(n, a) for n, a in targets if a.lower() not in me] or targets
    cc: list[tuple[str, str]] = []
    if reply_all:
        taken = {a.lower() for _, a in to} | set(me)
        for address in summary.to_addrs + summary.cc_addrs:
            spec = address.addr_spec
            if spec and "@" in spec and spec.lower() not in taken:
                cc.append((address.name, spec))
                taken.add(spec.lower())
    references = summary.references[-(MAX_REFERENCES - 1) :] if summary.references else []
    if summary.message_id:
        references = [*references, summary.message_id]
    from tidings.mail.headers import decode_rfc2047

    names = [(decode_rfc2047(n) if n else "", a) for n, a in to]
    return Draft(
        from_addr=from_addr,
        to=", ".join(_format(n, a) for n, a in names),
        cc=", ".join(_format(n, a) for n, a in cc),
        subject=reply_subject(summary.subject or ""),
        text=quote_text(summary, text),
        in_reply_to=summary.message_id or "",
        references=" ".join(references),
    )


def forward_draft(
    summary: MessageSummary,
    text: str | None,
    raw: bytes,
    *,
    from_addr: str,
    as_attachment: bool,
    attachments: tuple[Attachment, ...] = (),
) -> Draft:
    """A forward of `summary`: inline (its header fields and text in the body, its attachments
    along) or as a message/rfc822 attachment holding `raw` unchanged."""
    subject = forward_subject(summary.subject or "")
    if as_attachment:
        name = (summary.subject or "message").strip()[:60] or "message"
        return Draft(
            from_addr=from_addr,
            subject=subject,
            attachments=(Attachment(f"{name}.eml", "message/rfc822", raw),),
        )
    sender = summary.from_addr
    lines = ["", "", "---------- Forwarded message ----------"]
    if sender:
        lines.append(f"From: {_format(sender.name, sender.addr_spec)}")
    if summary.sent_date:
        lines.append(f"Date: {summary.sent_date.strftime('%a, %d %b %Y %H:%M %z')}")
    lines.append(f"Subject: {summary.subject or ''}")
    if summary.to_addrs:
        lines.append("To: " + ", ".join(_format(a.name, a.addr_spec) for a in summary.to_addrs))
    lines += ["", (text or "").replace("\r\n", "\n")]
    return Draft(from_addr=from_addr, subject=subject, text="\n".join(lines), attachments=attachments)


def with_attachments(draft: Draft, attachments: tuple[Attachment, ...]) -> Draft:
    return replace(draft, attachments=attachments)
