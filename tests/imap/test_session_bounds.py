"""What one IMAP client can make the server do: output it does not read, and work it asks for.

Each test runs the server in a child process (tests/support/process.py) so its memory and its
answers to another client are measured alone: a FETCH whose reply is 200 times the message must not
be built in memory, nor pile up in the transport for a client that does not read; VANISHED over a
known-UIDs set of 11,000 ranges against many expunged UIDs must not stall the other sessions.
"""

from __future__ import annotations

import re
import socket
import threading
import time

import pytest

from tests.imap.session_support import ALICE, BOB, PASSWORD, RawImap, quote
from tests.support.process import ServerProcess

STALL_LIMIT = 0.3
"""Longest another client may wait for NOOP while one client does something heavy.  Quiet, these
tests see 20-60 ms; the limit leaves room for a 2-core machine shared with other work, and is still
a small fraction of what each test saw before its fix (1.6 s, 6.9 s, forever, ...)."""


@pytest.fixture
def server(tmp_path):
    running = ServerProcess(tmp_path / "srv", listeners=("imap",)).start()
    try:
        running.add_user(ALICE, PASSWORD)
        running.add_user(BOB, PASSWORD)
        yield running
    finally:
        running.stop()


def connect(server: ServerProcess, user: str = ALICE) -> RawImap:
    raw = RawImap("127.0.0.1", server.ports["imap"], tls=False, timeout=30)
    tagged = raw.command(f"LOGIN {user} {quote(PASSWORD)}")[-1]
    assert b" OK " in tagged, tagged
    return raw


def big_message(size: int) -> bytes:
    head = (
        f"From: carol@example.test\r\nTo: {ALICE}\r\nSubject: big\r\n"
        "Message-ID: <big@example.test>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\n"
    ).encode()
    lines = []
    total = len(head)
    number = 0
    while total < size:
        line = b"line %07d " % number + b"abcdefghijklmnopqrstuvwxyz0123456789" * 2 + b"\r\n"
        lines.append(line)
        total += len(line)
        number += 1
    return head + b"".join(lines)


def append(raw: RawImap, messages: list[bytes], mailbox: str = "INBOX") -> None:
    """One MULTIAPPEND with non-synchronising literals (one transaction in the store)."""
    tag = raw.next_tag()
    payload = bytearray(f"{tag} APPEND {mailbox}".encode())
    for body in messages:
        payload += b" {%d+}\r\n" % len(body) + body
    raw.send(bytes(payload) + b"\r\n")
    lines = raw.until_tagged(tag)
    assert b" OK " in lines[-1], lines[-1][:200]


class RoundTrips:
    """Another client timing NOOP round trips (each must be answered) in a thread."""

    def __init__(self, server: ServerProcess) -> None:
        self.client = connect(server, BOB)
        assert b" OK " in self.client.command("SELECT INBOX")[-1]
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            lines = self.client.command("NOOP")
            self.times.append(time.monotonic() - started)
            assert b" OK " in lines[-1]
            time.sleep(0.01)

    def __enter__(self) -> RoundTrips:
        self._thread.start()
        return self

    def wait_until_quiet(self, quiet: float = 0.03, period: float = 2.0, timeout: float = 60) -> None:
        """Until every round trip for ``period`` seconds took less than ``quiet``: the background
        indexer analyses newly stored mail in batches on the server's loop (after 0.5 s without
        new mail), and its pauses are not what the test measures."""
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        seen = 0
        while time.monotonic() < deadline:
            times = self.times[seen:]
            seen += len(times)
            if any(t >= quiet for t in times):
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= period:
                self.times.clear()
                return
            time.sleep(0.05)
        raise AssertionError("the server never became quiet")

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(30)
        self.client.close()

    @property
    def max(self) -> float:
        return max(self.times)


# -- FETCH output is streamed and paced -------------------------------------------------------------

MESSAGE_SIZE = 820 * 1024
PARTIALS = 200


def read_exact(raw: RawImap, size: int) -> bytes:
    while len(raw.buffer) < size:
        raw._fill()
    data, raw.buffer = raw.buffer[:size], raw.buffer[size:]
    return data


def read_until(raw: RawImap, marker: bytes, limit: int = 4096) -> bytes:
    while marker not in raw.buffer:
        assert len(raw.buffer) < limit, raw.buffer[:200]
        raw._fill()
    index = raw.buffer.index(marker) + len(marker)
    data, raw.buffer = raw.buffer[:index], raw.buffer[index:]
    return data


