"""One heavy request must not stall every other session: the event loop's lag under large work.

Each test runs a real server, starts `NoopRoundTrips` (a second IMAP client timing NOOPs every
10 ms, before login), does one heavy thing through the wire, and asserts that no NOOP waited more
than `MAX_LAG` beyond its baseline round trip. The heavy things are the ones that used to run on
the loop in one piece: a message at the size limit arriving over SMTP (reading, hashing, storing,
then the indexer's MIME analysis), its first FETCH (analysis on first read),, BODY/TEXT search
over large messages, and the first SELECT of a big mailbox.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import time

import pytest

from tests.imap.session_support import RawImap
from tests.support.pressure import NoopRoundTrips
from tidings.config import AuthSettings
from tidings.store import schema as s
from tidings.store.delivery import Envelope
from tidings.store.mailboxes import insert_into_mailbox

MAX_LAG = 0.1
ALICE = "alice@example.test"
PASSWORD = "correct horse 1"
BIG_MAILBOX = int(os.environ.get("TIDINGS_BIG_MAILBOX", "20000"))
BIG = 48 * 1024 * 1024  # under limits.message_size (50 MiB) with room for the trace headers


def big_message(size: int = BIG, word: str = "needle") -> bytes:
    """A multipart message of about `size` octets: a long quoted-printable text part (what BODY
    search must decode and scan) and a base64 attachment (what MIME analysis must step over)."""
    text_line = b"The quick brown fox jumps over the lazy dog, caf=C3=A9 au lait.=\r\n"
    text = text_line * (size // 2 // len(text_line)) + word.encode() + b"\r\n"
    attachment = base64.encodebytes(os.urandom(size // 2 * 3 // 4)).replace(b"\n", b"\r\n")
    return (
        b"From: carol@remote.test\r\nTo: " + ALICE.encode() + b"\r\nSubject: big one\r\n"
        b"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <big@remote.test>\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + text + b"--b1\r\n"
        b'Content-Type: application/octet-stream; name="data.bin"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + attachment + b"--b1--\r\n"
    )


@pytest.fixture
def running(make_server):
    server = make_server("lag", listeners=("smtp", "imap"), auth=AuthSettings(allow_plaintext=True))
    server.add_user(ALICE, PASSWORD)
    return server


def imap(running) -> RawImap:
    client = RawImap("127.0.0.1", running.ports["imap"], tls=False, timeout=120)
    assert b" OK " in client.command(f'LOGIN {ALICE} "{PASSWORD}"')[-1]
    return client


def stored(running, raw: bytes) -> None:
    assert running.call(running.store.delivery.deliver_local(ALICE, raw), timeout=120)


def wait_until_indexed(running, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running.call(running.store.mailboxes.index_pending(0)) == 0 and not _unindexed(running):
            return
        time.sleep(0.1)
    raise AssertionError("the indexer did not finish")


def _unindexed(running) -> int:
    from sqlalchemy import func, select

    return running.store.db.read_sync(
        lambda tx: tx.conn.execute(
            select(func.count()).select_from(s.messages).where(s.messages.c.summary.is_(None))
        ).scalar()
    )


class Wire:
    """A socket with buffered line reads and literal reads that do not copy what they have read
    again and again. The test server runs in this process: a client that spends 50 ms in one C
    call (a regex over the message, growing a bytes object) holds the GIL and would stall the
    server's loop itself, so the clients here do their big work before the measurement starts
    and move big data only with socket calls, which release the GIL."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.buffer = bytearray()

    def line(self) -> bytes:
        while (end := self.buffer.find(b"\r\n")) < 0:
            self._fill()
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 2]
        return line

    def read_into(self, data: bytearray) -> bytearray:
        """Fill `data` (allocated before the measurement: zeroing 50 MB holds the GIL too)."""
        size = len(data)
        view = memoryview(data)
        have = min(size, len(self.buffer))
        view[:have] = self.buffer[:have]
        del self.buffer[:have]
        while have < size:
            got = self.sock.recv_into(view[have:])
            if not got:
                raise ConnectionError("closed")
            have += got
        return data

    def read_until(self, marker: bytes) -> bytearray:
        """Everything up to and including the line that starts after `marker`: read in big
        pieces, looking only at the end of what has come, so the client needs little of the GIL
        while the server is answering (a line-by-line reader of 100,000 lines would compete with
        the server's loop for it)."""
        while True:
            at = self.buffer.find(marker, max(0, len(self.buffer) - 65536 - len(marker)))
            if at >= 0 and self.buffer.find(b"\r\n", at + len(marker)) >= 0:
                end = self.buffer.find(b"\r\n", at + len(marker))
                out = self.buffer[:end]
                del self.buffer[: end + 2]
                return out
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        self.buffer += chunk

    def smtp(self, command: bytes) -> bytes:
        self.sock.sendall(command + b"\r\n")
        while (reply := self.line())[3:4] == b"-":
            pass
        return reply


