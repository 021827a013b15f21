"""What the folder list and the message list show: folders in display order with their counts,
and one page of a mailbox's messages, sorted.

Reads through the store with the acting account only; turns store values into rows for the
templates. The store sorts and pages (store/mail_views.py): a page of a big mailbox reads its rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from tidings.mail.message import MessageSummary
from tidings.store.mailboxes import Mailbox, MessageRef

PAGE_SIZE = 50
SORTS = ("date", "from", "subject", "size")
# Special-use folders first, in the order people expect them; the rest by name.
SPECIAL_ORDER = ["\\Drafts", "\\Sent", "\\Archive", "\\Junk", "\\Trash"]
SPECIAL_LABELS = {"INBOX": "Inbox"}


@dataclass(frozen=True)
class Folder:
    id: int
    name: str  # the full name, "/" between levels
    label: str  # what is shown: the last level
    depth: int
    special_use: str | None
    messages: int
    unseen: int

    @property
    def kind(self) -> str:
        """A word for CSS and icons: inbox, drafts, sent, archive, junk, trash or folder."""
        if self.name == "INBOX":
            return "inbox"
        return (self.special_use or "\\folder").lstrip("\\").lower()


def folder_order(box: Mailbox) -> tuple:
    if box.name == "INBOX":
        return (0, 0, "")
    top = box.name.split("/")[0]
    if box.special_use in SPECIAL_ORDER and "/" not in box.name:
        return (1, SPECIAL_ORDER.index(box.special_use), box.name)
    return (2, 0, top.lower(), box.name.lower())


def folders(boxes: list[tuple[Mailbox, int, int]]) -> list[Folder]:
    """(mailbox, messages, unseen) triples as the folder list shows them, in display order."""
    out = []
    for box, messages, unseen in sorted(boxes, key=lambda entry: folder_order(entry[0])):
        parts = box.name.split("/")
        label = SPECIAL_LABELS.get(box.name, parts[-1])
        out.append(Folder(box.id, box.name, label, len(parts) - 1, box.special_use, messages, unseen))
    return out


@dataclass(frozen=True)
class Row:
    uid: int
    sender: str
    sender_address: str
    subject: str
    date: object  # datetime or float (internal date)
    size: int
    unread: bool
    flagged: bool
    answered: bool
    attachment: bool
    thread_size: int = 1
    thread_id: int | None = None  # set in the conversations view: the checkbox selects all of it


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    number: int  # 1-based
    pages: int
    total: int
    sort: str
    descending: bool

    @property
    def first(self) -> int:
        return (self.number - 1) * PAGE_SIZE + 1 if self.total else 0

    @property
    def last(self) -> int:
        return min(self.total, self.number * PAGE_SIZE)


def parse_sort(value: str | None) -> tuple[str, bool]:
    """ "date" / "-date" (descending) ...; default newest first."""
    value = (value or "-date").strip()
    descending = value.startswith("-")
    name = value.lstrip("-")
    if name not in SORTS:
        return "date", True
    return name, descending


def page_count(total: int) -> int:
    return max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE)


def clamp_page(number: int, total: int) -> int:
    return min(max(1, number), page_count(total))


def sender_of(summary: MessageSummary | None) -> tuple[str, str]:
    if summary is None or not summary.from_addrs:
        return "", ""
    first = summary.from_addrs[0]
    return first.name or first.addr_spec, first.addr_spec


def make_row(
    ref: MessageRef, summary: MessageSummary | None, thread_size: int = 1, thread_id: int | None = None
) -> Row:
    sender, address = sender_of(summary)
    return Row(
        uid=ref.uid,
        sender=sender,
        sender_address=address,
        subject=summary.subject if summary is not None else "",
        date=(summary.sent_date if summary is not None and summary.sent_date else ref.internal_date),
        size=ref.size,
        unread="\\Seen" not in ref.flags,
        flagged="\\Flagged" in ref.flags,
        answered="\\Answered" in ref.flags,
        attachment=bool(summary is not None and summary.has_attachments),
        thread_size=thread_size,
        thread_id=thread_id,
    )
