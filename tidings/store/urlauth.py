"""Resolving IMAP URLs to message bytes, and URLAUTH: URLs that carry their own authorisation.

Shared by IMAP (CATENATE RFC 4469, GENURLAUTH/RESETKEY/URLFETCH RFC 4467) and SMTP submission
(BURL RFC 4468), which must never import each other: both parse with
:func:`tidings.mail.imapurl.parse_imap_url` and come here for the bytes.

* :meth:`UrlAccess.fetch` reads what a URL names in one account's own mailboxes: the caller has
  decided that the account may read it (its own session's user).
* An authorised URL (``;URLAUTH=access:INTERNAL:token``) is signed with a random *access key*
  of its mailbox: the token is HMAC-SHA256(key, URL up to the access identifier).  Anyone the
  access identifier admits may fetch it (:meth:`UrlAccess.fetch_authorized`) until the key is
  reset (RESETKEY) or the mailbox is deleted (the key goes with it), or its ``;EXPIRE=`` passes.

Never answers for a message outside the named account's mailboxes, and a URL that cannot be
resolved for any reason gives ``None`` (IMAP answers NIL or ``NO [BADURL]``), never an error
that says why, so a caller cannot probe other users' mailboxes.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import secrets
from bisect import bisect_left

from sqlalchemy import delete, insert, select

from tidings.mail.imapurl import ImapUrl, section_parts
from tidings.mail.sections import extract_section
from tidings.store import schema as s
from tidings.store.database import Database, NotFound, StoreError, Tx

MECHANISM = "INTERNAL"
"""The one URLAUTH mechanism (RFC 4467 section 7): the server's own HMAC."""


def _token(key: bytes, rump: str) -> str:
    return hmac.new(key, rump.encode("ascii"), hashlib.sha256).hexdigest()


class UrlAccess:
    """See the module docstring."""

    def __init__(self, db: Database, accounts, mailboxes) -> None:
        self.db = db
        self.accounts = accounts
        self.mailboxes = mailboxes

    async def fetch(self, account_id: int, url: ImapUrl) -> bytes | None:
        """The bytes ``url`` names in the account's own mailboxes, or None."""
        try:
            box = await self.mailboxes.get(account_id, url.mailbox)
            if url.uidvalidity is not None and url.uidvalidity != box.uidvalidity:
                return None
            _, refs = await self.mailboxes.messages(account_id, box.id)
            index = bisect_left(refs, url.uid, key=lambda ref: ref.uid)
            if index == len(refs) or refs[index].uid != url.uid:
                return None
            ref = refs[index]
            raw = await self.mailboxes.read_blob(ref.blob_hash)
        except (NotFound, StoreError, FileNotFoundError):
            return None
        if url.section:
            summary = (await self.mailboxes.summaries(account_id, [ref])).get(ref.message_id)
            if summary is None:
                return None
            part, kind, fields = section_parts(url.section)
            raw = extract_section(raw, summary, part, kind, fields)
        if url.partial is not None:
            offset, length = url.partial
            raw = raw[offset:] if length is None else raw[offset : offset + length]
        return raw

    async def generate(self, account_id: int, url: ImapUrl) -> str:
        """The URL with its ``:INTERNAL:token`` verifier (GENURLAUTH); the URL must name one of
        the account's mailboxes.  Makes the mailbox's access key on first use."""
        box = await self.mailboxes.get(account_id, url.mailbox)

        def op(tx: Tx) -> bytes:
            key = _key(tx, box.id)
            if key is None:
                key = secrets.token_bytes(32)
                tx.conn.execute(insert(s.urlauth_keys).values(mailbox_id=box.id, access_key=key))
            return key

        key = await self.db.write(op)
        return f"{url.rump}:{MECHANISM}:{_token(key, url.rump)}"

    async def reset(self, account_id: int, mailbox_id: int | None = None) -> None:
        """RESETKEY: forget the access key of one mailbox, or of all the account's mailboxes,
        so every URL they signed stops working."""

        def op(tx: Tx) -> None:
            owned = select(s.mailboxes.c.id).where(s.mailboxes.c.account_id == account_id)
            if mailbox_id is not None:
                owned = owned.where(s.mailboxes.c.id == mailbox_id)
            tx.conn.execute(delete(s.urlauth_keys).where(s.urlauth_keys.c.mailbox_id.in_(owned)))

        await self.db.write(op)

    async def fetch_authorized(self, url: ImapUrl, user: str | None, *, submit: bool = False) -> bytes | None:
        """The bytes of an authorised URL for ``user`` (an authenticated address, None for
        nobody); ``submit`` when the message submission server asks on ``user``'s behalf (BURL).

        RFC 4467 section 6: ``anonymous`` admits anyone, ``authuser`` any authenticated user,
        ``user+name`` that user, ``submit+name`` the submission server acting for that user.
        """
        if not url.authorized or url.mechanism != MECHANISM or url.user is None or url.access is None:
            return None
        if url.expire is not None and url.expire <= datetime.datetime.now(datetime.UTC):
            return None
        if not _admits(url.access, user, submit):
            return None
        try:
            owner = await self.accounts.get_user(url.user)
            box = await self.mailboxes.get(owner.id, url.mailbox)
        except (NotFound, StoreError, ValueError):
            return None
        key = await self.db.read(lambda tx: _key(tx, box.id))
        if key is None or not hmac.compare_digest(_token(key, url.rump), url.token or ""):
            return None
        return await self.fetch(owner.id, url)


def _admits(access: str, user: str | None, submit: bool) -> bool:
    if access == "anonymous":
        return True
    if user is None:
        return False
    if access == "authuser":
        return True
    kind, _, name = access.partition("+")
    same = name.lower() == user.lower()
    if kind == "user":
        return same
    return kind == "submit" and submit and same


def _key(tx: Tx, mailbox_id: int) -> bytes | None:
    value = tx.conn.execute(
        select(s.urlauth_keys.c.access_key).where(s.urlauth_keys.c.mailbox_id == mailbox_id)
    ).scalar()
    return bytes(value) if value is not None else None
