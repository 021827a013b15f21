"""NOTIFY (RFC 5465): which events a client wants to hear about, and telling it.

``NOTIFY SET [STATUS] (filter events) ...`` replaces the session's :class:`NotifySettings`;
``NOTIFY NONE`` drops them.  While settings are in force the session pushes notifications as
changes arrive, between commands too (RFC 5465 section 3: "the client listens ... all the time
(even when no command is in progress)"), and inside IDLE sends exactly these (section 4).

What goes out, by event and mailbox:

* the selected mailbox, under a SELECTED or SELECTED-DELAYED group: EXISTS (and a FETCH of the
  MessageNew fetch-atts for each new message), EXPUNGE / VANISHED (MessageExpunge; under
  SELECTED-DELAYED only while a command that allows them runs, never pushed between commands),
  FETCH FLAGS (FlagChange).  Without such a group nothing about it is pushed; commands still end
  with the updates RFC 9051 requires, as without NOTIFY;
* another mailbox matched by the first non-selected group naming it, with MessageNew /
  MessageExpunge: ``STATUS (MESSAGES UIDNEXT UIDVALIDITY)``, plus ``UNSEEN`` and ``HIGHESTMODSEQ``
  with FlagChange, ``HIGHESTMODSEQ`` whenever CONDSTORE is on (sections 5.1-5.3) -- only when
  one of those values changed since the session last told the client;
* MailboxName: ``LIST () "/" new`` for a created mailbox, ``LIST (\\NonExistent) "/" old`` for a
  deleted one, ``LIST () "/" new ("OLDNAME" (old))`` for a renamed one (section 5.4);
  SubscriptionChange: ``LIST`` with ``\\Subscribed`` if and only if it is subscribed now (5.5);
* MailboxMetadataChange / ServerMetadataChange: ``METADATA name entry ...`` naming the entries
  set or removed (``""`` for the server's), compared with what the session last saw (5.6, 5.7).

Events carry only (mailbox, kind) (:class:`tidings.notify.Waiter`); what changed is re-read from
the store -- the mailbox list is diffed against the one the session last saw, STATUS values
against the ones last sent -- so the same code serves changes made on other nodes.  A delivery
that would carry more than ``limits.imap_notify_burst`` responses is replaced by
``* OK [NOTIFICATIONOVERFLOW]`` and notifications stop, as if NOTIFY NONE had been received
(section 5.8).  AnnotationChange (no ANNOTATE here) is not supported: NO [BADEVENT].
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tidings.imap import commands as c
from tidings.imap import wire
from tidings.imap.fetch import fetch_responses
from tidings.imap.mailbox_cmds import status_response
from tidings.imap.message_cmds import loader_for
from tidings.imap.message_data import MessageContext
from tidings.imap.states import AUTHENTICATED, Bad, No, command
from tidings.store import NotFound
from tidings.store.mailboxes import DELIMITER, Mailbox

SUPPORTED_EVENTS = (
    "MessageNew",
    "MessageExpunge",
    "FlagChange",
    "MailboxName",
    "SubscriptionChange",
    "MailboxMetadataChange",
    "ServerMetadataChange",
)
_CANONICAL = {name.upper(): name for name in SUPPORTED_EVENTS}
_MESSAGE_EVENTS = frozenset({"MessageNew", "MessageExpunge", "FlagChange"})
_KNOWN_MESSAGE_EVENTS = frozenset({"MESSAGENEW", "MESSAGEEXPUNGE", "FLAGCHANGE", "ANNOTATIONCHANGE"})


@dataclass(frozen=True)
class Group:
    """One event group: a mailbox filter (RFC 5465 section 6) and its events (canonical names)."""

    filter: str
    names: frozenset[str]  # SUBTREE / MAILBOXES roots, decoded (UTF-8, INBOX normalised)
    events: frozenset[str]
    fetch_items: tuple[c.FetchItem, ...] = ()

    def matches(self, name: str, subscribed: bool) -> bool:
        """Whether this group's filter covers mailbox ``name``."""
        if self.filter == "PERSONAL":
            return True
        if self.filter == "INBOXES":
            return name == "INBOX"  # the only mailbox deliveries go to
        if self.filter == "SUBSCRIBED":
            return subscribed
        if self.filter == "MAILBOXES":
            return name in self.names
        if self.filter == "SUBTREE":
            return any(name == root or name.startswith(root + DELIMITER) for root in self.names)
        return False


