"""One IMAP client connection's byte transport: reads, batched writes, STARTTLS and COMPRESS.

The session above works in commands; this layer works in bytes.  It owns the three things that
change what bytes on the socket mean:

* STARTTLS (RFC 9051 6.2.1): the stream is upgraded in place; bytes the client sent ahead of the
  handshake are dropped so they cannot be injected into the protected session.
* COMPRESS=DEFLATE (RFC 4978): raw deflate (no zlib header) in both directions; every batch of
  output ends with a sync flush so the client can decode it at once.  Inflated input is bounded
  per read so a small compressed bomb cannot balloon memory.
* Batching: :meth:`write` only appends to a buffer; :meth:`flush` hands one chunk to the
  transport (and waits when the peer reads slowly), so a command's responses normally cost one
  system call.
* Backpressure: a long answer (FETCH of large messages, many untagged lines) is written piece by
  piece with :meth:`pace` between the pieces: past FLUSH_THRESHOLD buffered bytes it hands them
  to the transport and waits while the client is not reading, so a client that asks for a lot and
  never reads holds a fixed amount of our memory, not the whole answer; otherwise it yields to
  the other sessions every YIELD_INTERVAL.  A client that takes nothing for DRAIN_TIMEOUT (the
  autologout time) is disconnected.  Big pieces (a 50 MB literal) are kept as they are, not
  copied into the buffer, and go out in slices of `SLICE` bytes with a yield to the loop after
  each, so that compressing or copying them never holds up other sessions for long.

Never parses IMAP and never touches the store.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib

READ_SIZE = 64 * 1024
MAX_INFLATE = 256 * 1024  # decompressed bytes handed up per read
FLUSH_THRESHOLD = 256 * 1024  # a handler producing more than this flushes early
YIELD_INTERVAL = 0.005  # seconds of work after which a long answer lets other sessions run
DRAIN_TIMEOUT = 30 * 60.0  # seconds a client may leave our output unread (RFC 9051 5.4 autologout)
SLICE = 256 * 1024  # written pieces at least this big are kept whole and sent slice by slice


class Connection:
    __slots__ = (
        "reader",
        "writer",
        "_out",
        "_big",
        "_big_size",
        "_inflate",
        "_deflate",
        "_tail",
        "tls",
        "peer_ip",
        "closed",
        "_last_yield",
    )

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._out = bytearray()
        self._inflate: zlib._Decompress | None = None
        self._deflate: zlib._Compress | None = None
        self._tail = b""  # compressed input not yet inflated because of MAX_INFLATE
        self.tls = writer.get_extra_info("sslcontext") is not None
        peer = writer.get_extra_info("peername")
        self.peer_ip = peer[0] if isinstance(peer, tuple) and peer else "unknown"
        self.closed = False
        self._last_yield = 0.0
        self._big: list[bytes | memoryview] = []  # output before `_out`: big pieces, buffers between
        self._big_size = 0

    @property
    def compressed(self) -> bool:
        return self._deflate is not None

    # ------------------------------------------------------------------ reading

    async def read(self) -> bytes:
        """The next bytes from the client (decompressed); ``b""`` at end of stream."""
        if self._inflate is None:
            return await self.reader.read(READ_SIZE)
        while True:
            if self._tail:
                data, self._tail = self._tail, b""
            else:
                data = await self.reader.read(READ_SIZE)
                if not data:
                    return b""
            try:
                out = self._inflate.decompress(data, MAX_INFLATE)
            except zlib.error:
                return b""  # a corrupt stream cannot be resynchronised: treat it as closed
            self._tail = self._inflate.unconsumed_tail
            if out:
                return out

    # ------------------------------------------------------------------ writing

    def write(self, data: bytes | memoryview) -> None:
        if len(data) < SLICE:
            self._out += data
            return
        if self._out:
            self._big.append(bytes(self._out))
            self._out.clear()
        self._big.append(data)
        self._big_size += len(data)

    @property
    def pending_output(self) -> int:
        return len(self._out) + self._big_size

    async def flush(self) -> None:
        """Send everything written so far, waiting only if the client is not keeping up."""
        if self.closed or not (self._out or self._big):
            self._out.clear()
            self._big.clear()
            self._big_size = 0
            return
        pieces = self._big
        if self._out:
            pieces.append(bytes(self._out))
            self._out.clear()
        self._big, self._big_size = [], 0
        try:
            if len(pieces) == 1 and len(pieces[0]) < SLICE:
                await self._send(pieces[0])  # the usual case: one small batch, one system call
                return
            for piece in pieces:
                view = memoryview(piece)
                for start in range(0, len(view), SLICE):
                    await self._send(view[start : start + SLICE])
                    await asyncio.sleep(0)  # let other sessions run between slices
        except (ConnectionError, RuntimeError):
            self.closed = True
        except TimeoutError:
            self.closed = True  # it has read nothing for the autologout time: it is gone
            self.writer.transport.abort()

    async def _send(self, data: bytes | memoryview) -> None:
        if self._deflate is not None:
            data = self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        self.writer.write(data)
        async with asyncio.timeout(DRAIN_TIMEOUT):
            await self.writer.drain()

    async def pace(self) -> None:
        """Between the pieces of a long answer: send what is buffered once it is large, waiting
        while the client is not reading it; and let the other sessions run now and then."""
        if self.pending_output > FLUSH_THRESHOLD:
            await self.flush()
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_yield >= YIELD_INTERVAL:
            await asyncio.sleep(0)
            self._last_yield = loop.time()

    # ------------------------------------------------------------------ upgrades

    async def start_tls(self, context: ssl.SSLContext) -> None:
        """Upgrade to TLS after the tagged OK has been flushed (RFC 9051 6.2.1)."""
        self._drop_unread()
        await self.writer.start_tls(context)
        self.tls = True

    def start_compression(self) -> None:
        """Switch both directions to raw deflate (RFC 4978 section 3), after the OK was flushed."""
        self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        self._deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS, 8)

    def _drop_unread(self) -> None:
        # Plaintext pipelined behind STARTTLS must not survive into the TLS session.
        buffer = getattr(self.reader, "_buffer", None)
        if isinstance(buffer, bytearray):
            buffer.clear()

    def abort(self, last_words: bytes) -> None:
        """End the connection now, from outside the session's task (its account was removed):
        ``last_words`` follow what was already handed to the transport, output still buffered is
        dropped, and the session's pending read sees the end of the stream."""
        if self.closed:
            return
        self._out.clear()
        self._big.clear()
        self._big_size = 0
        self.closed = True
        data = last_words
        if self._deflate is not None:
            data = self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        try:
            self.writer.write(data)
            self.writer.close()
        except (ConnectionError, RuntimeError, OSError):
            pass

    async def close(self) -> None:
        if self.closed:
            return
        await self.flush()
        self.closed = True
        try:
            self.writer.close()
            async with asyncio.timeout(2):
                await self.writer.wait_closed()
        except (ConnectionError, TimeoutError, ssl.SSLError, RuntimeError, OSError):
            pass
