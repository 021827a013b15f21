"""SASL SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677; channel binding
tls-server-end-point, RFC 5929) on IMAP AUTHENTICATE, POP3 AUTH and SMTP AUTH, driven by scramp's
client over real TLS connections."""

from __future__ import annotations

import base64
import socket

import pytest
from scramp import ScramClient, ScramException

from tests.auth.test_scram_keys import forget_keys
from tests.auth.wire import PASSWORD, imap_login
from tests.support.clients import client_tls
from tidings.config import AuthSettings

ALICE = "alice@example.test"
PLUS = "SCRAM-SHA-256-PLUS"
SCRAM = "SCRAM-SHA-256"


class Wire:
    """Lines over a TLS socket; `start` sends the AUTH command, then the exchange runs."""

    def __init__(self, port: int) -> None:
        self.sock = client_tls().wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10))
        self.file = self.sock.makefile("rb")

    def line(self) -> bytes:
        return self.file.readline().rstrip(b"\r\n")

    def send(self, text: bytes) -> None:
        self.sock.sendall(text + b"\r\n")

    def close(self) -> None:
        self.file.close()
        self.sock.close()


PROTOCOLS = {
    # name: (listener, command prefix, continuation prefix, how to read the greeting)
    "imap": ("imaps", b"a AUTHENTICATE", b"+ "),
    "pop3": ("pop3s", b"AUTH", b"+ "),
    "smtp": ("submissions", b"AUTH", b"334 "),
}


def open_wire(running, protocol: str) -> Wire:
    wire = Wire(running.ports[PROTOCOLS[protocol][0]])
    wire.line()  # greeting
    if protocol == "smtp":
        wire.send(b"EHLO client.test")
        while not wire.line().startswith(b"250 "):
            pass
    return wire


def advertised(running, protocol: str) -> list[str]:
    wire = open_wire(running, protocol)
    try:
        if protocol == "imap":
            wire.send(b"c CAPABILITY")
            caps = wire.line().split()
            wire.line()
            return [c.decode()[5:] for c in caps if c.startswith(b"AUTH=")]
        if protocol == "pop3":
            wire.send(b"AUTH")
            wire.line()
            out = []
            while (line := wire.line()) != b".":
                out.append(line.decode())
            return out
        wire.send(b"EHLO again.test")
        while True:
            line = wire.line()
            if line[4:].startswith(b"AUTH "):
                return line[9:].decode().split()
            assert not line.startswith(b"250 "), "no AUTH keyword"
    finally:
        wire.close()


def outcome(protocol: str, reply: bytes) -> str:
    if protocol == "imap":
        assert reply.startswith(b"a "), reply
        if reply.startswith(b"a OK"):
            return "ok"
        return "throttled" if b"[UNAVAILABLE]" in reply else "failed"
    if protocol == "pop3":
        if reply.startswith(b"+OK"):
            return "ok"
        return "throttled" if b"too many" in reply else "failed"
    if reply.startswith(b"235"):
        return "ok"
    return "throttled" if reply.startswith(b"454") else "failed"


def scram_login(
    running, protocol: str, user: str, password: str, mechanism: str = SCRAM, binding=None
) -> str:
    """One SCRAM exchange; `binding` is "tls" (the real one), bytes (a forged one) or None."""
    _, command, continuation = PROTOCOLS[protocol]
    wire = open_wire(running, protocol)
    try:
        cb = None
        if binding == "tls":
            cb = ("tls-server-end-point", wire.sock)
        elif binding is not None:
            cb = ("tls-server-end-point", binding)
        client = ScramClient([mechanism], user, password, channel_binding=cb)
        first = base64.b64encode(client.get_client_first().encode())
        wire.send(command + b" " + mechanism.encode() + b" " + first)
        reply = wire.line()
        if not reply.startswith(continuation):
            return outcome(protocol, reply)
        client.set_server_first(base64.b64decode(reply[len(continuation) :]).decode())
        wire.send(base64.b64encode(client.get_client_final().encode()))
        reply = wire.line()
        if not reply.startswith(continuation):
            return outcome(protocol, reply)
        # The server's signature: proof that it knows the keys (raises if it does not).
        client.set_server_final(base64.b64decode(reply[len(continuation) :]).decode())
        wire.send(b"")
        return outcome(protocol, wire.line())
    finally:
        wire.close()


