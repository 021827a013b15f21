"""Reads the web client needs beyond what IMAP asks of `mailboxes`: one message by UID, one
sorted page of a mailbox (a page of a big mailbox must not cost a read of all of it, nor parse
every message's summary to sort by subject), and its messages grouped by conversation
(store/threads.py ids).

Every call takes the acting account and answers NotFound for a mailbox that is not its own,
exactly as for one that does not exist.

A page is found in two steps: the UIDs of the page first, along an index that holds the sort key
and the UID ((mailbox_id, uid) for arrival, ix_mailbox_messages_size for size), so the entries an
OFFSET skips are never read; then those 50 entries with their message rows. Sender and subject
live in `messages` (written when the indexer analyses a message), so those orders still sort the
mailbox's keys in the database, but read the skipped rows once, not joined twice. Unread counts
read the partial index of unseen entries (ix_mailbox_messages_unseen, condition UNSEEN), not every
entry's flags.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, bindparam, func, select, text

from tidings.store import schema as s
from tidings.store.database import Database, NotFound, Tx
from tidings.store.mailboxes import _REF_COLUMNS, MessageRef, _check_owner, _ref

_mm, _m = s.mailbox_messages, s.messages
_REF_BY_UID = (
    select(*_REF_COLUMNS)
    .select_from(_mm.join(_m, _m.c.id == _mm.c.message_id))
    .where(_mm.c.mailbox_id == bindparam("mailbox"), _mm.c.uid == bindparam("uid"))
)
_REFS_BY_UIDS = (
    select(*_REF_COLUMNS)
    .select_from(_mm.join(_m, _m.c.id == _mm.c.message_id))
    .where(_mm.c.mailbox_id == bindparam("mailbox"), _mm.c.uid.in_(bindparam("uids", expanding=True)))
)
SORT_COLUMNS = {"from": _m.c.from_addr, "subject": _m.c.subject}
SORTS = ("date", "size", "from", "subject")
# Word for word the condition of ix_mailbox_messages_unseen (schema.py): the planners use a
# partial index only for a query that repeats it.
UNSEEN = {
    "sqlite": text("instr(mailbox_messages.flags, '\\Seen') = 0"),
    "postgresql": text("strpos(mailbox_messages.flags, '\\Seen') = 0"),
}
_ENTRIES = (
    select(_mm.c.mailbox_id, func.count())
    .where(_mm.c.mailbox_id.in_(bindparam("boxes", expanding=True)))
    .group_by(_mm.c.mailbox_id)
)
_UNSEEN_ENTRIES = {dialect: _ENTRIES.where(condition) for dialect, condition in UNSEEN.items()}
_ACCOUNT_BOXES = select(s.mailboxes.c.id).where(s.mailboxes.c.account_id == bindparam("account"))


def _page_query(sort: str, descending: bool):
    """The refs of one page (bind parameters mailbox, offset, limit), in two steps (see above)."""
    if sort == "date":
        keys = [_mm.c.uid]
    elif sort == "size":
        keys = [_mm.c.size, _mm.c.uid]
    else:
        keys = [func.lower(func.coalesce(SORT_COLUMNS[sort], "")), _mm.c.uid]
    order = [key.desc() if descending else key for key in keys]
    uids = select(_mm.c.uid).where(_mm.c.mailbox_id == bindparam("mailbox"))
    if sort in SORT_COLUMNS:
        uids = uids.select_from(_mm.join(_m, _m.c.id == _mm.c.message_id))
    page = uids.order_by(*order).offset(bindparam("offset")).limit(bindparam("limit")).subquery()
    entries = _mm.join(page, and_(_mm.c.mailbox_id == bindparam("mailbox"), _mm.c.uid == page.c.uid))
    return select(*_REF_COLUMNS).select_from(entries.join(_m, _m.c.id == _mm.c.message_id)).order_by(*order)


_PAGES = {(sort, descending): _page_query(sort, descending) for sort in SORTS for descending in (False, True)}


class MailViews:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def message(self, account_id: int, mailbox_id: int, uid: int) -> MessageRef:
        """The message `uid` of the account's mailbox; NotFound if either is not there."""

        def op(tx: Tx) -> MessageRef:
            _check_owner(tx, account_id, mailbox_id)
            row = tx.conn.execute(_REF_BY_UID, {"mailbox": mailbox_id, "uid": uid}).first()
            if row is None:
                raise NotFound("no such message")
            return _ref(row)

        return await self.db.read(op)

    async def page(
        self, account_id: int, mailbox_id: int, sort: str, descending: bool, offset: int, limit: int
    ) -> list[MessageRef]:
        """One page of the account's mailbox in `sort` order ("date": arrival, which is UID
        order; "size"; "from": sender address; "subject"; case folded, messages not analysed yet
        as empty), ties by UID in the same direction. Only the page's rows leave the database:
        the newest 50 of 100,000 messages is an index walk, not a read of the mailbox."""
        query = _PAGES[(sort, bool(descending))]
        params = {"mailbox": mailbox_id, "offset": max(0, offset), "limit": limit}

        def op(tx: Tx) -> list[MessageRef]:
            _check_owner(tx, account_id, mailbox_id)
            return [_ref(row) for row in tx.conn.execute(query, params)]

        # Sorting by sender or subject reads the whole mailbox: not on the event loop.
        return await (self.db.read_in_thread(op) if sort in SORT_COLUMNS else self.db.read(op))

    async def counts(self, account_id: int) -> dict[int, tuple[int, int]]:
        """{mailbox id: (messages, unseen)} for every mailbox of the account, in one transaction:
        entries counted along the (mailbox, uid) index, unseen ones along the partial index of
        unseen entries (a mailbox of 100,000 read messages costs no flag comparisons)."""

        def op(tx: Tx) -> dict[int, tuple[int, int]]:
            boxes = list(tx.conn.execute(_ACCOUNT_BOXES, {"account": account_id}).scalars())
            if not boxes:
                return {}
            unseen_query = _UNSEEN_ENTRIES["postgresql" if tx.is_postgres else "sqlite"]
            entries = dict(tx.conn.execute(_ENTRIES, {"boxes": boxes}).all())
            unseen = dict(tx.conn.execute(unseen_query, {"boxes": boxes}).all())
            return {box: (entries.get(box, 0), unseen.get(box, 0)) for box in boxes}

        return await self.db.read(op)

    async def messages(self, account_id: int, mailbox_id: int, uids: list[int]) -> list[MessageRef]:
        """The messages of the account's mailbox with these UIDs (those still there), in UID order."""
        wanted = sorted(set(uids))

        def op(tx: Tx) -> list[MessageRef]:
            _check_owner(tx, account_id, mailbox_id)
            rows = []
            for index in range(0, len(wanted), 500):
                params = {"mailbox": mailbox_id, "uids": wanted[index : index + 500]}
                rows.extend(tx.conn.execute(_REFS_BY_UIDS, params))
            return sorted((_ref(row) for row in rows), key=lambda ref: ref.uid)

        return await self.db.read(op)


