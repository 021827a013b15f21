"""Preparing a message for the store: parse it once, keep what IMAP, POP3 and search need."""

from __future__ import annotations

from dataclasses import dataclass

from tidings.mail.message import MessageSummary, analyse


@dataclass(frozen=True)
class PreparedMessage:
    blob_hash: str
    size: int
    summary_json: str
    fields: dict  # indexed columns of the messages table
    summary: MessageSummary


def prepare(raw: bytes, blob_hash: str) -> PreparedMessage:
    summary = analyse(raw)
    fields = {
        "subject": (summary.subject or "")[:1000],
        "from_addr": ", ".join(a.addr_spec for a in summary.from_addrs)[:1000],
        "to_addrs": ", ".join(a.addr_spec for a in summary.to_addrs)[:2000],
        "sent_date": summary.sent_date.timestamp() if summary.sent_date else None,
        "message_id": (summary.message_id or "")[:998],
    }
    return PreparedMessage(blob_hash, len(raw), summary.to_json(), fields, summary)
