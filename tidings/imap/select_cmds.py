"""Selecting and leaving a mailbox: SELECT, EXAMINE, CLOSE, UNSELECT, CHECK, EXPUNGE.

RFC 9051 6.3.2-6.3.3 and 6.4.1-6.4.3 (RFC 3501 likewise), UNSELECT (RFC 3691), UID EXPUNGE
(UIDPLUS, RFC 4315), CONDSTORE/QRESYNC select parameters (RFC 7162 3.1.2, 3.2.5), MAILBOXID
(OBJECTID, RFC 8474).
"""

from __future__ import annotations

from tidings.imap import commands as c
from tidings.imap.selected import SelectedMailbox
from tidings.imap.sequence import format_uid_set
from tidings.imap.states import AUTHENTICATED, SELECTED, Bad, No, State, command


def leave_selected(session) -> None:
    if session.selected is not None and session.qresync:
        session.untagged("OK [CLOSED] Previous mailbox closed")  # RFC 7162 3.2.11
    session.selected = None
    session.loader = None
    session.state = State.AUTHENTICATED


@command("SELECT", AUTHENTICATED)
@command("EXAMINE", AUTHENTICATED)
async def select(session, cmd: c.Select):
    """RFC 9051 6.3.2 / 6.3.3: report the mailbox and switch to it (read-only for EXAMINE)."""
    leave_selected(session)
    if cmd.qresync is not None and not session.qresync:
        raise Bad("QRESYNC parameter requires ENABLE QRESYNC first")
    if cmd.condstore:
        session.enable_condstore()  # RFC 7162 3.1.8 (nothing is selected any more here)
    mailbox = await session.mailbox(cmd.mailbox)
    mailbox, refs = await session.store.mailboxes.messages(session.account.id, mailbox.id)
    view = SelectedMailbox(mailbox, refs, cmd.read_only)
    await session.note_recent(view, mailbox.recent_uid)  # SELECT claims \Recent, EXAMINE does not

    session.write(view.flags_lines())
    session.untagged(b"%d EXISTS" % len(refs))
    if not session.rev2:
        session.untagged(b"%d RECENT" % view.recent_count())
        first_unseen = next((n for n, ref in enumerate(refs, 1) if "\\Seen" not in ref.flags), None)
        if first_unseen is not None:
            session.untagged(f"OK [UNSEEN {first_unseen}] First unseen message")
    session.untagged(f"OK [UIDVALIDITY {mailbox.uidvalidity}] UIDs valid")
    session.untagged(f"OK [UIDNEXT {mailbox.uidnext}] Predicted next UID")
    session.untagged(f"OK [HIGHESTMODSEQ {mailbox.highestmodseq}] Highest")
    session.untagged(f"OK [MAILBOXID ({mailbox.object_id})] Mailbox id")
    if session.rev2:
        session.untagged(b'LIST () "/" ' + session.encode_name(mailbox.name))

    if cmd.qresync is not None and cmd.qresync.uidvalidity == mailbox.uidvalidity:
        await _qresync(session, view, cmd.qresync)

    session.selected = view
    session.state = State.SELECTED
    return ("READ-ONLY" if cmd.read_only else "READ-WRITE"), f"{cmd.name} completed"


async def _qresync(session, view: SelectedMailbox, params: c.QresyncParameters) -> None:
    """RFC 7162 3.2.5.1: what the client missed since its cached modseq."""
    gone = await session.store.mailboxes.expunged_since(session.account.id, view.mailbox_id, params.modseq)
    await session.pace()  # each step can be long (thousands of ranges, of messages): others run between
    if params.known_uids is not None:
        gone = params.known_uids.select(gone, view.uidnext)  # ascending: one merge, O(UIDs + ranges)
    if gone:
        session.untagged(b"VANISHED (EARLIER) " + format_uid_set(gone).encode())
    await session.pace()
    # The changed messages are in the snapshot just read (re-reading them would double the work).
    for seq, ref in enumerate(view.refs, 1):
        if ref.modseq > params.modseq:
            session.write(view.fetch_flags_line(seq, ref, condstore=True))
            await session.pace()


@command("CLOSE", SELECTED)
async def close(session, cmd: c.Close) -> None:
    """RFC 9051 6.4.1: expunge silently (unless read-only) and leave the mailbox."""
    selected = session.selected
    if not selected.read_only:
        await session.store.mailboxes.expunge(session.account.id, selected.mailbox_id)
    session.selected = None
    session.loader = None
    session.state = State.AUTHENTICATED


@command("UNSELECT", SELECTED)
async def unselect(session, cmd: c.Unselect) -> None:
    """RFC 3691: leave the mailbox without expunging."""
    session.selected = None
    session.loader = None
    session.state = State.AUTHENTICATED


@command("CHECK", SELECTED)
async def check(session, cmd: c.Check) -> None:
    """RFC 3501 6.4.1: every write is already durable, so there is nothing to do."""


@command("EXPUNGE", SELECTED)
async def expunge(session, cmd: c.Expunge):
    """RFC 9051 6.4.3, and UID EXPUNGE (RFC 4315 2.1) which only touches the given UIDs; with
    QRESYNC the tagged OK carries HIGHESTMODSEQ (RFC 7162 3.2.10)."""
    selected = session.selected
    if selected.read_only:
        raise No("The mailbox is read-only", "READ-ONLY")
    uids = None
    if cmd.uid:
        uids = [ref.uid for _, ref in selected.resolve(cmd.uid_set, uid=True)]
        if not uids:
            return
    expunged = await session.store.mailboxes.expunge(session.account.id, selected.mailbox_id, uids)
    out = bytearray()
    selected.remove_announced(expunged, session.qresync, out)
    session.write(bytes(out))
    if session.qresync:
        return await session.highestmodseq_after_change(), None
    return None
