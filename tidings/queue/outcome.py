"""What happened to one recipient in one attempt, and the enhanced status codes that describe it.

Replies are kept as text "CODE X.Y.Z text" (RFC 3463 enhanced status) in the queue's `last_error`,
so a later DSN can report the last answer even after a restart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

State = Literal["delivered", "failed", "deferred"]

_REPLY = re.compile(r"^\s*(\d{3})(?:[ -]+([245]\.\d{1,3}\.\d{1,3}))?\s*(.*)$", re.DOTALL)


@dataclass(frozen=True)
class Attempt:
    """One recipient's result. `remote_mta` is set when the answer came from another SMTP server."""

    state: State
    code: int
    status: str  # RFC 3463 enhanced status, e.g. "5.1.1"
    text: str
    remote_mta: str | None = None
    # A SUCCESS notification was asked for, but the next hop does not speak DSN (RFC 3461 section 5.2.2).
    relayed_without_dsn: bool = False

    @property
    def reply(self) -> str:
        """The diagnostic as stored and reported: "550 5.1.1 no such user"."""
        return f"{self.code} {self.status} {self.text}".strip()


def from_reply(code: int, message: str, remote_mta: str | None = None) -> Attempt:
    """Classify an SMTP reply (RFC 5321 section 4.2.1): 2yz delivered, 4yz deferred, 5yz failed."""
    text = " ".join(message.split())
    match = re.match(r"^([245]\.\d{1,3}\.\d{1,3})\s*(.*)$", text, re.DOTALL)
    status, text = (match.group(1), match.group(2)) if match else (f"{str(code)[0]}.0.0", text)
    if 200 <= code < 300:
        state: State = "delivered"
    elif 500 <= code < 600:
        state = "failed"
    else:
        state = "deferred"
    if state != "delivered" and status[0] != str(code)[0]:
        # A 4yz reply with 5.x.x (or the reverse) is inconsistent; the basic code wins (RFC 3463 section 2).
        status = f"{str(code)[0]}{status[1:]}"
    return Attempt(state, code, status, text, remote_mta)


def failed(status: str, text: str, code: int = 550) -> Attempt:
    return Attempt("failed", code, status, text)


def deferred(status: str, text: str, code: int = 451) -> Attempt:
    return Attempt("deferred", code, status, text)


def parse_stored(reply: str | None) -> tuple[int, str, str] | None:
    """(code, status, text) from a stored "CODE X.Y.Z text", or None."""
    if not reply:
        return None
    match = _REPLY.match(reply)
    if not match:
        return None
    code = int(match.group(1))
    return code, match.group(2) or f"{str(code)[0]}.0.0", match.group(3)
