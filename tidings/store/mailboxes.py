"""Mailboxes and the messages in them: the IMAP data model (UIDs, flags, modseqs), shared by every
protocol that reads or changes mail (IMAP, POP3, local delivery, later the web client).

Invariants kept here, not in the protocols:
- UIDVALIDITY, UIDNEXT and HIGHESTMODSEQ of a mailbox never go backwards (row-locked counters).
- Every change bumps the mailbox's HIGHESTMODSEQ and is published (after commit) as a `Change`.
- Expunged UIDs are remembered with their modseq for QRESYNC (RFC 7162).
- An account's used_bytes follows every append, copy and expunge; quota is enforced on the way in.
- Every method that takes a mailbox id also takes the acting account and refuses (NotFound, nothing
  changed) a mailbox of another account; message summaries are read only through the account's
  own mailboxes. Ids are never reused (see schema.py), and the process-wide caches are keyed by what
  cannot be reused either: summaries by content hash, snapshots by the mailbox's random object id.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import threading
import time
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import bindparam, case, delete, exists, func, insert, literal, select, text, update

from tidings.mail.message import MessageSummary
from tidings.notify import CHANNEL, Change, Hub
from tidings.offload import HEAVY_BYTES, HEAVY_ROWS, Pacer, is_heavy, offload, without_cycle_collection
from tidings.store import schema as s
from tidings.store.blobs import BlobStore
from tidings.store.cache import LruCache
from tidings.store.database import AlreadyExists, Database, NotFound, OverQuota, StoreError, Tx

log = logging.getLogger(__name__)

SUMMARY_CACHE_ENTRIES = 20_000
SNAPSHOT_CACHE_ENTRIES = 500
SNAPSHOT_CACHE_MESSAGES = 500_000
BODY_CACHE_ENTRIES = 2_000
BODY_CACHE_BYTES = 32 * 1024 * 1024
RECENT_CUT_ENTRIES = 10_000

SYSTEM_FLAGS = {f.lower(): f for f in ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")}
SPECIAL_USES = {"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash"}
DELIMITER = "/"
MAX_MAILBOX_NAME = 1000
MAX_MAILBOX_DEPTH = 40


@dataclass(frozen=True)
class Mailbox:
    id: int
    account_id: int
    name: str
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    special_use: str | None
    subscribed: bool
    object_id: str
    recent_uid: int = 0  # the recent cut (schema.py): UIDs above it are \Recent for the next claimer


@dataclass(frozen=True, slots=True)
class MessageRef:
    """One message as a mailbox sees it."""

    uid: int
    message_id: int  # messages.id: the same content has the same id in every mailbox (EMAILID)
    blob_hash: str
    size: int
    flags: frozenset[str]
    modseq: int
    internal_date: float
    save_date: float


@dataclass(frozen=True)
class MailboxStatus:
    messages: int
    unseen: int
    deleted: int
    size: int
    uidnext: int
    uidvalidity: int
    highestmodseq: int
    first_unseen_uid: int | None
    recent: int = 0  # messages above the recent cut (STATUS RECENT)


@dataclass(frozen=True)
class Changes:
    """What changed in a mailbox since a modseq: changed/new messages and expunged UIDs."""

    highestmodseq: int
    uidnext: int
    changed: list[MessageRef]
    expunged: list[int]  # ascending (IMAP merges it with client-given UID sets)
    recent_uid: int = 0  # the mailbox's recent cut when read


def normalise_flag(flag: str) -> str:
    return SYSTEM_FLAGS.get(flag.lower(), flag)


def format_flags(flags: Iterable[str]) -> str:
    return " ".join(sorted({normalise_flag(f) for f in flags if f and f.lower() != "\\recent"}))


_NO_FLAGS: frozenset[str] = frozenset()


@functools.lru_cache(maxsize=4096)
def parse_flags(text: str) -> frozenset[str]:
    """Flag sets are shared: a mailbox of 100,000 messages has only a few distinct ones, and every
    IMAP session keeps one per message in its snapshot."""
    return frozenset(text.split()) if text else _NO_FLAGS


def validate_mailbox_name(name: str) -> str:
    """Refuse names no client should be able to create; map any case of INBOX to INBOX."""
    if not name or name.strip() != name and name.strip() == "":
        raise StoreError("empty mailbox name")
    if len(name) > MAX_MAILBOX_NAME:
        raise StoreError("mailbox name too long")
    if any(ord(c) < 0x20 or c == "\x7f" for c in name):
        raise StoreError("mailbox name contains control characters")
    if any(c in name for c in "*%"):
        raise StoreError("mailbox name contains a wildcard character")
    parts = name.split(DELIMITER)
    if any(p == "" for p in parts):
        raise StoreError("mailbox name has an empty hierarchy level")
    if len(parts) > MAX_MAILBOX_DEPTH:
        raise StoreError("mailbox hierarchy too deep")
    if parts[0].upper() == "INBOX":
        parts[0] = "INBOX"
    return DELIMITER.join(parts)


def _mailbox(row) -> Mailbox:
    return Mailbox(
        row.id,
        row.account_id,
        row.name,
        row.uidvalidity,
        row.uidnext,
        row.highestmodseq,
        row.special_use,
        row.subscribed,
        row.object_id,
        row.recent_uid,
    )


def _ref(row) -> MessageRef:
    return MessageRef(
        row.uid,
        row.message_id,
        row.blob_hash,
        row.size,
        parse_flags(row.flags),
        row.modseq,
        row.internal_date,
        row.save_date,
    )


_REF_COLUMNS = (
    s.mailbox_messages.c.uid,
    s.mailbox_messages.c.message_id,
    s.messages.c.blob_hash,
    s.mailbox_messages.c.size,
    s.mailbox_messages.c.flags,
    s.mailbox_messages.c.modseq,
    s.mailbox_messages.c.internal_date,
    s.mailbox_messages.c.save_date,
)


# Statements on the paths every IMAP command takes, built once: building a statement costs more
# than running it on SQLite, and a prebuilt one also keeps its cache key (measured: STORE 3x faster).
_mm, _mb = s.mailbox_messages, s.mailboxes
_REFS = (
    select(*_REF_COLUMNS)
    .select_from(_mm.join(s.messages, s.messages.c.id == _mm.c.message_id))
    .where(_mm.c.mailbox_id == bindparam("mailbox"))
    .order_by(_mm.c.uid)
)
_REFS_SINCE = _REFS.where(_mm.c.modseq > bindparam("modseq"))
_MAILBOX = select(_mb).where(_mb.c.id == bindparam("mailbox"))
_MAILBOX_OWNER = select(_mb.c.account_id).where(_mb.c.id == bindparam("mailbox"))
_MAILBOX_UIDVALIDITY = select(_mb.c.uidvalidity).where(_mb.c.id == bindparam("mailbox"))
_MAILBOX_BY_NAME = select(_mb).where(
    _mb.c.account_id == bindparam("account"), _mb.c.name == bindparam("name")
)
_EXPUNGED_SINCE = (
    select(s.expunged.c.uid)
    .where(s.expunged.c.mailbox_id == bindparam("mailbox"), s.expunged.c.modseq > bindparam("modseq"))
    .order_by(s.expunged.c.uid)
)
_FLAG_ROWS = select(_mm.c.id, _mm.c.uid, _mm.c.flags, _mm.c.modseq).where(
    _mm.c.mailbox_id == bindparam("mailbox"), _mm.c.uid.in_(bindparam("uids", expanding=True))
)
# STORE reads whole refs: the changed ones are answered from these, not read again after the update.
_FLAG_REFS = (
    select(_mm.c.id, *_REF_COLUMNS)
    .select_from(_mm.join(s.messages, s.messages.c.id == _mm.c.message_id))
    .where(_mm.c.mailbox_id == bindparam("mailbox"), _mm.c.uid.in_(bindparam("uids", expanding=True)))
    .order_by(_mm.c.uid)
)
# Flags are stored as space-separated text: " flags " containing " \Seen " finds exactly that flag
# (autoescape adds ESCAPE '/', which keeps the backslash literal on PostgreSQL too).
_PADDED_FLAGS = literal(" ") + _mm.c.flags + literal(" ")
_HAS_DELETED = _PADDED_FLAGS.contains(" \\Deleted ", autoescape=True)
_HAS_SEEN = _PADDED_FLAGS.contains(" \\Seen ", autoescape=True)
# Through the partial index on FLAGGED_DELETED: EXPUNGE reads only the candidates, not the mailbox.
_DELETED_UIDS = select(_mm.c.uid, _mm.c.flags).where(
    _mm.c.mailbox_id == bindparam("mailbox"), text(s.FLAGGED_DELETED)
)
_COUNTS = select(
    func.count(),
    func.coalesce(func.sum(_mm.c.size), 0),
    func.count().filter(~_HAS_SEEN),
    func.count().filter(_HAS_DELETED),
    func.min(_mm.c.uid).filter(~_HAS_SEEN),
).where(_mm.c.mailbox_id == bindparam("mailbox"))
_COUNT_ABOVE = select(func.count()).where(
    _mm.c.mailbox_id == bindparam("mailbox"), _mm.c.uid > bindparam("uid")
)
_RECENT_CUT = select(_mb.c.account_id, _mb.c.recent_uid).where(_mb.c.id == bindparam("mailbox"))
_SET_RECENT_CUT = update(_mb).where(_mb.c.id == bindparam("mailbox")).values(recent_uid=bindparam("cut"))
_SET_FLAGS = (
    update(_mm)
    .where(_mm.c.id == bindparam("row"))
    .values(flags=bindparam("new_flags"), modseq=bindparam("new_modseq"))
)
_COPY_ROWS = (
    select(_mm.c.uid, _mm.c.message_id, _mm.c.size, _mm.c.flags, _mm.c.internal_date)
    .where(_mm.c.mailbox_id == bindparam("mailbox"), _mm.c.uid.in_(bindparam("uids", expanding=True)))
    .order_by(_mm.c.uid)
)
_PRESENT_UIDS = select(_mm.c.uid).where(
    _mm.c.mailbox_id == bindparam("mailbox"), _mm.c.uid.in_(bindparam("uids", expanding=True))
)
_DELETE_UIDS = (
    delete(_mm)
    .where(_mm.c.mailbox_id == bindparam("mailbox"), _mm.c.uid.in_(bindparam("uids", expanding=True)))
    .returning(_mm.c.size)
)
_INSERT_EXPUNGED = insert(s.expunged)
_INSERT_MAILBOX_MESSAGES = insert(_mm)
_QUOTA_OF = select(s.accounts.c.quota_bytes, s.accounts.c.used_bytes).where(
    s.accounts.c.id == bindparam("account")
)
_ADD_USAGE = (
    update(s.accounts)
    .where(s.accounts.c.id == bindparam("account"))
    .values(used_bytes=s.accounts.c.used_bytes + bindparam("delta"))
)
_MESSAGE_BY_HASH = select(s.messages.c.id).where(s.messages.c.blob_hash == bindparam("hash"))
_INSERT_MESSAGE = insert(s.messages)
# Only messages the account holds in one of its mailboxes: the content is shared between accounts
# (stored once), the right to read it is not.
_SUMMARIES = select(s.messages.c.id, s.messages.c.summary, s.messages.c.blob_hash).where(
    s.messages.c.id.in_(bindparam("ids", expanding=True)),
    exists()
    .where(_mm.c.message_id == s.messages.c.id, _mb.c.id == _mm.c.mailbox_id)
    .where(_mb.c.account_id == bindparam("account")),
)


# The indexer's batch: messages without a summary, with their body when it is inline and small
# enough to come along (bigger ones and files are read one by one, in a thread if need be).
_PENDING_INDEX = (
    select(
        s.messages.c.id,
        s.messages.c.blob_hash,
        case((func.length(s.blob_data.c.data) < HEAVY_BYTES, s.blob_data.c.data)).label("data"),
    )
    .select_from(s.messages.outerjoin(s.blob_data, s.blob_data.c.hash == s.messages.c.blob_hash))
    .where(s.messages.c.summary.is_(None))
    .limit(bindparam("limit"))
)
_REPLACE_SUMMARY = (
    update(s.messages)
    .where(s.messages.c.id == bindparam("message"))
    .values(
        summary=bindparam("summary_json"),
        **{
            name: bindparam(f"new_{name}")
            for name in ("subject", "from_addr", "to_addrs", "sent_date", "message_id")
        },
    )
)
_SAVE_SUMMARY = _REPLACE_SUMMARY.where(s.messages.c.summary.is_(None))


# -- row-level helpers used inside transactions (also by delivery and account creation) ---------


def create_mailbox_rows(tx: Tx, account_id: int, name: str, special_use: str | None) -> int:
    last = tx.conn.execute(
        select(s.accounts.c.last_uidvalidity).where(s.accounts.c.id == account_id)
    ).scalar_one()
    uidvalidity = max(int(time.time()), (last or 0) + 1) & 0xFFFFFFFF
    tx.conn.execute(
        update(s.accounts).where(s.accounts.c.id == account_id).values(last_uidvalidity=uidvalidity)
    )
    result = tx.conn.execute(
        insert(s.mailboxes).values(
            account_id=account_id,
            name=name,
            uidvalidity=uidvalidity,
            uidnext=1,
            highestmodseq=1,
            special_use=special_use,
            subscribed=True,
            object_id="M" + secrets.token_hex(12),
            created_at=time.time(),
        )
    )
    # A subscription kept for the name while it had no mailbox belongs to the mailbox again.
    _drop_dangling(tx, account_id, name)
    return result.inserted_primary_key[0]


def _drop_dangling(tx: Tx, account_id: int, name: str) -> bool:
    """Forget a subscription kept for a name without a mailbox; True if there was one."""
    _ds = s.dangling_subscriptions
    gone = tx.conn.execute(delete(_ds).where(_ds.c.account_id == account_id, _ds.c.name == name))
    return gone.rowcount > 0


_BUMP_MAILBOX = (
    update(s.mailboxes)
    .where(s.mailboxes.c.id == bindparam("mailbox"))
    .values(uidnext=s.mailboxes.c.uidnext + bindparam("uids"), highestmodseq=s.mailboxes.c.highestmodseq + 1)
    .returning(s.mailboxes.c.uidnext, s.mailboxes.c.highestmodseq)
)


def bump_mailbox(tx: Tx, mailbox_id: int, uids_needed: int = 0) -> tuple[int, int]:
    """Reserve `uids_needed` UIDs and a new modseq; returns (first_uid, modseq). Row-locks the mailbox."""
    row = tx.conn.execute(_BUMP_MAILBOX, {"mailbox": mailbox_id, "uids": uids_needed}).first()
    if row is None:
        raise NotFound("mailbox no longer exists")
    return row.uidnext - uids_needed, row.highestmodseq


def publish(tx: Tx, hub: Hub, node_id: str, change: Change) -> None:
    if tx.is_postgres:
        tx.conn.exec_driver_sql(
            "SELECT pg_notify(%(channel)s, %(payload)s)",
            {"channel": CHANNEL, "payload": change.to_payload(node_id)},
        )
    tx.after_commit(lambda: hub.publish(change))


def message_row(tx: Tx, blob_hash: str, size: int, summary_json: str | None, fields: dict) -> int:
    """The messages.id for this content, inserting it if new (content is stored once)."""
    existing = tx.conn.execute(_MESSAGE_BY_HASH, {"hash": blob_hash}).first()
    if existing:
        return existing.id
    row = {"blob_hash": blob_hash, "size": size, "summary": summary_json, "created_at": time.time(), **fields}
    return tx.conn.execute(_INSERT_MESSAGE, row).inserted_primary_key[0]


def charge_quota(tx: Tx, account_id: int, size: int) -> None:
    """Add `size` bytes to the account's usage, refusing if that passes its quota."""
    if size <= 0:  # giving back: nothing to check
        if tx.conn.execute(_ADD_USAGE, {"account": account_id, "delta": size}).rowcount != 1:
            raise NotFound("account no longer exists")
        return
    row = tx.conn.execute(_QUOTA_OF, {"account": account_id}).first()
    if row is None:
        raise NotFound("account no longer exists")
    if size > 0 and row.quota_bytes is not None and row.used_bytes + size > row.quota_bytes:
        raise OverQuota(f"over quota ({row.used_bytes + size} > {row.quota_bytes} bytes)")
    tx.conn.execute(_ADD_USAGE, {"account": account_id, "delta": size})


