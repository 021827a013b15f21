"""Fill a Tidings INBOX with N messages before a benchmark, as if they had come in over SMTP long ago.

    python bench/smtp_prefill.py CONFIG ADDRESS[,ADDRESS...] COUNT SIZE

Run while the server is stopped (SQLite has one writer). Every message goes through
`store.delivery.accept`, the call the SMTP session makes after DATA, so bodies, `messages` and
`mailbox_messages` rows, UIDs, modseqs, quota and change log are what SMTP would have left; the
bytes carry the Received field the MX adds. Only the SMTP conversation is skipped: many accepts are
in flight at once, so the group commit writes large batches. Then the indexer's own steps
(`index_pending`, `threads.assign_pending`) run to the end, because a mailbox that received its
mail over time would have been indexed meanwhile: the measured window should see the indexer work on
the new mail only; the full-text index (store/search.py) is filled for the same reason. With
several addresses, message N goes to the (N mod count)th. Progress goes to stdout, one line per step.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tidings.config import load_config  # noqa: E402
from tidings.smtp import headers as hdr  # noqa: E402
from tidings.store import Envelope, Store  # noqa: E402

IN_FLIGHT = 400
REPORT_EVERY = 10_000
SENDERS = [f"sender{i}@example.{tld}" for i in range(50) for tld in ("org", "net")]
WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "mail",
    "keeps",
    "coming",
    "in",
    "at",
    "speed",
]


def message(number: int, size: int, address: str, hostname: str) -> bytes:
    """A plain message of about `size` bytes; every fifth one answers an earlier one (threads)."""
    sender = SENDERS[number % len(SENDERS)]
    head = [
        f"From: Sender {number % len(SENDERS)} <{sender}>",
        f"To: <{address}>",
        f"Subject: prefill message {number} about {WORDS[number % len(WORDS)]}",
        f"Date: {hdr.rfc5322_date()}",
        f"Message-ID: <prefill.{number}@example.org>",
    ]
    if number % 5 == 4:
        head.append(f"In-Reply-To: <prefill.{number - 4}@example.org>")
    head += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=us-ascii", "", ""]
    text = "\r\n".join(head).encode()
    line_number = 0
    lines = []
    length = len(text)
    while length < size:
        line = f"{number}.{line_number} " + " ".join(WORDS[(number + line_number) % 7 :]) + "\r\n"
        lines.append(line)
        length += len(line)
        line_number += 1
    received = hdr.received_header(
        helo="client.example.org",
        ip="127.0.0.1",
        hostname=hostname,
        protocol="ESMTP",
        id=hdr.transaction_id(),
        recipient=address,
    )
    return received + text + "".join(lines).encode()


async def fill(config_path: Path, addresses: list[str], count: int, size: int) -> None:
    config = load_config(config_path)
    store = Store.open(config)
    try:
        started = time.monotonic()
        pending: set[asyncio.Task] = set()
        for number in range(count):
            address = addresses[number % len(addresses)]
            raw = message(number, size, address, config.hostname)
            envelope = Envelope(sender=SENDERS[number % len(SENDERS)], local=[address])
            pending.add(asyncio.ensure_future(store.delivery.accept(envelope, raw)))
            if len(pending) >= IN_FLIGHT:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
            if (number + 1) % REPORT_EVERY == 0:
                rate = (number + 1) / (time.monotonic() - started)
                print(f"prefill: {number + 1} stored ({rate:.0f}/s)", flush=True)
        for task in asyncio.as_completed(pending):
            await task
        print(f"prefill: {count} stored in {time.monotonic() - started:.0f} s; indexing", flush=True)
        indexed = 0
        while (done := await store.mailboxes.index_pending(1000)) > 0:
            indexed += done
            if indexed % REPORT_EVERY < 1000:
                print(f"prefill: {indexed} indexed", flush=True)
        while await store.threads.assign_pending(1000) > 0:
            pass
        searchable = 0
        while (done := await store.search.index_pending(1000)) > 0:
            searchable += done
            if searchable % REPORT_EVERY < 1000:
                print(f"prefill: {searchable} in the full-text index", flush=True)
        print(f"prefill: done in {time.monotonic() - started:.0f} s", flush=True)
    finally:
        store.close()


def run(config: Path, addresses: list[str], count: int, size: int, progress, env: dict) -> float:
    """This script in a child process (the bench's own process stays free of the store), its
    lines passed to `progress`; returns the seconds it took. For bench/smtp.py and bench/web.py."""
    started = time.monotonic()
    command = [sys.executable, str(Path(__file__)), str(config), ",".join(addresses), str(count), str(size)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=REPO, env=env)
    try:
        for line in proc.stdout:
            progress(line.rstrip())
        proc.wait()
    finally:
        if proc.poll() is None:  # interrupted: do not wait for the whole fill
            proc.kill()
            proc.wait()
        proc.stdout.close()
    if proc.returncode != 0:
        raise RuntimeError(f"prefill failed with status {proc.returncode}")
    return time.monotonic() - started


def main() -> int:
    config, address, count, size = sys.argv[1:5]
    asyncio.run(fill(Path(config), address.split(","), int(count), int(size)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
