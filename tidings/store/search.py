"""Full-text search over an account's mail (the web client's search), and the index behind it.

The index, `message_text`, holds the words of each message content (messages.id; shared by every
mailbox holding it): subject, sender (From, Sender), recipients (To, Cc, Bcc) and body text,
the bodies decoded by tidings/mail/search_text.py exactly as IMAP SEARCH BODY reads them. It is a
different table on each database, made by migration 0012:

- SQLite: an FTS5 table with those four columns, rowid = messages.id;
- PostgreSQL: a tsvector per message (weights A subject, B sender, C recipients, D body) with a
  GIN index.

Both are handed words normalised in Python (`search_words`: case-folded, without diacritics,
split at anything that is not a letter or digit), and a query's words are normalised the same
way, so both databases match alike: every word of a criterion must begin a word of its field
("ali exam" finds "Alice <alice@example.org>"). That is a word search, not IMAP's substring
SEARCH, which keeps its own exact reading (tidings/imap/search.py).

Filling it never touches acceptance: the background indexer (store/indexer.py) calls
`index_pending` after the summaries are made, paced like them; `messages.has_attachment` stays
NULL until a message is indexed, which makes the work list (a partial index) and counts what a
search may still miss (`SearchPage.pending`). Messages that lose their last mailbox leave the index
with their `messages` row (compaction calls `forget`; PostgreSQL cascades).

Every search is the account's: mailbox entries are read only through the account's mailboxes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import (
    and_,
    bindparam,
    case,
    column,
    func,
    literal_column,
    or_,
    select,
    table,
    text,
    union_all,
    update,
)

from tidings.mail.message import MessageSummary
from tidings.mail.search_text import SearchDocument, search_document, search_words
from tidings.offload import HEAVY_BYTES, Pacer, is_heavy, offload
from tidings.store import schema as s
from tidings.store.blobs import BlobStore
from tidings.store.database import Database, NotFound, Tx

log = logging.getLogger(__name__)

MAX_PAGE = 500
# Offsets beyond this are refused (each mailbox's walk reads offset + limit entries): keyset
# paging (`after`) has no such cost.
MAX_OFFSET = 10_000
# Up to this many matching contents, a search looks up their entries; with more it walks the
# mailboxes' entries in date order and keeps those that match (and stops when the page is full).
FEW_MATCHES = 2000
# Mailboxes walked by one statement (SQLite allows 500 terms in a compound SELECT).
MAILBOXES_PER_STATEMENT = 100
# Unindexed messages (of all accounts) above which counting the account's takes another way.
PENDING_COUNTED = 1000
# Query words per criterion: more say nothing more, and each costs the index a lookup.
MAX_QUERY_WORDS = 16
# Index writes run in the writer thread, inside commits that deliveries wait on: at most this much
# text per write, so one never holds them up for long.
WRITE_TEXT_BYTES = 512 * 1024

_text = table("message_text", column("rowid"), column("message_id"))
_mm, _mb, _m = s.mailbox_messages, s.mailboxes, s.messages

# FTS5 column / tsvector weight of each field.
FIELDS = {"subject": "A", "sender": "B", "recipients": "C", "body": "D"}


@dataclass(frozen=True)
class SearchQuery:
    """What to look for; empty criteria are left out. Text criteria are words (see the module
    docstring); dates are seconds since the epoch, on the message's arrival (internal date)."""

    text: str = ""  # in any field
    from_: str = ""  # sender: From and Sender
    to: str = ""  # recipients: To, Cc and Bcc
    subject: str = ""
    body: str = ""
    since: float | None = None  # arrived at or after
    before: float | None = None  # arrived before
    has_attachment: bool | None = None
    flags: frozenset[str] = frozenset()  # every one set ("\\Seen", "\\Flagged", a keyword)
    without_flags: frozenset[str] = frozenset()  # none of these set
    mailbox_id: int | None = None  # one of the account's mailboxes; None: all of them
    oldest_first: bool = False

    def words(self) -> dict[str | None, list[str]]:
        """Normalised query words by field (None: any field)."""
        out: dict[str | None, list[str]] = {}
        for name, value in (
            (None, self.text),
            ("sender", self.from_),
            ("recipients", self.to),
            ("subject", self.subject),
            ("body", self.body),
        ):
            words = list(dict.fromkeys(search_words(value)))[:MAX_QUERY_WORDS]
            if words:
                out[name] = words
        return out


@dataclass(frozen=True)
class SearchHit:
    mailbox_id: int
    mailbox: str
    uid: int
    message_id: int  # messages.id
    internal_date: float
    size: int
    flags: frozenset[str]
    subject: str | None  # None until the message is analysed
    from_addr: str | None
    has_attachment: bool | None  # None until the message is indexed


