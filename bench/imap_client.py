"""A small asyncio IMAP client for the benchmarks: raw sockets, literals, nothing else.

It exists so that the load generator measures the server, not the client: one event loop drives
hundreds of connections, responses are split into lines only as far as the benchmark needs
(tagged status, EXISTS/EXPUNGE counts, SEARCH and APPENDUID results), and literals in responses
(RFC 9051 section 4.3) are read as raw bytes without further parsing. It must never be used as a
general-purpose client: it does not parse FETCH data, BODYSTRUCTURE or quoted strings.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# A response line that ends in a literal announcement `{123}` (or `{123+}` in commands).
_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")
_EXISTS = re.compile(rb"^\* (\d+) EXISTS", re.IGNORECASE)
_EXPUNGE = re.compile(rb"^\* (\d+) EXPUNGE", re.IGNORECASE)
_FETCH = re.compile(rb"^\* (\d+) FETCH", re.IGNORECASE)
_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]", re.IGNORECASE)
# Responses can carry whole messages; StreamReader's default 64 KiB line limit is too small.
_STREAM_LIMIT = 4 * 1024 * 1024


class ImapError(Exception):
    """A command did not complete with tagged OK, or the server broke the protocol."""


class CommandFailed(ImapError):
    """A command completed with tagged NO or BAD (the `observer`, if any, has seen it already)."""

    def __init__(self, message: str, response: Response) -> None:
        super().__init__(message)
        self.response = response


@dataclass
class Response:
    """A command's outcome: the tagged status and the untagged lines that came before it."""

    status: str  # "OK", "NO" or "BAD"
    text: bytes
    untagged: list[bytes] = field(default_factory=list)
    received: int = 0  # bytes read, literals included
    # Untagged responses that contradict the view the server gave this session before: an EXISTS
    # that shrinks, an EXPUNGE or FETCH of a sequence number beyond the count (RFC 9051 7.4.1).
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "OK"

    def search_uids(self) -> list[int]:
        """Numbers from `* SEARCH ...` lines (RFC 9051 section 7.3.5 / RFC 3501 7.2.5)."""
        out: list[int] = []
        for line in self.untagged:
            if line[:9].upper() == b"* SEARCH " or line[:8].upper() == b"* SEARCH":
                out.extend(int(tok) for tok in line[8:].split() if tok.isdigit())
        return out

    def append_uid(self) -> int | None:
        """The UID from `[APPENDUID uidvalidity uid]` (RFC 4315 section 3), if the server sent one."""
        match = _APPENDUID.search(self.text)
        return int(match.group(2)) if match else None


