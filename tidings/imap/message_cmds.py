"""Commands on the messages of the selected mailbox: FETCH, STORE, COPY, MOVE, SEARCH, SORT,
THREAD (and their UID forms).

RFC 9051 6.4 (RFC 3501 6.4), UIDPLUS COPYUID (RFC 4315), MOVE (RFC 6851), CONDSTORE/QRESYNC
(RFC 7162: CHANGEDSINCE, VANISHED, UNCHANGEDSINCE -> MODIFIED), ESEARCH/SEARCHRES (RFC 4731,
RFC 5182), SORT/THREAD (RFC 5256), PARTIAL windows (RFC 9394), updating contexts and CANCELUPDATE
(RFC 5267 section 4, kept by :mod:`tidings.imap.search_context`).  What a data item or search key
means is the business of :mod:`tidings.imap.fetch`, :mod:`tidings.imap.search` and
:mod:`tidings.imap.sort_thread`; this module chooses the messages, changes the store and keeps
the session's snapshot in step.
"""

from __future__ import annotations

from tidings.imap import commands as c
from tidings.imap.fetch import fetch_responses, seen_targets
from tidings.imap.message_data import MessageContext, StoreMessageLoader, contexts_for
from tidings.imap.search import check_charset, evaluate_search, search_reply, uses_modseq, uses_threadid
from tidings.imap.search_context import UpdateContext, add_to, remove_from
from tidings.imap.sequence import format_uid_set
from tidings.imap.sort_thread import (
    check_thread_algorithm,
    format_thread,
    sort_messages,
    sort_reply,
    thread_messages,
)
from tidings.imap.states import SELECTED, Bad, No, command
from tidings.imap.wire import quote
from tidings.store import NotFound, StoreError

_MODSEQ_ITEM = c.FetchAttribute("MODSEQ")
_STORE_MODES = {c.StoreMode.ADD: "add", c.StoreMode.REMOVE: "remove", c.StoreMode.REPLACE: "replace"}


def loader_for(session) -> StoreMessageLoader:
    """The session's summary/blob loader, made on first use and dropped while idling."""
    loader = getattr(session, "loader", None)
    if loader is None:
        loader = session.loader = StoreMessageLoader(session.store.mailboxes, session.account.id)
    return loader


_THREADID = c.FetchAttribute("THREADID")


async def thread_ids_for(session, contexts, wanted: bool) -> dict[int, int] | None:
    """{messages.id: thread} for ``contexts`` when THREADID is asked for (RFC 8474)."""
    if not wanted:
        return None
    return await session.store.threads.thread_ids(session.account.id, [ctx.ref for ctx in contexts])


async def search_selected(session, criteria: c.And, loader) -> list[MessageContext]:
    """The selected mailbox's messages matching ``criteria`` (SEARCH, SORT and THREAD)."""
    selected = session.selected
    contexts = contexts_for(selected.refs, recent=selected.recent)
    thread_ids = await thread_ids_for(session, contexts, uses_threadid(criteria))
    return await evaluate_search(
        criteria, contexts, loader, saved_uids=selected.saved_uids, thread_ids=thread_ids, pace=session.pace
    )


