"""Listening sockets shared by the protocols: start a server, know its open sessions, end them.

asyncio (3.11) leaves accepted connections running when a server is closed, and gives no count of
them. `Listener` wraps the `asyncio.Server` so that closing it also ends every open session, and
keeps `app.sessions[name]` current for `tidings status`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

TLS_HANDSHAKE_TIMEOUT = 30.0


class Listener:
    """An `asyncio.Server` look-alike (sockets, close, wait_closed) that also owns its sessions."""

    def __init__(self, app, name: str) -> None:
        self.app = app
        self.name = name
        self.server: asyncio.Server | None = None
        self._closers: dict[int, Callable[[], None]] = {}
        self._tasks: set[asyncio.Task] = set()
        self._next = 0
        app.sessions.setdefault(name, 0)

    def track(self, close: Callable[[], None]) -> Callable[[], None]:
        """Register an open session by the function that ends it; returns the function to call when
        the session has ended by itself."""
        key = self._next
        self._next += 1
        self._closers[key] = close
        self.app.sessions[self.name] += 1

        def untrack() -> None:
            if self._closers.pop(key, None) is not None:
                self.app.sessions[self.name] -= 1

        return untrack

    @property
    def sockets(self):
        return self.server.sockets if self.server else ()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for close in list(self._closers.values()):
            with contextlib.suppress(Exception):
                close()

    async def wait_closed(self) -> None:
        if self.server is not None:
            await self.server.wait_closed()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def start_stream_listener(
    app,
    name: str,
    host: str,
    port: int,
    run_session: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    *,
    implicit_tls: bool,
    limit: int = 64 * 1024,
) -> Listener:
    """Serve `run_session(reader, writer)` per connection, each in its own task."""
    listener = Listener(app, name)

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        listener._tasks.add(task)
        untrack = listener.track(task.cancel)
        try:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await run_session(reader, writer)
        except asyncio.CancelledError:
            pass  # server shutdown; ending normally keeps asyncio's stream callback quiet
        except Exception:
            log.exception("%s session failed", name)
        finally:
            untrack()
            listener._tasks.discard(task)
            writer.close()

    listener.server = await asyncio.start_server(
        connected,
        host,
        port,
        ssl=app.tls if implicit_tls else None,
        ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if implicit_tls else None,
        limit=limit,
        reuse_address=True,
        backlog=1024,
    )
    return listener