@dataclass
class NotifySettings:
    """What one session asked for with NOTIFY SET, and what it has been told so far."""

    selected: Group | None  # the SELECTED / SELECTED-DELAYED group
    others: list[Group]
    burst: int
    mailboxes: dict[int, Mailbox] = field(default_factory=dict)  # the list as last told
    sent_status: dict[int, tuple] = field(default_factory=dict)  # mailbox id -> values last sent
    # METADATA entries as last seen, mailbox id (None: the server's) -> {entry: value}
    metadata: dict[int | None, dict[str, bytes]] = field(default_factory=dict)

    def group_for(self, box: Mailbox) -> Group | None:
        """The first non-selected group covering ``box`` (RFC 5465 section 6)."""
        for group in self.others:
            if group.matches(box.name, box.subscribed):
                return group
        return None

    @property
    def wants_server_metadata(self) -> bool:
        return any("ServerMetadataChange" in g.events for g in self.others)

    @property
    def wants_mailbox_list(self) -> bool:
        return any(g.events & {"MailboxName", "SubscriptionChange"} for g in self.others)


class Overflow(Exception):
    """More notifications than one delivery may carry."""


# --------------------------------------------------------------------------- the command


def _group(session, parsed: c.NotifyGroup) -> Group:
    unsupported = [e for e in parsed.events if e.upper() not in _CANONICAL]
    if unsupported:
        # RFC 5465 section 3.1: NO, not BAD, listing every event we support.
        raise No(f"Unsupported event {unsupported[0]}", code=f"BADEVENT ({' '.join(SUPPORTED_EVENTS)})")
    events = frozenset(_CANONICAL[e.upper()] for e in parsed.events)
    if ("MessageNew" in events) != ("MessageExpunge" in events):
        raise Bad("MessageNew and MessageExpunge must be given together")  # section 5
    if "FlagChange" in events and "MessageNew" not in events:
        raise Bad("FlagChange needs MessageNew and MessageExpunge")  # section 5
    if parsed.filter.startswith("SELECTED") and events - _MESSAGE_EVENTS:
        raise Bad("Only message events can be asked for the selected mailbox")  # section 6.1
    names = frozenset(session.decode_name(name, "NONEXISTENT") for name in parsed.mailboxes)
    return Group(parsed.filter, names, events, parsed.fetch_items)


@command("NOTIFY", AUTHENTICATED)
async def notify(session, cmd: c.Notify) -> None:
    """RFC 5465 section 3.1, in the authenticated and selected states.  A successful NOTIFY SET
    is also an implicit NOOP: pending updates of the selected mailbox go out before the OK."""
    # Changes that happened before this command are told (or not) under the old settings.
    await session.refresh()
    if cmd.groups is None:
        session.notify = None
        return
    groups = [_group(session, parsed) for parsed in cmd.groups]
    selected = [g for g in groups if g.filter.startswith("SELECTED")]
    if len(selected) > 1:
        raise Bad("SELECTED and SELECTED-DELAYED can only be given once")  # section 6.1
    settings = NotifySettings(
        selected=selected[0] if selected else None,
        others=[g for g in groups if not g.filter.startswith("SELECTED")],
        burst=session.config.limits.imap_notify_burst,
    )
    settings.mailboxes = {box.id: box for box in await session.store.mailboxes.list(session.account.id)}
    # The values each watched mailbox has now: later STATUS notifications go out only when
    # something the group asks about changed.  With STATUS they are sent before the OK too
    # (section 3.1).
    lines = []
    for box in settings.mailboxes.values():
        group = settings.group_for(box)
        if group is None or not group.events & _MESSAGE_EVENTS or _is_selected(session, box.id):
            continue
        lines.append(await _status_line(session, settings, box, group, force=True))
    # Entries as they are now, to tell later which ones changed (sections 5.6, 5.7).
    metadata = session.store.metadata
    if settings.wants_server_metadata:
        settings.metadata[None] = await metadata.entries(session.account.id, None)
    for box in settings.mailboxes.values():
        if _wants(settings, box, "MailboxMetadataChange"):
            settings.metadata[box.id] = await metadata.entries(session.account.id, box.id)
    if cmd.status:
        if len(lines) > settings.burst:
            raise No("Too many mailboxes to report on", code="NOTIFICATIONOVERFLOW")
        for line in lines:
            session.untagged(line)
    session.notify = settings