class ImapClient:
    """One connection. Commands run one at a time (no pipelining): send, then read to the tag."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.exists = 0
        self.reset_view = False  # set by select(): the next EXISTS starts a new view
        self._tag = 0
        self.greeting = b""
        # Called after every command with (command name, seconds, response): how the benchmarks
        # time each IMAP command and count NO/BAD without wrapping every call site.
        self.observer: Callable[[str, float, Response], None] | None = None

    @classmethod
    async def connect(
        cls, host: str, port: int, *, local_addr: str | None = None, timeout: float = 30.0
    ) -> ImapClient:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                host, port, limit=_STREAM_LIMIT, local_addr=(local_addr, 0) if local_addr else None
            ),
            timeout,
        )
        client = cls(reader, writer)
        client.greeting = await asyncio.wait_for(client.read_line(), timeout)
        if not client.greeting.startswith(b"* OK"):
            client.close()
            raise ImapError(f"unexpected greeting {client.greeting[:200]!r}")
        return client

    async def read_line(self) -> bytes:
        """One logical response line with its literals inlined, ending without CRLF."""
        parts: list[bytes] = []
        while True:
            line = await self.reader.readuntil(b"\r\n")
            match = _LITERAL.search(line)
            if match is None:
                parts.append(line[:-2])
                return b"".join(parts)
            parts.append(line[:-2])
            parts.append(await self.reader.readexactly(int(match.group(1))))

    def _next_tag(self) -> bytes:
        self._tag += 1
        return b"t%d" % self._tag

    def _note(self, line: bytes) -> str | None:
        """Keep the message count current so callers can tell how many messages the view holds;
        a description of the line if it contradicts that count."""
        if not line.startswith(b"* "):
            return None
        exists = _EXISTS.match(line)
        if exists:
            count = int(exists.group(1))
            shrunk = count < self.exists
            self.exists = count
            if shrunk and not self.reset_view:
                return f"EXISTS went down without EXPUNGE: {line[:80]!r}"
            self.reset_view = False
            return None
        expunge = _EXPUNGE.match(line)
        if expunge:
            number = int(expunge.group(1))
            self.exists -= 1
            if not 1 <= number <= self.exists + 1:
                return f"EXPUNGE of a number beyond the {self.exists + 1} messages: {line[:80]!r}"
            return None
        fetch = _FETCH.match(line)
        if fetch and not 1 <= int(fetch.group(1)) <= self.exists:
            return f"FETCH of a number beyond the {self.exists} messages: {line[:80]!r}"
        return None

    async def _read_until_tag(self, tag: bytes, violations: list[str] | None = None) -> Response:
        untagged: list[bytes] = []
        violations = violations if violations is not None else []
        received = 0
        prefix = tag + b" "
        while True:
            line = await self.read_line()
            received += len(line) + 2
            if line.startswith(prefix):
                status, _, text = line[len(prefix) :].partition(b" ")
                status = status.decode("ascii", "replace").upper()
                return Response(status, text, untagged, received, violations)
            complaint = self._note(line)
            if complaint:
                violations.append(complaint)
            untagged.append(line)

    async def command(self, command: str | bytes, literal: bytes | None = None) -> Response:
        """Send `command` (with one synchronising literal appended if given) and read to its tag."""
        if self.observer is None:
            return await self._command(command, literal)
        began = time.monotonic()
        response = await self._command(command, literal)
        self.observer(command_name(command), time.monotonic() - began, response)
        return response

    async def _command(self, command: str | bytes, literal: bytes | None) -> Response:
        tag = self._next_tag()
        body = command.encode() if isinstance(command, str) else command
        if literal is None:
            self.writer.write(tag + b" " + body + b"\r\n")
            return await self._read_until_tag(tag)
        # RFC 9051 section 4.3: a synchronising literal waits for the continuation request.
        self.writer.write(tag + b" " + body + b" {%d}\r\n" % len(literal))
        violations: list[str] = []
        while True:
            line = await self.read_line()
            if line.startswith(b"+"):
                break
            if line.startswith(tag + b" "):
                status, _, text = line[len(tag) + 1 :].partition(b" ")
                return Response(status.decode("ascii", "replace").upper(), text, [], 0, violations)
            complaint = self._note(line)
            if complaint:
                violations.append(complaint)
        self.writer.write(literal + b"\r\n")
        return await self._read_until_tag(tag, violations)

    async def check(self, command: str | bytes, literal: bytes | None = None) -> Response:
        """`command`, raising ImapError unless it completed with OK."""
        response = await self.command(command, literal)
        if not response.ok:
            text = command if isinstance(command, str) else command.decode("ascii", "replace")
            raise CommandFailed(f"{text.split()[0:2]} -> {response.status} {response.text[:200]!r}", response)
        return response

    async def login(self, user: str, password: str) -> None:
        await self.check(f"LOGIN {_quote(user)} {_quote(password)}")

    async def select(self, mailbox: str = "INBOX") -> Response:
        self.reset_view = True  # a new view: its EXISTS may be lower than the old one's
        return await self.check(f"SELECT {_quote(mailbox)}")

    async def idle_start(self) -> None:
        """Send IDLE and wait for the continuation request (RFC 2177 / RFC 9051 section 6.3.13)."""
        self._idle_tag = self._next_tag()
        self.writer.write(self._idle_tag + b" IDLE\r\n")
        while True:
            line = await self.read_line()
            if line.startswith(b"+"):
                return
            if line.startswith(self._idle_tag + b" "):
                raise ImapError(f"IDLE refused: {line[:200]!r}")
            self._note(line)

    async def idle_wait(self, pattern: re.Pattern[bytes] = _EXISTS) -> bytes:
        """While idling: the next untagged line matching `pattern` (others are noted and skipped)."""
        while True:
            line = await self.read_line()
            self._note(line)
            if pattern.match(line):
                return line

    async def idle_done(self) -> Response:
        self.writer.write(b"DONE\r\n")
        return await self._read_until_tag(self._idle_tag)

    async def logout(self) -> None:
        with contextlib.suppress(TimeoutError, OSError, asyncio.IncompleteReadError, ImapError):
            await asyncio.wait_for(self.command("LOGOUT"), 5)
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            self.writer.close()


def command_name(command: str | bytes) -> str:
    """FETCH for `FETCH 1:5 ...` and for `UID FETCH ...`: the name the latency tables use."""
    head = command[:40].decode("ascii", "replace") if isinstance(command, bytes) else command[:40]
    words = head.upper().split()
    if not words:
        return "?"
    return words[1] if words[0] == "UID" and len(words) > 1 else words[0]


def _quote(text: str) -> str:
    """An IMAP quoted string (RFC 9051 section 4.3); benchmark values never need literals."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


async def open_idlers(
    host: str,
    port: int,
    logins: list[tuple[str, str]],
    count: int,
    *,
    concurrency: int = 50,
    source_addresses: list[str] | None = None,
    timeout: float = 60.0,
) -> tuple[list[ImapClient], list[str]]:
    """Open `count` connections that log in, SELECT INBOX and enter IDLE; (clients, errors).

    Logins are spread round-robin over `logins`, sources over `source_addresses` (several
    127.0.0.x addresses give more ephemeral ports). At most `concurrency` are being set up at once,
    which keeps the servers' password hashing from being the only thing measured.
    """
    gate = asyncio.Semaphore(concurrency)
    clients: list[ImapClient] = []
    errors: list[str] = []

    async def one(i: int) -> None:
        user, password = logins[i % len(logins)]
        source = source_addresses[i % len(source_addresses)] if source_addresses else None
        async with gate:
            client = None
            try:
                client = await ImapClient.connect(host, port, local_addr=source, timeout=timeout)
                await asyncio.wait_for(client.login(user, password), timeout)
                await asyncio.wait_for(client.select("INBOX"), timeout)
                await asyncio.wait_for(client.idle_start(), timeout)
                clients.append(client)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ImapError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:300])
                if client is not None:
                    client.close()

    await asyncio.gather(*(one(i) for i in range(count)))
    return clients, errors


async def close_all(clients: list[ImapClient], *, graceful: bool = True) -> None:
    """End IDLE and log out (or just drop the sockets), a few hundred at a time."""

    async def one(client: ImapClient) -> None:
        if graceful:
            try:
                await asyncio.wait_for(client.idle_done(), 10)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ImapError):
                client.close()
                return
            await client.logout()
        else:
            client.close()

    for start in range(0, len(clients), 500):
        await asyncio.gather(*(one(c) for c in clients[start : start + 500]))