@dataclass(frozen=True)
class SearchPage:
    hits: list[SearchHit]
    # Keyset cursor of the next page (pass as `after`), None on the last page.
    next_after: tuple[float, int] | None
    # The account's messages not indexed yet (arrived moments ago, or a backlog being worked
    # through): a word search may miss them.
    pending: int = 0
    query_words: dict = field(default_factory=dict)


class Search:
    def __init__(self, db: Database, blobs: BlobStore) -> None:
        self.db = db
        self.blobs = blobs

    # -- searching --------------------------------------------------------------------------------

    async def search(
        self,
        account_id: int,
        query: SearchQuery,
        *,
        limit: int = 50,
        offset: int = 0,
        after: tuple[float, int] | None = None,
    ) -> SearchPage:
        """A page of the account's messages matching `query`, newest first (or oldest first),
        ties in arrival order. Page by `after` (the previous page's `next_after`: stable while
        mail arrives) or by `offset`. A `mailbox_id` that is not the account's finds nothing."""
        limit = max(1, min(limit, MAX_PAGE))
        offset = max(0, min(offset, MAX_OFFSET))
        words = query.words()
        wanted = offset + limit + 1
        matching = self._matching(words) if words else None
        ascending = query.oldest_first

        def op(tx: Tx) -> tuple[list, int]:
            mine = select(_mb.c.id).where(_mb.c.account_id == account_id)
            if query.mailbox_id is not None:
                mine = mine.where(_mb.c.id == query.mailbox_id)
            boxes = list(tx.conn.execute(mine).scalars())
            few = None
            if matching is not None:
                # The index stops after that many; all of them are read only for a long walk.
                few = list(tx.conn.execute(matching.limit(FEW_MATCHES + 1)).scalars())
                if len(few) > FEW_MATCHES:
                    few = None
                elif not few:
                    boxes = []  # no content has the words
            found: list = []
            for chunk in _chunks(boxes, MAILBOXES_PER_STATEMENT):
                if few is not None:
                    # Few contents match: look their entries up, rather than walk every entry.
                    statement = _page_of_matches(chunk, few, query, after, wanted)
                else:
                    # Many: each walk keeps the entries whose content is among them, read once.
                    hits = matching.cte("hits").prefix_with("MATERIALIZED") if matching is not None else None
                    statement = _page_of_mailboxes(chunk, query, hits, after, wanted)
                found += tx.conn.execute(statement).all()
            found.sort(key=lambda row: (row.internal_date, row.entry), reverse=not ascending)
            found = found[offset : offset + limit + 1]
            details = {}
            if found:
                statement = _DETAILS.where(_mm.c.id.in_([row.entry for row in found]))
                details = {row.entry: row for row in tx.conn.execute(statement)}
            rows = [details[row.entry] for row in found if row.entry in details]
            return rows, _pending_count(tx, account_id, query.mailbox_id)

        # A common word in a big mailbox is tens of milliseconds of stepping rows: in a thread,
        # so the loop serves other clients meanwhile (the drivers release the GIL while stepping).
        rows, pending = await self.db.read_in_thread(op)
        hits = [_hit(row) for row in rows[:limit]]
        more = len(rows) > limit
        next_after = (hits[-1].internal_date, rows[limit - 1].entry) if more else None
        return SearchPage(hits, next_after, pending, words)

    def _matching(self, words: dict[str | None, list[str]]):
        """messages.id of contents whose index entry has every query word as a word prefix.
        (Checking the words per entry, with `rowid = ?` beside MATCH, was 10-100 times slower:
        FTS5 runs the whole query for each.)"""
        if self.db.is_postgres:
            terms = [
                f"{word}:*{FIELDS[name]}" if name else f"{word}:*"
                for name, field_words in words.items()
                for word in field_words
            ]
            matches = text("document @@ to_tsquery('simple', :fts_query)").bindparams(
                fts_query=" & ".join(terms)
            )
            key = literal_column("message_id")
        else:
            terms = [
                f'{name} : "{word}" *' if name else f'"{word}" *'
                for name, field_words in words.items()
                for word in field_words
            ]
            matches = text("message_text MATCH :fts_query").bindparams(fts_query=" AND ".join(terms))
            key = literal_column("rowid")
        return select(key.label("id")).select_from(_text).where(matches)

    # -- indexing ---------------------------------------------------------------------------------

    async def index_pending(self, limit: int = 200) -> int:
        """Index up to `limit` messages not in the index yet whose summary exists (the
        background indexer makes summaries first). Returns how many were taken."""
        rows = await self.db.read_in_thread(lambda tx: tx.conn.execute(_PENDING, {"limit": limit}).all())
        if not rows:
            return 0
        documents: dict[int, SearchDocument | None] = {}
        pacer = Pacer()
        for row in rows:
            raw = bytes(row.data) if row.data is not None else None
            if raw is None:
                try:
                    raw = await self.blobs.get(row.blob_hash)
                except NotFound:
                    documents[row.id] = None  # body gone: nothing to index, and no retrying
                    continue
            try:
                summary = MessageSummary.from_json(row.summary)
            except Exception:
                log.warning("summary of message %d unreadable; not indexed for search", row.id)
                documents[row.id] = None
                continue
            if is_heavy(len(raw)):
                documents[row.id] = await offload(search_document, raw, summary)
            else:
                documents[row.id] = search_document(raw, summary)
                await pacer.tick()
        for chunk in _write_chunks(documents):
            await self.db.write_lazy(self._save, chunk)
        return len(rows)

    def _save(self, tx: Tx, documents: dict[int, SearchDocument | None]) -> None:
        ids = list(documents)
        # Another node may have indexed some meanwhile: only the still-pending ones are written.
        pending = set(
            tx.conn.execute(select(_m.c.id).where(_m.c.id.in_(ids), _m.c.has_attachment.is_(None))).scalars()
        )
        rows = [
            {"id": message_id} | _fields(document)
            for message_id, document in documents.items()
            if message_id in pending and document is not None
        ]
        if rows:
            tx.conn.execute(_INSERT_POSTGRES if tx.is_postgres else _INSERT_SQLITE, rows)
        tx.conn.execute(
            update(_m)
            .where(_m.c.id == bindparam("message"), _m.c.has_attachment.is_(None))
            .values(has_attachment=bindparam("attachment")),
            [
                {"message": message_id, "attachment": bool(document and document.has_attachment)}
                for message_id, document in documents.items()
                if message_id in pending
            ],
        )

    async def pending(self) -> int:
        """Messages (of every account) not in the index yet."""
        return await self.db.read(
            lambda tx: tx.conn.execute(
                select(func.count()).select_from(_m).where(_m.c.has_attachment.is_(None))
            ).scalar_one()
        )