@dataclass(frozen=True)
class ThreadRow:
    """One conversation of a mailbox: its newest message there, how many it has there."""

    thread_id: int
    newest_uid: int
    messages: int


_t = s.message_threads


def _thread_key():
    # A message the indexer has not threaded yet is a conversation of its own until it is.
    return func.coalesce(_t.c.thread_id, _mm.c.message_id)


def _threaded(account_id: int, mailbox_id: int):
    return _mm.outerjoin(_t, and_(_t.c.account_id == account_id, _t.c.message_id == _mm.c.message_id)), (
        _mm.c.mailbox_id == mailbox_id
    )


class MailThreads:
    """Conversations within one mailbox, grouped in SQL (one query per page, however big the
    mailbox): the web client's threaded message list."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def page(
        self, account_id: int, mailbox_id: int, offset: int, limit: int
    ) -> tuple[int, list[ThreadRow]]:
        """(number of conversations, the page of them, newest first)."""
        joined, where = _threaded(account_id, mailbox_id)
        key = _thread_key().label("thread")
        newest = func.max(_mm.c.uid).label("newest")
        grouped = (
            select(key, newest, func.count().label("messages")).select_from(joined).where(where).group_by(key)
        )
        counted = select(func.count()).select_from(grouped.subquery())
        paged = grouped.order_by(newest.desc()).offset(offset).limit(limit)

        def op(tx: Tx):
            _check_owner(tx, account_id, mailbox_id)
            total = tx.conn.execute(counted).scalar_one()
            rows = [ThreadRow(r.thread, r.newest, r.messages) for r in tx.conn.execute(paged)]
            return total, rows

        return await self.db.read_in_thread(op)

    async def uids(self, account_id: int, mailbox_id: int, thread_id: int) -> list[int]:
        """The UIDs of the conversation `thread_id` in the account's mailbox, oldest first (its
        threaded messages: the thread's index, not a pass over the mailbox)."""
        query = (
            select(_mm.c.uid)
            .select_from(_t.join(_mm, _mm.c.message_id == _t.c.message_id))
            # "+ 0": without statistics SQLite took the (mailbox, uid) index to save the sort and
            # joined all 100,000 entries of a big mailbox to find a conversation's few (435 ms);
            # this way it starts from the thread's index (0.06 ms). PostgreSQL plans it alike.
            .where(
                _t.c.account_id == account_id,
                _t.c.thread_id == thread_id,
                (_mm.c.mailbox_id + 0) == mailbox_id,
            )
            .order_by(_mm.c.uid)
        )

        def op(tx: Tx) -> list[int]:
            _check_owner(tx, account_id, mailbox_id)
            return list(tx.conn.execute(query).scalars())

        return await self.db.read(op)