def _is_selected(session, mailbox_id: int) -> bool:
    return session.selected is not None and session.selected.mailbox_id == mailbox_id


# --------------------------------------------------------------------------- delivering events


async def deliver_mailbox_events(session, kinds: dict[int | None, set[str]]) -> None:
    """Write the STATUS and LIST notifications that ``kinds`` (mailbox id -> change kinds, as the
    session's :class:`~tidings.notify.Waiter` gathered them) call for.  The selected mailbox's
    own updates are the session's to write (:meth:`ImapSession.push_notifications`)."""
    settings: NotifySettings | None = session.notify
    if settings is None or not kinds:
        return
    lines: list[bytes] = []
    try:
        if any(what & {"mailbox", "subscription"} for what in kinds.values()):
            await _mailbox_list_events(session, settings, lines)
        for mailbox_id, what in kinds.items():
            if "metadata" in what:
                line = await _metadata_line(session, settings, mailbox_id)
                if line is not None:
                    lines.append(line)
            if "message" not in what or mailbox_id is None or _is_selected(session, mailbox_id):
                continue
            box = settings.mailboxes.get(mailbox_id)
            group = settings.group_for(box) if box is not None else None
            if group is None or not group.events & _MESSAGE_EVENTS:
                continue
            line = await _status_line(session, settings, box, group)
            if line is not None:
                lines.append(line)
                _check_burst(settings, lines)
    except Overflow:
        overflow(session)
        return
    for line in lines:
        session.untagged(line)


def overflow(session) -> None:
    """RFC 5465 section 5.8: say so, then behave as after NOTIFY NONE."""
    session.untagged("OK [NOTIFICATIONOVERFLOW] Too many notifications; notifications are off now")
    session.notify = None


def _check_burst(settings: NotifySettings, lines: list) -> None:
    if len(lines) > settings.burst:
        raise Overflow()


async def _status_line(session, settings: NotifySettings, box: Mailbox, group: Group, force: bool = False):
    """``STATUS name (...)`` for a non-selected mailbox, or None when nothing the group asks
    about changed since the client was last told."""
    items = ["MESSAGES", "UIDNEXT", "UIDVALIDITY"]
    if "FlagChange" in group.events:
        items.append("UNSEEN")
    if "FlagChange" in group.events or session.condstore:
        items.append("HIGHESTMODSEQ")
    status = await session.store.mailboxes.status(session.account.id, box.id)
    values = {
        "MESSAGES": status.messages,
        "UIDNEXT": status.uidnext,
        "UIDVALIDITY": status.uidvalidity,
        "UNSEEN": status.unseen,
        "HIGHESTMODSEQ": status.highestmodseq,
    }
    key = tuple(values[item] for item in items)
    if not force and settings.sent_status.get(box.id) == key:
        return None
    settings.sent_status[box.id] = key
    return await status_response(session, box, tuple(items))


