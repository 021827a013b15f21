"""Listening sockets shared by the protocols: admit a connection, know its open sessions, end them.

asyncio (3.11) leaves accepted connections running when a server is closed, and gives no count of
them. `Listener` wraps the `asyncio.Server` so that closing it also ends every open session, and
keeps `app.sessions[name]` current for `tidings status`.

It is also the one place that decides whether a new connection may have a session at all
(`Gate`): at most `limits.connections` open sessions per listener name, `limits.connections_per_ip`
from one client address (an IPv6 client counts by its /64, which one host usually owns), and
`limits.unauthenticated` not yet logged in. Over a limit the connection gets the protocol's
refusal (the `refusal` function each protocol passes in: SMTP 421, POP3 -ERR [SYS/TEMP], IMAP
BYE) and is closed; nothing else is affected. A session that logs in says so (`Slot.logged_in`),
which frees its place among the unauthenticated and lifts its deadline: before login a session
has an absolute deadline (`Slot.read_timeout`), so a client trickling a byte now and then cannot
hold a place for ever.

Never parses a protocol and never touches the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

TLS_HANDSHAKE_TIMEOUT = 30.0


@dataclass(frozen=True)
class SessionLimits:
    """The admission rules of one listener name (all its addresses together)."""

    connections: int
    connections_per_ip: int
    unauthenticated: int
    login_timeout: float  # seconds from connect until the session must have logged in


class OverLimit(Exception):
    """A new connection would exceed a limit; the text says which, for the refusal."""


def client_key(peer_ip: str) -> str:
    """What one client is, for the per-address limit: the IPv4 address, or the IPv6 /64."""
    try:
        address = ipaddress.ip_address(peer_ip.split("%", 1)[0])
    except ValueError:
        return peer_ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(address), 64), strict=False))
    return str(address)


class Gate:
    """Counts of one listener name's sessions, shared by every address it listens on."""

    def __init__(self, limits: SessionLimits) -> None:
        self.limits = limits
        self.open = 0
        self.unauthenticated = 0
        self.per_client: Counter[str] = Counter()

    def admit(self, peer_ip: str) -> Slot:
        """A place for a new session from `peer_ip`; raises OverLimit when there is none."""
        limits = self.limits
        key = client_key(peer_ip)
        if self.open >= limits.connections:
            raise OverLimit("Too many connections, try again later")
        if self.per_client[key] >= limits.connections_per_ip:
            raise OverLimit("Too many connections from your address, try again later")
        if self.unauthenticated >= limits.unauthenticated:
            raise OverLimit("Too many connections waiting to log in, try again later")
        self.open += 1
        self.unauthenticated += 1
        self.per_client[key] += 1
        deadline = asyncio.get_running_loop().time() + limits.login_timeout
        return Slot(self, key, deadline)

    def _release(self, slot: Slot) -> None:
        self.open -= 1
        if not slot.authenticated:
            self.unauthenticated -= 1
        self.per_client[slot.client] -= 1
        if self.per_client[slot.client] <= 0:
            del self.per_client[slot.client]


class Slot:
    """One admitted session's place at its listener's `Gate`."""

    def __init__(self, gate: Gate, client: str, deadline: float) -> None:
        self._gate = gate
        self.client = client
        self.deadline: float | None = deadline
        self.authenticated = False
        self._released = False
        self._on_release: list[Callable[[], None]] = []

    def logged_in(self) -> None:
        """The session has authenticated: no longer counted as unauthenticated, no login deadline."""
        if self.authenticated or self._released:
            return
        self.authenticated = True
        self.deadline = None
        self._gate.unauthenticated -= 1

    def read_timeout(self, idle: float) -> float:
        """How long the next read may wait: `idle`, but never past the login deadline."""
        if self.deadline is None:
            return idle
        return max(0.0, min(idle, self.deadline - asyncio.get_running_loop().time()))

    @property
    def expired(self) -> bool:
        """True once the login deadline has passed without a login."""
        return self.deadline is not None and asyncio.get_running_loop().time() >= self.deadline

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        self._gate._release(self)
        for callback in self._on_release:
            callback()


