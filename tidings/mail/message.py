"""Analyse a stored message once, at delivery, into everything IMAP and POP3 need later.

`analyse(raw)` returns a `MessageSummary`: decoded headers for search and sort, the IMAP
ENVELOPE / BODY / BODYSTRUCTURE as nested lists, and a flat table of every MIME part's byte
offsets keyed by IMAP section number, so FETCH BODY[...] can cut sections out of the stored bytes
without parsing again. `to_json()` / `from_json()` round-trip it for the store.

Line endings: the store keeps the bytes exactly as received (CRLF from SMTP, perhaps bare LF
from an APPEND); every size and offset here is an octet count of those stored bytes, so
RFC822.SIZE == `summary.size` == len(BODY[]).

Pure: no I/O, no SQL, and no exception escapes `analyse` for any input bytes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from tidings.mail.address_list import MailAddress, mail_addresses, parse_address_list
from tidings.mail.bodystructure import body_structure
from tidings.mail.envelope import build_envelope
from tidings.mail.headers import (
    HeaderBlock,
    decode_rfc2047,
    extract_message_ids,
    param_value,
    parse_disposition,
)
from tidings.mail.mime import MimePart, parse_mime
from tidings.mail.threading import ThreadMessage, base_subject, base_subject_and_reply

JSON_VERSION = 1


@dataclass(slots=True)
class PartInfo:
    """Where one IMAP section lives in the stored bytes.

    `raw[header_start:body_start]` is the part's MIME header (BODY[n.MIME]) and
    `raw[body_start:end]` its content (BODY[n]). For a message/rfc822 part,
    `message_body_start` is where the encapsulated message's body begins, so
    BODY[n.HEADER] is `raw[body_start:message_body_start]` and BODY[n.TEXT] is
    `raw[message_body_start:end]`; it is None for every other part.
    """

    section: str
    header_start: int
    body_start: int
    end: int
    content_type: str  # lower-case "type/subtype" as used for the structure
    encoding: str  # lower-case Content-Transfer-Encoding, "7bit" when absent
    charset: str | None
    disposition: str | None  # lower-case "inline" / "attachment" / None
    filename: str | None  # decoded (RFC 2231 / RFC 2047)
    message_body_start: int | None = None

    @property
    def size(self) -> int:
        return self.end - self.body_start

    @property
    def is_multipart(self) -> bool:
        return self.content_type.startswith("multipart/")


@dataclass(slots=True)
class MessageSummary:
    size: int
    header_size: int  # octets of the top-level header including its blank line
    subject: str  # RFC 2047 decoded, unfolded
    base_subject: str  # RFC 5256 section 2.1
    from_addrs: list[MailAddress]
    to_addrs: list[MailAddress]
    cc_addrs: list[MailAddress]
    bcc_addrs: list[MailAddress]
    sent_date: datetime | None  # from Date:, timezone-aware; None if absent or unparsable
    message_id: str | None  # "<id>" or None
    in_reply_to: str | None  # first "<id>" of In-Reply-To
    references: list[str]  # "<id>" list from References
    envelope: list
    body: list
    bodystructure: list
    has_attachments: bool
    parts: dict[str, PartInfo] = field(default_factory=dict)
    truncated: bool = False  # nesting or part-count cap reached; the rest is opaque

    @property
    def from_addr(self) -> MailAddress | None:
        return self.from_addrs[0] if self.from_addrs else None

    def to_json(self) -> str:
        data: dict[str, Any] = {"v": JSON_VERSION}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name.endswith("_addrs"):
                value = [address.to_json() for address in value]
            elif name == "sent_date":
                value = value.isoformat() if value else None
            elif name == "parts":
                value = {section: asdict(info) for section, info in value.items()}
            data[name] = value
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> MessageSummary:
        data = json.loads(text)
        data.pop("v", None)
        for name in ("from_addrs", "to_addrs", "cc_addrs", "bcc_addrs"):
            data[name] = [MailAddress.from_json(a) for a in data[name]]
        data["sent_date"] = datetime.fromisoformat(data["sent_date"]) if data["sent_date"] else None
        data["parts"] = {section: PartInfo(**info) for section, info in data["parts"].items()}
        return cls(**data)


def parse_date(text: str | None) -> datetime | None:
    """An RFC 5322 date as an aware datetime (zone -0000 and none are taken as UTC)."""
    if not text:
        return None
    try:
        parsed = parsedate_to_datetime(text[:200])
    except Exception:  # the stdlib raises several kinds of error on junk
        return None
    if parsed is None:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _addresses(raw: bytes, header: HeaderBlock, name: str) -> list[MailAddress]:
    return mail_addresses(parse_address_list(header.text(raw, name)))


def _part_info(raw: bytes, part: MimePart, section: str) -> PartInfo:
    disposition = parse_disposition(part.header.text(raw, "Content-Disposition"))
    filename = None
    if disposition:
        filename = param_value(disposition[1], "filename")
    if filename is None:
        filename = param_value(part.params, "name")
    return PartInfo(
        section=section,
        header_start=part.header_start,
        body_start=part.body_start,
        end=part.end,
        content_type=part.content_type,
        encoding=part.encoding,
        charset=param_value(part.params, "charset") if part.maintype == "text" else None,
        disposition=disposition[0] if disposition else None,
        filename=decode_rfc2047(filename) if filename else None,
        message_body_start=part.message.body_start if part.message is not None else None,
    )


def section_table(raw: bytes, root: MimePart) -> dict[str, PartInfo]:
    """Every part by IMAP section number (RFC 3501 section 6.4.5).

    A non-multipart message (top-level or encapsulated) has one part, "1" (or "n.1"), whose
    MIME header is the message header; the parts of a message/rfc822 part n are numbered
    under n as those of a message of their own.
    """
    table: dict[str, PartInfo] = {}
    # An explicit stack instead of recursion: the tree may be MAX_DEPTH deep.
    stack: list[tuple[str, MimePart, bool]] = [("", root, True)]
    while stack:
        prefix, part, is_message = stack.pop()
        if is_message and not part.children:
            section = prefix + "1"
        elif is_message:
            for index in range(len(part.children), 0, -1):
                stack.append((f"{prefix}{index}", part.children[index - 1], False))
            continue
        else:
            section = prefix
        table[section] = _part_info(raw, part, section)
        if part.children:
            for index in range(len(part.children), 0, -1):
                stack.append((f"{section}.{index}", part.children[index - 1], False))
        elif part.message is not None:
            stack.append((section + ".", part.message, True))
    return dict(sorted(table.items(), key=lambda item: [int(n) for n in item[0].split(".")]))


def _has_attachments(parts: dict[str, PartInfo]) -> bool:
    """An attachment: Content-Disposition attachment, a named non-inline part, or a forwarded
    message. Inline images with names (HTML mail) do not count."""
    for info in parts.values():
        if info.disposition == "attachment":
            return True
        if info.filename and info.disposition != "inline" and not info.is_multipart:
            return True
        if info.message_body_start is not None and info.header_start > 0:  # not the message itself
            return True
    return False


def analyse(raw: bytes) -> MessageSummary:
    """Everything IMAP/POP3 need about the message `raw`, computed once."""
    root = parse_mime(raw)
    header = root.header
    subject = decode_rfc2047(header.text(raw, "Subject") or "")
    in_reply_to = extract_message_ids(header.text(raw, "In-Reply-To"))
    message_ids = extract_message_ids(header.text(raw, "Message-ID"))
    parts = section_table(raw, root)
    return MessageSummary(
        size=len(raw),
        header_size=root.body_start,
        subject=subject,
        base_subject=base_subject(subject),
        from_addrs=_addresses(raw, header, "From"),
        to_addrs=_addresses(raw, header, "To"),
        cc_addrs=_addresses(raw, header, "Cc"),
        bcc_addrs=_addresses(raw, header, "Bcc"),
        sent_date=parse_date(header.text(raw, "Date")),
        message_id=message_ids[0] if message_ids else None,
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        references=extract_message_ids(header.text(raw, "References")),
        envelope=build_envelope(raw, header),
        body=body_structure(raw, root, extensible=False),
        bodystructure=body_structure(raw, root, extensible=True),
        has_attachments=_has_attachments(parts),
        parts=parts,
        truncated=root.truncated,
    )


def thread_message(summary: MessageSummary, id: int, internal_date: datetime | None = None) -> ThreadMessage:
    """The threading view of a message; the internal date stands in for a missing sent date
    (RFC 5256 section 2.2)."""
    _base, is_reply = base_subject_and_reply(summary.subject)
    return ThreadMessage(
        id=id,
        base_subject=summary.base_subject,
        sent_date=summary.sent_date or internal_date,
        message_id=summary.message_id,
        references=list(summary.references),
        in_reply_to=summary.in_reply_to,
        is_reply=is_reply,
    )