def least_lag(attempt, attempts: int = 3) -> list[NoopRoundTrips]:
    """Run `attempt()` (which returns the probe that watched it) until one shows less lag than
    `MAX_LAG`, at most `attempts` times. The tests run on machines shared with other work, where
    the operating system now and then stops this process for a moment; a stall of the code itself
    comes back on every attempt (before these fixes: 0.25 to 5 s each time)."""
    probes: list[NoopRoundTrips] = []
    while len(probes) < attempts:
        probes.append(attempt())
        print(probes[-1])
        if probes[-1].lag < MAX_LAG:
            break
    return probes


def lag_ok(probes: list[NoopRoundTrips]) -> bool:
    return min(probe.lag for probe in probes) < MAX_LAG


def last_message(running) -> bytes:
    account = running.call(running.store.accounts.get_user(ALICE))
    box = running.call(running.store.mailboxes.get(account.id, "INBOX"))
    _, refs = running.call(running.store.mailboxes.messages(account.id, box.id))
    return running.call(running.store.mailboxes.read_blob(refs[-1].blob_hash))


def test_a_message_at_the_size_limit_arriving_over_smtp_does_not_stall_other_sessions(running):
    def attempt() -> NoopRoundTrips:
        raw = big_message()
        wire_form = raw.replace(b"\r\n.", b"\r\n..") + b".\r\n"  # dot-stuffed, as DATA sends it
        client = Wire(running.ports["smtp"])
        assert client.line().startswith(b"220")
        assert client.smtp(b"EHLO client.remote.test").startswith(b"250")
        assert client.smtp(b"MAIL FROM:<carol@remote.test>").startswith(b"250")
        assert client.smtp(b"RCPT TO:<" + ALICE.encode() + b">").startswith(b"250")
        assert client.smtp(b"DATA").startswith(b"354")
        with NoopRoundTrips(running.ports["imap"]) as probe:
            probe.start_load()
            client.sock.sendall(wire_form)
            assert client.line().startswith(b"250"), "not accepted"
            wait_until_indexed(running)  # the indexer's MIME analysis is part of the load
        client.sock.close()
        assert last_message(running).endswith(raw)
        return probe

    probes = least_lag(attempt)
    assert lag_ok(probes), probes


def test_first_fetch_of_a_message_at_the_size_limit_does_not_stall_other_sessions(running):
    running.call(_stop_indexer(running))  # the first FETCH must do the analysis itself
    client = Wire(running.ports["imap"])
    client.line()
    client.sock.sendall(f'a LOGIN {ALICE} "{PASSWORD}"\r\n'.encode())
    assert client.line().startswith(b"a OK")

    def attempt() -> NoopRoundTrips:
        raw = big_message()
        # Stored the way SMTP acceptance stores it: body and mailbox entry, no analysis.
        running.call(running.store.delivery.accept(Envelope("carol@remote.test", local=[ALICE]), raw), 120)
        client.sock.sendall(b"b SELECT INBOX\r\n")
        while not (line := client.line()).startswith(b"b OK"):
            if line.endswith(b" EXISTS"):
                exists = int(line.split()[1])
        body = bytearray(len(raw))  # allocated here: zeroing 50 MB holds the GIL too
        with NoopRoundTrips(running.ports["imap"]) as probe:
            probe.start_load()
            client.sock.sendall(b"c FETCH %d (BODYSTRUCTURE BODY[])\r\n" % exists)
            head = client.line()
            assert head.endswith(b"{%d}" % len(body)), head[-100:]
            client.read_into(body)
            tail, done = client.line(), client.line()
        assert b"BODYSTRUCTURE ((" in head and tail.endswith(b")"), (head[:200], tail)
        assert done.startswith(b"c OK"), done
        assert body == raw
        return probe

    probes = least_lag(attempt)
    assert lag_ok(probes), probes