@command("FETCH", SELECTED, expunge_allowed=False)
async def fetch(session, cmd: c.Fetch) -> None:
    """RFC 9051 6.4.5 / 6.4.8; CHANGEDSINCE and VANISHED (RFC 7162 3.1.4, 3.2.6); PARTIAL
    (RFC 9394 section 3.2)."""
    selected = session.selected
    if cmd.vanished and not (cmd.uid and session.qresync):
        raise Bad("VANISHED needs UID FETCH and ENABLE QRESYNC")
    if cmd.vanished and cmd.changed_since is None:
        raise Bad("VANISHED needs CHANGEDSINCE")
    if cmd.changed_since is not None or _MODSEQ_ITEM in cmd.items:
        session.enable_condstore()  # RFC 7162 3.1
    pairs = selected.resolve(cmd.sequence_set, cmd.uid)
    await session.pace()  # a set of thousands of ranges is work: let the others run between steps
    if cmd.vanished:
        expunged = await session.store.mailboxes.expunged_since(
            session.account.id, selected.mailbox_id, cmd.changed_since
        )
        await session.pace()
        largest = selected.refs[-1].uid if selected.refs else 0
        gone = cmd.sequence_set.select(expunged, largest)  # one merge: O(UIDs + ranges)
        if gone:
            session.untagged(b"VANISHED (EARLIER) " + format_uid_set(gone).encode())
        await session.pace()
    contexts = [MessageContext(seq, ref, ref.uid in selected.recent) for seq, ref in pairs]
    if cmd.partial is not None:
        # RFC 9394 section 3.2: the window is taken over the messages the set names that would
        # be answered (CHANGEDSINCE applied first), in UID order.
        if cmd.changed_since is not None:
            contexts = [ctx for ctx in contexts if ctx.ref.modseq > cmd.changed_since]
        contexts = cmd.partial.window(contexts)
    flags_changed: set[int] = set()
    targets = seen_targets(cmd.items, contexts, read_only=selected.read_only)
    if targets:
        changed, _ = await session.store.mailboxes.store_flags(
            session.account.id, selected.mailbox_id, [t.uid for t in targets], "add", ["\\Seen"]
        )
        fresh = {ref.uid: ref for ref in changed}
        for ref in changed:
            selected.replace(ref)
        if changed:
            selected.caught_up_with_own_change(changed[0].modseq)
        flags_changed = set(fresh)
        contexts = [MessageContext(ctx.seq, fresh.get(ctx.uid, ctx.ref), ctx.recent) for ctx in contexts]
    responses = fetch_responses(
        cmd.items,
        contexts,
        loader_for(session),
        uid=cmd.uid,
        utf8=session.utf8,
        condstore=session.condstore,
        changed_since=cmd.changed_since,
        flags_changed=flags_changed,
        thread_ids=await thread_ids_for(session, contexts, _THREADID in cmd.items),
    )
    async for response in responses:
        for piece in response:  # streamed: the whole answer is never in memory (see fetch.py)
            session.write(piece)
            await session.pace()


@command("STORE", SELECTED, expunge_allowed=False)
async def store(session, cmd: c.Store):
    """RFC 9051 6.4.6; UNCHANGEDSINCE -> [MODIFIED] (RFC 7162 3.1.3)."""
    selected = session.selected
    if selected.read_only:
        raise No("The mailbox is read-only", "READ-ONLY")
    if cmd.unchanged_since is not None:
        session.enable_condstore()
    pairs = selected.resolve(cmd.sequence_set, cmd.uid)
    flags = [flag for flag in cmd.flags if flag.lower() != "\\recent"]
    changed, refused = await session.store.mailboxes.store_flags(
        session.account.id,
        selected.mailbox_id,
        [ref.uid for _, ref in pairs],
        _STORE_MODES[cmd.mode],
        flags,
        cmd.unchanged_since,
    )
    fresh = {ref.uid: ref for ref in changed}
    refused_set = set(refused)
    condstore = session.condstore
    lines = bytearray()
    for seq, ref in pairs:
        if ref.uid in refused_set or selected.is_expunged(ref.uid):
            continue
        new = fresh.get(ref.uid)
        if new is not None:
            selected.replace(new)
            ref = new
        if not cmd.silent:
            lines += selected.fetch_flags_line(seq, ref, condstore)
        elif new is not None and condstore:
            # RFC 7162 3.1.3: even .SILENT reports the new MODSEQ of what changed.
            lines += selected.fetch_flags_line(seq, ref, condstore, include_flags=False)
    if changed:
        selected.caught_up_with_own_change(changed[0].modseq)
    out = bytearray()
    selected.take_flags_update(out)  # a new keyword is announced before the FETCH showing it
    session.write(bytes(out + lines))
    if refused:
        numbers = refused if cmd.uid else [seq for seq, ref in pairs if ref.uid in refused_set]
        return f"MODIFIED {format_uid_set(numbers)}", "Some messages were modified since"
    return None


