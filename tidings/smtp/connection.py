"""One SMTP connection's I/O: an asyncio.Protocol feeding an InputBuffer, with reply batching.

The session awaits framed input (`read_line`, `read_data`, `read_chunk`) and queues replies with
`send`. Replies are written in one batch when the session next waits for input, which is what
makes pipelining (RFC 2920) cheap: a client's MAIL/RCPT/DATA group costs one write. Reading is
paused while the session is busy and the buffer is large, so a flooding client cannot make us
buffer without bound. Output is bounded the same way: while the transport holds more than its
high-water mark of unread replies, the session waits (`pace`) before it executes another command
or reads more input, so a client that pipelines and never reads costs a fixed amount of memory.
`pace` also yields to the other sessions every few milliseconds of pipelined work.

The connection also owns the idle timer (421 4.4.2 when the client says nothing for too long; cut
short by the listener's session deadline while not logged in, see `net.listener.Slot`) and the
STARTTLS upgrade. It knows nothing about SMTP commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl

from tidings.net.listener import Slot
from tidings.offload import run_sized
from tidings.smtp.reader import TOO_BIG, InputBuffer, _TooBig, finish_data

log = logging.getLogger(__name__)

# Unconsumed input above this (outside DATA/BDAT) pauses reading until the session catches up.
HIGH_WATER = 256 * 1024
# Queued replies above this are handed to the transport at once (which may then push back).
REPLY_HIGH_WATER = 64 * 1024
YIELD_INTERVAL = 0.005
LINGER_SECONDS = 5.0


class ConnectionClosed(Exception):
    """The client went away (or we closed the connection)."""


class Connection(asyncio.Protocol):
    def __init__(self, line_limit: int, idle_timeout: float) -> None:
        self.buffer = InputBuffer(line_limit)
        self.idle_timeout = idle_timeout
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.peer_ip = ""
        self.tls_active = False
        self.tls_info: str | None = None
        self.closed = False
        self.timed_out = False
        self._out: list[bytes] = []
        self._waiter: asyncio.Future | None = None
        self._paused = False
        self._expect_bulk = False
        self._eof = False
        self._out_size = 0
        self._writable: asyncio.Future | None = None  # set while the transport pushes back
        self._last_yield = self.loop.time()
        self.on_connect = None  # set by the listener: callable(connection) starting the session
        self.slot: Slot | None = None  # the listener's admission, set before the session starts

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer_ip = peer[0] if peer else "unknown"
        if transport.get_extra_info("sslcontext") is not None or transport.get_extra_info("ssl_object"):
            self._note_tls()
        if self.on_connect is not None:
            self.on_connect(self)

    def data_received(self, data: bytes) -> None:
        self.buffer.feed(data)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        elif not self._expect_bulk and len(self.buffer) > HIGH_WATER and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        # Keep our half open: replies to commands still in the buffer can be written.
        self._eof = True
        self._wake_with(ConnectionClosed())
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost()
        self.resume_writing()

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = self.loop.create_future()

    def resume_writing(self) -> None:
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    def _lost(self) -> None:
        self.closed = True
        self._wake_with(ConnectionClosed())

    def _wake_with(self, exc: Exception) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self._waiter = None
            waiter.set_exception(exc)

    # -- output ------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Queue a reply; it goes out at the next flush (before waiting for input)."""
        self._out.append(data)
        self._out_size += len(data)

    def flush(self) -> None:
        if self._out and not self.closed and not self.transport.is_closing():
            self.transport.write(b"".join(self._out) if len(self._out) > 1 else self._out[0])
        self._out.clear()
        self._out_size = 0

    async def pace(self) -> None:
        """Between pipelined commands: hand over a large batch of replies, wait while the client is
        not reading them (up to the idle timeout), and let other sessions run now and then."""
        if self._out_size > REPLY_HIGH_WATER:
            self.flush()
        if self._writable is not None and not self.closed:
            async with asyncio.timeout(self.idle_timeout):
                await self._writable
        elif self.loop.time() - self._last_yield > YIELD_INTERVAL:
            await asyncio.sleep(0)
        else:
            return
        self._last_yield = self.loop.time()

    # -- input -------------------------------------------------------------------------------

    async def _wait_for_input(self) -> None:
        if self.closed or self._eof:
            self.flush()
            raise ConnectionClosed()
        self.flush()
        buffered = len(self.buffer)
        await self.pace()  # no more input while our replies are not being read
        if len(self.buffer) != buffered:
            # Input arrived while pace() yielded, with no waiter to wake: the caller must look at
            # it now. Waiting here would wait for bytes the client never sends (it has sent the
            # whole message and waits for our reply) until the idle timeout.
            return
        if self.closed or self._eof:  # the same for the end of input
            raise ConnectionClosed()
        waiter = self.loop.create_future()
        self._waiter = waiter
        if self._paused:
            self._paused = False
            self.transport.resume_reading()
        timeout = self.idle_timeout if self.slot is None else self.slot.read_timeout(self.idle_timeout)
        timer = self.loop.call_later(timeout, self._idle, waiter)
        try:
            await waiter
        finally:
            timer.cancel()

    def _idle(self, waiter: asyncio.Future) -> None:
        if not waiter.done():
            self.timed_out = True
            self._waiter = None
            waiter.set_exception(TimeoutError())

    async def read_line(self) -> bytes:
        """The next command line (raises reader.LineTooLong, ConnectionClosed, TimeoutError)."""
        while True:
            line = self.buffer.take_line()
            if line is not None:
                return line
            await self._wait_for_input()

    async def skip_line(self, limit: int) -> bool:
        """Drop the rest of an over-long line; False if `limit` bytes pass without its end."""
        dropped = 0
        while (more := self.buffer.skip_line()) is not None:
            dropped += more
            if dropped > limit:
                return False
            await self._wait_for_input()
        return True

    async def read_data(self, max_size: int) -> bytes | _TooBig:
        """A DATA body (dot-unstuffed) or TOO_BIG once its end has been read."""
        self._expect_bulk = True
        try:
            while True:
                wire = self.buffer.take_wire_data(max_size)
                if wire is TOO_BIG:
                    return wire
                if wire is not None:
                    buffer, start, end = wire
                    # Unstuffing 50 MB is heavy work: off the loop (tidings/offload.py).
                    return await run_sized(end - start, finish_data, buffer, start, end, max_size)
                await self._wait_for_input()
        finally:
            self._expect_bulk = False

    async def read_chunk(self, size: int, keep: bool) -> bytes:
        """A BDAT chunk of exactly `size` bytes; when not `keep`, it is skipped as it arrives."""
        self._expect_bulk = True
        try:
            while True:
                if keep:
                    chunk = self.buffer.take_chunk(size)
                    if chunk is not None:
                        return chunk
                elif self.buffer.skip_chunk(size):
                    return b""
                await self._wait_for_input()
        finally:
            self._expect_bulk = False

    def has_pending_line(self) -> bool:
        return self.buffer.has_line()

    # -- TLS and closing ---------------------------------------------------------------------

    async def start_tls(self, context: ssl.SSLContext) -> None:
        """Upgrade in place (RFC 3207); input pipelined after STARTTLS is discarded (section 4.2)."""
        self.flush()
        self.buffer.clear()
        transport = await self.loop.start_tls(
            self.transport, self, context, server_side=True, ssl_handshake_timeout=30
        )
        if transport is None:
            raise ConnectionClosed()
        self.transport = transport
        self._note_tls()

    def _note_tls(self) -> None:
        self.tls_active = True
        ssl_object = self.transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            cipher = ssl_object.cipher()
            self.tls_info = f"{ssl_object.version()} {cipher[0] if cipher else ''}".strip()

    def close(self) -> None:
        """Flush what is queued and close."""
        if self.transport is None:
            return
        with contextlib.suppress(Exception):
            self.flush()
        self.closed = True
        self.transport.close()

    def close_lingering(self) -> None:
        """Close after an error while the client may still be sending (a huge line): send our
        reply, half-close, and keep draining input for a while so the client sees the reply
        instead of a reset."""
        transport = self.transport
        if transport is None or self.closed:
            return
        self.flush()
        self.closed = True
        if transport.can_write_eof() and transport.get_extra_info("ssl_object") is None:
            with contextlib.suppress(Exception):
                transport.write_eof()
            self.buffer = _DrainingBuffer()
            if self._paused:
                transport.resume_reading()
            self.loop.call_later(LINGER_SECONDS, transport.close)
        else:
            transport.close()


class _DrainingBuffer(InputBuffer):
    """Swallows everything: used while lingering before close."""

    def __init__(self) -> None:
        super().__init__(0)

    def feed(self, data: bytes) -> None:
        return None

    def __len__(self) -> int:
        return 0


__all__ = ["TOO_BIG", "Connection", "ConnectionClosed"]
