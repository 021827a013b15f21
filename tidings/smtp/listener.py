"""SMTP listeners: "smtp" (MX, port 25), "submission" (587, STARTTLS) and "submissions" (465, TLS).

`start(app, name, host, port)` is what `tidings.server` calls for each configured address. Each
accepted connection gets a `Connection` (asyncio.Protocol) and one task running its `Session`.
"""

from __future__ import annotations

import asyncio
import logging

from tidings.smtp.connection import Connection
from tidings.smtp.policy import RecipientRouter
from tidings.smtp.session import ListenerMode, Session

log = logging.getLogger(__name__)

LISTENER_NAMES = ("smtp", "submission", "submissions")


async def start(app, name: str, host: str, port: int) -> SmtpListener:
    """Listen on host:port with the behaviour `name` stands for; returns the asyncio server."""
    if name not in LISTENER_NAMES:
        raise ValueError(f"not an SMTP listener: {name}")
    mode = ListenerMode.for_listener(name)
    limits = app.config.limits
    loop = asyncio.get_running_loop()

    connections: set[Connection] = set()
    router = RecipientRouter(app.store, app.config.default_domain)

    def start_session(conn: Connection) -> None:
        task = loop.create_task(Session(app, mode, conn, router).run())
        connections.add(conn)
        task.add_done_callback(lambda _: connections.discard(conn))

    def make_connection() -> Connection:
        conn = Connection(limits.line_length, limits.idle_timeout)
        conn.on_connect = start_session
        return conn

    server = await loop.create_server(
        make_connection,
        host,
        port,
        ssl=app.tls if mode.implicit_tls else None,
        ssl_handshake_timeout=30 if mode.implicit_tls else None,
        reuse_address=True,
        backlog=512,
    )
    return SmtpListener(server, connections)


class SmtpListener:
    """The asyncio.Server, plus: closing it also closes the open sessions (asyncio 3.11 does not)."""

    def __init__(self, server: asyncio.Server, connections: set[Connection]) -> None:
        self._server = server
        self._connections = connections

    def close(self) -> None:
        self._server.close()
        for conn in list(self._connections):
            conn.close()

    def __getattr__(self, name: str):
        return getattr(self._server, name)
