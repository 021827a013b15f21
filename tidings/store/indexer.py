"""The background indexer: analyses messages that were stored without their MIME summary.

SMTP acceptance stores the body and the mailbox entry only, so parsing never delays "250 OK". This
task catches up shortly after each burst of new mail (and at start-up for anything left over).
Readers never wait for it: `Mailboxes.summaries_json` analyses on demand what is still missing.
"""

from __future__ import annotations

import asyncio
import logging

from tidings.notify import Change

log = logging.getLogger(__name__)

# Let a burst of deliveries finish before indexing it, so the two don't compete for the one core.
SETTLE_SECONDS = 0.3
BATCH = 200


async def run_indexer(store) -> None:
    wake = asyncio.Event()
    wake.set()  # index what an earlier run left behind

    def on_change(change: Change) -> None:
        if change.kind == "message":
            wake.set()

    unsubscribe = store.hub.subscribe(None, on_change)
    try:
        while True:
            await wake.wait()
            await asyncio.sleep(SETTLE_SECONDS)
            wake.clear()
            try:
                while await store.mailboxes.index_pending(BATCH) == BATCH:
                    await asyncio.sleep(0)
            except Exception:
                log.exception("indexing failed; will retry on the next change")
    finally:
        unsubscribe()
