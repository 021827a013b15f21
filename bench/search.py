"""How fast the web client's search answers on a big mailbox, and how fast the index is built.

    python bench/search.py [--messages 100000] [--database postgresql://...] [--repeat 15]

Fills one account's INBOX in a temporary store (SQLite under a temp dir, or a fresh database on
the PostgreSQL given) with the deterministic IMAP benchmark corpus (bench/imap_corpus.py: 2-20 KB,
a third multipart, some with attachments, a few rare words), through `append_many` (what IMAP
APPEND does). Then it runs the background indexer's steps to the end (summaries, threads, full-text
index) and reports their rate, and times each search of a fixed list, first page of 50, p50 and
max over `--repeat` runs. The reference, measured in the same run, is what answering the selective
body search costs without the index: reading and decoding every message the way IMAP SEARCH BODY
does (tidings/mail/search_text.py); the ratio says how much the index saves. Progress goes to
stdout; everything stops by itself and the temp dir is removed.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import imap_corpus  # noqa: E402
from tidings.config import Config  # noqa: E402
from tidings.mail.search_text import body_contains  # noqa: E402
from tidings.store import Store  # noqa: E402
from tidings.store.search import SearchQuery  # noqa: E402

USER = "bench@example.org"
BATCH = 500
YEAR_START = datetime(2024, 1, 1, tzinfo=UTC).timestamp()
RARE = imap_corpus.RARE_WORDS[0]

QUERIES = [
    ("body, rare word", SearchQuery(body=RARE)),
    ("text, rare word", SearchQuery(text=imap_corpus.RARE_WORDS[1])),
    ("subject, common word", SearchQuery(subject="budget")),
    ("from, one of ten people", SearchQuery(from_="alice")),
    ("text, two common words", SearchQuery(text="budget meeting")),
    ("body, prefix of common word", SearchQuery(body="proj")),
    ("has attachment", SearchQuery(has_attachment=True)),
    (
        "unread in June",
        SearchQuery(
            since=YEAR_START + 151 * 86400,
            before=YEAR_START + 181 * 86400,
            without_flags=frozenset({"\\Seen"}),
        ),
    ),
    ("flagged", SearchQuery(flags=frozenset({"\\Flagged"}))),
    (
        "from + attachment + date",
        SearchQuery(from_="carol", has_attachment=True, since=YEAR_START + 90 * 86400),
    ),
    ("no criteria (newest first)", SearchQuery()),
    ("no match", SearchQuery(body="nonexistentword")),
]


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


async def fill(store: Store, account_id: int, count: int) -> float:
    inbox = await store.mailboxes.get(account_id, "INBOX")
    rng = random.Random(7)
    corpus_rng = random.Random("1:" + USER)
    started = time.perf_counter()
    for first in range(0, count, BATCH):
        items = []
        for index in range(first, min(count, first + BATCH)):
            raw = imap_corpus.make_message(corpus_rng, index, USER)
            flags = ["\\Seen"] if rng.random() < 0.7 else []
            if rng.random() < 0.05:
                flags.append("\\Flagged")
            items.append((raw, flags, YEAR_START + index * (365 * 86400 / count)))
        await store.mailboxes.append_many(account_id, inbox.id, items)
        if (first // BATCH) % 20 == 0:
            progress(f"filled {first + len(items):,} / {count:,}")
    return time.perf_counter() - started


async def drain(step, label: str) -> tuple[int, float]:
    done = 0
    started = time.perf_counter()
    while n := await step(200):
        done += n
        if done % 10_000 < 200:
            progress(f"{label}: {done:,}")
    return done, time.perf_counter() - started


async def exact_body_scan(store: Store, account_id: int, word: str) -> tuple[int, float]:
    """The reference: SEARCH BODY's way, every message read and decoded."""
    inbox = await store.mailboxes.get(account_id, "INBOX")
    started = time.perf_counter()
    _, refs = await store.mailboxes.messages(account_id, inbox.id)
    summaries = await store.mailboxes.summaries(account_id, refs)
    found = 0
    for ref in refs:
        raw = await store.mailboxes.read_blob(ref.blob_hash)
        found += body_contains(raw, summaries[ref.message_id], word)
    return found, time.perf_counter() - started


