"""The background indexer: analyses messages that were stored without their MIME summary, then
gives them their thread ids (store/threads.py) and puts their words in the full-text index
(store/search.py).

SMTP acceptance stores the body and the mailbox entry only, so parsing never delays "250 OK". This
task does that work when new mail has stopped arriving for a moment (and at start-up for anything
left over), so that under a burst the two never compete for the one core the event loop has. It
gives way again *between batches* as soon as mail arrives: a backlog of 10,000 messages started in
a lull used to run on through the next burst and halve its throughput (bench/smtp.py, reused
connections after the first phase). Under load that never pauses, it starts anyway after
`MAX_DELAY` seconds and then takes at most `LOAD_SHARE` of the time until the next lull, so the
backlog shrinks without taking the server from its clients. Readers never wait for it:
`Mailboxes.summaries_json` analyses on demand whatever is still missing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tidings.notify import Change

log = logging.getLogger(__name__)

QUIET_SECONDS = 0.5  # no new mail for this long: a lull, index flat out
MAX_DELAY = 30.0  # mail arriving without a lull for this long: index anyway, but...
LOAD_SHARE = 0.2  # ...only this share of the time (each batch is followed by a pause 4 times as long)
BATCH = 200


@dataclass
class Pace:
    """When the next batch may run. Pure bookkeeping, so the policy reads (and tests) apart from the
    task: `before_batch(now)` says how long to wait first, or None to wait for a lull (up to
    `MAX_DELAY` since mail began to arrive)."""

    last_mail: float = float("-inf")  # when the last new message arrived
    busy_since: float | None = None  # when the indexer first gave way to arriving mail
    last_batch: float = 0.0  # how long the last batch took

    def mail_arrived(self, now: float) -> None:
        self.last_mail = now

    def before_batch(self, now: float) -> float | None:
        if now - self.last_mail >= QUIET_SECONDS:
            self.busy_since = None  # a lull: run now, and give way again when mail comes back
            return 0.0
        if self.busy_since is None:
            self.busy_since = now
        if now - self.busy_since < MAX_DELAY:
            return None
        return self.last_batch * (1 - LOAD_SHARE) / LOAD_SHARE

    def wait_for_lull(self, now: float) -> float:
        """How long to sleep before asking `before_batch` again while waiting for a lull."""
        quiet_left = QUIET_SECONDS - (now - self.last_mail)
        delay_left = MAX_DELAY - (now - (self.busy_since if self.busy_since is not None else now))
        return max(0.0, min(quiet_left, delay_left))


async def run_indexer(store) -> None:
    wake = asyncio.Event()
    wake.set()  # index what an earlier run left behind
    pace = Pace()

    def on_change(change: Change) -> None:
        if change.kind == "message":
            pace.mail_arrived(time.monotonic())
            wake.set()

    async def drain(step: Callable[[int], Awaitable[int]]) -> None:
        while True:
            while (delay := pace.before_batch(time.monotonic())) is None:
                await asyncio.sleep(pace.wait_for_lull(time.monotonic()))
            await asyncio.sleep(delay)
            started = time.monotonic()
            done = await step(BATCH)
            pace.last_batch = time.monotonic() - started
            if done < BATCH:
                return

    unsubscribe = store.hub.subscribe(None, on_change)
    try:
        while True:
            await wake.wait()
            wake.clear()
            try:
                await drain(store.mailboxes.index_pending)
                # RFC 8474 thread ids, per account, once the summaries exist.
                await drain(store.threads.assign_pending)
                # The full-text index (store/search.py), from the summaries.
                await drain(store.search.index_pending)
            except Exception:
                log.exception("indexing failed; will retry on the next change")
    finally:
        unsubscribe()
