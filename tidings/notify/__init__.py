"""Change events: who must look at the store again, and where.

Events carry only (account, mailbox, kind, modseq); a subscriber (an IMAP session in IDLE, the web
client, chat) re-reads the details from the store. The store publishes after commit. With PostgreSQL
the store also issues NOTIFY inside the transaction, and every node's `PostgresListener` republishes
other nodes' events locally (echoes of our own node id are dropped). On SQLite the worker processes
of one `tidings serve` pass their changes to each other through the supervisor (`workers.py`).

This package never touches SQL except the LISTEN connection in `postgres.py`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass

log = logging.getLogger(__name__)

CHANNEL = "tidings_changes"
UNKNOWN_MODSEQ = float("inf")  # a change published without its modseq: may be anything


@dataclass(frozen=True)
class Change:
    account_id: int
    mailbox_id: int | None
    # "message" (new/expunged/flags), "mailbox" (created/renamed/deleted), "subscription"
    # (subscribed/unsubscribed), "metadata" (entries set or removed; mailbox None: the
    # account's server entries), "queue", "account" (removed or disabled: its sessions end, see
    # tidings.auth.logins)
    kind: str
    modseq: int = 0

    def to_payload(self, node_id: str) -> str:
        return json.dumps({"node": node_id, **asdict(self)})

    @staticmethod
    def from_payload(payload: str) -> tuple[str, Change]:
        data = json.loads(payload)
        node = data.pop("node")
        return node, Change(**data)


Subscriber = Callable[[Change], None]


class Hub:
    """In-process fan-out. Subscriptions are per account; `None` subscribes to everything."""

    def __init__(self) -> None:
        self._subscribers: dict[int | None, set[Subscriber]] = defaultdict(set)
        self.published = 0
        # Carries this process's own changes to the other worker processes of the node (set by
        # tidings.notify.workers on SQLite; PostgreSQL's NOTIFY is sent by the store instead).
        self.forward: Subscriber | None = None

    def subscribe(self, account_id: int | None, callback: Subscriber) -> Callable[[], None]:
        self._subscribers[account_id].add(callback)

        def unsubscribe() -> None:
            self._subscribers[account_id].discard(callback)
            if not self._subscribers[account_id]:
                self._subscribers.pop(account_id, None)

        return unsubscribe

    def publish(self, change: Change) -> None:
        """A change this process committed: to local subscribers and to `forward`."""
        self.deliver(change)
        if self.forward is not None:
            try:
                self.forward(change)
            except Exception:
                log.exception("forwarding a change to the other workers failed")

    def deliver(self, change: Change) -> None:
        """A change heard from elsewhere (another node, process or worker): local subscribers only,
        so it never travels back."""
        self.published += 1
        for key in (change.account_id, None):
            for callback in list(self._subscribers.get(key, ())):
                try:
                    callback(change)
                except Exception:
                    log.exception("change subscriber failed")


class Waiter:
    """A session's view of the hub: a flag set by changes, awaited by IDLE, checked at command ends."""

    def __init__(self, hub: Hub, account_id: int) -> None:
        self._event = asyncio.Event()
        self.mailboxes: set[int | None] = set()
        # What happened where, for IMAP NOTIFY (RFC 5465): mailbox id -> change kinds.  Bounded
        # by the account's mailboxes times a handful of kinds, however many changes arrive.
        self.kinds: dict[int | None, set[str]] = defaultdict(set)
        # The highest modseq announced per mailbox (UNKNOWN_MODSEQ: some change did not say): a
        # session whose snapshot is already there, having made the change itself, need not read.
        self.modseqs: dict[int | None, float] = {}
        self._unsubscribe = hub.subscribe(account_id, self._on_change)

    def _on_change(self, change: Change) -> None:
        self.mailboxes.add(change.mailbox_id)
        self.kinds[change.mailbox_id].add(change.kind)
        modseq = change.modseq or UNKNOWN_MODSEQ
        if modseq > self.modseqs.get(change.mailbox_id, 0):
            self.modseqs[change.mailbox_id] = modseq
        self._event.set()

    @property
    def pending(self) -> bool:
        return self._event.is_set()

    def clear(self) -> None:
        self._event.clear()
        self.mailboxes.clear()
        self.kinds = defaultdict(set)
        self.modseqs = {}

    async def wait(self) -> None:
        await self._event.wait()

    def close(self) -> None:
        self._unsubscribe()
