"""Fixtures for SMTP tests: a server with only the SMTP listeners, users, and a raw-wire client."""

from __future__ import annotations

import smtplib
import socket

import pytest

from tests.support.clients import client_tls  # noqa: F401  (re-exported to the tests)

SMTP_LISTENERS = ("smtp", "submission", "submissions")
ALICE = "alice@example.test"
BOB = "bob@example.test"
PASSWORD = "correct horse 1"


def message(
    subject: str = "Hello",
    sender: str = "carol@remote.test",
    to: str = ALICE,
    body: str = "Hi.\r\n",
    extra: str = "",
) -> bytes:
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n{extra}"
        f"Message-ID: <{subject.replace(' ', '.')}@t>\r\n"
        f"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\n{body}"
    ).encode()


class SmtpServer:
    """A running server plus the helpers SMTP tests need."""

    def __init__(self, running) -> None:
        self.running = running
        self.ports = running.ports
        self.store = running.store
        running.add_user(ALICE, PASSWORD)
        running.add_user(BOB, PASSWORD)

    def call(self, coro):
        return self.running.call(coro)

    def inbox(self, address: str = ALICE) -> list[bytes]:
        """Raw messages in the account's INBOX, oldest first."""
        account = self.call(self.store.accounts.get_user(address))
        box = self.call(self.store.mailboxes.get(account.id, "INBOX"))
        _, refs = self.call(self.store.mailboxes.messages(account.id, box.id))
        return [self.call(self.store.mailboxes.read_blob(ref.blob_hash)) for ref in refs]

    def queue(self):
        return self.call(self.store.queue.list())

    def mx(self) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.ports["smtp"], timeout=10)

    def submission(self, login: str | None = ALICE, password: str = PASSWORD) -> smtplib.SMTP:
        client = smtplib.SMTP("127.0.0.1", self.ports["submission"], timeout=10)
        client.starttls(context=client_tls())
        if login:
            client.login(login, password)
        return client

    def raw(self, listener: str = "smtp") -> RawClient:
        return RawClient(self.ports[listener])


class RawClient:
    """Bytes on the wire: for pipelining, malformed input and exact replies."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")
        self.greeting = self.reply()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> tuple[int, str]:
        """One (possibly multi-line) reply: (code, text with lines joined by newlines)."""
        lines = []
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("connection closed")
            lines.append(line.decode("utf-8", "replace").rstrip("\r\n"))
            if len(line) < 4 or line[3:4] != b"-":
                break
        return int(lines[0][:3]), "\n".join(line[4:] for line in lines)

    def command(self, line: str | bytes) -> tuple[int, str]:
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self.reply()

    def closed(self) -> bool:
        return self.file.readline() == b""

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def smtp(make_server) -> SmtpServer:
    return SmtpServer(make_server("smtp", listeners=SMTP_LISTENERS))