async def _stop_indexer(running) -> None:
    indexer = next(task for task in running.server.workers if task.get_name() == "indexer")
    indexer.cancel()


def test_body_and_text_search_over_large_messages_does_not_stall_other_sessions(running):
    for n in range(3):
        stored(running, big_message(16 * 1024 * 1024, word=f"needle{n}"))
    client = imap(running)
    assert b" OK " in client.command("SELECT INBOX")[-1]

    def attempt() -> NoopRoundTrips:
        with NoopRoundTrips(running.ports["imap"]) as probe:
            probe.start_load()
            body = client.command('SEARCH BODY "needle1"')
            text = client.command('SEARCH TEXT "needle2"')
        assert body[0] == b"* SEARCH 2" and text[0] == b"* SEARCH 3", (body, text)
        return probe

    probes = least_lag(attempt)
    assert lag_ok(probes), probes


def test_first_select_of_a_big_mailbox_does_not_stall_other_sessions(running):
    """20,000 messages here; bench/loop_lag.py runs 100,000 (see there for what that shows)."""
    count = BIG_MAILBOX
    stored(running, b"From: carol@remote.test\r\nSubject: one of many\r\n\r\nHi.\r\n")

    def fill(tx) -> tuple[int, int]:
        box = tx.conn.execute(s.mailboxes.select().where(s.mailboxes.c.name == "INBOX")).one()
        message_id = tx.conn.execute(s.messages.select()).first().id
        insert_into_mailbox(tx, box.id, [(message_id, 50, "", time.time())] * (count - 1))
        return box.account_id, box.id

    started = time.monotonic()
    account_id, mailbox_id = running.call(running.store.db.write(fill), timeout=120)
    print(f"filled in {time.monotonic() - started:.1f} s")

    keywords = iter(range(10))

    def attempt() -> NoopRoundTrips:
        # A new modseq: no snapshot of the mailbox is cached, as after a restart.
        keyword = f"k{next(keywords)}"
        running.call(running.store.mailboxes.store_flags(account_id, mailbox_id, [1], "add", [keyword]))
        client = Wire(running.ports["imap"])
        client.line()
        with NoopRoundTrips(running.ports["imap"]) as probe:
            probe.start_load()
            client.sock.sendall(f'a LOGIN {ALICE} "{PASSWORD}"\r\nb SELECT INBOX\r\n'.encode())
            replies = client.read_until(b"\r\nb ")
        client.sock.close()
        lines = bytes(replies).split(b"\r\n")
        assert f"* {count} EXISTS".encode() in lines and lines[-1].startswith(b"b OK"), lines[-1]
        return probe

    probes = least_lag(attempt)
    assert lag_ok(probes), probes


def test_the_server_reports_how_late_its_event_loop_runs(running):
    """`tidings status` shows the loop's lag as the server itself measures it (a timer that wakes
    late): here one callback blocks the loop for 400 ms, and the status file says so. The meter's
    100 ms timer is due somewhere inside the block, so it wakes 300-400 ms late (a 300 ms block
    gave 200-300 ms and failed the bound below now and then)."""
    meter = running.app.loop_lag
    running.call(_write_status(running))  # a new window for recent_max
    stalls_before = meter.stalls
    running.loop.call_soon_threadsafe(time.sleep, 0.4)
    deadline = time.monotonic() + 10
    while meter.stalls == stalls_before and time.monotonic() < deadline:
        time.sleep(0.05)
    running.call(_write_status(running))
    status = json.loads((running.config.data_dir / "status.json").read_text())["loop_lag"]
    assert status["stalls"] > stalls_before and 250 <= status["recent_max_ms"] < 5000, status
    assert status["max_ms"] >= status["recent_max_ms"], status


async def _write_status(running) -> None:
    running.server._write_status()
