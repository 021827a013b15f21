"""Thread ids: which conversation each message of an account belongs to (RFC 8474 THREADID).

A message joins the thread of any earlier message it shares a Message-ID with, through its own
Message-ID, its References or its In-Reply-To, provided both have the same base subject (RFC
5256 section 2.1): a reply that changes the subject starts a new conversation, as in Gmail and
Fastmail.  Each such (Message-ID, base subject) pair is kept as a *link* of the thread, so a
reply that arrives before its parent still brings the parent into its thread.  When a message
links two existing threads it joins the older one: thread ids never change once given (RFC 8474
section 5.2 wants them stable), so threads are not merged.

The thread id is the ``messages.id`` of the thread's first message (ids are never reused).
Threads are per account: the same stored content delivered to two accounts has one EMAILID but
lives in each account's own conversation.

Ids are assigned by the background indexer once a message's summary exists (see
:func:`tidings.store.indexer.run_indexer`) and on demand by :meth:`Threads.thread_ids` for any
message it has not reached yet.  Only the store package runs the SQL here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from sqlalchemy import and_, bindparam, insert, select

from tidings.mail.message import MessageSummary
from tidings.mail.threading import ascii_casemap
from tidings.store import schema as s
from tidings.store.database import Database, Tx
from tidings.store.mailboxes import MessageRef

_t, _l = s.message_threads, s.thread_links
_THREADS_OF = select(_t.c.message_id, _t.c.thread_id).where(
    _t.c.account_id == bindparam("account"), _t.c.message_id.in_(bindparam("ids", expanding=True))
)
_LINKED = select(_l.c.link, _l.c.thread_id).where(
    _l.c.account_id == bindparam("account"), _l.c.link.in_(bindparam("links", expanding=True))
)


def thread_links(summary: MessageSummary) -> list[str]:
    """The link keys of a message: a digest of each Message-ID it names with its base subject."""
    subject = ascii_casemap(summary.base_subject.strip())
    names = [summary.message_id, *summary.references, summary.in_reply_to]
    seen: list[str] = []
    for name in names:
        if name and name not in seen:
            seen.append(name)
    return [hashlib.sha256(f"{name}\n{subject}".encode()).hexdigest()[:32] for name in seen]


def _insert_ignoring_duplicates(tx: Tx, table):
    """INSERT that leaves an existing row alone: two nodes may thread the same message at once."""
    if tx.is_postgres:
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    return insert(table).prefix_with("OR IGNORE")


def assign_threads(tx: Tx, account_id: int, messages: list[tuple[int, MessageSummary]]) -> dict[int, int]:
    """Give each (messages.id, summary) of ``account_id`` a thread id, oldest message first;
    returns {messages.id: thread id}, keeping any id already given."""
    ordered = sorted(messages, key=lambda item: item[0])
    ids = [message_id for message_id, _ in ordered]
    known = dict(tx.conn.execute(_THREADS_OF, {"account": account_id, "ids": ids}).all())
    add_thread = _insert_ignoring_duplicates(tx, _t)
    add_link = _insert_ignoring_duplicates(tx, _l)
    for message_id, summary in ordered:
        if message_id in known:
            continue
        links = thread_links(summary)
        linked = (
            dict(tx.conn.execute(_LINKED, {"account": account_id, "links": links}).all()) if links else {}
        )
        thread_id = min(linked.values(), default=message_id)
        tx.conn.execute(
            add_thread, {"account_id": account_id, "message_id": message_id, "thread_id": thread_id}
        )
        fresh = [link for link in links if link not in linked]
        if fresh:
            tx.conn.execute(
                add_link, [{"account_id": account_id, "link": link, "thread_id": thread_id} for link in fresh]
            )
    # Read back: a concurrent writer on another node may have threaded some first.
    return dict(tx.conn.execute(_THREADS_OF, {"account": account_id, "ids": ids}).all())


class Threads:
    """Thread ids per account; see the module docstring."""

    def __init__(self, db: Database, mailboxes) -> None:
        self.db = db
        self.mailboxes = mailboxes
        # mailbox_messages.id up to which the background indexer has threaded (assign_pending).
        self._threaded_upto = 0

    async def thread_ids(self, account_id: int, refs: Iterable[MessageRef]) -> dict[int, int]:
        """{messages.id: thread id} for messages of the account, threading any not threaded yet.
        A message that no longer exists, or is not the account's, is left out."""
        by_id = {ref.message_id: ref for ref in refs}
        ids = sorted(by_id)

        def read(tx: Tx) -> dict[int, int]:
            found: dict[int, int] = {}
            for chunk in _chunks(ids, 500):
                found.update(tx.conn.execute(_THREADS_OF, {"account": account_id, "ids": chunk}).all())
            return found

        found = await self.db.read(read)
        missing = [by_id[message_id] for message_id in ids if message_id not in found]
        if missing:
            found.update(await self._assign(account_id, missing))
        return found

    async def assign_pending(self, limit: int = 200) -> int:
        """Thread the next ``limit`` mailbox entries after the last one looked at (the background
        indexer); returns how many it looked at, 0 once it has reached the newest.

        Entries are walked in id order from a mark kept here, so each batch reads only its own
        rows: the former query for "held but not threaded" joined every mailbox entry of every
        account on each call, 50-150 ms on the event loop for a store of 100,000 messages even with
        nothing left to do. An entry committed late under a smaller id than the mark (another node
        on PostgreSQL) is not missed for good: `thread_ids` threads whatever it finds unthreaded."""
        mm, mb, m = s.mailbox_messages, s.mailboxes, s.messages
        mark = self._threaded_upto

        def pending(tx: Tx) -> list:
            threaded = (
                select(_t.c.message_id)
                .where(and_(_t.c.account_id == mb.c.account_id, _t.c.message_id == mm.c.message_id))
                .exists()
            )
            return tx.conn.execute(
                select(mm.c.id, mb.c.account_id, mm.c.message_id, m.c.blob_hash, threaded.label("threaded"))
                .select_from(mm.join(mb, mb.c.id == mm.c.mailbox_id).join(m, m.c.id == mm.c.message_id))
                .where(mm.c.id > mark)
                .order_by(mm.c.id)
                .limit(limit)
            ).all()

        rows = await self.db.read(pending)
        by_account: dict[int, dict[int, MessageRef]] = {}
        for row in rows:
            if row.threaded:
                continue
            # Only the content (id and hash) matters for reading a summary.
            ref = MessageRef(0, row.message_id, row.blob_hash, 0, frozenset(), 0, 0.0, 0.0)
            by_account.setdefault(row.account_id, {})[row.message_id] = ref
        for account_id, refs in by_account.items():
            await self._assign(account_id, list(refs.values()))
        if rows:
            self._threaded_upto = max(self._threaded_upto, rows[-1].id)
        return len(rows)

    async def _assign(self, account_id: int, refs: list[MessageRef]) -> dict[int, int]:
        assigned: dict[int, int] = {}
        for chunk in _chunks(sorted(refs, key=lambda ref: ref.message_id), 500):
            summaries = await self.mailboxes.summaries(account_id, chunk)
            items = [
                (ref.message_id, summaries[ref.message_id]) for ref in chunk if ref.message_id in summaries
            ]
            if items:
                assigned.update(await self.db.write_lazy(assign_threads, account_id, items))
        return assigned


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]
