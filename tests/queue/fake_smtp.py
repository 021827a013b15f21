"""A scriptable SMTP server for queue tests: answers as told, records what it was sent.

It runs in its own thread and event loop, so it outlives the Tidings servers under test (restarts,
kill -9). Replies are scripted per recipient and for DATA as lists consumed one per transaction
(the last one repeats), e.g. `rcpt_replies={"x@b.test": ["450 4.2.0 try later", "250 ok"]}`.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Transaction:
    helo: str
    tls: bool
    mail_from: str
    mail_params: list[str]
    rcpts: list[tuple[str, list[str]]] = field(default_factory=list)
    data: bytes = b""


class FakeSMTP:
    def __init__(
        self,
        host: str = "127.0.0.1",
        *,
        extensions: tuple[str, ...] = ("SIZE 10000000", "8BITMIME", "SMTPUTF8", "DSN", "ENHANCEDSTATUSCODES"),
        tls: ssl.SSLContext | None = None,
        rcpt_replies: dict[str, list[str]] | None = None,
        data_replies: list[str] | None = None,
        data_delays: list[float] | None = None,
        greeting: str = "220 fake.test ESMTP",
    ) -> None:
        self.host = host
        self.port = 0
        self.extensions = extensions
        self.tls = tls
        self.rcpt_replies = rcpt_replies or {}
        self.data_replies = data_replies or ["250 2.0.0 queued"]
        # Seconds to sit on the final dot before answering (one per transaction, the last repeats);
        # a message whose client is gone by then counts as not received (as if never committed).
        self.data_delays = data_delays or [0.0]
        self.data_started = 0
        self.greeting = greeting
        self.messages: list[Transaction] = []  # transactions whose DATA was accepted
        self.transactions: list[Transaction] = []  # every MAIL FROM, accepted or not
        self.connections = 0
        self.active = 0  # sessions open right now, and the most there ever were at once
        self.max_active = 0
        self.on_data: Callable[[Transaction], None] | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-smtp", daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> FakeSMTP:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._session, self.host, 0), self._loop
        ).result(5)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return

        async def close() -> None:
            self._server.close()
            sessions = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in sessions:
                task.cancel()
            await asyncio.gather(*sessions, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def wait_messages(self, count: int, timeout: float = 10.0) -> list[Transaction]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} message(s), got {len(self.messages)}")
            time.sleep(0.02)
        return self.messages

    @staticmethod
    def _next(replies: list[str]) -> str:
        return replies.pop(0) if len(replies) > 1 else replies[0]

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        helo, encrypted, tx = "", False, None

        async def reply(text: str) -> None:
            writer.write(text.encode() + b"\r\n")
            await writer.drain()

        try:
            await reply(self.greeting)
            if not self.greeting.startswith("220"):
                return
            while line := await reader.readline():
                command = line.decode("utf-8", "replace").rstrip("\r\n")
                verb = command[:4].upper()
                if verb == "EHLO":
                    helo = command[5:]
                    lines = ["fake.test"] + list(self.extensions)
                    if self.tls is not None and not encrypted:
                        lines.append("STARTTLS")
                    await reply(
                        "\r\n".join(f"250-{x}" for x in lines[:-1]) + f"\r\n250 {lines[-1]}"
                        if len(lines) > 1
                        else f"250 {lines[0]}"
                    )
                elif verb == "HELO":
                    helo = command[5:]
                    await reply("250 fake.test")
                elif verb == "STAR" and self.tls is not None:
                    await reply("220 2.0.0 go ahead")
                    await writer.start_tls(self.tls)
                    encrypted, tx = True, None
                elif verb == "MAIL":
                    match = re.match(r"MAIL FROM:<([^>]*)>\s*(.*)", command, re.IGNORECASE)
                    tx = Transaction(helo, encrypted, match.group(1), match.group(2).split())
                    self.transactions.append(tx)
                    await reply("250 2.1.0 ok")
                elif verb == "RCPT":
                    match = re.match(r"RCPT TO:<([^>]*)>\s*(.*)", command, re.IGNORECASE)
                    address = match.group(1)
                    answer = self._next(self.rcpt_replies.get(address, ["250 2.1.5 ok"]))
                    if answer.startswith("2"):
                        tx.rcpts.append((address, match.group(2).split()))
                    await reply(answer)
                elif verb == "DATA":
                    if tx is None or not tx.rcpts:
                        await reply("503 5.5.1 no valid recipients")
                        continue
                    await reply("354 go ahead")
                    chunks = []
                    while (chunk := await reader.readline()) != b".\r\n":
                        if not chunk:
                            return
                        chunks.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                    tx.data = b"".join(chunks)
                    self.data_started += 1
                    answer = self._next(self.data_replies)
                    delay = self._next(self.data_delays)
                    if delay:
                        await asyncio.sleep(delay)
                        await reply(answer)  # raises if the client died meanwhile
                    if answer.startswith("2"):
                        self.messages.append(tx)
                        if self.on_data:
                            self.on_data(tx)
                    tx = None
                    if not delay:
                        await reply(answer)
                elif verb == "RSET":
                    tx = None
                    await reply("250 2.0.0 ok")
                elif verb == "QUIT":
                    await reply("221 2.0.0 bye")
                    return
                else:
                    await reply("502 5.5.2 not implemented")
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            self.active -= 1
            writer.close()
