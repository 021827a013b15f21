"""GENURLAUTH, RESETKEY and URLFETCH: URLs that carry their own authorisation (RFC 4467,
capability URLAUTH), so that a client can hand a message to the submission server (BURL, RFC
4468) or to another user without sending it again.

URL syntax is :mod:`tidings.mail.imapurl`'s business; signing, keys and reading the bytes are
:mod:`tidings.store.urlauth`'s.  This module checks what each command may do: a user signs URLs
for their own mailboxes only, and URLFETCH answers only authorised URLs whose access identifier
admits the user (a ``submit+`` URL is for the submission server, so it is NIL here).
"""

from __future__ import annotations

from tidings.imap import commands as c
from tidings.imap import wire
from tidings.imap.states import AUTHENTICATED, No, command
from tidings.mail.imapurl import BadUrl, parse_imap_url
from tidings.store import NotFound, StoreError
from tidings.store.urlauth import MECHANISM


def _check_mechanism(mechanism: str) -> None:
    if mechanism != MECHANISM:
        raise No(f"Unknown URLAUTH mechanism {mechanism}; only {MECHANISM} is supported")


@command("GENURLAUTH", AUTHENTICATED)
async def genurlauth(session, cmd: c.GenUrlAuth) -> None:
    """RFC 4467 section 7.2: ``* GENURLAUTH url...`` with each rump signed, or NO for all."""
    signed: list[bytes] = []
    for rump, mechanism in cmd.requests:
        _check_mechanism(mechanism)
        try:
            url = parse_imap_url(rump)
        except BadUrl as exc:
            raise No(f"Invalid URL: {exc}", f"BADURL {rump}") from None
        if url.access is None or url.token is not None:
            raise No("The URL must end in ;URLAUTH=<access> without a verifier", f"BADURL {rump}")
        if url.user is None or url.user.lower() != session.account.address.lower():
            raise No("Only the owner of a mailbox can authorise URLs to it", f"BADURL {rump}")
        try:
            text = await session.store.urls.generate(session.account.id, url)
        except (NotFound, StoreError):
            raise No("The URL names no mailbox of yours", f"BADURL {rump}") from None
        signed.append(wire.quote(text))
    session.untagged(b"GENURLAUTH " + b" ".join(signed))


@command("RESETKEY", AUTHENTICATED)
async def resetkey(session, cmd: c.ResetKey):
    """RFC 4467 section 7.1: new access keys for one mailbox, or for all of the user's."""
    for mechanism in cmd.mechanisms:
        _check_mechanism(mechanism)
    if cmd.mailbox is None:
        await session.store.urls.reset(session.account.id)
        return None
    box = await session.mailbox(cmd.mailbox)
    await session.store.urls.reset(session.account.id, box.id)
    return f"URLMECH {MECHANISM}", "RESETKEY completed"


@command("URLFETCH", AUTHENTICATED)
async def urlfetch(session, cmd: c.UrlFetch) -> None:
    """RFC 4467 section 7.3: ``* URLFETCH url data ...``, NIL for a URL that gives nothing."""
    out = [b"URLFETCH"]
    for text in cmd.urls:
        data = None
        try:
            url = parse_imap_url(text)
        except BadUrl:
            url = None
        if url is not None and url.authorized:
            data = await session.store.urls.fetch_authorized(url, session.account.address)
        out.append(wire.quote(text) + b" " + (wire.literal(data) if data is not None else b"NIL"))
    session.untagged(b" ".join(out))
