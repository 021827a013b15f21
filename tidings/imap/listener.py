"""IMAP listeners: "imap" (port 143, STARTTLS; LOGINDISABLED until TLS unless
``auth.allow_plaintext``) and "imaps" (port 993, implicit TLS, RFC 8314).

``start(app, name, host, port)`` is what :mod:`tidings.server` calls for each configured address.
Each accepted connection gets a :class:`~tidings.imap.connection.Connection` and an
:class:`~tidings.imap.session.ImapSession` running in the connection's own task.  Closing the
returned server also ends the open sessions (asyncio leaves them running otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from tidings.imap.connection import Connection
from tidings.imap.session import ImapSession

STREAM_LIMIT = 128 * 1024  # StreamReader buffer cap; the parser bounds lines and literals itself
TLS_HANDSHAKE_TIMEOUT = 30.0


class ImapListener:
    """An ``asyncio.Server`` look-alike (sockets, close, wait_closed) that also owns its sessions."""

    def __init__(self, server: asyncio.Server, sessions: set[asyncio.Task]) -> None:
        self.server = server
        self.sessions = sessions

    @property
    def sockets(self):
        return self.server.sockets

    def close(self) -> None:
        self.server.close()
        for task in list(self.sessions):
            task.cancel()

    async def wait_closed(self) -> None:
        await self.server.wait_closed()
        if self.sessions:
            await asyncio.gather(*self.sessions, return_exceptions=True)


async def start(app, name: str, host: str, port: int) -> ImapListener:
    if name not in ("imap", "imaps"):
        raise ValueError(f"not an IMAP listener: {name}")
    sessions: set[asyncio.Task] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        sessions.add(task)
        try:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await ImapSession(app, name, Connection(reader, writer)).run()
        except asyncio.CancelledError:
            pass  # server shutdown; ending normally keeps asyncio's stream callback quiet
        finally:
            sessions.discard(task)

    server = await asyncio.start_server(
        serve,
        host,
        port,
        ssl=app.tls if name == "imaps" else None,
        ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if name == "imaps" else None,
        limit=STREAM_LIMIT,
        reuse_address=True,
        backlog=1024,
    )
    return ImapListener(server, sessions)
