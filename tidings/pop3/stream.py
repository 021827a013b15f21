"""Line-oriented connection for POP3: bounded command lines, idle deadline, buffered writes, STLS.

Reads never hold more than `max_line` octets of one line in memory: a longer line is discarded up to
its LF and reported as `LineTooLong`, so a client sending 10 MB without a newline costs us a 64 KiB
read buffer, not 10 MB; past `max_discard` octets the session gives up on the client.
Writes are buffered by the transport and flushed (drained) by the session when it has answered every
command it has already received, which is what makes pipelining (RFC 2449 section 6.6) cheap. The
output is bounded all the same: past OUTPUT_HIGH_WATER buffered octets the session waits for the
client to read (`pace`) before it produces more or reads the next command, so a client that pipelines
and never reads costs us a fixed amount of memory, and gets the idle timeout rather than our patience.
Writing to a connection the client has reset raises ConnectionResetError (the session ends quietly),
on every event loop (uvloop raises RuntimeError there).
"""

from __future__ import annotations

import asyncio
import ssl

READ_CHUNK = 65536
OUTPUT_HIGH_WATER = 256 * 1024


class LineTooLong(Exception):
    def __init__(self, fatal: bool) -> None:
        super().__init__("line too long")
        # fatal: the client kept sending past max_discard without a line end; stop reading.
        self.fatal = fatal


class LineStream:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        max_line: int,
        max_discard: int = 1024 * 1024,
        drain_timeout: float = 600.0,
    ) -> None:
        self.reader = reader
        self.drain_timeout = drain_timeout
        self.writer = writer
        self.max_line = max_line
        self.max_discard = max_discard
        self._buffer = bytearray()

    @property
    def peer_host(self) -> str:
        peer = self.writer.get_extra_info("peername")
        return str(peer[0]) if peer else ""

    @property
    def tls_active(self) -> bool:
        return self.writer.get_extra_info("ssl_object") is not None

    def has_line(self) -> bool:
        """True when a complete line is already buffered (the client pipelined commands)."""
        return b"\n" in self._buffer

    async def read_line(self, timeout: float) -> bytes | None:
        """The next line including its LF; None at end of stream. Raises TimeoutError when no
        complete line arrives within `timeout` seconds, LineTooLong for an over-long line."""
        async with asyncio.timeout(timeout):
            while True:
                end = self._buffer.find(b"\n")
                if end >= 0:
                    line = bytes(self._buffer[: end + 1])
                    del self._buffer[: end + 1]
                    if len(line) > self.max_line:
                        raise LineTooLong(fatal=False)
                    return line
                if len(self._buffer) > self.max_line:
                    return await self._discard_rest_of_line()
                chunk = await self.reader.read(READ_CHUNK)
                if not chunk:
                    return None
                self._buffer += chunk

    async def _discard_rest_of_line(self) -> bytes | None:
        discarded = len(self._buffer)
        self._buffer.clear()
        while True:
            chunk = await self.reader.read(READ_CHUNK)
            if not chunk:
                return None
            end = chunk.find(b"\n")
            if end >= 0:
                self._buffer += chunk[end + 1 :]
                raise LineTooLong(fatal=False)
            discarded += len(chunk)
            if discarded > self.max_discard:
                raise LineTooLong(fatal=True)

    def abort(self) -> None:
        """Close now, from outside the session's task: unsent output is dropped and the pending
        read sees the end of the stream."""
        self.writer.transport.abort()

    def write(self, data: bytes) -> None:
        if self.writer.is_closing():
            raise ConnectionResetError("the client closed the connection")
        try:
            self.writer.write(data)
        except RuntimeError as error:  # uvloop: the handle is already closed
            raise ConnectionResetError(str(error)) from None

    @property
    def output_buffered(self) -> int:
        """Octets written but not yet taken by the client."""
        transport = self.writer.transport
        return 0 if transport.is_closing() else transport.get_write_buffer_size()

    async def flush(self) -> None:
        """Wait until the client has taken most of what was written (at most the idle timeout)."""
        async with asyncio.timeout(self.drain_timeout):
            await self.writer.drain()

    async def pace(self) -> None:
        """Between pieces of a long reply, and between pipelined commands: wait for the client if
        too much output is waiting for it, else let the other sessions run."""
        if self.output_buffered > OUTPUT_HIGH_WATER:
            await self.flush()
        else:
            await asyncio.sleep(0)

    async def start_tls(self, context: ssl.SSLContext, timeout: float) -> None:
        """Upgrade to TLS (RFC 2595 section 4). Anything the client sent after STLS in plaintext is
        thrown away: it must not be executed as if it came over TLS (command injection)."""
        self._buffer.clear()
        # StreamReader has no public way to drop what it has buffered but not yet handed out.
        pending = getattr(self.reader, "_buffer", None)
        if pending:
            pending.clear()
        await self.writer.start_tls(context, ssl_handshake_timeout=timeout)

    async def close(self) -> None:
        try:
            self.writer.close()
            async with asyncio.timeout(5):
                await self.writer.wait_closed()
        except (TimeoutError, OSError, ssl.SSLError):
            pass
        except RuntimeError:  # the event loop is already closed (server shut down under us)
            pass
