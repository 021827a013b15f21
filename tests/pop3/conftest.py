"""Fixtures for POP3 tests: a server with only the POP3 listeners, a mailbox owner, a raw-wire client."""

from __future__ import annotations

import poplib
import socket

import pytest

from tests.support.clients import client_tls  # noqa: F401  (re-exported to the tests)

ALICE = "alice@example.test"
PASSWORD = "correct horse 1"


def message(subject: str, body: str = "Hello.\r\n") -> bytes:
    return (
        f"From: bob@example.test\r\nTo: {ALICE}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject}@example.test>\r\n\r\n{body}"
    ).encode()


class Pop3Server:
    """A running server plus the helpers POP3 tests need."""

    def __init__(self, running) -> None:
        self.running = running
        self.ports = running.ports
        running.add_user(ALICE, PASSWORD)

    def deliver(self, raw: bytes, to: str = ALICE) -> None:
        assert self.running.call(self.running.store.delivery.deliver_local(to, raw))

    def inbox(self, address: str = ALICE):
        """(Mailbox, [MessageRef]) of the account's INBOX, read straight from the store."""
        store = self.running.store

        async def read():
            account = await store.accounts.get_user(address)
            box = await store.mailboxes.get(account.id, "INBOX")
            return await store.mailboxes.messages(account.id, box.id)

        return self.running.call(read())

    def pop3s(self, user: str = ALICE, password: str = PASSWORD) -> poplib.POP3_SSL:
        client = poplib.POP3_SSL("127.0.0.1", self.ports["pop3s"], context=client_tls(), timeout=10)
        client.user(user)
        client.pass_(password)
        return client

    def plain(self) -> poplib.POP3:
        return poplib.POP3("127.0.0.1", self.ports["pop3"], timeout=10)

    def wire(self, tls: bool = True) -> Wire:
        return Wire(self.ports["pop3s" if tls else "pop3"], tls)


class Wire:
    """Raw lines over a socket, for pipelining and bad input that poplib would not send."""

    def __init__(self, port: int, tls: bool) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock = client_tls().wrap_socket(sock) if tls else sock
        self.file = self.sock.makefile("rb")
        self.greeting = self.line()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        return self.file.readline()

    def multiline(self) -> list[bytes]:
        lines = []
        while (line := self.line()) != b".\r\n":
            assert line, "connection closed inside a multi-line response"
            lines.append(line)
        return lines

    def command(self, text: str) -> bytes:
        self.send(text.encode() + b"\r\n")
        return self.line()

    def login(self, user: str = ALICE, password: str = PASSWORD) -> None:
        assert self.command(f"USER {user}").startswith(b"+OK")
        assert self.command(f"PASS {password}").startswith(b"+OK")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def pop(make_server):
    """POP3 (STLS) and POP3S listeners with default settings: no plaintext login."""
    return Pop3Server(make_server("pop", listeners=("pop3", "pop3s")))