async def _mailbox_list_events(session, settings: NotifySettings, lines: list[bytes]) -> None:
    """Diff the account's mailbox list against the one last seen: LIST for created, deleted,
    renamed and (un)subscribed mailboxes whose group asks for MailboxName/SubscriptionChange."""
    before = settings.mailboxes
    after = {box.id: box for box in await session.store.mailboxes.list(session.account.id)}
    settings.mailboxes = after
    for gone in before.keys() - after.keys():
        settings.sent_status.pop(gone, None)
    if not settings.wants_mailbox_list:
        return
    names = {box.name for box in after.values()}
    for mailbox_id in sorted(before.keys() | after.keys()):
        old, new = before.get(mailbox_id), after.get(mailbox_id)
        if new is None:
            if _wants(settings, old, "MailboxName"):
                lines.append(_list_line(session, old, names, nonexistent=True))
        elif old is None:
            if _wants(settings, new, "MailboxName"):
                lines.append(_list_line(session, new, names))
        elif old.name != new.name:
            if _wants(settings, new, "MailboxName") or _wants(settings, old, "MailboxName"):
                lines.append(_list_line(session, new, names, old_name=old.name))
        elif old.subscribed != new.subscribed:
            if _wants(settings, new, "SubscriptionChange") or _wants(settings, old, "SubscriptionChange"):
                lines.append(_list_line(session, new, names))
        else:
            continue
        _check_burst(settings, lines)


async def _metadata_line(session, settings: NotifySettings, mailbox_id: int | None) -> bytes | None:
    """``METADATA name entry ...`` naming the entries set or removed since last seen
    (RFC 5465 sections 5.6 and 5.7, RFC 5464 section 4.4.2), or None."""
    if mailbox_id is None:
        if not settings.wants_server_metadata:
            return None
        name = b'""'
    else:
        box = settings.mailboxes.get(mailbox_id)
        if box is None or not _wants(settings, box, "MailboxMetadataChange"):
            return None
        name = session.encode_name(box.name)
    try:
        now = await session.store.metadata.entries(session.account.id, mailbox_id)
    except NotFound:
        return None  # deleted meanwhile: MailboxName tells
    before = settings.metadata.get(mailbox_id, {})
    settings.metadata[mailbox_id] = now
    changed = sorted(entry for entry in before.keys() | now.keys() if before.get(entry) != now.get(entry))
    if not changed:
        return None
    return b"METADATA " + name + b" " + b" ".join(wire.astring(entry) for entry in changed)


def _wants(settings: NotifySettings, box: Mailbox, event: str) -> bool:
    group = settings.group_for(box)
    return group is not None and event in group.events


def _list_line(
    session, box: Mailbox, names: set[str], *, nonexistent: bool = False, old_name: str | None = None
) -> bytes:
    """An unsolicited (extended, RFC 5258) LIST response for ``box``."""
    if nonexistent:
        attributes = ["\\NonExistent"]
    else:
        children = any(name.startswith(box.name + DELIMITER) for name in names)
        attributes = ["\\HasChildren" if children else "\\HasNoChildren"]
        if box.subscribed:
            attributes.append("\\Subscribed")
    line = b"LIST (" + " ".join(attributes).encode() + b') "/" ' + session.encode_name(box.name)
    if old_name is not None:
        line += b' ("OLDNAME" (' + session.encode_name(old_name) + b"))"
    return line


async def fetch_new_messages(session, uids: list[int]) -> None:
    """MessageNew with fetch-atts (RFC 5465 section 5.2): a FETCH of what the client asked for,
    UID included, for each new message of the selected mailbox just announced by EXISTS."""
    settings: NotifySettings | None = session.notify
    selected = session.selected
    if settings is None or settings.selected is None or not settings.selected.fetch_items or not uids:
        return
    if len(uids) > settings.burst:
        overflow(session)
        return
    contexts = []
    for uid in uids:
        index = selected.index_of(uid)
        if index is not None:
            contexts.append(MessageContext(index + 1, selected.refs[index], uid in selected.recent))
    responses = fetch_responses(
        settings.selected.fetch_items,
        contexts,
        loader_for(session),
        uid=True,
        utf8=session.utf8,
        condstore=session.condstore,
    )
    async for response in responses:
        for piece in response:  # streamed, as FETCH does
            session.write(piece)
            await session.pace()