def _page_of_matches(boxes: list[int], message_ids: list[int], query: SearchQuery, after, wanted: int):
    """The first `wanted` entries of `boxes` holding one of `message_ids` (few) that meet the
    other criteria, in date order, as (entry, internal_date)."""
    conditions = [_mm.c.message_id.in_(message_ids), _mm.c.mailbox_id.in_(boxes), *_conditions(query, after)]
    direction = (lambda c: c.asc()) if query.oldest_first else (lambda c: c.desc())
    return (
        select(_mm.c.id.label("entry"), _mm.c.internal_date)
        .where(*conditions)
        .order_by(direction(_mm.c.internal_date), direction(_mm.c.id))
        .limit(wanted)
    )


def _page_of_mailboxes(boxes: list[int], query: SearchQuery, hits, after, wanted: int):
    """The first `wanted` matching entries of each of `boxes` in date order, as (entry,
    internal_date): one index walk per mailbox along ix_mailbox_messages_date that stops as soon
    as it has enough (a walk over several mailboxes at once sorts all their entries instead)."""
    conditions = _conditions(query, after)
    if hits is not None:
        conditions.append(_mm.c.message_id.in_(select(hits.c.id)))
    if query.oldest_first:
        order = (_mm.c.mailbox_id.asc(), _mm.c.internal_date.asc(), _mm.c.id.asc())
    else:
        order = (_mm.c.mailbox_id.desc(), _mm.c.internal_date.desc(), _mm.c.id.desc())
    walks = [
        select(
            select(_mm.c.id.label("entry"), _mm.c.internal_date)
            .where(_mm.c.mailbox_id == box, *conditions)
            .order_by(*order)
            .limit(wanted)
            .subquery()
        )
        for box in boxes
    ]
    return walks[0] if len(walks) == 1 else union_all(*walks)


def _conditions(query: SearchQuery, after) -> list:
    """The criteria other than words and mailboxes, on a mailbox entry."""
    conditions = []
    if query.since is not None:
        conditions.append(_mm.c.internal_date >= query.since)
    if query.before is not None:
        conditions.append(_mm.c.internal_date < query.before)
    if query.has_attachment is not None:
        # A lookup per entry walked, so the walk keeps its order (a join may be planned apart).
        attachment = select(_m.c.has_attachment).where(_m.c.id == _mm.c.message_id).scalar_subquery()
        conditions.append(attachment == query.has_attachment)
    spaced = literal_column("' '") + _mm.c.flags + literal_column("' '")
    for flag in sorted(query.flags):
        conditions.append(spaced.like(_flag_pattern(flag), escape="!"))
    for flag in sorted(query.without_flags):
        conditions.append(~spaced.like(_flag_pattern(flag), escape="!"))
    if after is not None:
        date, entry = after
        if query.oldest_first:
            conditions.append(
                or_(_mm.c.internal_date > date, and_(_mm.c.internal_date == date, _mm.c.id > entry))
            )
        else:
            conditions.append(
                or_(_mm.c.internal_date < date, and_(_mm.c.internal_date == date, _mm.c.id < entry))
            )
    return conditions


