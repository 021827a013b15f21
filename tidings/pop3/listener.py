"""POP3 listeners: "pop3" (plain, STLS offered; RFC 1939 + RFC 2595) and "pop3s" (implicit TLS, RFC 8314).

Only sockets and TLS here; the protocol lives in session.py.
"""

from __future__ import annotations

import asyncio
import logging

from tidings.pop3.parser import MAX_COMMAND_LINE
from tidings.pop3.session import Session
from tidings.pop3.stream import LineStream

log = logging.getLogger(__name__)

TLS_HANDSHAKE_TIMEOUT = 30.0


async def start(app, name: str, host: str, port: int) -> asyncio.Server:
    """Start listener `name` ("pop3" or "pop3s") on host:port and return the asyncio server."""
    if name not in ("pop3", "pop3s"):
        raise ValueError(f"not a POP3 listener name: {name}")
    implicit_tls = name == "pop3s"

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        app.sessions[name] = app.sessions.get(name, 0) + 1
        try:
            stream = LineStream(reader, writer, max_line=MAX_COMMAND_LINE)
            await Session(app, stream, starttls_offered=not implicit_tls).run()
        except Exception:
            log.exception("pop3 session crashed")
        finally:
            app.sessions[name] -= 1

    return await asyncio.start_server(
        connected,
        host,
        port,
        ssl=app.tls if implicit_tls else None,
        ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if implicit_tls else None,
    )
