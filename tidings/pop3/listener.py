"""POP3 listeners: "pop3" (plain, STLS offered; RFC 1939 + RFC 2595) and "pop3s" (implicit TLS, RFC 8314).

Only sockets and TLS here; the protocol lives in session.py.
"""

from __future__ import annotations

import socket

from tidings.net.listener import Listener, session_limits, start_stream_listener
from tidings.pop3.parser import MAX_COMMAND_LINE
from tidings.pop3.session import Session
from tidings.pop3.stream import LineStream
from tidings.pop3.wire import status


async def start(app, name: str, host: str, port: int, sock: socket.socket | None = None) -> Listener:
    """Start listener `name` ("pop3" or "pop3s") on host:port (or on `sock`, bound already)."""
    if name not in ("pop3", "pop3s"):
        raise ValueError(f"not a POP3 listener name: {name}")
    implicit_tls = name == "pop3s"

    async def run_session(reader, writer, slot) -> None:
        stream = LineStream(
            reader, writer, max_line=MAX_COMMAND_LINE, drain_timeout=app.config.limits.idle_timeout
        )
        await Session(app, stream, slot, starttls_offered=not implicit_tls).run()

    return await start_stream_listener(
        app,
        name,
        host,
        port,
        run_session,
        implicit_tls=implicit_tls,
        limits=session_limits(app.config),
        refusal=refusal,
        sock=sock,
    )


def refusal(text: str) -> bytes:
    """Over a connection limit: RFC 2449 section 8 SYS/TEMP, a transient condition."""
    return status(False, text, "SYS/TEMP")