def forget(tx: Tx, message_ids: Iterable[int]) -> None:
    """Drop index entries of `messages` rows about to be deleted (on PostgreSQL the foreign key
    does it)."""
    ids = list(message_ids)
    if ids and not tx.is_postgres:
        tx.conn.execute(
            text("DELETE FROM message_text WHERE rowid IN :ids").bindparams(bindparam("ids", expanding=True)),
            {"ids": ids},
        )


def _fields(document: SearchDocument) -> dict[str, str]:
    return {
        "subject": document.subject,
        "sender": document.sender,
        "recipients": document.recipients,
        "body": document.body,
    }


def _write_chunks(documents: dict[int, SearchDocument | None]):
    chunk: dict[int, SearchDocument | None] = {}
    size = 0
    for message_id, document in documents.items():
        chunk[message_id] = document
        size += len(document.body) + 200 if document else 0
        if size >= WRITE_TEXT_BYTES:
            yield chunk
            chunk, size = {}, 0
    if chunk:
        yield chunk


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _flag_pattern(flag: str) -> str:
    escaped = flag.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return f"% {escaped} %"


def _hit(row) -> SearchHit:
    return SearchHit(
        mailbox_id=row.mailbox_id,
        mailbox=row.mailbox,
        uid=row.uid,
        message_id=row.message_id,
        internal_date=row.internal_date,
        size=row.size,
        flags=frozenset(row.flags.split()),
        subject=row.subject,
        from_addr=row.from_addr,
        has_attachment=row.has_attachment,
    )


def _pending_count(tx: Tx, account_id: int, mailbox_id: int | None) -> int:
    """How many of the account's (or the mailbox's) messages are not indexed yet. The unindexed
    ones of every account come from the partial index first (none, nearly always; at most
    `PENDING_COUNTED`), so a search pays for a pass over the account's entries only while a big
    backlog is being indexed."""
    unindexed = list(tx.conn.execute(_UNINDEXED, {"limit": PENDING_COUNTED}).scalars())
    if not unindexed:
        return 0
    mine = select(_mb.c.id).where(_mb.c.account_id == account_id)
    if mailbox_id is not None:
        mine = mine.where(_mb.c.id == mailbox_id)
    if len(unindexed) < PENDING_COUNTED:
        count = select(func.count()).where(_mm.c.message_id.in_(unindexed), _mm.c.mailbox_id.in_(mine))
    else:  # a big backlog (a store just upgraded): count it through the account's entries
        count = (
            select(func.count())
            .select_from(_mm.join(_m, _m.c.id == _mm.c.message_id))
            .where(_m.c.has_attachment.is_(None), _mm.c.mailbox_id.in_(mine))
        )
    return tx.conn.execute(count).scalar_one()


_DETAILS = select(
    _mm.c.id.label("entry"),
    _mm.c.mailbox_id,
    _mb.c.name.label("mailbox"),
    _mm.c.uid,
    _mm.c.message_id,
    _mm.c.internal_date,
    _mm.c.size,
    _mm.c.flags,
    _m.c.subject,
    _m.c.from_addr,
    _m.c.has_attachment,
).select_from(_mm.join(_mb, _mb.c.id == _mm.c.mailbox_id).join(_m, _m.c.id == _mm.c.message_id))
_UNINDEXED = select(_m.c.id).where(_m.c.has_attachment.is_(None)).limit(bindparam("limit"))
_PENDING = (
    select(
        _m.c.id,
        _m.c.blob_hash,
        _m.c.summary,
        case((func.length(s.blob_data.c.data) < HEAVY_BYTES, s.blob_data.c.data)).label("data"),
    )
    .select_from(_m.outerjoin(s.blob_data, s.blob_data.c.hash == _m.c.blob_hash))
    .where(_m.c.has_attachment.is_(None), _m.c.summary.is_not(None))
    .order_by(_m.c.id)
    .limit(bindparam("limit"))
)
_INSERT_SQLITE = text(
    "INSERT INTO message_text (rowid, subject, sender, recipients, body)"
    " VALUES (:id, :subject, :sender, :recipients, :body)"
)
_INSERT_POSTGRES = text(
    "INSERT INTO message_text (message_id, document) VALUES (:id,"
    " setweight(to_tsvector('simple', :subject), 'A') || setweight(to_tsvector('simple', :sender), 'B')"
    " || setweight(to_tsvector('simple', :recipients), 'C') || setweight(to_tsvector('simple', :body), 'D'))"
    " ON CONFLICT (message_id) DO NOTHING"
)
