"""The background indexer: analyses messages that were stored without their MIME summary, then
gives them their thread ids (store/threads.py).

SMTP acceptance stores the body and the mailbox entry only, so parsing never delays "250 OK". This
task catches up once new mail has stopped arriving for a moment (and at start-up for anything left
over), so that under a burst the two never compete for the one core the event loop has. Under
unbroken load it still runs at least every `MAX_DELAY` seconds. Readers never wait for it:
`Mailboxes.summaries_json` analyses on demand whatever is still missing.
"""

from __future__ import annotations

import asyncio
import logging
import time

from tidings.notify import Change

log = logging.getLogger(__name__)

QUIET_SECONDS = 0.5
MAX_DELAY = 30.0
BATCH = 200


async def run_indexer(store) -> None:
    wake = asyncio.Event()
    wake.set()  # index what an earlier run left behind
    last_change = 0.0

    def on_change(change: Change) -> None:
        nonlocal last_change
        if change.kind == "message":
            last_change = time.monotonic()
            wake.set()

    unsubscribe = store.hub.subscribe(None, on_change)
    try:
        while True:
            await wake.wait()
            first_seen = time.monotonic()
            # Debounce: wait for a quiet moment, but not forever.
            while time.monotonic() - first_seen < MAX_DELAY:
                quiet_for = time.monotonic() - last_change
                if quiet_for >= QUIET_SECONDS:
                    break
                await asyncio.sleep(QUIET_SECONDS - quiet_for)
            wake.clear()
            try:
                while await store.mailboxes.index_pending(BATCH) == BATCH:
                    await asyncio.sleep(0)
                # RFC 8474 thread ids, per account, once the summaries exist.
                while await store.threads.assign_pending(BATCH) == BATCH:
                    await asyncio.sleep(0)
            except Exception:
                log.exception("indexing failed; will retry on the next change")
    finally:
        unsubscribe()