def test_fetch_of_200_partials_of_a_large_message_is_streamed_to_a_client_that_does_not_read(server):
    body = big_message(MESSAGE_SIZE)
    loader = connect(server)
    append(loader, [body])
    loader.close()

    flooder = connect(server)
    assert b" OK " in flooder.command("SELECT INBOX")[-1]
    flooder.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    items = " ".join(f"BODY.PEEK[]<{i}.900000>" for i in range(PARTIALS))
    with RoundTrips(server) as other:
        other.wait_until_quiet()
        before = server.rss_kib()
        flooder.send(f"F1 UID FETCH 1 (UID {items})\r\n".encode())  # ~164 MB of reply, never read
        time.sleep(3)
        grown = server.rss_kib() - before
    select_client = connect(server, BOB)
    started = time.monotonic()
    assert b" OK " in select_client.command("SELECT INBOX")[-1]
    select_time = time.monotonic() - started
    select_client.close()
    print(f"server grew by {grown} KiB; NOOP max {other.max * 1000:.0f} ms over {len(other.times)}")
    assert grown < 50 * 1024, f"server grew by {grown} KiB"
    assert other.max < STALL_LIMIT and select_time < STALL_LIMIT, (other.max, select_time)

    # Now the client reads: every partial, byte for byte, then the tagged OK.
    flooder.sock.settimeout(60)
    head = read_until(flooder, b"(UID 1 ")
    assert head == b"* 1 FETCH (UID 1 ", head
    for i in range(PARTIALS):
        label = read_until(flooder, b"}\r\n")
        expected = body[i : i + 900000]
        assert label == b"BODY[]<%d> {%d}\r\n" % (i, len(expected)), label
        assert read_exact(flooder, len(expected)) == expected, i
        separator = read_exact(flooder, 1)
        assert separator == (b" " if i < PARTIALS - 1 else b")"), (i, separator)
    assert read_until(flooder, b"\r\n") == b"\r\n"
    tagged = read_until(flooder, b"\r\n")
    assert re.match(rb"F1 OK ", tagged), tagged
    flooder.close()


# -- QRESYNC / VANISHED work is linear and yields -----------------------------------------------------

MESSAGES = 3000
RANGES = 11_000


def expunged_uid(uid: int) -> bool:
    return uid % 2 == 0 or uid % 10 == 1


@pytest.fixture
def many_expunged(server):
    """INBOX with MESSAGES messages of which the even UIDs and those ending in 1 are expunged."""
    client = connect(server)
    for first in range(0, MESSAGES, 500):  # a command carries at most 1,000 literals
        append(client, [b"Subject: m%d\r\n\r\nx\r\n" % i for i in range(first, first + 500)])
    assert b" OK " in client.command("SELECT INBOX")[-1]
    doomed = ",".join(str(uid) for uid in range(1, MESSAGES + 1) if expunged_uid(uid))
    assert b" OK " in client.command(f"UID STORE {doomed} +FLAGS.SILENT (\\Deleted)")[-1]
    assert b" OK " in client.command("EXPUNGE")[-1]
    client.close()
    return server


def odd_uids(count: int) -> str:
    """``1,3,5,...``: ``count`` ranges, none of them adjacent."""
    return ",".join(str(2 * i + 1) for i in range(count))


def vanished(lines: list[bytes]) -> set[int]:
    out: set[int] = set()
    for line in lines:
        if line.startswith(b"* VANISHED (EARLIER) "):
            for element in line.split()[3].split(b","):
                low, _, high = element.partition(b":")
                out.update(range(int(low), int(high or low) + 1))
    return out


def test_vanished_over_11000_known_uid_ranges_does_not_stall_other_clients(many_expunged):
    server = many_expunged
    client = connect(server)
    assert b" OK " in client.command("ENABLE QRESYNC")[-1]
    lines = client.command("EXAMINE INBOX")
    uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", b"\n".join(lines)).group(1))
    known = odd_uids(RANGES)
    expected = {uid for uid in range(1, MESSAGES + 1) if expunged_uid(uid) and uid % 2 == 1}
    stalls = []
    with RoundTrips(server) as other:
        # Up to three rounds: the stall this test is about comes back every round (it was 7 s),
        # while a pause of the busy machine or of the server's database threads does not.
        for _ in range(3):
            other.wait_until_quiet()
            started = time.monotonic()
            lines = client.command(f"SELECT INBOX (QRESYNC ({uidvalidity} 1 {known}))")
            select_took = time.monotonic() - started
            assert b" OK " in lines[-1], lines[-1]
            assert vanished(lines) == expected
            started = time.monotonic()
            lines = client.command(f"UID FETCH {known} (FLAGS) (CHANGEDSINCE 1 VANISHED)")
            fetch_took = time.monotonic() - started
            assert b" OK " in lines[-1], lines[-1]
            assert vanished(lines) == expected
            assert sum(1 for line in lines if b" FETCH (" in line) == MESSAGES // 2 - len(expected)
            time.sleep(0.1)
            stalls.append(other.max)
            print(f"SELECT {select_took:.3f} s, UID FETCH {fetch_took:.3f} s", end="; ")
            print(f"NOOP max {other.max * 1000:.0f} ms")
            if other.max < STALL_LIMIT:
                break
    assert min(stalls) < STALL_LIMIT, f"another client waited {min(stalls):.3f} s for NOOP"
    client.close()


