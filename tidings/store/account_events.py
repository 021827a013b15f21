"""Account events from other processes: how a running server learns that `tidings user remove` or
`tidings user disable` (another process, perhaps on another node) has ended an account.

Within one process the hub carries `Change(account, None, "account")` after commit, and on
PostgreSQL NOTIFY carries it to the other nodes. SQLite has no channel between processes, so each
server reads the `account_events` rows of the last WINDOW seconds every POLL_INTERVAL seconds and
publishes the ones it has not seen on its own hub (`deliver`: every worker process of a server
reads them itself, none passes them on). It does the same on PostgreSQL, as a backstop
for a LISTEN connection that was down; reading a time window rather than "ids above the last one"
also catches a row whose id was taken before a row already seen but committed after it
(PostgreSQL sequences do not commit in order).

A change published twice is harmless: the one who acts on it (`tidings.auth.logins`) re-reads the
account. This module never ends a session itself.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy import select

from tidings.notify import Change
from tidings.store import schema as s
from tidings.store.database import Tx

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.5  # seconds: the longest a removed account's session lives on, on SQLite
WINDOW = 60.0  # seconds of events read at each look: commit delay and clock skew between nodes


def _recent(tx: Tx, since: float) -> list[tuple[int, int]]:
    e = s.account_events
    rows = tx.conn.execute(select(e.c.id, e.c.account_id).where(e.c.created_at > since))
    return [(row.id, row.account_id) for row in rows]


async def watch_account_events(store) -> None:
    """Publish other processes' account events on `store.hub` until cancelled."""
    # Events from before this server started concern sessions it never had.
    seen = {event_id for event_id, _ in await store.db.read(_recent, time.time() - WINDOW)}
    while True:
        await asyncio.sleep(POLL_INTERVAL)
        try:
            rows = await store.db.read(_recent, time.time() - WINDOW)
        except Exception:
            log.exception("reading account events failed; will retry")
            continue
        for event_id, account_id in rows:
            if event_id not in seen:
                store.hub.deliver(Change(account_id, None, "account"))
        seen = {event_id for event_id, _ in rows}
