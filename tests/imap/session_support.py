"""Helpers for the IMAP session tests: a server fixture with users, TLS clients, and a raw-wire
client for literals, pipelining and bad input (where imaplib would refuse to send)."""

from __future__ import annotations

import contextlib
import imaplib
import re
import socket
import ssl
import time
import zlib

from tests.support.clients import client_tls  # noqa: F401  (re-exported to the tests)

ALICE = "alice@example.test"
BOB = "bob@example.test"
PASSWORD = "correct horse 1"


def message(subject: str, body: str = "Hello.\r\n", sender: str = "carol@example.test") -> bytes:
    return (
        f"From: {sender}\r\nTo: {ALICE}\r\nSubject: {subject}\r\n"
        f"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <{subject.replace(' ', '.')}@example.test>\r\n"
        f"\r\n{body}"
    ).encode()


class ImapTestServer:
    """The running server plus the helpers these tests need."""

    def __init__(self, running) -> None:
        self.running = running
        self.ports = running.ports
        running.add_user(ALICE, PASSWORD)
        running.add_user(BOB, PASSWORD)

    def deliver(self, raw: bytes, to: str = ALICE, mailbox: str = "INBOX") -> None:
        assert self.running.call(self.running.store.delivery.deliver_local(to, raw, mailbox=mailbox))

    def mailbox_refs(self, name: str = "INBOX", address: str = ALICE):
        store = self.running.store

        async def read():
            account = await store.accounts.get_user(address)
            box = await store.mailboxes.get(account.id, name)
            return await store.mailboxes.messages(account.id, box.id)

        return self.running.call(read())

    def client(self, user: str = ALICE, password: str = PASSWORD, login: bool = True) -> imaplib.IMAP4_SSL:
        client = imaplib.IMAP4_SSL("127.0.0.1", self.ports["imaps"], ssl_context=client_tls(), timeout=10)
        if login:
            client.login(user, password)
        return client

    def raw(self, tls: bool = True, login: str | None = None) -> RawImap:
        raw = RawImap("127.0.0.1", self.ports["imaps" if tls else "imap"], tls=tls)
        if login:
            tagged = raw.command(f"LOGIN {login} {quote(PASSWORD)}")[-1]
            assert b" OK " in tagged, tagged
        return raw


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_LITERAL_AT_END = re.compile(rb"\{(\d+)\+?\}\r\n$")


def ok(raw: RawImap, command: str) -> list[bytes]:
    """The untagged lines of `command`, which must end in a tagged OK."""
    lines = raw.command(command)
    assert b" OK " in lines[-1], lines
    return lines[:-1]


class RawImap:
    """A byte-level IMAP client: send anything, read responses line by line (literals joined)."""

    def __init__(self, host: str, port: int, tls: bool = True, timeout: float = 10.0) -> None:
        sock = socket.create_connection((host, port), timeout=timeout)
        if tls:
            sock = client_tls().wrap_socket(sock)
        self.sock = sock
        self.buffer = b""
        self._tag = 0
        self._inflate: zlib._Decompress | None = None
        self._deflate: zlib._Compress | None = None
        self.greeting = self.line()

    def next_tag(self) -> str:
        self._tag += 1
        return f"T{self._tag}"

    def send(self, data: bytes) -> None:
        if self._deflate is not None:
            data = self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        if self._inflate is not None:
            chunk = self._inflate.decompress(chunk)
        self.buffer += chunk

    def line(self) -> bytes:
        """One response line with any literals inlined, CRLF stripped."""
        out = b""
        while True:
            while b"\r\n" not in self.buffer:
                self._fill()
            index = self.buffer.index(b"\r\n") + 2
            piece, self.buffer = self.buffer[:index], self.buffer[index:]
            out += piece
            match = _LITERAL_AT_END.search(piece)
            if match is None:
                return out[:-2]
            size = int(match.group(1))
            while len(self.buffer) < size:
                self._fill()
            out += self.buffer[:size]
            self.buffer = self.buffer[size:]

    def until_tagged(self, tag: str) -> list[bytes]:
        lines = []
        while True:
            line = self.line()
            lines.append(line)
            if line.startswith(tag.encode() + b" "):
                return lines

    def command(self, text: str | bytes) -> list[bytes]:
        """Send ``<tag> text`` and return every line up to and including the tagged one."""
        tag = self.next_tag()
        payload = text.encode() if isinstance(text, str) else text
        self.send(tag.encode() + b" " + payload + b"\r\n")
        return self.until_tagged(tag)

    def start_compression(self) -> None:
        self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        self._deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)

    def closed_by_server(self, wait: float = 5.0) -> bool:
        """True if the server closes the connection within ``wait`` seconds (reading what's left)."""
        deadline = time.monotonic() + wait
        self.sock.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            except (ConnectionError, ssl.SSLError, OSError):
                return True
            if not chunk:
                return True
            self.buffer += chunk
        return False

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