def insert_into_mailbox(
    tx: Tx,
    mailbox_id: int,
    items: list[tuple[int, int, str, float]],
) -> tuple[int, int, list[int]]:
    """Insert messages (message_id, size, flags, internal_date); returns (uidvalidity, modseq, uids)."""
    first_uid, modseq = bump_mailbox(tx, mailbox_id, len(items))
    now = time.time()
    uids = list(range(first_uid, first_uid + len(items)))
    if items:
        tx.conn.execute(
            _INSERT_MAILBOX_MESSAGES,
            [
                {
                    "mailbox_id": mailbox_id,
                    "uid": uid,
                    "message_id": message_id,
                    "size": size,
                    "flags": flags,
                    "modseq": modseq,
                    "internal_date": internal_date,
                    "save_date": now,
                }
                for uid, (message_id, size, flags, internal_date) in zip(uids, items, strict=True)
            ],
        )
    uidvalidity = tx.conn.execute(_MAILBOX_UIDVALIDITY, {"mailbox": mailbox_id}).scalar_one()
    return uidvalidity, modseq, uids


def find_mailbox_row(tx: Tx, account_id: int, name: str):
    return tx.conn.execute(_MAILBOX_BY_NAME, {"account": account_id, "name": name}).first()


class Mailboxes:
    def __init__(self, db: Database, blobs: BlobStore, hub: Hub, node_id: str) -> None:
        self.db = db
        self.blobs = blobs
        self.hub = hub
        self.node_id = node_id
        # Keyed by blob hash: a summary is a function of the content alone, so an entry can never be
        # served for other content, whatever happens to message ids (compaction deletes rows).
        self._summary_cache: LruCache[str, MessageSummary] = LruCache(SUMMARY_CACHE_ENTRIES)
        # Keyed by the mailbox's object id: (the HIGHESTMODSEQ it is at, its refs in UID order).
        self._snapshot_cache: LruCache[str, tuple[int, tuple[MessageRef, ...]]] = LruCache(
            SNAPSHOT_CACHE_ENTRIES, max_weight=SNAPSHOT_CACHE_MESSAGES, weigh=lambda entry: len(entry[1])
        )
        self._snapshot_lock = threading.Lock()
        self._body_cache: LruCache[str, bytes] = LruCache(
            BODY_CACHE_ENTRIES, max_weight=BODY_CACHE_BYTES, weigh=len
        )
        # (account id, mailbox id) -> a recent cut this process saw committed. The cut only rises and
        # ids are never reused, so a claim up to at most this value has nothing to take (see
        # claim_recent); the entry exists only after a claim by that account succeeded.
        self._recent_cuts: LruCache[tuple[int, int], int] = LruCache(RECENT_CUT_ENTRIES)
        # (account id, mailbox id) -> (up to which UID, the claim's future): the claim in flight.
        self._recent_claims: dict[tuple[int, int], tuple[int, asyncio.Future]] = {}

    def _publish(self, tx: Tx, account_id: int, mailbox_id: int | None, kind: str, modseq: int = 0) -> None:
        publish(tx, self.hub, self.node_id, Change(account_id, mailbox_id, kind, modseq))

    # -- mailboxes -----------------------------------------------------------------------------

    async def list(self, account_id: int) -> list[Mailbox]:
        def op(tx: Tx) -> list[Mailbox]:
            rows = tx.conn.execute(
                select(s.mailboxes).where(s.mailboxes.c.account_id == account_id).order_by(s.mailboxes.c.name)
            )
            return [_mailbox(r) for r in rows]

        return await self.db.read(op)

    async def dangling_subscriptions(self, account_id: int) -> list[str]:
        """Subscribed names that have no mailbox (deleted since), sorted."""

        def op(tx: Tx) -> list[str]:
            _ds = s.dangling_subscriptions
            query = select(_ds.c.name).where(_ds.c.account_id == account_id).order_by(_ds.c.name)
            return list(tx.conn.execute(query).scalars())

        return await self.db.read(op)

    async def get(self, account_id: int, name: str) -> Mailbox:
        name = validate_mailbox_name(name)

        def op(tx: Tx) -> Mailbox:
            row = find_mailbox_row(tx, account_id, name)
            if row is None:
                raise NotFound(f"no mailbox named {name}")
            return _mailbox(row)

        return await self.db.read(op)

    async def get_by_id(self, account_id: int, mailbox_id: int) -> Mailbox:
        def op(tx: Tx) -> Mailbox:
            return _mailbox(_owned_mailbox(tx, account_id, mailbox_id))

        return await self.db.read(op)

    async def create(self, account_id: int, name: str, special_use: str | None = None) -> Mailbox:
        """Create `name` and any missing parents (RFC 3501 6.3.3)."""
        name = validate_mailbox_name(name)
        if special_use is not None and special_use not in SPECIAL_USES:
            raise StoreError(f"unsupported special-use attribute {special_use}")

        def op(tx: Tx) -> Mailbox:
            if find_mailbox_row(tx, account_id, name) is not None:
                raise AlreadyExists(f"mailbox {name} already exists")
            parts = name.split(DELIMITER)
            for depth in range(1, len(parts)):
                parent = DELIMITER.join(parts[:depth])
                if find_mailbox_row(tx, account_id, parent) is None:
                    create_mailbox_rows(tx, account_id, parent, None)
            mailbox_id = create_mailbox_rows(tx, account_id, name, special_use)
            self._publish(tx, account_id, mailbox_id, "mailbox")
            return _mailbox(tx.conn.execute(select(s.mailboxes).where(s.mailboxes.c.id == mailbox_id)).one())

        return await self.db.write(op)

    async def delete(self, account_id: int, name: str) -> None:
        """Delete a mailbox and its messages. INBOX cannot be deleted; children are kept."""
        name = validate_mailbox_name(name)
        if name == "INBOX":
            raise StoreError("INBOX cannot be deleted")

        def op(tx: Tx) -> None:
            row = find_mailbox_row(tx, account_id, name)
            if row is None:
                raise NotFound(f"no mailbox named {name}")
            freed = tx.conn.execute(
                select(func.coalesce(func.sum(s.mailbox_messages.c.size), 0)).where(
                    s.mailbox_messages.c.mailbox_id == row.id
                )
            ).scalar_one()
            tx.conn.execute(delete(s.mailbox_messages).where(s.mailbox_messages.c.mailbox_id == row.id))
            tx.conn.execute(delete(s.expunged).where(s.expunged.c.mailbox_id == row.id))
            tx.conn.execute(delete(s.mailboxes).where(s.mailboxes.c.id == row.id))
            if row.subscribed:  # the subscription outlives the mailbox (RFC 3501 6.3.6)
                tx.conn.execute(insert(s.dangling_subscriptions).values(account_id=account_id, name=name))
            charge_quota(tx, account_id, -int(freed))
            self._publish(tx, account_id, row.id, "mailbox")

        await self.db.write(op)

    async def rename(self, account_id: int, old: str, new: str) -> None:
        """Rename a mailbox and its children; renaming INBOX moves its messages (RFC 3501 6.3.5)."""
        old, new = validate_mailbox_name(old), validate_mailbox_name(new)

        def op(tx: Tx) -> None:
            row = find_mailbox_row(tx, account_id, old)
            if row is None:
                raise NotFound(f"no mailbox named {old}")
            if find_mailbox_row(tx, account_id, new) is not None:
                raise AlreadyExists(f"mailbox {new} already exists")
            if new == old or new.startswith(old + DELIMITER):
                raise StoreError("cannot rename a mailbox into itself")
            parts = new.split(DELIMITER)
            for depth in range(1, len(parts)):
                parent = DELIMITER.join(parts[:depth])
                if find_mailbox_row(tx, account_id, parent) is None:
                    create_mailbox_rows(tx, account_id, parent, None)
            if old == "INBOX":
                new_id = create_mailbox_rows(tx, account_id, new, None)
                refs = tx.conn.execute(
                    select(
                        s.mailbox_messages.c.uid,
                        s.mailbox_messages.c.message_id,
                        s.mailbox_messages.c.size,
                        s.mailbox_messages.c.flags,
                        s.mailbox_messages.c.internal_date,
                    )
                    .where(s.mailbox_messages.c.mailbox_id == row.id)
                    .order_by(s.mailbox_messages.c.uid)
                ).all()
                insert_into_mailbox(
                    tx, new_id, [(r.message_id, r.size, r.flags, r.internal_date) for r in refs]
                )
                _expunge_rows(tx, account_id, row.id, [r.uid for r in refs])
                self._publish(tx, account_id, row.id, "message")
            else:
                children = tx.conn.execute(
                    select(s.mailboxes.c.id, s.mailboxes.c.name).where(
                        s.mailboxes.c.account_id == account_id,
                        s.mailboxes.c.name.startswith(old + DELIMITER, autoescape=True),
                    )
                ).all()
                tx.conn.execute(update(s.mailboxes).where(s.mailboxes.c.id == row.id).values(name=new))
                renamed = [(row.id, new)]
                for child in children:
                    child_name = new + child.name[len(old) :]
                    tx.conn.execute(
                        update(s.mailboxes).where(s.mailboxes.c.id == child.id).values(name=child_name)
                    )
                    renamed.append((child.id, child_name))
                for mailbox_id, renamed_to in renamed:  # a kept subscription to the new name applies
                    if _drop_dangling(tx, account_id, renamed_to):
                        tx.conn.execute(
                            update(s.mailboxes).where(s.mailboxes.c.id == mailbox_id).values(subscribed=True)
                        )
            self._publish(tx, account_id, row.id, "mailbox")

        await self.db.write(op)

    async def set_subscribed(self, account_id: int, name: str, subscribed: bool) -> None:
        name = validate_mailbox_name(name)

        def op(tx: Tx) -> None:
            row = find_mailbox_row(tx, account_id, name)
            if row is None:
                # Only a mailbox that exists can be subscribed (RFC 3501 6.3.6 lets the server
                # check), but a subscription kept after its mailbox went can be dropped.
                if subscribed or not _drop_dangling(tx, account_id, name):
                    raise NotFound(f"no mailbox named {name}")
                return
            change = update(s.mailboxes).where(s.mailboxes.c.id == row.id).values(subscribed=subscribed)
            tx.conn.execute(change)
            # NOTIFY SubscriptionChange (RFC 5465 section 5.5) in other sessions and on other nodes.
            self._publish(tx, account_id, row.id, "subscription")

        await self.db.write_lazy(op)

    async def status(self, account_id: int, mailbox_id: int) -> MailboxStatus:
        def op(tx: Tx) -> MailboxStatus:
            box = _owned_mailbox(tx, account_id, mailbox_id)
            messages, size, unseen, deleted, first_unseen = tx.conn.execute(
                _COUNTS, {"mailbox": mailbox_id}
            ).one()
            recent = tx.conn.execute(_COUNT_ABOVE, {"mailbox": mailbox_id, "uid": box.recent_uid}).scalar()
            return MailboxStatus(
                messages=messages,
                unseen=unseen,
                deleted=deleted,
                size=int(size),
                uidnext=box.uidnext,
                uidvalidity=box.uidvalidity,
                highestmodseq=box.highestmodseq,
                first_unseen_uid=first_unseen,
                recent=recent,
            )

        return await self.db.read(op)

    # -- messages ------------------------------------------------------------------------------

    async def messages(self, account_id: int, mailbox_id: int) -> tuple[Mailbox, list[MessageRef]]:
        """The mailbox row and all its messages in UID order, read in one transaction (a snapshot).

        The last snapshot of each mailbox is kept with the HIGHESTMODSEQ it was read at: every
        change to a mailbox's messages bumps it (and a new mailbox starts at 1 with none), so an
        unchanged value means an unchanged list, and a changed one needs only what changed since
        (`changes_since`) folded in. A client re-selecting a large mailbox that others write to
        costs a few rows instead of one per message.
        """

        def op(tx: Tx, build: bool = True):
            box = _owned_mailbox(tx, account_id, mailbox_id)
            # object_id is random per mailbox creation: a reused row id never hits an old entry.
            with self._snapshot_lock:
                cached = self._snapshot_cache.get(box.object_id)
            refs = None
            if cached is not None and cached[0] <= box.highestmodseq:
                refs = cached[1]
                if cached[0] < box.highestmodseq:
                    refs = _advance_snapshot(tx, mailbox_id, cached[0], refs, on_loop=not build)
            if refs is None:
                if not build:
                    return box.uidnext - 1  # at least as many as the mailbox holds
                with without_cycle_collection():
                    refs = tuple(_ref(r) for r in tx.conn.execute(_REFS, {"mailbox": mailbox_id}))
            if cached is None or cached[1] is not refs:
                with self._snapshot_lock:
                    latest = self._snapshot_cache.get(box.object_id)
                    if latest is None or latest[0] <= box.highestmodseq:
                        self._snapshot_cache.put(box.object_id, (box.highestmodseq, refs))
            return _mailbox(box), list(refs)

        found = await self.db.read(op, False)
        if not isinstance(found, int):
            return found
        if found >= HEAVY_ROWS:
            # Turning 100,000 rows into refs takes the best part of a second: not on the loop.
            return await self.db.read_in_thread(op)
        return await self.db.read(op)

    async def claim_recent(self, account_id: int, mailbox_id: int, up_to_uid: int) -> int:
        """Raise the mailbox's recent cut to ``up_to_uid`` and return the cut it had before.

        The caller (an IMAP4rev1 session with the mailbox selected read-write) then sees the UIDs
        in (old cut, ``up_to_uid``] as \\Recent: exactly one session does, however many processes
        or nodes serve the account (RFC 3501 2.3.2), because the read and the raise happen under
        the mailbox row's lock.  Returns ``up_to_uid`` or more when there was nothing to claim.

        New mail wakes every session idling on the mailbox and each asks to claim it; only the
        first can get anything. So within this process a claim that an earlier or concurrent one
        covers is answered without a write: after the claim in flight commits, the cut is at least
        its ``up_to_uid``, and the cut never goes down. (10,000 IDLE sessions made 10,000 writes
        per new message before, every session's EXISTS waiting behind them.)
        """
        key = (account_id, mailbox_id)
        known = self._recent_cuts.get(key)
        if known is not None and known >= up_to_uid:
            return known
        in_flight = self._recent_claims.get(key)
        if in_flight is not None and in_flight[0] >= up_to_uid:
            try:
                await asyncio.shield(in_flight[1])
            except Exception:
                pass  # that claim failed: try our own, which reports why
            else:
                return in_flight[0]
        future = asyncio.ensure_future(self._claim_recent(account_id, mailbox_id, up_to_uid))
        entry = (up_to_uid, future)
        self._recent_claims[key] = entry
        try:
            before = await asyncio.shield(future)
        finally:
            if self._recent_claims.get(key) is entry:
                del self._recent_claims[key]
        known = self._recent_cuts.get(key)
        cut = max(before, up_to_uid)
        if known is None or known < cut:
            self._recent_cuts.put(key, cut)
        return before

    async def _claim_recent(self, account_id: int, mailbox_id: int, up_to_uid: int) -> int:
        def op(tx: Tx) -> int:
            query = _RECENT_CUT.with_for_update() if tx.is_postgres else _RECENT_CUT
            row = tx.conn.execute(query, {"mailbox": mailbox_id}).first()
            if row is None or row.account_id != account_id:
                raise NotFound("mailbox no longer exists")
            if row.recent_uid < up_to_uid:
                tx.conn.execute(_SET_RECENT_CUT, {"mailbox": mailbox_id, "cut": up_to_uid})
            return row.recent_uid

        return await self.db.write_lazy(op)

    async def changes_since(self, account_id: int, mailbox_id: int, modseq: int) -> Changes:
        """Messages added or changed, and UIDs expunged, after `modseq`."""

        def op(tx: Tx) -> Changes:
            box = _owned_mailbox(tx, account_id, mailbox_id)
            params = {"mailbox": mailbox_id, "modseq": modseq}
            changed = [_ref(r) for r in tx.conn.execute(_REFS_SINCE, params)]
            gone = tx.conn.execute(_EXPUNGED_SINCE, params).scalars()
            return Changes(box.highestmodseq, box.uidnext, changed, list(gone), box.recent_uid)

        return await self.db.read(op)

    async def expunged_since(self, account_id: int, mailbox_id: int, modseq: int) -> list[int]:
        """UIDs expunged after `modseq`, ascending (VANISHED (EARLIER) needs no more than these)."""

        def op(tx: Tx) -> list[int]:
            _check_owner(tx, account_id, mailbox_id)
            params = {"mailbox": mailbox_id, "modseq": modseq}
            return list(tx.conn.execute(_EXPUNGED_SINCE, params).scalars())

        return await self.db.read(op)

    async def append(
        self,
        account_id: int,
        mailbox_id: int,
        raw: bytes,
        flags: Iterable[str] = (),
        internal_date: float | None = None,
    ) -> tuple[int, int]:
        """Store a message in a mailbox (IMAP APPEND, Sent copies). Returns (uidvalidity, uid)."""
        results = await self.append_many(account_id, mailbox_id, [(raw, flags, internal_date)])
        return results[0]

    async def append_many(
        self,
        account_id: int,
        mailbox_id: int,
        items: list[tuple[bytes, Iterable[str], float | None]],
    ) -> list[tuple[int, int]]:
        """MULTIAPPEND: all messages or none (RFC 3502).

        Like SMTP acceptance, the messages are stored without their MIME analysis (summary NULL):
        the indexer or the first reader does it, so parsing never delays the APPEND's OK (nor, for
        a big message, the event loop), and content stored already is not analysed again."""
        prepared = []
        for raw, flags, internal_date in items:
            blob_hash = await self.blobs.prepare(raw)
            prepared.append((blob_hash, raw, format_flags(flags), internal_date or time.time()))

        def op(tx: Tx) -> list[tuple[int, int]]:
            _check_owner(tx, account_id, mailbox_id)
            self.blobs.insert_rows(tx, [(blob_hash, raw) for blob_hash, raw, _, _ in prepared])
            rows = []
            for blob_hash, raw, flags, internal_date in prepared:
                charge_quota(tx, account_id, len(raw))
                message_id = message_row(tx, blob_hash, len(raw), None, {})
                rows.append((message_id, len(raw), flags, internal_date))
            uidvalidity, modseq, uids = insert_into_mailbox(tx, mailbox_id, rows)
            self._publish(tx, account_id, mailbox_id, "message", modseq)
            return [(uidvalidity, uid) for uid in uids]

        return await self.db.write(op)

    async def store_flags(
        self,
        account_id: int,
        mailbox_id: int,
        uids: Iterable[int],
        mode: str,
        flags: Iterable[str],
        unchanged_since: int | None = None,
    ) -> tuple[list[MessageRef], list[int]]:
        """Change flags: mode is "add", "remove" or "replace".

        Returns (messages whose flags changed, with their new modseq; UIDs refused because their
        modseq is above `unchanged_since` (RFC 7162 3.1.3)). Messages whose flags would not change
        are left alone and not reported.
        """
        if mode not in ("add", "remove", "replace"):
            raise ValueError(mode)
        wanted = {normalise_flag(f) for f in flags if f.lower() != "\\recent"}
        uid_list = sorted(set(uids))

        def op(tx: Tx):
            _check_owner(tx, account_id, mailbox_id)
            rows = []
            for chunk in _chunks(uid_list, 500):
                rows.extend(tx.conn.execute(_FLAG_REFS, {"mailbox": mailbox_id, "uids": chunk}).all())
            refused = []
            updates = []
            for row in rows:
                if unchanged_since is not None and row.modseq > unchanged_since:
                    refused.append(row.uid)
                    continue
                current = set(parse_flags(row.flags))
                if mode == "add":
                    new = current | wanted
                elif mode == "remove":
                    new = current - wanted
                else:
                    new = set(wanted)
                if new != current:
                    updates.append((row, format_flags(new)))
            if not updates:
                return [], sorted(refused)
            _, modseq = bump_mailbox(tx, mailbox_id)
            tx.conn.execute(
                _SET_FLAGS,
                [{"row": row.id, "new_flags": text, "new_modseq": modseq} for row, text in updates],
            )
            changed = [
                MessageRef(
                    row.uid,
                    row.message_id,
                    row.blob_hash,
                    row.size,
                    parse_flags(text),
                    modseq,
                    row.internal_date,
                    row.save_date,
                )
                for row, text in updates
            ]
            self._publish(tx, account_id, mailbox_id, "message", modseq)
            return changed, sorted(refused)

        return await self.db.write_lazy(op)

    async def copy(
        self, account_id: int, source_id: int, uids: Iterable[int], target_id: int, move: bool = False
    ) -> tuple[int, list[tuple[int, int]]]:
        """Copy (or move) messages by UID; returns (target uidvalidity, [(source uid, target uid)])."""
        uid_list = sorted(set(uids))

        def op(tx: Tx):
            for box_id in (source_id, target_id):
                _check_owner(tx, account_id, box_id)
            rows = []
            for chunk in _chunks(uid_list, 500):
                rows.extend(tx.conn.execute(_COPY_ROWS, {"mailbox": source_id, "uids": chunk}).all())
            if not rows:
                uidvalidity = tx.conn.execute(_MAILBOX_UIDVALIDITY, {"mailbox": target_id}).scalar_one()
                return uidvalidity, []
            if not move:
                charge_quota(tx, account_id, sum(r.size for r in rows))
            uidvalidity, modseq, new_uids = insert_into_mailbox(
                tx, target_id, [(r.message_id, r.size, r.flags, r.internal_date) for r in rows]
            )
            self._publish(tx, account_id, target_id, "message", modseq)
            if move:
                source_modseq = _expunge_rows(tx, account_id, source_id, [r.uid for r in rows])
                self._publish(tx, account_id, source_id, "message", source_modseq)
            return uidvalidity, [(r.uid, new) for r, new in zip(rows, new_uids, strict=True)]

        return await self.db.write(op)

    async def expunge(self, account_id: int, mailbox_id: int, uids: Iterable[int] | None = None) -> list[int]:
        """Remove messages flagged \\Deleted (only those in `uids` when given). Returns expunged UIDs."""
        uid_filter = sorted(set(uids)) if uids is not None else None

        def op(tx: Tx) -> list[int]:
            _check_owner(tx, account_id, mailbox_id)
            if uid_filter is None:
                rows = tx.conn.execute(_DELETED_UIDS, {"mailbox": mailbox_id}).all()
            else:  # UID EXPUNGE: only the named messages need reading
                rows = []
                for chunk in _chunks(uid_filter, 500):
                    rows.extend(tx.conn.execute(_FLAG_ROWS, {"mailbox": mailbox_id, "uids": chunk}).all())
            targets = sorted(r.uid for r in rows if "\\Deleted" in r.flags.split())
            if not targets:
                return []
            modseq = _expunge_rows(tx, account_id, mailbox_id, targets)
            self._publish(tx, account_id, mailbox_id, "message", modseq)
            return sorted(targets)

        return await self.db.write_lazy(op)

    async def delete_messages(self, account_id: int, mailbox_id: int, uids: Iterable[int]) -> list[int]:
        """Remove messages outright regardless of flags (POP3 DELE at QUIT). Returns removed UIDs."""
        uid_list = sorted(set(uids))

        def op(tx: Tx) -> list[int]:
            _check_owner(tx, account_id, mailbox_id)
            present = []
            for chunk in _chunks(uid_list, 500):
                present.extend(
                    tx.conn.execute(_PRESENT_UIDS, {"mailbox": mailbox_id, "uids": chunk}).scalars()
                )
            if not present:
                return []
            modseq = _expunge_rows(tx, account_id, mailbox_id, present)
            self._publish(tx, account_id, mailbox_id, "message", modseq)
            return sorted(present)

        return await self.db.write_lazy(op)

    async def summaries(self, account_id: int, refs: Iterable[MessageRef]) -> dict[int, MessageSummary]:
        """Parsed summaries by messages.id, for messages the account holds (absent: the message is
        gone, or not the account's). A process-wide cache keyed by content serves every session:
        contents never change, and every client asks for the same ones again. A hit needs the
        content hash, which only the content's holder knows; a miss reads the row through the
        account's own mailboxes."""
        found: dict[int, MessageSummary] = {}
        missing = []
        for ref in refs:
            summary = self._summary_cache.get(ref.blob_hash)
            if summary is None:
                missing.append(ref)
            else:
                found[ref.message_id] = summary
        if missing:
            hashes = {ref.message_id: ref.blob_hash for ref in missing}
            for message_id, text in (await self.summaries_json(account_id, missing)).items():
                try:
                    summary = MessageSummary.from_json(text)
                except Exception:  # written by an older version, or damaged: analyse the body again
                    log.warning("summary of message %d unreadable; analysing it again", message_id)
                    await self._index([(message_id, hashes[message_id])], replace=True)
                    summary = self._summary_cache.get(hashes[message_id])
                    if summary is None:
                        continue
                self._summary_cache.put(hashes[message_id], summary)
                found[message_id] = summary
        return found

    async def summaries_json(self, account_id: int, refs: Iterable[MessageRef]) -> dict[int, str]:
        """Analysed summaries by messages.id of the account's messages; messages not indexed yet
        are analysed now (and saved). A row whose content is not the ref's is left out."""
        wanted = {ref.message_id: ref.blob_hash for ref in refs}
        ids = sorted(wanted)

        def op(tx: Tx) -> list:
            rows = []
            for chunk in _chunks(ids, 500):
                rows.extend(tx.conn.execute(_SUMMARIES, {"ids": chunk, "account": account_id}).all())
            return [r for r in rows if r.blob_hash == wanted[r.id]]

        rows = await self.db.read(op)
        out = {r.id: r.summary for r in rows if r.summary is not None}
        missing = [(r.id, r.blob_hash) for r in rows if r.summary is None]
        if missing:
            out.update(await self._index(missing))
        return out

    async def index_pending(self, limit: int = 200) -> int:
        """Analyse up to `limit` messages stored without a summary (the background indexer).

        The batch's small bodies come with the list in one read (in a thread: up to `limit`
        bodies of up to `HEAVY_BYTES`); one read transaction per body cost the indexer as much
        as the analysis itself."""

        def op(tx: Tx) -> list:
            return tx.conn.execute(_PENDING_INDEX, {"limit": limit}).all()

        rows = await self.db.read_in_thread(op)
        if rows:
            await self._index([(r.id, r.blob_hash) for r in rows], bodies={r.id: r.data for r in rows})
        return len(rows)

    async def _index(
        self,
        messages: list[tuple[int, str]],
        replace: bool = False,
        bodies: dict[int, bytes | None] | None = None,
    ) -> dict[int, str]:
        """Analyse (message id, blob hash) pairs and save their summaries: only where none is stored
        yet, or over the stored one with `replace` (an unreadable summary). `bodies` may hold
        some of the bodies already read, by message id."""
        from tidings.mail.ingest import prepare

        prepared = {}
        pacer = Pacer()
        for message_id, blob_hash in messages:
            raw = bodies.get(message_id) if bodies else None
            if raw is None:
                try:
                    raw = await self.blobs.get(blob_hash)
                except NotFound:
                    continue
            else:
                raw = bytes(raw)
            # A big message is analysed in the heavy-work pool; small ones here, with a yield
            # between them so a batch of hundreds is not one long step of the loop.
            if is_heavy(len(raw)):
                message = await offload(prepare, raw, blob_hash)
            else:
                message = prepare(raw, blob_hash)
                await pacer.tick()
            prepared[message_id] = message
            self._summary_cache.put(blob_hash, message.summary)

        def op(tx: Tx) -> None:
            # One statement for the whole batch (executemany), not one per message: this runs
            # inside the group commit that SMTP acceptances wait on.
            tx.conn.execute(
                _REPLACE_SUMMARY if replace else _SAVE_SUMMARY,
                [
                    {"message": message_id, "summary_json": message.summary_json}
                    | {f"new_{name}": value for name, value in message.fields.items()}
                    for message_id, message in prepared.items()
                ],
            )

        if prepared:
            await self.db.write_lazy(op)
        return {message_id: message.summary_json for message_id, message in prepared.items()}

    async def read_blob(self, blob_hash: str) -> bytes:
        """A message body, through a process-wide cache of recently read ones."""
        raw = self._body_cache.get(blob_hash)
        if raw is None:
            raw = await self.blobs.get(blob_hash)
            self._body_cache.put(blob_hash, raw)
        return raw


