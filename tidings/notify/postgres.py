"""Cross-node change events over PostgreSQL LISTEN/NOTIFY.

A dedicated psycopg connection in a daemon thread LISTENs on the channel and hands other nodes'
events to the local hub on the event loop. NOTIFY itself is sent by the store inside the writing
transaction, so PostgreSQL delivers it only if (and when) that transaction commits.
"""

from __future__ import annotations

import asyncio
import logging
import threading

import psycopg

from tidings.notify import CHANNEL, Change, Hub

log = logging.getLogger(__name__)


class PostgresListener:
    def __init__(self, dsn: str, hub: Hub, node_id: str, loop: asyncio.AbstractEventLoop) -> None:
        self.dsn = dsn.replace("postgresql+psycopg://", "postgresql://")
        self.hub = hub
        self.node_id = node_id
        self.loop = loop
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-listen", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._ready.set()
                    while not self._stop.is_set():
                        for notice in conn.notifies(timeout=0.5):
                            self._deliver(notice.payload)
            except Exception:
                log.exception("LISTEN connection lost; reconnecting")
                self._ready.set()
                self._stop.wait(1.0)

    def _deliver(self, payload: str) -> None:
        try:
            node, change = Change.from_payload(payload)
        except Exception:
            log.warning("ignoring malformed change notification %r", payload[:200])
            return
        if node == self.node_id:
            return
        self.loop.call_soon_threadsafe(self.hub.deliver, change)
