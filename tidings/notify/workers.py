"""A worker process's end of the supervisor's line bus (tidings.supervisor).

`tidings serve` with several workers gives each one a Unix socket pair made before `fork`. Over it
a worker sends one JSON object per line: control lines (`{"control": "ready"}` once its listeners
run) and, on SQLite, every change it publishes, as the same payload PostgreSQL's NOTIFY carries
(`Change.to_payload(node_id)`). The supervisor copies each change line to every other worker, where
`WorkerBus` hands it to the local hub with `Hub.deliver` (never forwarded again), as
`PostgresListener` does for other nodes' changes. On PostgreSQL the store's NOTIFY already reaches
every worker (each is its own node), so changes do not go over the bus.

Writes never block the event loop: the socket is asyncio's transport, which buffers what the
supervisor has not read yet.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket

from tidings.notify import Change, Hub

log = logging.getLogger(__name__)

# A line on the bus is one small JSON object; anything longer is a bug, not a change.
MAX_LINE = 64 * 1024


class WorkerBus:
    def __init__(self, sock: socket.socket, hub: Hub, node_id: str, *, carry_changes: bool) -> None:
        self.sock = sock
        self.hub = hub
        self.node_id = node_id
        self.carry_changes = carry_changes
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task | None = None
        self.received = 0

    async def start(self) -> None:
        reader, self._writer = await asyncio.open_unix_connection(sock=self.sock, limit=MAX_LINE)
        self._task = asyncio.create_task(self._read(reader), name="worker-bus")
        if self.carry_changes:
            self.hub.forward = self._forward

    def send_control(self, what: str, **data) -> None:
        self._send(json.dumps({"control": what, **data}))

    def _forward(self, change: Change) -> None:
        self._send(change.to_payload(self.node_id))

    def _send(self, line: str) -> None:
        writer = self._writer
        if writer is None or writer.is_closing():
            return  # the supervisor is gone; PR_SET_PDEATHSIG ends this process too
        writer.write(line.encode("utf-8") + b"\n")

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await reader.readline()
            except ValueError:  # a line over MAX_LINE: skip it
                log.warning("ignoring an over-long line from the supervisor")
                continue
            if not line:
                return
            try:
                node, change = Change.from_payload(line.decode("utf-8"))
            except Exception:
                log.warning("ignoring malformed change from the supervisor %r", line[:200])
                continue
            if node == self.node_id:
                continue
            self.received += 1
            self.hub.deliver(change)

    async def close(self) -> None:
        if self.hub.forward == self._forward:
            self.hub.forward = None
        if self._task is not None:
            self._task.cancel()
        if self._writer is not None:
            self._writer.close()
