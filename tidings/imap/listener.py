"""IMAP listeners: "imap" (port 143, STARTTLS; LOGINDISABLED until TLS unless
``auth.allow_plaintext``) and "imaps" (port 993, implicit TLS, RFC 8314).

``start(app, name, host, port)`` is what :mod:`tidings.server` calls for each configured address.
Each accepted connection gets a :class:`~tidings.imap.connection.Connection` and an
:class:`~tidings.imap.session.ImapSession` running in the connection's own task.
"""

from __future__ import annotations

from tidings.imap.connection import Connection
from tidings.imap.session import ImapSession
from tidings.net.listener import Listener, start_stream_listener

STREAM_LIMIT = 128 * 1024  # StreamReader buffer cap; the parser bounds lines and literals itself


async def start(app, name: str, host: str, port: int) -> Listener:
    if name not in ("imap", "imaps"):
        raise ValueError(f"not an IMAP listener: {name}")

    async def run_session(reader, writer) -> None:
        await ImapSession(app, name, Connection(reader, writer)).run()

    return await start_stream_listener(
        app, name, host, port, run_session, implicit_tls=name == "imaps", limit=STREAM_LIMIT
    )
