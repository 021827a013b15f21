"""IMAP listeners: "imap" (port 143, STARTTLS; LOGINDISABLED until TLS unless
``auth.allow_plaintext``) and "imaps" (port 993, implicit TLS, RFC 8314).

``start(app, name, host, port)`` is what :mod:`tidings.server` calls for each configured address.
Each accepted connection gets a :class:`~tidings.imap.connection.Connection` and an
:class:`~tidings.imap.session.ImapSession` running in the connection's own task.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from tidings.imap.connection import Connection
from tidings.imap.session import ImapSession

STREAM_LIMIT = 128 * 1024  # StreamReader buffer cap; the parser bounds lines and literals itself
TLS_HANDSHAKE_TIMEOUT = 30.0


async def start(app, name: str, host: str, port: int) -> asyncio.Server:
    if name not in ("imap", "imaps"):
        raise ValueError(f"not an IMAP listener: {name}")

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        session = ImapSession(app, name, Connection(reader, writer))
        await session.run()

    return await asyncio.start_server(
        serve,
        host,
        port,
        ssl=app.tls if name == "imaps" else None,
        ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if name == "imaps" else None,
        limit=STREAM_LIMIT,
        reuse_address=True,
        backlog=1024,
    )
