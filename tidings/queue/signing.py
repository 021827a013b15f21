"""DKIM signatures (RFC 6376) for mail leaving for remote domains.

The signing domain is the author's (From header) domain when that is one of ours with a key, else the
envelope sender's; mail from domains without a key leaves unsigned. Signing happens per attempt, just
before relaying, so a key added later also covers messages already queued.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import email.utils
import logging

from tidings.mail import dkim
from tidings.store import NotFound

log = logging.getLogger(__name__)


def author_domain(message: bytes) -> str | None:
    """The domain of the first From address, lower-case, or None."""
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(message)
    value = headers.get("From")
    if not value:
        return None
    _, address = email.utils.parseaddr(str(value))
    domain = address.rpartition("@")[2].strip().lower()
    return domain or None


async def signing_domain(store, sender: str, message: bytes):
    """The local `Domain` (with selector and key) to sign with, or None."""
    candidates = [author_domain(message), sender.rpartition("@")[2].lower() if sender else None]
    for name in dict.fromkeys(c for c in candidates if c):
        try:
            domain = await store.accounts.get_domain(name)
        except (NotFound, ValueError):
            continue
        if domain.dkim_selector and domain.dkim_private_key:
            return domain
    return None


async def sign_outbound(store, sender: str, message: bytes) -> bytes:
    """`message` with a DKIM-Signature prepended when a local domain's key applies."""
    domain = await signing_domain(store, sender, message)
    if domain is None:
        return message
    try:
        header = await asyncio.to_thread(
            dkim.sign, message, domain.name, domain.dkim_selector, domain.dkim_private_key
        )
    except Exception:  # a broken key must not stop the mail; it leaves unsigned and we say so
        log.exception("DKIM signing for %s failed; sending unsigned", domain.name)
        return message
    return header + message