def fresh_postgres_database(base: str) -> str:
    """A new empty database on the PostgreSQL server of `base` (left behind for inspection)."""
    import psycopg

    name = "bench_search_" + time.strftime("%Y%m%d%H%M%S")
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return base.rsplit("/", 1)[0] + "/" + name


async def run(args) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        data_dir = Path(args.keep) if args.keep else Path(tmp) / "data"
        reuse = args.keep and (data_dir / "tidings.db").exists()
        database = fresh_postgres_database(args.database) if args.database and not reuse else args.database
        config = Config(data_dir=data_dir, database=database, listen={"smtp": []})
        store = Store.open(config)
        try:
            if reuse:
                account = await store.accounts.get_user(USER)
                progress(f"reusing the store in {data_dir}")
                index_s = summary_s = None
            else:
                await store.accounts.add_domain("example.org")
                account = await store.accounts.add_user(USER, "bench password 1")
                fill_s = await fill(store, account.id, args.messages)
                progress(f"filled {args.messages:,} messages in {fill_s:.1f} s")
                n, summary_s = await drain(store.mailboxes.index_pending, "summaries")
                progress(f"summaries: {n:,} in {summary_s:.1f} s ({n / summary_s:,.0f}/s)")
                n, thread_s = await drain(store.threads.assign_pending, "threads")
                n, index_s = await drain(store.search.index_pending, "full-text index")
                progress(f"full-text index: {n:,} in {index_s:.1f} s ({n / index_s:,.0f}/s)")

            print(f"\n{'query':32} {'hits≥':>6} {'p50 ms':>8} {'max ms':>8}")
            timings = {}
            for label, query in QUERIES:
                runs = []
                for _ in range(args.repeat):
                    started = time.perf_counter()
                    page = await store.search.search(account.id, query, limit=50)
                    runs.append((time.perf_counter() - started) * 1000)
                timings[label] = statistics.median(runs)
                more = "+" if page.next_after else ""
                print(
                    f"{label:32} {len(page.hits):>5}{more:1} {statistics.median(runs):8.1f} {max(runs):8.1f}"
                )
            page = await store.search.search(account.id, QUERIES[0][1], limit=50)
            cursor = page.next_after
            if cursor:
                started = time.perf_counter()
                await store.search.search(account.id, QUERIES[0][1], limit=50, after=cursor)
                print(f"{'  next page by keyset':32} {'':6} {(time.perf_counter() - started) * 1000:8.1f}")

            if args.no_reference:
                return
            progress("reference: the same rare-word body search by reading every message")
            found, scan_s = await exact_body_scan(store, account.id, RARE)
            indexed, after = 0, None
            while True:
                page = await store.search.search(account.id, QUERIES[0][1], limit=500, after=after)
                indexed += len(page.hits)
                if (after := page.next_after) is None:
                    break
            print(
                f"\nreference exact scan: {found:,} messages in {scan_s * 1000:,.0f} ms; index: "
                f"{indexed:,} messages, first page in {timings[QUERIES[0][0]]:.1f} ms "
                f"= {timings[QUERIES[0][0]] / (scan_s * 1000):.4f} x the scan's time"
            )
            if index_s:
                print(
                    f"indexing rate: {args.messages / index_s:,.0f} messages/s for the full-text pass "
                    f"({args.messages / summary_s:,.0f}/s for summaries)"
                )
        finally:
            store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--database", default="", help="a PostgreSQL URL (a fresh database is made on it)")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--keep", help="data directory to fill and keep, or to reuse when filled already")
    parser.add_argument("--no-reference", action="store_true", help="skip the exact scan (slow)")
    args = parser.parse_args(argv)
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