async def _target(session, wire_name: str):
    name = session.decode_name(wire_name)
    try:
        return await session.store.mailboxes.get(session.account.id, name)
    except NotFound:
        raise No("Target mailbox does not exist", "TRYCREATE") from None
    except StoreError as exc:
        raise No(f"Invalid mailbox name: {exc}", "CANNOT") from None


@command("COPY", SELECTED)
async def copy(session, cmd: c.Copy):
    """RFC 9051 6.4.7 with COPYUID (RFC 4315 3)."""
    selected = session.selected
    pairs = selected.resolve(cmd.sequence_set, cmd.uid)
    target = await _target(session, cmd.mailbox)
    uids = [ref.uid for _, ref in pairs if not selected.is_expunged(ref.uid)]
    if not uids:
        if pairs:
            raise No("The messages were expunged meanwhile", "EXPUNGEISSUED")
        return None
    uidvalidity, mapping = await session.store.mailboxes.copy(
        session.account.id, selected.mailbox_id, uids, target.id
    )
    if not mapping:
        raise No("The messages were expunged meanwhile", "EXPUNGEISSUED")
    return _copyuid(uidvalidity, mapping), f"{'UID ' if cmd.uid else ''}COPY completed"


def _copyuid(uidvalidity: int, mapping: list[tuple[int, int]]) -> str:
    # Both sets in the same order: source UIDs ascend, and so do the new UIDs given to them.
    sources = format_uid_set(source for source, _ in mapping)
    targets = format_uid_set(target for _, target in mapping)
    return f"COPYUID {uidvalidity} {sources} {targets}"


@command("MOVE", SELECTED)
async def move(session, cmd: c.Move):
    """RFC 6851 3.3: COPYUID in an untagged OK, then EXPUNGE/VANISHED, then the tagged OK (with
    HIGHESTMODSEQ under QRESYNC, as for EXPUNGE)."""
    selected = session.selected
    if selected.read_only:
        raise No("The mailbox is read-only", "READ-ONLY")
    pairs = selected.resolve(cmd.sequence_set, cmd.uid)
    target = await _target(session, cmd.mailbox)
    uids = [ref.uid for _, ref in pairs if not selected.is_expunged(ref.uid)]
    if not uids:
        return None
    uidvalidity, mapping = await session.store.mailboxes.copy(
        session.account.id, selected.mailbox_id, uids, target.id, move=True
    )
    if mapping:
        session.untagged(f"OK [{_copyuid(uidvalidity, mapping)}] Moved")
        out = bytearray()
        selected.remove_announced([s for s, _ in mapping], session.qresync, out)
        session.write(bytes(out))
        if session.qresync:
            return await session.highestmodseq_after_change(), None  # RFC 7162 3.2.10
    return None


@command("SEARCH", SELECTED, expunge_allowed=False)
async def search(session, cmd: c.Search) -> None:
    """RFC 9051 6.4.4; ESEARCH (RFC 4731), SEARCHRES (RFC 5182), MODSEQ (RFC 7162 3.1.5)."""
    selected = session.selected
    check_charset(cmd.charset)
    if uses_modseq(cmd.criteria):
        session.enable_condstore()
    _check_update_tag(session, cmd)
    matched = await search_selected(session, cmd.criteria, loader_for(session))
    reply = search_reply(cmd, matched, esearch=session.rev2)
    session.write(reply.response)
    if reply.saved_uids is not None:
        selected.saved_uids = reply.saved_uids
    _start_updates(session, cmd, cmd.criteria, None, [ctx.uid for ctx in matched])


@command("SORT", SELECTED, expunge_allowed=False)
async def sort(session, cmd: c.Sort) -> None:
    """RFC 5256 SORT (and ESORT RETURN options, RFC 5267)."""
    selected = session.selected
    check_charset(cmd.charset)
    _check_update_tag(session, cmd)
    loader = loader_for(session)
    matched = await search_selected(session, cmd.search, loader)
    ordered = await sort_messages(cmd.criteria, matched, loader)
    reply = sort_reply(cmd, ordered)
    session.write(reply.response)
    if reply.saved_uids is not None:
        selected.saved_uids = reply.saved_uids
    _start_updates(session, cmd, cmd.search, cmd.criteria, [ctx.uid for ctx in ordered])