def _expunge_rows(tx: Tx, account_id: int, mailbox_id: int, uids: list[int]) -> int:
    """Delete rows of the account's mailbox (the caller checked it is the account's), remember
    them for QRESYNC, give back quota. Returns the new modseq."""
    _, modseq = bump_mailbox(tx, mailbox_id)
    freed = 0
    for chunk in _chunks(uids, 500):
        freed += sum(tx.conn.execute(_DELETE_UIDS, {"mailbox": mailbox_id, "uids": chunk}).scalars())
    tx.conn.execute(
        _INSERT_EXPUNGED, [{"mailbox_id": mailbox_id, "uid": uid, "modseq": modseq} for uid in uids]
    )
    charge_quota(tx, account_id, -int(freed))
    return modseq


# Changes folded into a cached snapshot one by one (bisect, then replace or delete in place); more
# are folded in one pass over the whole list.
FEW_CHANGES = 64


def _advance_snapshot(
    tx: Tx, mailbox_id: int, modseq: int, refs: tuple[MessageRef, ...], on_loop: bool
) -> tuple[MessageRef, ...] | None:
    """`refs`, the mailbox's messages at `modseq`, brought to the transaction's state by what
    changed since; None when that is better done by reading the whole list again (or, `on_loop`,
    a pass over a big list that belongs in a thread)."""
    params = {"mailbox": mailbox_id, "modseq": modseq}
    changed = [_ref(r) for r in tx.conn.execute(_REFS_SINCE, params)]
    gone = set(tx.conn.execute(_EXPUNGED_SINCE, params).scalars())
    last = refs[-1].uid if refs else 0
    # UIDs only grow: a message above the snapshot's last UID is new, one below it was in the list.
    updated = [ref for ref in changed if ref.uid <= last]
    arrived = [ref for ref in changed if ref.uid > last and ref.uid not in gone]
    if len(updated) + len(gone) <= FEW_CHANGES:
        out = list(refs)
        for ref in updated:
            index = bisect_left(out, ref.uid, key=_uid_of)
            if index == len(out) or out[index].uid != ref.uid:
                return None  # not where it must be: read the list afresh
            out[index] = ref
        for uid in sorted(gone, reverse=True):
            index = bisect_left(out, uid, key=_uid_of)
            if index < len(out) and out[index].uid == uid:
                del out[index]
    else:
        if on_loop and len(refs) >= HEAVY_ROWS:
            return None
        fresh = {ref.uid: ref for ref in updated}
        out = [fresh.pop(ref.uid, ref) for ref in refs if ref.uid not in gone]
        if fresh:
            return None
    out += arrived
    return tuple(out)


def _uid_of(ref: MessageRef) -> int:
    return ref.uid


def _owned_mailbox(tx: Tx, account_id: int, mailbox_id: int):
    """The mailbox row, if it exists and is the account's: another account's mailbox is reported
    exactly like a missing one, so ids reveal nothing."""
    box = tx.conn.execute(_MAILBOX, {"mailbox": mailbox_id}).first()
    if box is None or box.account_id != account_id:
        raise NotFound("mailbox no longer exists")
    return box


def _check_owner(tx: Tx, account_id: int, mailbox_id: int) -> None:
    if tx.conn.execute(_MAILBOX_OWNER, {"mailbox": mailbox_id}).scalar() != account_id:
        raise NotFound("mailbox no longer exists")


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]
