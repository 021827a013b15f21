"""Web listeners: "http" (port 80, unprivileged 8080) and "https" (443 / 8443, the server's TLS
context, SNI and certificate renewal included). Once a certificate is configured ([tls]) and
"https" runs, "http" only redirects to it (tidings/web/redirect.py).

`start(app, name, host, port, sock)` is what tidings.server calls for each configured address,
as for every protocol. uvicorn serves HTTP/1.1 and WebSocket on the socket the supervisor bound for
this worker (or one bound here when running alone): only its protocol machinery is used, through
`uvicorn.Server.startup(sockets)`, never `serve()`, which would take over the process's signals
and event loop. `WebListener` has the shape tidings.server expects of a listener (sockets, close,
wait_closed) and keeps `app.sessions[name]` at the number of open HTTP connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

import uvicorn

from tidings.net.listener import bind
from tidings.web.app import build
from tidings.web.redirect import HttpsRedirect, redirects_to_https

log = logging.getLogger(__name__)

TICK = 1.0  # seconds between refreshes of the Date header and the connection count
SHUTDOWN_GRACE = 1.0  # seconds open requests get to finish when the server stops
KEEP_ALIVE = 30  # seconds an idle HTTP connection stays open


class WebListener:
    def __init__(self, app, name: str, server: uvicorn.Server, sockets: list[socket.socket]) -> None:
        self.app = app
        self.name = name
        self.server = server
        self._sockets = sockets
        self._tick = asyncio.create_task(self._keep_ticking(), name=f"{name}-tick")
        self._closing: asyncio.Task | None = None
        app.sessions.setdefault(name, 0)

    @property
    def sockets(self):
        return [sock for server in self.server.servers for sock in (server.sockets or ())]

    async def _keep_ticking(self) -> None:
        counter = 0
        while True:
            with contextlib.suppress(Exception):
                await self.server.on_tick(counter)
            self.app.sessions[self.name] = len(self.server.server_state.connections)
            counter += 10  # uvicorn counts tenths of a second
            await asyncio.sleep(TICK)

    def close(self) -> None:
        if self._closing is None:
            self._tick.cancel()
            self._closing = asyncio.get_running_loop().create_task(self.server.shutdown())

    async def wait_closed(self) -> None:
        self.close()
        try:
            async with asyncio.timeout(SHUTDOWN_GRACE + 1):
                await self._closing
        except (TimeoutError, asyncio.CancelledError):
            for task in list(self.server.server_state.tasks):
                task.cancel()
        self.app.sessions[self.name] = 0


async def start(app, name: str, host: str, port: int, sock: socket.socket | None = None) -> WebListener:
    """Start listener `name` ("http" or "https") on host:port (or on `sock`, bound already)."""
    if name not in ("http", "https"):
        raise ValueError(f"not a web listener: {name}")
    sockets = [sock] if sock is not None else bind(host, port)
    for each in sockets:
        each.listen(1024)
    if name == "http" and redirects_to_https(app.config):
        configured = app.config.listen["https"][0][1]
        served = HttpsRedirect(
            lambda: (app.listening.get("https") or [("", configured)])[0][1], app.config.hostname
        )
    else:
        served = build(app)
    config = uvicorn.Config(
        served,
        lifespan="off",
        http="h11",
        ws="websockets-sansio",
        log_config=None,
        log_level="warning",  # not "Shutting down" per listener at every stop
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_keep_alive=KEEP_ALIVE,
        timeout_graceful_shutdown=SHUTDOWN_GRACE,
        limit_concurrency=app.config.limits.connections,
        ws_max_size=1024 * 1024,
    )
    config.load()
    if name == "https":
        config.ssl = app.tls
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)  # what serve() would set; "off": no events
    await server.startup(sockets=sockets)
    return WebListener(app, name, server, sockets)
