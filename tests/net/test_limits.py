"""Connection limits and the login deadline, over real sockets, for every listener.

Over a limit a new connection gets its protocol's refusal (SMTP 421 4.7.0, POP3 -ERR [SYS/TEMP],
IMAP * BYE) and is closed, while the sessions already open and clients from other addresses carry
on. Before login a session has an absolute deadline that trickling bytes does not extend.
"""

from __future__ import annotations

import socket
import ssl
import time

import pytest

from tests.support.clients import client_tls
from tidings.config import AuthSettings, Limits

USER = "alice@example.test"
PASSWORD = "correct horse 1"
REFUSALS = {
    "smtp": b"421 4.7.0 ",
    "submission": b"421 4.7.0 ",
    "submissions": b"421 4.7.0 ",
    "pop3": b"-ERR [SYS/TEMP] ",
    "pop3s": b"-ERR [SYS/TEMP] ",
    "imap": b"* BYE [UNAVAILABLE] ",
    "imaps": b"* BYE [UNAVAILABLE] ",
}
GREETINGS = {"smtp": b"220 ", "pop3": b"+OK ", "imap": b"* OK "}
IMPLICIT_TLS = ("submissions", "pop3s", "imaps")


class Wire:
    """One raw client connection, optionally from a chosen loopback source address."""

    def __init__(self, port: int, source: str = "127.0.0.1", tls: bool = False) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
        if tls:
            sock = client_tls().wrap_socket(sock)
        self.sock = sock
        self.file = sock.makefile("rb")

    def line(self) -> bytes:
        return self.file.readline()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def closed(self) -> bool:
        try:
            return self.file.readline() == b""
        except (ConnectionError, ssl.SSLError):
            return True

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def greeting_of(listener: str) -> bytes:
    return GREETINGS[listener.rstrip("s").replace("submission", "smtp")]


@pytest.mark.parametrize("listener", sorted(REFUSALS))
def test_a_client_over_its_per_address_limit_is_refused_in_its_protocol(make_server, listener):
    running = make_server(listeners=(listener,), limits=Limits(connections_per_ip=2))
    port, tls = running.ports[listener], listener in IMPLICIT_TLS
    held = [Wire(port, tls=tls) for _ in range(2)]
    for wire in held:
        assert wire.line().startswith(greeting_of(listener))
    refused = Wire(port, tls=tls)
    assert refused.line().startswith(REFUSALS[listener])
    assert refused.closed()
    # Another address is not affected, nor are the sessions already open.
    other = Wire(port, source="127.0.0.2", tls=tls)
    assert other.line().startswith(greeting_of(listener))
    held[0].send(b"NOOP\r\n" if not listener.startswith("imap") else b"a NOOP\r\n")
    assert held[0].line()
    # A place freed is a place for the next connection.
    held[1].close()
    time.sleep(0.2)
    again = Wire(port, tls=tls)
    assert again.line().startswith(greeting_of(listener))
    for wire in (held[0], other, again):
        wire.close()


def test_the_listener_wide_limit_counts_every_address(make_server):
    running = make_server(listeners=("smtp", "imap"), limits=Limits(connections=3))
    port = running.ports["smtp"]
    held = [Wire(port, source=f"127.0.0.{n}") for n in (2, 3, 4)]
    for wire in held:
        assert wire.line().startswith(b"220 ")
    refused = Wire(port, source="127.0.0.5")
    assert refused.line() == b"421 4.7.0 mail.example.test Too many connections, try again later\r\n"
    assert refused.closed()
    # Each listener counts its own sessions.
    imap = Wire(running.ports["imap"], source="127.0.0.5")
    assert imap.line().startswith(b"* OK ")
    for wire in (*held, imap):
        wire.close()


def test_unauthenticated_sessions_have_a_cap_that_logging_in_frees(make_server):
    running = make_server(
        listeners=("imap",), limits=Limits(unauthenticated=2), auth=AuthSettings(allow_plaintext=True)
    )
    running.add_user(USER, PASSWORD)
    port = running.ports["imap"]
    first, second = Wire(port, source="127.0.0.2"), Wire(port, source="127.0.0.3")
    assert first.line().startswith(b"* OK ") and second.line().startswith(b"* OK ")
    refused = Wire(port, source="127.0.0.4")
    assert (
        refused.line() == b"* BYE [UNAVAILABLE] Too many connections waiting to log in, try again later\r\n"
    )
    first.send(f'a LOGIN {USER} "{PASSWORD}"\r\n'.encode())
    assert first.line().startswith(b"a OK ")
    admitted = Wire(port, source="127.0.0.4")
    assert admitted.line().startswith(b"* OK ")
    for wire in (first, second, admitted):
        wire.close()


def trickle(wire: Wire, command: bytes, seconds: float) -> list[bytes]:
    """Send `command` every 0.2 s for up to `seconds`; the lines read back, until the server closes."""
    lines: list[bytes] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            wire.send(command)
        except OSError:
            break
        line = wire.line()
        if not line:
            break
        lines.append(line)
        time.sleep(0.2)
    return lines


@pytest.mark.parametrize(
    ("listener", "command", "farewell"),
    [
        ("imap", b"a NOOP\r\n", b"* BYE Autologout: time to log in is over\r\n"),
        ("pop3", b"NOOP\r\n", b"-ERR [SYS/TEMP] autologout: time to log in is over\r\n"),
        (
            "submission",
            b"NOOP\r\n",
            b"421 4.4.2 mail.example.test Time to log in is over, closing connection\r\n",
        ),
        (
            "smtp",
            b"NOOP\r\n",
            b"421 4.4.2 mail.example.test Session time limit reached, closing connection\r\n",
        ),
    ],
)
def test_a_session_that_keeps_talking_without_logging_in_ends_at_the_deadline(
    make_server, listener, command, farewell
):
    running = make_server(listeners=(listener,), limits=Limits(login_timeout=1.0, mx_session_timeout=1.0))
    wire = Wire(running.ports[listener])
    wire.line()
    started = time.monotonic()
    lines = trickle(wire, command, seconds=10)
    elapsed = time.monotonic() - started
    assert farewell in lines
    assert 0.9 < elapsed < 3.0
    wire.close()


def test_a_logged_in_session_outlives_the_login_deadline(make_server):
    running = make_server(listeners=("imaps", "pop3s"), limits=Limits(login_timeout=1.0))
    running.add_user(USER, PASSWORD)
    imap = Wire(running.ports["imaps"], tls=True)
    imap.line()
    imap.send(f'a LOGIN {USER} "{PASSWORD}"\r\n'.encode())
    assert imap.line().startswith(b"a OK ")
    pop = Wire(running.ports["pop3s"], tls=True)
    pop.line()
    pop.send(f"USER {USER}\r\nPASS {PASSWORD}\r\n".encode())
    assert pop.line().startswith(b"+OK") and pop.line().startswith(b"+OK")
    imap_lines = trickle(imap, b"b NOOP\r\n", seconds=1.6)
    pop_lines = trickle(pop, b"NOOP\r\n", seconds=1.6)
    assert all(line.startswith(b"b OK") for line in imap_lines) and len(imap_lines) >= 6
    assert all(line.startswith(b"+OK") for line in pop_lines) and len(pop_lines) >= 6
    imap.close()
    pop.close()