class Listener:
    """An `asyncio.Server` look-alike (sockets, close, wait_closed) that also owns its sessions."""

    def __init__(
        self, app, name: str, limits: SessionLimits, refusal: Callable[[str], bytes] | None = None
    ) -> None:
        self.app = app
        self.name = name
        self.server: asyncio.Server | None = None
        self.gate: Gate = app.gates.setdefault(name, Gate(limits))
        # The protocol's way of saying "over a limit" (OverLimit's text in, wire bytes out).
        self.refusal = refusal
        self._closers: dict[int, Callable[[], None]] = {}
        self._tasks: set[asyncio.Task] = set()
        self._next = 0
        app.sessions.setdefault(name, 0)

    def admit(self, peer_ip: str, close: Callable[[], None]) -> Slot:
        """Admit a session (raises OverLimit) and track it by the function that ends it."""
        slot = self.gate.admit(peer_ip)
        slot._on_release.append(self.track(close))
        return slot

    def refuse(self, peer_ip: str, reason: OverLimit) -> bytes:
        log.warning("%s: refused a connection from %s: %s", self.name, peer_ip, reason)
        return self.refusal(str(reason)) if self.refusal is not None else b""

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


def peer_ip_of(transport_or_writer) -> str:
    peer = transport_or_writer.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"


async def start_stream_listener(
    app,
    name: str,
    host: str,
    port: int,
    run_session: Callable[[asyncio.StreamReader, asyncio.StreamWriter, Slot], Awaitable[None]],
    *,
    implicit_tls: bool,
    limits: SessionLimits,
    refusal: Callable[[str], bytes],
    limit: int = 64 * 1024,
    sock: socket.socket | None = None,
) -> Listener:
    """Serve `run_session(reader, writer, slot)` per admitted connection, each in its own task."""
    listener = Listener(app, name, limits, refusal)

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        peer_ip = peer_ip_of(writer)
        try:
            slot = listener.admit(peer_ip, task.cancel)
        except OverLimit as over:
            with contextlib.suppress(Exception):
                writer.write(listener.refuse(peer_ip, over))
                writer.close()
            return
        listener._tasks.add(task)
        try:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await run_session(reader, writer, slot)
        except asyncio.CancelledError:
            pass  # server shutdown; ending normally keeps asyncio's stream callback quiet
        except Exception:
            log.exception("%s session failed", name)
        finally:
            slot.release()
            listener._tasks.discard(task)
            writer.close()

    listener.server = await asyncio.start_server(
        connected,
        ssl=app.tls if implicit_tls else None,
        ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if implicit_tls else None,
        limit=limit,
        backlog=1024,
        **where(host, port, sock),
    )
    return listener


def where(host: str, port: int, sock: socket.socket | None) -> dict:
    """`create_server` arguments: a socket bound earlier (as root, see `bind`), else host and port."""
    if sock is not None:
        return {"sock": sock}
    return {"host": host, "port": port, "reuse_address": True}


def bind_copies(host: str, port: int, copies: int) -> list[list[socket.socket]]:
    """`copies` sets of sockets on the same host:port with SO_REUSEPORT, one set per worker process
    (tidings.supervisor): the kernel spreads new connections over the sets by a hash of the
    client's address and port. With one set shared by all workers, the worker that woke first took
    a whole burst of connections (20 opened at once split 19/1, 16/4, 13/7), leaving the other
    cores idle for as long as those connections lived. Port 0 gets a free port for the first set
    and the same port for the others."""
    if copies > 1:
        # SO_REUSEPORT would let this bind share a port another process of ours already listens on
        # (a second `tidings serve`, or port 0 handed out again): bind it plainly first, which
        # fails with "address in use" as a single process would, then bind the sets.
        plain = bind(host, port)
        if port == 0 and plain:
            port = plain[0].getsockname()[1]
        for sock in plain:
            sock.close()
    first = bind(host, port, reuse_port=copies > 1)
    sets = [first]
    try:
        if port == 0 and first:
            port = first[0].getsockname()[1]
        for _ in range(copies - 1):
            sets.append(bind(host, port, reuse_port=True))
    except BaseException:
        for socks in sets:
            for sock in socks:
                sock.close()
        raise
    return sets


def bind(host: str, port: int, reuse_port: bool = False) -> list[socket.socket]:
    """Bind host:port now, as asyncio's `create_server` would (every address `host` resolves to,
    IPv6 sockets v6-only), without listening yet.

    `tidings serve` started as root binds every listener this way before it gives up root, so the
    standard ports below 1024 can be served by an unprivileged process.
    """
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def session_limits(config, login_timeout: float | None = None) -> SessionLimits:
    """The configured admission rules; `login_timeout` overrides the login deadline (SMTP MX)."""
    limits = config.limits
    return SessionLimits(
        connections=limits.connections,
        connections_per_ip=limits.connections_per_ip,
        unauthenticated=limits.unauthenticated,
        login_timeout=limits.login_timeout if login_timeout is None else login_timeout,
    )