def test_a_known_uid_set_of_more_than_16384_ranges_is_refused(many_expunged):
    client = connect(many_expunged)
    assert b" OK " in client.command("ENABLE QRESYNC")[-1]
    lines = client.command("SELECT INBOX")
    uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", b"\n".join(lines)).group(1))
    too_many = ",".join(["1"] * 16_385)
    lines = client.command(f"SELECT INBOX (QRESYNC ({uidvalidity} 1 {too_many}))")
    assert re.match(rb"T\d+ BAD .*too many ranges", lines[-1]), lines[-1]
    lines = client.command(f"UID FETCH {too_many} (FLAGS) (CHANGEDSINCE 1 VANISHED)")
    assert re.match(rb"T\d+ BAD .*too many ranges", lines[-1]), lines[-1]
    limit = ",".join(["1"] * 16_384)
    assert b" OK " in client.command(f"UID FETCH {limit} (FLAGS) (CHANGEDSINCE 1 VANISHED)")[-1]
    client.close()


# -- LIST patterns never backtrack --------------------------------------------------------------------


def test_a_list_pattern_of_many_wildcards_against_a_long_name_is_answered_at_once(server):
    client = connect(server)
    long_name = "a" * 300
    assert b" OK " in client.command(f"CREATE {long_name}")[-1]
    assert b" OK " in client.command("CREATE a/b")[-1]
    assert b" OK " in client.command(f"CREATE {'a' * 12}b")[-1]
    pattern = "*a" * 12 + "*b"  # as a backtracking regex: about 300^12 steps against long_name
    with RoundTrips(server) as other:
        other.wait_until_quiet()
        client.sock.settimeout(20)
        started = time.monotonic()
        lines = client.command(f'LIST "" "{pattern}"')
        took = time.monotonic() - started
        time.sleep(0.1)
    print(f"LIST took {took:.3f} s; NOOP max {other.max * 1000:.0f} ms")
    assert lines[:-1] == [b'* LIST (\\HasNoChildren) "/" aaaaaaaaaaaab'] and b" OK " in lines[-1], lines
    assert took < 1 and other.max < STALL_LIMIT, (took, other.max)
    client.close()


# -- SEARCH over many keys and many messages yields -------------------------------------------------


def test_search_with_thousands_of_keys_over_many_messages_does_not_stall_other_clients(many_expunged):
    client = connect(many_expunged)
    assert b" OK " in client.command("SELECT INBOX")[-1]
    keys = " ".join(f"NOT KEYWORD k{i}" for i in range(1000))  # every key holds for every message
    remaining = [uid for uid in range(1, MESSAGES + 1) if not expunged_uid(uid)]
    stalls = []
    with RoundTrips(many_expunged) as other:
        for _ in range(3):  # as in the VANISHED test: the stall looked for comes back every round
            other.wait_until_quiet()
            started = time.monotonic()
            lines = client.command(f"UID SEARCH {keys}")
            took = time.monotonic() - started
            time.sleep(0.1)
            assert b" OK " in lines[-1], lines[-1]
            assert lines[0] == b"* SEARCH " + " ".join(map(str, remaining)).encode()
            stalls.append(other.max)
            print(f"SEARCH took {took:.3f} s; NOOP max {other.max * 1000:.0f} ms")
            if other.max < STALL_LIMIT:
                break
    assert min(stalls) < STALL_LIMIT, f"another client waited {min(stalls):.3f} s for NOOP"
    client.close()


# -- a FETCH naming thousands of items ---------------------------------------------------------------


def test_a_fetch_naming_4000_sections_does_not_stall_other_clients(server):
    """Duplicate items were looked for by comparing each with all before it: 4.5 s for 4,000."""
    client = connect(server)
    append(client, [big_message(4096)])
    assert b" OK " in client.command("SELECT INBOX")[-1]
    items = " ".join(f"BODY.PEEK[{i}]" for i in range(1, 4000))  # one command line of 63 KB
    stalls = []
    with RoundTrips(server) as other:
        for _ in range(3):  # as in the VANISHED test: the stall looked for comes back every round
            other.wait_until_quiet()
            started = time.monotonic()
            lines = client.command(f"FETCH 1 ({items})")
            took = time.monotonic() - started
            time.sleep(0.1)
            assert b" OK " in lines[-1], lines[-1]
            # BODY[1] of a single-part message is its body (RFC 9051 6.4.5); no other part exists
            assert lines[0].startswith(b"* 1 FETCH (BODY[1] {") and lines[0].endswith(b' BODY[3999] "")')
            assert lines[0].count(b"BODY[") == 3999
            stalls.append(other.max)
            print(f"FETCH took {took:.3f} s; NOOP max {other.max * 1000:.0f} ms")
            if other.max < STALL_LIMIT:
                break
    assert min(stalls) < STALL_LIMIT, f"another client waited {min(stalls):.3f} s for NOOP"
    client.close()
