"""The selected mailbox as one session sees it: sequence numbers, pending updates, CONDSTORE.

Each session holds its own snapshot of the selected mailbox (RFC 9051 section 2.3.1): the
messages in UID order (sequence number = position + 1), the mod-sequence the snapshot is at, and
the updates other sessions made that this client has not been told about yet.  Updates come
from :meth:`tidings.store.mailboxes.Mailboxes.changes_since` and are announced only when the RFC
allows:

* new messages -> ``* n EXISTS`` at the end of any command or during IDLE;
* flag changes -> ``* n FETCH (UID u FLAGS (...) [MODSEQ (m)])``;
* a keyword the client was not told of -> ``* FLAGS`` and ``* OK [PERMANENTFLAGS]`` again, before
  any FETCH or EXISTS that could show it (RFC 3501 7.2.6, RFC 9051 7.3.5);
* expunges -> ``* n EXPUNGE`` (or ``* VANISHED uids`` once QRESYNC is enabled, RFC 7162
  3.2.10), but never while answering FETCH, STORE or SEARCH by sequence number (RFC 3501 7.4.1),
  since the client's numbers would shift under it.  Until announced, an expunged message keeps
  its sequence number here.

\\Recent (RFC 3501 2.3.2, IMAP4rev1 only) is the set of UIDs this session was the first to see:
the session claims them through the store's recent cut (see ``claim_recent``) and tells the
snapshot with :meth:`mark_recent`; they show in FLAGS, SEARCH RECENT/NEW/OLD and ``* n RECENT``.

Per-session memory is one list of store ``MessageRef`` values plus small pending sets; nothing
here polls.  Never does I/O itself: the session passes store results in and writes the bytes out.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable

from tidings.imap.search_context import SearchContexts
from tidings.imap.sequence import SequenceSet, format_uid_set
from tidings.imap.states import Bad
from tidings.store.mailboxes import SYSTEM_FLAGS, Changes, Mailbox, MessageRef

SYSTEM_FLAG_NAMES = tuple(sorted(SYSTEM_FLAGS.values()))


def _uid_key(ref: MessageRef) -> int:
    return ref.uid


def format_flag_list(flags: Iterable[str]) -> bytes:
    return ("(" + " ".join(sorted(flags)) + ")").encode("utf-8")


class SelectedMailbox:
    """Snapshot of one selected mailbox; see the module docstring."""

    __slots__ = (
        "mailbox_id",
        "name",
        "uidvalidity",
        "uidnext",
        "modseq",
        "read_only",
        "refs",
        "_pending_expunged",
        "_flags_changed",
        "_exists_dirty",
        "_arrived",
        "saved_uids",
        "contexts",
        "touched",
        "recent",
        "recent_checked",
        "keywords",
        "_new_keywords",
    )

    def __init__(self, mailbox: Mailbox, refs: list[MessageRef], read_only: bool) -> None:
        self.mailbox_id = mailbox.id
        self.name = mailbox.name
        self.uidvalidity = mailbox.uidvalidity
        self.uidnext = mailbox.uidnext
        self.modseq = mailbox.highestmodseq
        self.read_only = read_only
        self.refs = refs  # in UID order; sequence number = index + 1
        self._pending_expunged: set[int] = set()
        self._flags_changed: set[int] = set()
        self._exists_dirty = False
        self._arrived: list[int] = []  # UIDs new since the last EXISTS (NOTIFY MessageNew fetch-atts)
        self.saved_uids: list[int] = []  # SEARCH RETURN (SAVE) result, as UIDs (RFC 5182)
        # Updating SEARCH/SORT contexts (RFC 5267) and the UIDs whose flags or presence changed
        # since they were last re-evaluated (kept only while there are contexts).
        self.contexts = SearchContexts()
        self.touched: set[int] = set()
        self.recent: set[int] = set()  # UIDs that are \Recent in this session
        self.recent_checked = 0  # UIDs up to this one have had their \Recent decided
        self.keywords: set[str] = {flag for ref in refs for flag in ref.flags} - set(SYSTEM_FLAG_NAMES)
        self._new_keywords = False  # keywords arrived that the last FLAGS did not list

    # ------------------------------------------------------------------ lookups

    @property
    def exists(self) -> int:
        return len(self.refs)

    def index_of(self, uid: int) -> int | None:
        index = bisect_left(self.refs, uid, key=_uid_key)
        if index < len(self.refs) and self.refs[index].uid == uid:
            return index
        return None

    @property
    def last_uid(self) -> int:
        return self.refs[-1].uid if self.refs else 0

    def flags_lines(self) -> bytes:
        """``* FLAGS`` and ``* OK [PERMANENTFLAGS]`` for the flags this session knows of (SELECT,
        and again whenever a new keyword appears)."""
        all_flags = list(SYSTEM_FLAG_NAMES) + sorted(self.keywords)
        out = b"* FLAGS " + format_flag_list(all_flags) + b"\r\n"
        if self.read_only:
            return out + b"* OK [PERMANENTFLAGS ()] No permanent flags in a read-only mailbox\r\n"
        permanent = " ".join([*all_flags, "\\*"]).encode()  # \* last, as clients expect
        return out + b"* OK [PERMANENTFLAGS (" + permanent + b")] Flags permitted\r\n"

    def mark_recent(self, low: int, high: int) -> None:
        """The UIDs in (``low``, ``high``] are \\Recent in this session (claimed, or seen read-only)."""
        if high <= low:
            return
        start = bisect_left(self.refs, low + 1, key=_uid_key)
        for ref in self.refs[start:]:
            if ref.uid > high:
                break
            self.recent.add(ref.uid)

    def recent_count(self) -> int:
        """How many messages are \\Recent, for ``* n RECENT``."""
        return len(self.recent)

    def take_flags_update(self, out: bytearray) -> None:
        """Write ``* FLAGS`` / ``* OK [PERMANENTFLAGS]`` if keywords appeared since the last one."""
        if self._new_keywords:
            self._new_keywords = False
            out += self.flags_lines()

    def _note_keywords(self, ref: MessageRef) -> None:
        for flag in ref.flags:
            if flag not in self.keywords and not flag.startswith("\\"):
                self.keywords.add(flag)
                self._new_keywords = True

    def is_expunged(self, uid: int) -> bool:
        """Expunged in the store but not yet announced to this client."""
        return uid in self._pending_expunged

    def resolve(self, sequence_set: SequenceSet, uid: bool) -> list[tuple[int, MessageRef]]:
        """The (sequence number, ref) pairs a command's set names, ascending.

        Sequence numbers beyond the mailbox are a BAD (RFC 9051 6.4.8 leaves UIDs that do not
        exist silently ignored, but a client's sequence numbers must be valid).
        """
        refs = self.refs
        if not refs:
            if (
                uid
                or sequence_set.includes_saved
                or all(None in (r.start, r.end) for r in sequence_set.ranges)
            ):
                return []
            raise Bad("Invalid message sequence number: the mailbox is empty")
        # Each span is cut out with a slice and paired with its numbers by zip, at C speed: a
        # loop in Python over 100,000 messages took the event loop for hundreds of milliseconds.
        out: list[tuple[int, MessageRef]] = []
        if uid:
            saved = self.saved_uids if sequence_set.includes_saved else None
            for low, high in sequence_set.resolve(refs[-1].uid, saved):
                start = bisect_left(refs, low, key=_uid_key)
                stop = bisect_right(refs, high, lo=start, key=_uid_key)
                out += zip(range(start + 1, stop + 1), refs[start:stop], strict=True)
            return out
        if sequence_set.mentions_beyond(len(refs)):
            raise Bad(f"Invalid message sequence number (the mailbox has {len(refs)} messages)")
        saved_seqs = None
        if sequence_set.includes_saved:
            saved_seqs = [i + 1 for i in (self.index_of(u) for u in self.saved_uids) if i is not None]
        for low, high in sequence_set.resolve(len(refs), saved_seqs):
            out += zip(range(low, high + 1), refs[low - 1 : high], strict=True)
        return out

    # ------------------------------------------------------------------ updates

    def replace(self, ref: MessageRef) -> bool:
        """Put a fresher copy of a message in (after our own STORE); True if it was present."""
        index = self.index_of(ref.uid)
        if index is None:
            return False
        self.refs[index] = ref
        self._flags_changed.discard(ref.uid)
        if self.contexts:
            self.touched.add(ref.uid)
        self._note_keywords(ref)
        return True

    def caught_up_with_own_change(self, modseq: int) -> None:
        """Our own write took the mailbox to ``modseq`` and its result is folded in (``replace``):
        if the snapshot was at the modseq just before, nobody else changed anything in between,
        so the snapshot is now at ``modseq`` and the change's notification needs no store read."""
        if self.modseq == modseq - 1:
            self.modseq = modseq

    def apply(self, changes: Changes) -> None:
        """Fold in what :meth:`changes_since(self.modseq)` returned; announce later."""
        refs = self.refs
        last_uid = refs[-1].uid if refs else 0
        for ref in changes.changed:
            self._note_keywords(ref)
            index = self.index_of(ref.uid)
            if index is not None:
                old = refs[index]
                if old.modseq != ref.modseq or old.flags != ref.flags:
                    refs[index] = ref
                    if old.flags != ref.flags or old.modseq != ref.modseq:
                        self._flags_changed.add(ref.uid)
                        if self.contexts:
                            self.touched.add(ref.uid)
            elif ref.uid > last_uid:
                refs.append(ref)
                last_uid = ref.uid
                self._exists_dirty = True
                self._arrived.append(ref.uid)
                if self.contexts:
                    self.touched.add(ref.uid)
        for uid in changes.expunged:
            if self.index_of(uid) is not None:
                self._pending_expunged.add(uid)
        self.modseq = max(self.modseq, changes.highestmodseq)
        self.uidnext = max(self.uidnext, changes.uidnext)

    def remove_announced(self, uids: Iterable[int], qresync: bool, out: bytearray) -> None:
        """Drop messages we expunged ourselves and announce them right away."""
        gone = {uid for uid in uids if self.index_of(uid) is not None}
        self._pending_expunged |= gone
        self._announce_expunges(qresync, out)

    def drain(
        self,
        out: bytearray,
        *,
        expunge_allowed: bool,
        condstore: bool,
        qresync: bool,
        flags: bool = True,
        recent: bool = False,
    ) -> list[int]:
        """Write the untagged updates the client may be told now; returns the UIDs of the new
        messages the EXISTS just written announced (for NOTIFY MessageNew fetch-atts, RFC 5465
        section 5.2).  ``flags`` False keeps flag changes for later (NOTIFY without FlagChange).
        ``recent``: an IMAP4rev1 client, told ``* n RECENT`` whenever the mailbox grows (RFC 3501
        7.3.2)."""
        arrived: list[int] = []
        self.take_flags_update(out)
        if expunge_allowed and self._pending_expunged:
            self._announce_expunges(qresync, out)
        if self._exists_dirty:
            self._exists_dirty = False
            out += b"* %d EXISTS\r\n" % len(self.refs)
            arrived = [u for u in self._arrived if u not in self._pending_expunged]
            self._arrived = []
            if recent:
                out += b"* %d RECENT\r\n" % self.recent_count()
        if flags and self._flags_changed:
            changed = sorted(self._flags_changed)
            self._flags_changed.clear()
            for uid in changed:
                if uid in self._pending_expunged:
                    continue
                index = self.index_of(uid)
                if index is None:
                    continue
                ref = self.refs[index]
                out += self.fetch_flags_line(index + 1, ref, condstore)
        return arrived

    def fetch_flags_line(
        self, seq: int, ref: MessageRef, condstore: bool, include_flags: bool = True
    ) -> bytes:
        parts = [b"UID %d" % ref.uid]
        if include_flags:
            flags = [*ref.flags, "\\Recent"] if ref.uid in self.recent else ref.flags
            parts.append(b"FLAGS " + format_flag_list(flags))
        if condstore:
            parts.append(b"MODSEQ (%d)" % ref.modseq)
        return b"* %d FETCH (%s)\r\n" % (seq, b" ".join(parts))

    def _announce_expunges(self, qresync: bool, out: bytearray) -> None:
        pending = self._pending_expunged
        if not pending:
            return
        self._pending_expunged = set()
        if self.contexts:
            # RFC 5267 4.3.4: REMOVEFROM before the EXPUNGE, while its numbers are still valid.
            self.contexts.expunging(pending, lambda uid: self.index_of(uid) + 1, out)
            self.touched -= pending
        indexes = sorted((i for i in (self.index_of(u) for u in pending) if i is not None), reverse=True)
        if qresync:
            out += b"* VANISHED %s\r\n" % format_uid_set(pending).encode()
        else:
            # Highest first: announcing one does not renumber the ones still to come.
            for index in indexes:
                out += b"* %d EXPUNGE\r\n" % (index + 1)
        self._flags_changed -= pending
        self.recent -= pending
        if len(indexes) > 16:
            self.refs = [ref for ref in self.refs if ref.uid not in pending]  # one pass, not n deletes
        else:
            for index in indexes:
                del self.refs[index]
        if self.saved_uids:
            self.saved_uids = [u for u in self.saved_uids if u not in pending]

    @property
    def has_pending(self) -> bool:
        return bool(self._pending_expunged or self._flags_changed or self._exists_dirty or self._new_keywords)