def _wants_updates(cmd: c.Search | c.Sort) -> bool:
    return cmd.return_options is not None and "UPDATE" in cmd.return_options


def _check_update_tag(session, cmd: c.Search | c.Sort) -> None:
    """RFC 5267 4.3: UPDATE under a tag an updating context already has is refused."""
    if _wants_updates(cmd) and cmd.tag in session.selected.contexts.by_tag:
        raise Bad("Tag reuse: an updating search already has this tag")


def _start_updates(session, cmd: c.Search | c.Sort, criteria: c.And, sort, result: list[int]) -> None:
    """Keep an updating context for RETURN (UPDATE) (RFC 5267 4.3), or say NOUPDATE (4.3.1)."""
    if not _wants_updates(cmd):
        return
    context = UpdateContext(cmd.tag, cmd.uid, criteria, sort, result)
    if not session.selected.contexts.add(context):
        session.untagged(b"NO [NOUPDATE " + quote(cmd.tag) + b"] Too many updating searches")


@command("CANCELUPDATE", SELECTED)
async def cancel_update(session, cmd: c.CancelUpdate) -> None:
    """RFC 5267 section 4.3.5: no more updates for the contexts these tags started."""
    unknown = [tag for tag in cmd.tags if not session.selected.contexts.cancel(tag)]
    if unknown:
        raise No(f"No updating search has the tag {unknown[0]}")


async def refresh_search_contexts(session) -> None:
    """Re-check the messages whose flags or presence changed against each updating context
    and tell the client which joined (ADDTO) or left (REMOVEFROM) its result (RFC 5267 4.3).
    Called after the new messages were announced with EXISTS (section 4.3.3); expunged ones
    are dealt with as their EXPUNGE goes out (:meth:`SelectedMailbox._announce_expunges`)."""
    selected = session.selected
    if selected is None or not selected.contexts or not selected.touched:
        return
    touched, selected.touched = selected.touched, set()
    everything = contexts_for(selected.refs, recent=selected.recent)
    candidates = [ctx for ctx in everything if ctx.uid in touched and not selected.is_expunged(ctx.uid)]
    largest = (len(selected.refs), selected.refs[-1].uid if selected.refs else 0)
    loader = loader_for(session)

    def number_of(uid: int) -> int:
        return selected.index_of(uid) + 1

    for context in selected.contexts:
        thread_ids = await thread_ids_for(session, candidates, uses_threadid(context.criteria))
        found = await evaluate_search(
            context.criteria,
            candidates,
            loader,
            saved_uids=selected.saved_uids,
            thread_ids=thread_ids,
            pace=session.pace,
            largest=largest,
        )
        matched = {ctx.uid for ctx in found}
        held = set(context.result)
        left = [uid for uid in context.result if uid in touched and uid not in matched]
        joined = sorted(matched - held)
        if left:
            session.write(remove_from(context, left, number_of) + b"\r\n")
            gone = set(left)
            context.result = [uid for uid in context.result if uid not in gone]
        if not joined:
            continue
        members = set(context.result) | set(joined)
        if context.sort is None:
            context.result = sorted(members)  # mailbox order
        else:
            ordered = await sort_messages(
                context.sort, [ctx for ctx in everything if ctx.uid in members], loader
            )
            context.result = [ctx.uid for ctx in ordered]
            joined = [uid for uid in joined if uid in set(context.result)]
        session.write(add_to(context, joined, number_of) + b"\r\n")


@command("THREAD", SELECTED, expunge_allowed=False)
async def thread(session, cmd: c.Thread) -> None:
    """RFC 5256 THREAD=ORDEREDSUBJECT and THREAD=REFERENCES."""
    check_charset(cmd.charset)
    check_thread_algorithm(cmd.algorithm)
    loader = loader_for(session)
    matched = await search_selected(session, cmd.search, loader)
    threads = await thread_messages(cmd.algorithm, matched, loader, uid=cmd.uid)
    session.write(format_thread(threads))
