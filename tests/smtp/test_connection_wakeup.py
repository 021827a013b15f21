"""Input that arrives while the connection yields to other sessions must not be left unread.

`Connection.pace` yields to the event loop between pieces of work; data the client sends in that
moment finds no waiter to wake. Before the fix the session then waited for more input that never
came (the client had sent the whole message and waited for the reply) until the idle timeout: about
one large DATA in twenty hung for ten seconds in the real-socket tests. This drives the connection
directly, because over a socket the timing cannot be forced; the large-message tests in
test_header_authority.py exercise the same path over the wire.
"""

from __future__ import annotations

import asyncio

import pytest

from tidings.smtp.connection import Connection, ConnectionClosed


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 1) if name == "peername" else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass


async def connection_yielding_next_wait() -> Connection:
    conn = Connection(line_limit=4096, idle_timeout=1.0)
    conn.connection_made(RecordingTransport())
    conn._last_yield = conn.loop.time() - 1  # pace() will yield on the next wait
    return conn


async def while_yielding(conn: Connection, read, event, *args):
    """Start `read`, let it run into its wait for input (where pace() yields), then deliver `event`
    exactly then, and give the read half a second to see it (the idle timeout is a second)."""
    task = asyncio.ensure_future(read)
    await asyncio.sleep(0)  # the task runs up to pace()'s yield
    assert not task.done()
    event(*args)
    return await asyncio.wait_for(task, 0.5)


def test_the_end_of_data_arriving_during_a_yield_is_read_at_once():
    async def scenario() -> bytes:
        conn = await connection_yielding_next_wait()
        conn.data_received(b"Subject: x\r\n\r\nfirst part\r\n")
        return await while_yielding(conn, conn.read_data(10_000), conn.data_received, b"last part\r\n.\r\n")

    assert asyncio.run(scenario()) == b"Subject: x\r\n\r\nfirst part\r\nlast part\r\n"


def test_a_command_line_arriving_during_a_yield_is_read_at_once():
    async def scenario() -> bytes:
        conn = await connection_yielding_next_wait()
        return await while_yielding(conn, conn.read_line(), conn.data_received, b"NOOP\r\n")

    assert asyncio.run(scenario()) == b"NOOP"


def test_the_end_of_input_during_a_yield_ends_the_wait():
    async def scenario() -> None:
        conn = await connection_yielding_next_wait()
        await while_yielding(conn, conn.read_line(), conn.eof_received)

    with pytest.raises(ConnectionClosed):
        asyncio.run(scenario())
