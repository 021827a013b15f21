"""IMAP listeners: "imap" (port 143, STARTTLS; LOGINDISABLED until TLS unless
``auth.allow_plaintext``) and "imaps" (port 993, implicit TLS, RFC 8314).

``start(app, name, host, port)`` is what :mod:`tidings.server` calls for each configured address.
Each accepted connection gets a :class:`~tidings.imap.connection.Connection` and an
:class:`~tidings.imap.session.ImapSession` running in the connection's own task.
"""

from __future__ import annotations

import socket

from tidings.imap.connection import Connection
from tidings.imap.session import ImapSession
from tidings.net.listener import Listener, session_limits, start_stream_listener

STREAM_LIMIT = 128 * 1024  # StreamReader buffer cap; the parser bounds lines and literals itself


async def start(app, name: str, host: str, port: int, sock: socket.socket | None = None) -> Listener:
    """Start listener `name` on host:port (or on `sock`, bound already)."""
    if name not in ("imap", "imaps"):
        raise ValueError(f"not an IMAP listener: {name}")

    async def run_session(reader, writer, slot) -> None:
        await ImapSession(app, name, Connection(reader, writer), slot).run()

    return await start_stream_listener(
        app,
        name,
        host,
        port,
        run_session,
        implicit_tls=name == "imaps",
        limits=session_limits(app.config),
        refusal=refusal,
        limit=STREAM_LIMIT,
        sock=sock,
    )


def refusal(text: str) -> bytes:
    """Over a connection limit: BYE instead of a greeting (RFC 9051 7.1.5), UNAVAILABLE (RFC 5530)."""
    return f"* BYE [UNAVAILABLE] {text}\r\n".encode()
