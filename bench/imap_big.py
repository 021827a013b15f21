"""The big mailbox of the IMAP benchmark: N messages (100,000 by default) in one user's INBOX.

Both servers are filled the same way, through their own IMAP port: MULTIAPPEND (RFC 3502) of a
few hundred messages (4 MB) per command, with non-synchronising literals (LITERAL+, RFC 7888) so a
batch goes out in one write, over a few connections at once so one batch's fsync overlaps the
next one's transfer. Tidings stores a batch in one transaction; Dovecot writes one Maildir file
per message and updates its index once per command. That is the fastest way in that both servers
offer alike, it needs no knowledge of either's storage (no SQL rows written behind Tidings' back,
no Maildir files behind Dovecot's), and it leaves both in the state of a mailbox that received its
mail but has never been opened by a client: nobody SELECTs it during loading (the check uses STATUS),
so the benchmark's first SELECT is a real first SELECT.

The messages are a pool of distinct corpus messages (imap_corpus, 2-20 KB), each copy made unique
by its own Message-ID and an X-Bench-Index header, so every one is a separate blob on both sides.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import imap_corpus
from imap_client import ImapClient, ImapError
from imap_servers import HOST

BIG_USER = "bigbench"
BIG_PASSWORD = "bench-pass-big-x"
POOL = 500  # distinct bodies; the copies differ in their first headers
BATCH_BYTES = 4 * 1024 * 1024  # per MULTIAPPEND command
MAX_BIG = 1_000_000
LOADERS = 4  # connections loading at once: both servers fsync each batch, this overlaps them


def big_messages(count: int) -> Iterator[bytes]:
    """`count` distinct messages, the same bytes for every server (a fixed seed)."""
    pool = imap_corpus.mailbox(f"{BIG_USER}@example.test", min(POOL, count), seed=7)
    for i in range(count):
        yield b"X-Bench-Index: %d\r\nMessage-ID: <big.%d@bench.test>\r\n" % (i, i) + pool[i % len(pool)]


def _flags(i: int) -> bytes:
    # Most old mail is read; some flagged, some with the keywords the stress mix also sets.
    flags = [b"\\Seen"] if i % 10 < 7 else []
    if i % 23 == 0:
        flags.append(b"\\Flagged")
    if i % 31 == 0:
        flags.append(b"$Label1")
    return b"(" + b" ".join(flags) + b")"


def _batches(count: int) -> Iterator[tuple[int, bytes]]:
    """(messages, MULTIAPPEND arguments) of about BATCH_BYTES each, in index order."""
    batch: list[bytes] = []
    size = 0
    for i, message in enumerate(big_messages(count)):
        month = (b"Feb", b"May", b"Aug", b"Nov")[i % 4]
        date = b'"%02d-%s-2023 09:%02d:00 +0000"' % (1 + i % 28, month, i % 60)
        batch.append(b" %s %s {%d+}\r\n%s" % (_flags(i), date, len(message), message))
        size += len(message)
        if size >= BATCH_BYTES or i == count - 1:
            yield len(batch), b"".join(batch)
            batch, size = [], 0


async def load_big(server, count: int, progress, connections: int = LOADERS) -> float:
    """MULTIAPPEND `count` messages into BIG_USER's INBOX over a few connections at once (each
    batch is atomic; UIDs follow the order the batches commit in); seconds taken.
    `progress(done)` is called after every batch."""
    started = time.monotonic()
    batches = _batches(count)
    done = 0

    async def loader() -> None:
        nonlocal done
        client = await ImapClient.connect(HOST, server.port, timeout=600)
        try:
            await client.login(server.login_name(BIG_USER), BIG_PASSWORD)
            # The generator is shared: each loader takes the next batch when it is free.
            for messages, arguments in batches:
                response = await client.command(b"APPEND INBOX" + arguments)
                if not response.ok:
                    raise ImapError(f"MULTIAPPEND of {messages} -> {response.status} {response.text[:200]!r}")
                done += messages
                progress(done)
        finally:
            await client.logout()

    await asyncio.gather(*(loader() for _ in range(connections)))
    return time.monotonic() - started


async def big_count(server) -> int:
    """MESSAGES of the big INBOX by STATUS, which does not open it as SELECT would."""
    client = await ImapClient.connect(HOST, server.port, timeout=600)
    try:
        await client.login(server.login_name(BIG_USER), BIG_PASSWORD)
        response = await client.check("STATUS INBOX (MESSAGES)")
        for line in response.untagged:
            if line.upper().startswith(b"* STATUS"):
                return int(line.rsplit(b"MESSAGES", 1)[1].strip(b" )"))
        return -1
    finally:
        await client.logout()
