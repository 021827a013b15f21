"""Preparing a message for the store: parse it once, keep what IMAP, POP3 and search need."""

from __future__ import annotations

import email.utils
from dataclasses import dataclass


@dataclass(frozen=True)
class PreparedMessage:
    blob_hash: str
    size: int
    summary_json: str
    fields: dict  # indexed columns of the messages table


def prepare(raw: bytes, blob_hash: str) -> PreparedMessage:
    from tidings.mail.message import analyse  # the MIME analyser is heavy; import on first use

    summary = analyse(raw)
    sent = summary.sent_date.timestamp() if summary.sent_date else None
    fields = {
        "subject": (summary.subject or "")[:1000],
        "from_addr": _joined(summary.from_addr)[:1000],
        "to_addrs": _joined(summary.to_addrs)[:2000],
        "sent_date": sent,
        "message_id": (summary.message_id or "")[:998],
    }
    return PreparedMessage(blob_hash, len(raw), summary.to_json(), fields)


def _joined(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return ", ".join(email.utils.formataddr(v) if isinstance(v, tuple) else str(v) for v in value)
