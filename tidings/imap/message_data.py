"""What the FETCH, SEARCH, SORT and THREAD engines need to know about a selected mailbox's messages.

The engines (:mod:`tidings.imap.fetch`, :mod:`tidings.imap.search`,
:mod:`tidings.imap.sort_thread`) work on :class:`MessageContext` values — a message's sequence
number plus its store :class:`~tidings.store.mailboxes.MessageRef` — and ask a
:class:`MessageLoader` for anything more, only when a data item or search key needs it:

* FLAGS, UID, MODSEQ, INTERNALDATE, RFC822.SIZE, SAVEDATE, EMAILID and the cheap SEARCH keys
  (flags, sizes, dates, UIDs, sequence numbers) use the ref alone;
* ENVELOPE, BODY, BODYSTRUCTURE, SENT*, FROM/TO/CC/BCC/SUBJECT and SORT/THREAD need the
  :class:`~tidings.mail.message.MessageSummary` computed at delivery (one batched query);
* body sections, HEADER/BODY/TEXT search and BINARY need the stored bytes (one blob read each).

A loader reports a message that vanished meanwhile (expunged by another session and cleaned up)
by leaving it out of :meth:`MessageLoader.summaries` or returning ``None`` from
:meth:`MessageLoader.blob`; the engines then skip it rather than fail the whole command.

Never touches SQL or files itself: :class:`StoreMessageLoader` goes through
``store.mailboxes``; :class:`MemoryMessageLoader` serves bytes held in memory (tests, tools).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from tidings.mail.message import MessageSummary, analyse
from tidings.store.database import NotFound
from tidings.store.mailboxes import Mailboxes, MessageRef

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MessageContext:
    """One message of the selected mailbox as the client numbers it (RFC 9051 section 2.3.1)."""

    seq: int
    ref: MessageRef
    recent: bool = False  # \\Recent in this session (IMAP4rev1; see tidings.imap.selected)

    @property
    def uid(self) -> int:
        return self.ref.uid


def contexts_for(
    refs: Iterable[MessageRef], first_seq: int = 1, recent: Collection[int] = ()
) -> list[MessageContext]:
    """Number ``refs`` (in UID order) from ``first_seq``: the whole mailbox view; ``recent``
    holds the UIDs that are \\Recent in the session."""
    return [MessageContext(seq, ref, ref.uid in recent) for seq, ref in enumerate(refs, start=first_seq)]


class MessageLoader(Protocol):
    """Loads what the ref does not carry.  Both methods may be called many times per command;
    implementations may cache."""

    async def summaries(self, refs: Sequence[MessageRef]) -> Mapping[int, MessageSummary]:
        """Summaries keyed by ``ref.message_id``; a message that no longer exists is left out."""
        ...

    async def blob(self, ref: MessageRef) -> bytes | None:
        """The stored message bytes; ``None`` if they no longer exist."""
        ...


def email_id(ref: MessageRef) -> str:
    """The RFC 8474 EMAILID: stable for the same stored message in every mailbox (and across
    COPY/MOVE), built from the store's message id.  "E" keeps it apart from MAILBOXIDs ("M")."""
    return f"E{ref.message_id:x}"


def thread_id(thread: int) -> str:
    """The RFC 8474 THREADID of a store thread (see :mod:`tidings.store.threads`); "T" keeps it
    apart from EMAILIDs and MAILBOXIDs."""
    return f"T{thread:x}"


class StoreMessageLoader:
    """A :class:`MessageLoader` over ``store.mailboxes``, whose process-wide caches of parsed
    summaries and recent bodies serve every session (clients re-fetch ENVELOPE/BODYSTRUCTURE
    often, and fetch the parts of one message in successive commands)."""

    def __init__(self, mailboxes: Mailboxes, account_id: int) -> None:
        self.mailboxes = mailboxes
        self.account_id = account_id

    async def summaries(self, refs: Sequence[MessageRef]) -> Mapping[int, MessageSummary]:
        return await self.mailboxes.summaries(self.account_id, refs)

    async def blob(self, ref: MessageRef) -> bytes | None:
        try:
            return await self.mailboxes.read_blob(ref.blob_hash)
        except (FileNotFoundError, NotFound):
            return None


class MemoryMessageLoader:
    """A :class:`MessageLoader` over message bytes held in memory, keyed by blob hash; analyses
    each message on first use.  Counts its loads so tests can check what was (not) read."""

    def __init__(self, blobs: Mapping[str, bytes]) -> None:
        self.blobs = dict(blobs)
        self.summary_loads = 0
        self.blob_loads = 0
        self._analysed: dict[str, MessageSummary] = {}

    async def summaries(self, refs: Sequence[MessageRef]) -> Mapping[int, MessageSummary]:
        found: dict[int, MessageSummary] = {}
        for ref in refs:
            raw = self.blobs.get(ref.blob_hash)
            if raw is None:
                continue
            self.summary_loads += 1
            summary = self._analysed.get(ref.blob_hash)
            if summary is None:
                # Round-trip through JSON like the store does, so tests see what sessions see.
                summary = MessageSummary.from_json(analyse(raw).to_json())
                self._analysed[ref.blob_hash] = summary
            found[ref.message_id] = summary
        return found

    async def blob(self, ref: MessageRef) -> bytes | None:
        raw = self.blobs.get(ref.blob_hash)
        if raw is not None:
            self.blob_loads += 1
        return raw
