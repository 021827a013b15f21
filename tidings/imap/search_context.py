"""Updating search and sort contexts (RFC 5267 section 4: CONTEXT=SEARCH, CONTEXT=SORT).

``SEARCH RETURN (UPDATE ...)`` and ``SORT RETURN (UPDATE ...)`` leave a context behind, named by
the command's tag, for as long as the mailbox stays selected or until ``CANCELUPDATE "tag"``.
Whenever the set of matching messages changes -- a message arrives, flags change (this
session's STORE included), a message is expunged -- the client is told with an unsolicited
``* ESEARCH (TAG "t") [UID] ADDTO (...)`` or ``REMOVEFROM (...)`` (section 4.3):

* REMOVEFROM for expunged messages goes out just before their EXPUNGE (or VANISHED), so the
  sequence numbers it names are still valid (section 4.3.4); ADDTO for new messages after
  their EXISTS (section 4.3.3);
* a SEARCH context uses position 0 and the set in mailbox order (section 4.3.3 allows it);
  a SORT context names each message's position in the sort order, one pair per message,
  processed in order, so the client's list stays sorted (section 4.3.2).

The CONTEXT hint is accepted and changes nothing (section 4.2).  At most :data:`MAX_CONTEXTS`
contexts per session; past that the command still answers, with ``* NO [NOUPDATE "tag"]``
(section 4.3.1).  Results are kept as UIDs, so renumbering by expunges needs no bookkeeping.

Pure: the session re-evaluates the touched messages (``message_cmds.refresh_search_contexts``)
and passes the matches in; this module keeps the results and writes the responses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tidings.imap import commands as c
from tidings.imap.sequence import format_uid_set
from tidings.imap.wire import quote

MAX_CONTEXTS = 16
"""Updating contexts one session may hold (RFC 5267 4.3.1: at least one, more advised)."""


@dataclass
class UpdateContext:
    """One updating context: what the command asked and the UIDs that match now, in mailbox
    (UID) order for SEARCH, in sort order for SORT."""

    tag: str
    uid: bool
    criteria: c.And
    sort: tuple[c.SortCriterion, ...] | None  # None: a SEARCH context
    result: list[int]

    def header(self) -> bytes:
        return b"* ESEARCH (TAG " + quote(self.tag) + b")" + (b" UID" if self.uid else b"")


class SearchContexts:
    """The updating contexts of the selected mailbox, by tag."""

    def __init__(self) -> None:
        self.by_tag: dict[str, UpdateContext] = {}

    def __bool__(self) -> bool:
        return bool(self.by_tag)

    def __iter__(self):
        return iter(list(self.by_tag.values()))

    def add(self, context: UpdateContext) -> bool:
        """Keep ``context``; False when the session holds too many already (NOUPDATE)."""
        if len(self.by_tag) >= MAX_CONTEXTS:
            return False
        self.by_tag[context.tag] = context
        return True

    def cancel(self, tag: str) -> bool:
        return self.by_tag.pop(tag, None) is not None

    def expunging(self, uids: Iterable[int], number_of: Callable[[int], int], out: bytearray) -> None:
        """REMOVEFROM for ``uids`` about to be announced as expunged (RFC 5267 4.3.4: before the
        EXPUNGE).  ``number_of(uid)`` is the message's sequence number before the expunge."""
        gone = set(uids)
        for context in self:
            removed = [u for u in context.result if u in gone]
            if removed:
                out += remove_from(context, removed, number_of) + b"\r\n"
                context.result = [u for u in context.result if u not in gone]


def remove_from(context: UpdateContext, removed: list[int], number_of: Callable[[int], int]) -> bytes:
    """``* ESEARCH (TAG "t") REMOVEFROM (...)`` for ``removed`` (UIDs still in the result)."""
    if context.sort is None:
        numbers = removed if context.uid else [number_of(u) for u in removed]
        return context.header() + b" REMOVEFROM (0 " + format_uid_set(numbers).encode() + b")"
    # Positions in the list as it stands when each pair is applied, first to last.
    positions = {uid: index + 1 for index, uid in enumerate(context.result)}
    pairs = []
    for shift, uid in enumerate(sorted(removed, key=positions.__getitem__)):
        number = uid if context.uid else number_of(uid)
        pairs.append(b"%d %d" % (positions[uid] - shift, number))
    return context.header() + b" REMOVEFROM (" + b" ".join(pairs) + b")"


def add_to(context: UpdateContext, added: list[int], number_of: Callable[[int], int]) -> bytes:
    """``* ESEARCH (TAG "t") ADDTO (...)`` for ``added``, which ``context.result`` already holds
    in its place."""
    if context.sort is None:
        numbers = added if context.uid else [number_of(u) for u in added]
        return context.header() + b" ADDTO (0 " + format_uid_set(numbers).encode() + b")"
    wanted = set(added)
    pairs = []
    # Inserting in increasing final position keeps every earlier insertion where it belongs.
    for index, uid in enumerate(context.result):
        if uid in wanted:
            pairs.append(b"%d %d" % (index + 1, uid if context.uid else number_of(uid)))
    return context.header() + b" ADDTO (" + b" ".join(pairs) + b")"
