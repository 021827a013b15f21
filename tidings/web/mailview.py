"""A stored message as the reader sees it: which part is the body (text or HTML), which parts are
attachments, the Content-IDs of inline images. Pure: bytes and a MessageSummary in, values out.

The choice follows what mail programs do: in a multipart/alternative the richest part we can show
(text/html over text/plain); elsewhere the first text part that is not an attachment. Parts with a
file name or `Content-Disposition: attachment`, and any other leaf that is not the body, are listed
as attachments; images referred to by `cid:` from the HTML body are shown in it instead.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from tidings.mail.headers import decode_charset, parse_content_type, parse_header_block
from tidings.mail.message import MessageSummary, PartInfo
from tidings.mail.sections import decode_transfer_encoding

MAX_BODY_BYTES = 4 * 1024 * 1024  # longer bodies are cut for display (the download is whole)
IMAGE_PREVIEW = {"image/png", "image/jpeg", "image/gif", "image/webp"}
# What may be shown in the browser rather than downloaded; anything else is application/octet-stream.
INLINE_TYPES = IMAGE_PREVIEW | {"application/pdf", "text/plain"}


@dataclass(frozen=True)
class Attachment:
    section: str
    filename: str
    content_type: str
    size: int  # encoded size, as stored

    @property
    def previewable(self) -> str | None:
        """ "image", "pdf", "text" or None."""
        if self.content_type in IMAGE_PREVIEW:
            return "image"
        if self.content_type == "application/pdf":
            return "pdf"
        if self.content_type == "text/plain":
            return "text"
        return None


@dataclass(frozen=True)
class MessageView:
    text: str | None  # the plain text body, if that is what is shown
    html_section: str | None  # the HTML part shown in the sandboxed frame
    attachments: list[Attachment]
    content_ids: dict[str, str]  # Content-ID (without <>) -> section, for cid: images


def _leaves(summary: MessageSummary) -> list[PartInfo]:
    return [p for p in summary.parts.values() if not p.is_multipart and p.message_body_start is None]


def _is_attachment(part: PartInfo) -> bool:
    return part.disposition == "attachment" or (bool(part.filename) and part.disposition != "inline")


def _inside_attached_message(summary: MessageSummary, part: PartInfo) -> bool:
    """Part of a forwarded message (message/rfc822): it belongs to that attachment."""
    section = part.section
    while "." in section:
        section = section.rpartition(".")[0]
        container = summary.parts.get(section)
        if container is not None and container.message_body_start is not None:
            return True
    return False


def root_type(raw: bytes, summary: MessageSummary) -> str:
    parsed = parse_content_type(parse_header_block(raw, 0, summary.header_size).text(raw, "Content-Type"))
    return f"{parsed[0]}/{parsed[1]}".lower() if parsed else "text/plain"


def choose_body(summary: MessageSummary, root: str = "") -> tuple[PartInfo | None, PartInfo | None]:
    """(text part, html part) to show; at most one of them is used for display."""
    text = html = None
    for part in _leaves(summary):
        if _is_attachment(part) or _inside_attached_message(summary, part):
            continue
        if part.content_type == "text/html" and html is None:
            html = part
        elif part.content_type == "text/plain" and text is None:
            text = part
    # Not two versions of one body (text, then an HTML part beside it): the first is the body.
    if (
        html is not None
        and text is not None
        and not _alternatives(summary, text, html, root)
        and text.header_start < html.header_start
    ):
        html = None
    return text, html


def _ancestors(summary: MessageSummary, part: PartInfo) -> list[PartInfo]:
    out = []
    section = part.section
    while "." in section:
        section = section.rpartition(".")[0]
        if section in summary.parts:
            out.append(summary.parts[section])
    return out


def _alternatives(summary: MessageSummary, one: PartInfo, other: PartInfo, root_type: str) -> bool:
    """Whether the two parts are versions of one body: their nearest common multipart is a
    multipart/alternative (the HTML one perhaps inside a multipart/related with its images). The
    message's own multipart has no section: `root_type` is its type."""
    shared = [p for p in _ancestors(summary, one) if p in _ancestors(summary, other)]
    if shared:
        return shared[0].content_type == "multipart/alternative"
    return root_type == "multipart/alternative"  # the message itself holds both


def decode_part(raw: bytes, part: PartInfo, limit: int = MAX_BODY_BYTES) -> bytes:
    data = raw[part.body_start : part.end]
    decoded = decode_transfer_encoding(data, part.encoding)
    return (decoded if decoded is not None else data)[:limit]


def part_text(raw: bytes, part: PartInfo) -> str:
    return decode_charset(decode_part(raw, part), part.charset)


def content_id(raw: bytes, part: PartInfo) -> str | None:
    header = parse_header_block(raw, part.header_start, part.body_start)
    value = header.text(raw, "Content-ID")
    if not value:
        return None
    return value.strip().strip("<>").strip() or None


def view(raw: bytes, summary: MessageSummary) -> MessageView:
    text, html = choose_body(summary, root_type(raw, summary))
    shown = html or text
    content_ids: dict[str, str] = {}
    attachments = []
    for part in summary.parts.values():
        if part.is_multipart or part is shown:
            continue
        if _inside_attached_message(summary, part):
            continue
        if part.message_body_start is not None and part.header_start == 0:
            continue  # the message itself
        if part is text and html is not None and not _is_attachment(part):
            continue  # the plain alternative of the HTML body
        cid = content_id(raw, part) if part.content_type.startswith("image/") else None
        if cid:
            content_ids[cid] = part.section
            if part.disposition == "inline" or not part.filename:
                continue  # shown inside the HTML body
        name = part.filename or default_filename(part)
        attachments.append(Attachment(part.section, name, part.content_type, part.size))
    return MessageView(
        text=part_text(raw, text) if html is None and text is not None else None,
        html_section=html.section if html is not None else None,
        attachments=attachments,
        content_ids=content_ids,
    )


def default_filename(part: PartInfo) -> str:
    if part.message_body_start is not None:
        return "message.eml"
    extension = {
        "text/plain": "txt",
        "text/html": "html",
        "application/pdf": "pdf",
        "image/png": "png",
        "image/jpeg": "jpg",
        "image/gif": "gif",
    }.get(part.content_type, "bin")
    return f"part-{part.section}.{extension}"


_UNSAFE_FILENAME = re.compile(r'[\x00-\x1f\x7f"\\/:*?<>|;]+')


def safe_filename(name: str) -> str:
    """A file name fit for Content-Disposition and any file system: no directories, quotes,
    control characters or leading dots; at most 150 characters."""
    name = unicodedata.normalize("NFC", name or "")
    name = _UNSAFE_FILENAME.sub("_", name).strip(" .")
    return name[:150] or "attachment"
