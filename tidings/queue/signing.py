"""What leaves for remote domains under our name: DKIM signatures (RFC 6376) and SRS envelope senders.

The rule: we sign only what we authored, and we never pass off a forward as our own.

- Authored mail is mail an authenticated user submitted (the queue entry carries their account);
  the submission check made sure every From:/Sender: address is theirs. It is signed with the key of
  the From: domain (the one DMARC aligns on) when that domain is ours and has a key.
- Everything else that we relay — mail that arrived unauthenticated on port 25 for an alias or
  catch-all pointing at a remote address — is forwarded as it came: its own signatures stay intact,
  nothing of ours is added (signing it would vouch for a stranger's mail with our domain's key), and
  the envelope sender is rewritten with SRS (`mail.srs`) so that SPF at the next hop checks our
  domain, which we are allowed to send for. The null sender stays null.

The From: domain is read with the one header parser (`mail.authorship`), the reading the submission
check used; a header block that parser could not read to the end is never signed. Signing happens
per attempt, just before relaying, so a key added later also covers messages already queued.
"""

from __future__ import annotations

import asyncio
import logging

from tidings.mail import dkim
from tidings.mail.authorship import read_authors
from tidings.mail.headers import parse_header_block
from tidings.mail.srs import SenderRewriter
from tidings.store import NotFound

log = logging.getLogger(__name__)


def author_domain(message: bytes) -> str | None:
    """The domain of the first From address, lower-case; None when there is none or when the header
    block could not be read completely (then no reader can be trusted to agree on its From)."""
    block = parse_header_block(message, 0, len(message))
    if not block.complete:
        return None
    authors = read_authors(message, block)
    if authors.unreadable:
        return None
    return authors.author_domain


async def signing_domain(store, message: bytes):
    """The local `Domain` (with selector and key) of the From: address, or None."""
    name = author_domain(message)
    if name is None:
        return None
    try:
        domain = await store.accounts.get_domain(name)
    except (NotFound, ValueError):
        return None
    if domain.dkim_selector and domain.dkim_private_key:
        return domain
    return None


async def sign_authored(store, message: bytes) -> bytes:
    """`message` with a DKIM-Signature prepended when its From: domain is ours and has a key. Only for
    mail an authenticated user submitted (see the module docstring)."""
    domain = await signing_domain(store, message)
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


async def outbound(
    store, srs: SenderRewriter, *, authored: bool, sender: str, message: bytes
) -> tuple[str, bytes]:
    """(envelope sender, message bytes) to relay: signed when authored, SRS-forwarded otherwise."""
    if authored:
        return sender, await sign_authored(store, message)
    return srs.forward(sender), message
