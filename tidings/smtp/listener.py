"""SMTP listeners: "smtp" (MX, port 25), "submission" (587, STARTTLS) and "submissions" (465, TLS).

`start(app, name, host, port)` is what `tidings.server` calls for each configured address. Each
accepted connection gets a `Connection` (asyncio.Protocol) and one task running its `Session`.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from tidings.net.listener import TLS_HANDSHAKE_TIMEOUT, Listener, OverLimit, session_limits, where
from tidings.policy import RecipientRouter
from tidings.smtp.connection import Connection
from tidings.smtp.session import ListenerMode, Session

log = logging.getLogger(__name__)

LISTENER_NAMES = ("smtp", "submission", "submissions")


async def start(app, name: str, host: str, port: int, sock: socket.socket | None = None) -> Listener:
    """Listen on host:port (or on `sock`, bound already) with the behaviour `name` stands for."""
    if name not in LISTENER_NAMES:
        raise ValueError(f"not an SMTP listener: {name}")
    mode = ListenerMode.for_listener(name)
    limits = app.config.limits
    loop = asyncio.get_running_loop()

    # Submission sessions must log in within login_timeout; MX sessions have no login to wait
    # for, so the same deadline caps the whole of an MX session that does not authenticate.
    login_timeout = limits.mx_session_timeout if name == "smtp" else limits.login_timeout
    listener = Listener(app, name, session_limits(app.config, login_timeout), refusal(app.hostname))
    router = RecipientRouter(app.store, app.config.default_domain, app.srs)

    def start_session(conn: Connection) -> None:
        try:
            conn.slot = listener.admit(conn.peer_ip, conn.close)
        except OverLimit as over:
            conn.send(listener.refuse(conn.peer_ip, over))
            conn.close()
            return
        task = loop.create_task(Session(app, mode, conn, router).run())
        task.add_done_callback(lambda _: conn.slot.release())

    def make_connection() -> Connection:
        conn = Connection(limits.line_length, limits.idle_timeout)
        conn.on_connect = start_session
        return conn

    listener.server = await loop.create_server(
        make_connection,
        ssl=app.tls if mode.implicit_tls else None,
        ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if mode.implicit_tls else None,
        backlog=512,
        **where(host, port, sock),
    )
    return listener


def refusal(hostname: str):
    """Over a connection limit: 421 instead of the greeting (RFC 5321 section 3.1), 4.7.0 (RFC 3463)."""

    def refuse(text: str) -> bytes:
        return f"421 4.7.0 {hostname} {text}\r\n".encode()

    return refuse