@pytest.fixture
def running(make_server):
    auth = AuthSettings(max_failures_per_ip=1000, max_failures_per_account=1000, scram_plus=True)
    server = make_server(auth=auth)
    server.add_user(ALICE, PASSWORD)
    return server


def failures(running, key=ALICE) -> int:
    window = running.config.auth.failure_window
    return running.call(running.store.login_attempts.failures("account", key, window))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_scram_and_scram_plus_are_offered_over_tls_beside_plain_and_login(running, protocol):
    assert advertised(running, protocol) == [PLUS, SCRAM, "PLAIN", "LOGIN"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_without_scram_plus_configured_plus_is_not_offered_and_a_binding_client_logs_in(
    make_server, protocol
):
    """GNU SASL (mutt's SMTP) would pick -PLUS and then demand tls-exporter: off by default."""
    running = make_server()
    running.add_user(ALICE, PASSWORD)
    assert advertised(running, protocol) == [SCRAM, "PLAIN", "LOGIN"]
    assert scram_login(running, protocol, "alice", PASSWORD, SCRAM, binding="tls") == "ok"  # flag "y"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_scram_sha_256_logs_in_and_a_wrong_password_is_refused_and_counted(running, protocol):
    assert scram_login(running, protocol, "Alice", PASSWORD) == "ok"
    assert scram_login(running, protocol, ALICE, "wrong password") == "failed"
    assert scram_login(running, protocol, "nobody", "wrong password") == "failed"
    assert failures(running) == 1 and failures(running, "nobody@example.test") == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_scram_sha_256_plus_binds_to_the_tls_connection(running, protocol):
    assert scram_login(running, protocol, "alice", PASSWORD, PLUS, binding="tls") == "ok"
    # A man in the middle has another certificate, hence another binding: refused, and counted.
    assert scram_login(running, protocol, "alice", PASSWORD, PLUS, binding=b"\x00" * 32) == "failed"
    assert failures(running) == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_client_that_could_bind_but_was_not_offered_plus_is_refused(running, protocol):
    """RFC 5802 section 6: flag "y" on a server that offers -PLUS means the offer was stripped."""
    assert scram_login(running, protocol, "alice", PASSWORD, SCRAM, binding="tls") == "failed"


def test_scram_is_throttled_like_every_other_login(make_server):
    running = make_server(
        auth=AuthSettings(max_failures_per_ip=1000, max_failures_per_account=2, scram_plus=True)
    )
    running.add_user(ALICE, PASSWORD)
    assert scram_login(running, "imap", "alice", "wrong password") == "failed"
    assert imap_login(running.ports, "ALICE", "wrong password") == "failed"
    assert scram_login(running, "smtp", ALICE, PASSWORD) == "throttled"
    assert scram_login(running, "pop3", ALICE, PASSWORD, PLUS, binding="tls") == "throttled"


def test_an_account_older_than_scram_keys_can_use_scram_after_one_password_login(running):
    forget_keys(running)
    assert scram_login(running, "imap", ALICE, PASSWORD) == "failed"
    assert imap_login(running.ports, ALICE, PASSWORD) == "ok"
    assert scram_login(running, "imap", ALICE, PASSWORD) == "ok"


def test_a_forged_server_signature_would_be_noticed_by_the_client():
    """The client half of the check the tests above rely on (scramp raises on a wrong v=)."""
    client = ScramClient([SCRAM], "alice", PASSWORD)
    client.get_client_first()
    with pytest.raises(ScramException):
        client.set_server_first("r=other,s=QSXCR+Q6sek8bf92,i=4096")
