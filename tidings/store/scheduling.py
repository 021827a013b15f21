"""Scheduling (iTIP, RFC 5546) against the accounts' calendars: applying what arrives, keeping
what is answered, and the free/busy of colleagues.

Incoming: `Delivery.accept` calls `incoming` after the commit for a message delivered to local
accounts that carries a text/calendar part with a METHOD (pim/imip.py finds it, bounded). A
REPLY updates the PARTSTAT of its attendee in the organiser's copy; a CANCEL marks the
attendee's copy cancelled; a REQUEST updates a copy the attendee already holds (a new invitation
is offered in the web client's message view instead, where the person answers it:
`answer_invitation`). Doing this at delivery rather than when the mail is opened means the
organiser's calendar is current in every client (DAV too), read or not.

What is trusted, and why: an iTIP message can claim any ORGANIZER or ATTENDEE. We believe the
author only as far as the mail system vouches for it:
- the RFC 5322 From: must be the ATTENDEE a REPLY names (the ORGANIZER of a REQUEST/CANCEL);
- when that address is in one of our domains, the message must have been submitted by an
  authenticated account allowed to send as it (Envelope.account_id; submission already refused
  a From: that is not theirs): nobody outside can speak for a local user;
- when it is remote, the envelope sender (MAIL FROM) must be that address too. We have no
  DMARC verdict to go on, so a forger who controls both for a remote domain is believed — the
  same trust every iMIP implementation without DMARC gives, limited by pim/itip.py to that one
  attendee's PARTSTAT in an event that already invited them.
Failures are logged and never affect delivery: the message is in the INBOX either way.

`busy` answers free/busy for colleagues of the same domain: periods only, never titles.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from tidings.mail.authorship import read_authors
from tidings.mail.headers import parse_header_block
from tidings.pim import InvalidObject, imip, itip
from tidings.store import schema as s
from tidings.store.accounts import Accounts
from tidings.store.database import Database, NotFound, StoreError, Tx
from tidings.store.pim import CALENDAR, OWNER, Pim, PimObject, PreconditionFailed

log = logging.getLogger(__name__)
MAX_BUSY_PEOPLE = 20


@dataclass(frozen=True)
class Applied:
    """What `incoming` did for one recipient (for logs and tests)."""

    address: str
    method: str
    uid: str
    outcome: str  # "updated", "cancelled", "offered", or why nothing changed


@dataclass(frozen=True)
class Busy:
    address: str
    periods: list[tuple[datetime, datetime]]


def from_address(raw: bytes) -> str | None:
    """The single From: address of a message, or None (none, several, unreadable)."""
    block = parse_header_block(raw, 0, min(len(raw), 256 * 1024))
    found = read_authors(raw, block).from_addresses
    return found[0].lower() if len(found) == 1 else None


class Scheduling:
    def __init__(self, db: Database, pim: Pim, accounts: Accounts) -> None:
        self.db = db
        self.pim = pim
        self.accounts = accounts

    # -- finding copies ------------------------------------------------------------------------

    async def own_copy(self, account_id: int, uid: str) -> PimObject | None:
        """The event with this UID in a calendar the account owns (with its text), or None."""

        def op(tx: Tx) -> int | None:
            o, c = s.pim_objects, s.pim_collections
            return tx.conn.execute(
                select(o.c.id)
                .join(c, c.c.id == o.c.collection_id)
                .where(c.c.account_id == account_id, c.c.kind == CALENDAR, o.c.uid == uid)
                .order_by(o.c.id)
                .limit(1)
            ).scalar()

        found = await self.db.read(op)
        return await self.pim.object(account_id, found) if found is not None else None

    # -- incoming -------------------------------------------------------------------------------

    async def incoming(
        self, raw: bytes, envelope_sender: str, submitter_id: int | None, delivered: list[str]
    ) -> list[Applied]:
        """Apply the scheduling message in `raw` (if any) for each local recipient it reached."""
        if len(raw) > imip.MAX_MESSAGE_BYTES or not imip.MAY_CARRY_CALENDAR.search(raw):
            return []
        message = await asyncio.to_thread(imip.find, raw)
        if message is None:
            return []
        author = from_address(raw)
        out = []
        for address in delivered:
            try:
                outcome = await self._apply(message, address, author, envelope_sender, submitter_id)
            except (itip.Refused, InvalidObject, NotFound, PreconditionFailed, StoreError) as error:
                outcome = f"refused: {error}"
            except Exception:  # a scheduling bug must never touch delivery
                log.exception("scheduling: %s %s for %s failed", message.method, message.uid, address)
                outcome = "failed"
            if outcome.startswith(("refused", "failed")):
                log.info("scheduling: %s %s for %s: %s", message.method, message.uid, address, outcome)
            out.append(Applied(address, message.method, message.uid, outcome))
        return out

    async def vouched(
        self, claimed: str, author: str | None, envelope_sender: str, submitter_id: int | None
    ) -> bool:
        """Whether a message may speak for `claimed` (see the module docstring)."""
        claimed = claimed.lower()
        if author != claimed:
            return False
        domain = claimed.rpartition("@")[2]
        if await self.accounts.is_local_domain(domain):
            if submitter_id is None:
                return False
            try:
                account = await self.accounts.get_user_by_id(submitter_id)
            except NotFound:
                return False
            return claimed in {a.lower() for a in await self.accounts.senders_allowed(account)}
        return envelope_sender.lower() == claimed

    async def _apply(
        self,
        message: itip.Scheduling,
        address: str,
        author: str | None,
        envelope_sender: str,
        submitter_id: int | None,
    ) -> str:
        account = await self.accounts.get_user(address)
        if message.method == itip.REPLY:
            attendee = message.attendees[0].address
            if not await self.vouched(attendee, author, envelope_sender, submitter_id):
                raise itip.Refused(f"the reply does not come from {attendee}")
            copy = await self.own_copy(account.id, message.uid)
            if copy is None:
                return "no such event"
            owners = await self.accounts.senders_allowed(account)
            text, _ = itip.apply_reply(copy.data or "", message.text, owners, attendee)
            await self.pim.put(account.id, copy.collection_id, copy.href, text, if_match=copy.etag)
            return "updated"
        if not await self.vouched(message.organizer, author, envelope_sender, submitter_id):
            raise itip.Refused(f"the message does not come from the organiser {message.organizer}")
        if message.organizer in {a.lower() for a in await self.accounts.senders_allowed(account)}:
            return "own event"  # the organiser's copy changes by editing it, never by its own mail
        copy = await self.own_copy(account.id, message.uid)
        if message.method == itip.CANCEL:
            if copy is None:
                return "no such event"
            text = itip.apply_cancel(copy.data or "", message.text)
            await self.pim.put(account.id, copy.collection_id, copy.href, text, if_match=copy.etag)
            return "cancelled"
        if copy is None:
            return "offered"
        text = itip.apply_request(copy.data or "", message.text, address)
        await self.pim.put(account.id, copy.collection_id, copy.href, text, if_match=copy.etag)
        return "updated"

    # -- answering an invitation -------------------------------------------------------------

    async def answer_invitation(self, account_id: int, request: str, partstat: str) -> tuple[PimObject, str]:
        """Put the invitation into the account's default calendar (or update the copy it has) with
        the account's answer; returns the stored event and the REPLY to send to the organiser."""
        message = itip.parse(request)
        if message.method != itip.REQUEST:
            raise InvalidObject("not an invitation")
        account = await self.accounts.get_user_by_id(account_id)
        mine = {a.lower() for a in await self.accounts.senders_allowed(account)}
        me = next((a.address for a in message.attendees if a.address in mine), None)
        if me is None:
            raise itip.Refused("you are not an attendee of this event")
        if message.organizer in mine:
            raise itip.Refused("you organise this event")
        reply = itip.make_reply(request, me, partstat)
        copy = await self.own_copy(account_id, message.uid)
        if copy is not None:
            text = itip.attendee_copy(request, me, partstat, copy.data)
            stored = await self.pim.put(account_id, copy.collection_id, copy.href, text, if_match=copy.etag)
        else:
            calendar = await self.pim.default_collection(account_id, "calendar")
            text = itip.attendee_copy(request, me, partstat)
            stored = await self.pim.put(account_id, calendar.id, None, text)
        return stored, reply

    # -- free/busy -----------------------------------------------------------------------------

    async def busy(self, account_id: int, addresses: list[str], start: datetime, end: datetime) -> list[Busy]:
        """Busy periods in [start, end) of each address that is an account of the acting
        account's own domain (others are left out): instances of the calendars they own,
        cancelled and transparent events not counted, no details."""
        me = await self.accounts.get_user_by_id(account_id)
        domain = me.address.rpartition("@")[2]
        out = []
        for address in list(dict.fromkeys(a.lower() for a in addresses))[:MAX_BUSY_PEOPLE]:
            if address.rpartition("@")[2] != domain:
                continue
            try:
                colleague = await self.accounts.get_user(address)
            except NotFound:
                continue
            if getattr(colleague, "disabled", False):
                continue
            own = [c.id for c in await self.pim.collections(colleague.id, CALENDAR) if c.access == OWNER]
            own = [i for i in own if not (await self.pim.collection(colleague.id, i)).is_journal]
            periods = []
            for instance in await self.pim.instances(colleague.id, start, end, collection_ids=own):
                occurrence = instance.occurrence
                if occurrence.transparent or occurrence.cancelled:
                    continue
                periods.append((occurrence.start, occurrence.end))
            out.append(Busy(address, periods))
        return out
