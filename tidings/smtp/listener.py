"""SMTP listeners: "smtp" (MX, port 25), "submission" (587, STARTTLS) and "submissions" (465, TLS).

`start(app, name, host, port)` is what `tidings.server` calls for each configured address. Each
accepted connection gets a `Connection` (asyncio.Protocol) and one task running its `Session`.
"""

from __future__ import annotations

import asyncio
import logging

from tidings.net.listener import TLS_HANDSHAKE_TIMEOUT, Listener
from tidings.smtp.connection import Connection
from tidings.smtp.policy import RecipientRouter
from tidings.smtp.session import ListenerMode, Session

log = logging.getLogger(__name__)

LISTENER_NAMES = ("smtp", "submission", "submissions")


async def start(app, name: str, host: str, port: int) -> Listener:
    """Listen on host:port with the behaviour `name` stands for; returns the asyncio server."""
    if name not in LISTENER_NAMES:
        raise ValueError(f"not an SMTP listener: {name}")
    mode = ListenerMode.for_listener(name)
    limits = app.config.limits
    loop = asyncio.get_running_loop()

    listener = Listener(app, name)
    router = RecipientRouter(app.store, app.config.default_domain)

    def start_session(conn: Connection) -> None:
        untrack = listener.track(conn.close)
        task = loop.create_task(Session(app, mode, conn, router).run())
        task.add_done_callback(lambda _: untrack())

    def make_connection() -> Connection:
        conn = Connection(limits.line_length, limits.idle_timeout)
        conn.on_connect = start_session
        return conn

    listener.server = await loop.create_server(
        make_connection,
        host,
        port,
        ssl=app.tls if mode.implicit_tls else None,
        ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if mode.implicit_tls else None,
        reuse_address=True,
        backlog=512,
    )
    return listener
