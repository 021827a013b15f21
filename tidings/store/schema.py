"""The database schema: one SQLAlchemy Core metadata for SQLite and PostgreSQL.

Only the store package imports this. Changing a table means adding an Alembic revision under
store/migrations/versions; the tests check that the migrations produce exactly this metadata.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# A superset of the entries flagged \\Deleted (the caller checks the exact flag): the condition of a
# partial index, which SQLite uses only for a query that repeats it word for word, so queries take
# this text too. ESCAPE '/' keeps the backslash literal on PostgreSQL.
FLAGGED_DELETED = "flags LIKE '%\\Deleted%' ESCAPE '/'"

# Times are stored as float seconds since the epoch (UTC): identical on both databases, cheap to compare.
#
# Row ids are never reused: a session, a cache or a queue entry that still holds an old id must find
# nothing rather than someone else's row. SQLite would otherwise hand the highest id out again after
# a delete, so every table with an integer id declares sqlite_autoincrement; PostgreSQL sequences
# never go back anyway.

domains = Table(
    "domains",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(253), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("dkim_selector", String(63)),
    Column("dkim_private_key", Text),
    sqlite_autoincrement=True,
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("domain_id", ForeignKey("domains.id", ondelete="CASCADE"), nullable=False),
    Column("address", String(320), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("quota_bytes", BigInteger),
    Column("used_bytes", BigInteger, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    # Highest UIDVALIDITY handed out to any of the account's mailboxes, deleted ones included, so a
    # mailbox re-created under an old name never gets an old UIDVALIDITY back (RFC 9051 2.3.1.1).
    Column("last_uidvalidity", BigInteger, nullable=False, default=0),
    # Goes up when the account is disabled: a session that logged in under an older value must end
    # (see tidings/auth/logins.py), even if the account is enabled again before it notices.
    Column("session_generation", BigInteger, nullable=False, default=0),
    # SCRAM-SHA-256 (RFC 5802/7677) verifiers, derived whenever the password is set and, for
    # accounts older than them, at the next password login; NULL until then. Used by SASL
    # SCRAM-SHA-256(-PLUS) on every protocol; the chat server may use the same keys.
    Column("scram_sha256_salt", LargeBinary),
    Column("scram_sha256_iterations", Integer),
    Column("scram_sha256_stored_key", LargeBinary),
    Column("scram_sha256_server_key", LargeBinary),
    # May use the web client's admin console (`tidings user add --admin`, `tidings user admin`).
    Column("is_admin", Boolean, nullable=False, default=False),
    sqlite_autoincrement=True,
)

# Login throttling (auth/throttle.py, store/login_attempts.py): per (kind, key) -- kind "ip" with
# the client key, or "account" with the canonical account -- the failures since `window_start` and
# the attempts whose password is being checked right now. Shared by every node on one database.
login_attempts = Table(
    "login_attempts",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("key", String(320), primary_key=True),
    Column("window_start", Float, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("pending", Integer, nullable=False),
    Column("pending_at", Float, nullable=False),
)

# "This account was removed or disabled": running servers (other processes, other nodes) read new
# rows and end the account's open sessions (store/account_events.py). No foreign key: the account
# is gone when its removal is read. Rows older than a day are pruned.
account_events = Table(
    "account_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_account_events_created", "created_at"),
    sqlite_autoincrement=True,
)

aliases = Table(
    "aliases",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("domain_id", ForeignKey("domains.id", ondelete="CASCADE"), nullable=False),
    # "local@domain", or "@domain" for a catch-all.
    Column("source", String(320), nullable=False),
    Column("target", String(320), nullable=False),
    UniqueConstraint("source", "target", name="uq_aliases_source_target"),
    Index("ix_aliases_source", "source"),
    sqlite_autoincrement=True,
)

mailboxes = Table(
    "mailboxes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    # Full hierarchical name in UTF-8 with "/" as the hierarchy delimiter; INBOX is spelt "INBOX".
    Column("name", String(1024), nullable=False),
    Column("uidvalidity", BigInteger, nullable=False),
    Column("uidnext", BigInteger, nullable=False, default=1),
    Column("highestmodseq", BigInteger, nullable=False, default=1),
    Column("special_use", String(32)),
    Column("subscribed", Boolean, nullable=False, default=True),
    Column("object_id", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    # The "recent cut" (RFC 3501 2.3.2 \Recent): the highest UID some IMAP4rev1 session that
    # selected the mailbox read-write has already claimed.  Messages above it are \Recent for the
    # next such session, which claims them by raising it; kept here so it holds across processes.
    Column("recent_uid", BigInteger, nullable=False, default=0, server_default="0"),
    UniqueConstraint("account_id", "name", name="uq_mailboxes_account_name"),
    sqlite_autoincrement=True,
)

# Subscriptions to names that have no mailbox: a subscription outlives the mailbox it names
# (RFC 3501 6.3.6 "MUST NOT unilaterally remove"), and LIST (SUBSCRIBED) shows it \NonExistent
# (RFC 5258).  While the mailbox exists its subscription is mailboxes.subscribed instead; creating
# (or renaming onto) the name moves it back there.
dangling_subscriptions = Table(
    "dangling_subscriptions",
    metadata,
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(1024), primary_key=True),
)

# One row per distinct message content (deduplicated by blob hash): what parsing found, stored once.
messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("blob_hash", String(64), nullable=False, unique=True),
    Column("size", BigInteger, nullable=False),
    Column("subject", Text),
    Column("from_addr", Text),
    Column("to_addrs", Text),
    Column("sent_date", Float),
    Column("message_id", Text),
    # mail.analyse() result as JSON: envelope, body structure, part offsets, threading fields.
    # NULL until indexed: SMTP acceptance stores the body only; the indexer (or the first reader)
    # analyses it once, off the path that says "250 OK".
    Column("summary", Text),
    Column("created_at", Float, nullable=False),
    # Set by the search indexer (store/search.py) when it puts the message's words in the full-text
    # index `message_text`; NULL until then, which makes it that indexer's work list.
    Column("has_attachment", Boolean),
    # The indexer's work list: only the messages still without a summary (a handful), so finding
    # them does not read the whole table (55-100 ms per batch on a store of 100,000 messages).
    Index(
        "ix_messages_unindexed",
        "id",
        sqlite_where=text("summary IS NULL"),
        postgresql_where=text("summary IS NULL"),
    ),
    Index(
        "ix_messages_unsearchable",
        "id",
        sqlite_where=text("has_attachment IS NULL"),
        postgresql_where=text("has_attachment IS NULL"),
    ),
    sqlite_autoincrement=True,
)

# The full-text index `message_text` is not declared here: it is a different kind of table on
# each database (an FTS5 table on SQLite, a tsvector with a GIN index on PostgreSQL), made by
# migration 0012 and used only by store/search.py.
BACKEND_SPECIFIC_TABLES = ("message_text",)


def is_backend_specific(table_name: str) -> bool:
    """Tables outside `metadata` on purpose: `message_text` and FTS5's own tables behind it."""
    return any(table_name == t or table_name.startswith(t + "_") for t in BACKEND_SPECIFIC_TABLES)


# A message in a mailbox: the IMAP view (UID, flags, modseq).
mailbox_messages = Table(
    "mailbox_messages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("mailbox_id", ForeignKey("mailboxes.id", ondelete="CASCADE"), nullable=False),
    Column("uid", BigInteger, nullable=False),
    Column("message_id", ForeignKey("messages.id"), nullable=False),
    Column("size", BigInteger, nullable=False),
    # Space-separated, sorted; system flags keep their backslash ("\\Seen $Forwarded").
    Column("flags", Text, nullable=False, default=""),
    Column("modseq", BigInteger, nullable=False),
    Column("internal_date", Float, nullable=False),
    Column("save_date", Float, nullable=False),
    UniqueConstraint("mailbox_id", "uid", name="uq_mailbox_messages_mailbox_uid"),
    Index("ix_mailbox_messages_modseq", "mailbox_id", "modseq"),
    Index("ix_mailbox_messages_message", "message_id"),
    # Date order within a mailbox: a search's page is a short walk along it (store/search.py).
    Index("ix_mailbox_messages_date", "mailbox_id", "internal_date", "id"),
    # The web client's message list sorted by size: a page is a walk along it (store/mail_views.py).
    Index("ix_mailbox_messages_size", "mailbox_id", "size", "uid"),
    # The unseen entries of each mailbox, so an unread count reads only them. `\Seen` cannot be
    # part of any other flag (keywords have no backslash), so "not in the text" is "not seen".
    # Queries must repeat the condition word for word (UNSEEN in mail_views.py) to use it.
    Index(
        "ix_mailbox_messages_unseen",
        "mailbox_id",
        sqlite_where=text("instr(flags, '\\Seen') = 0"),
        postgresql_where=text("strpos(flags, '\\Seen') = 0"),
    ),
    # EXPUNGE's work list: the entries flagged \\Deleted, found without reading every entry of the
    # mailbox (a LIKE over each of 100,000 in the writer, holding the write lock for all others).
    Index(
        "ix_mailbox_messages_deleted",
        "mailbox_id",
        "uid",
        sqlite_where=text(FLAGGED_DELETED),
        postgresql_where=text(FLAGGED_DELETED),
    ),
    sqlite_autoincrement=True,
)

# Expunged UIDs with the modseq of their expunge, for QRESYNC's VANISHED (RFC 7162 3.2.10).
expunged = Table(
    "expunged",
    metadata,
    Column("mailbox_id", ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True),
    Column("uid", BigInteger, primary_key=True),
    Column("modseq", BigInteger, nullable=False),
)

# RFC 8474 THREADID, per account (see store/threads.py): the thread of each message an account
# holds, and the (Message-ID, base subject) digests that lead later messages into a thread.
# thread_id is the messages.id of the thread's first message.
message_threads = Table(
    "message_threads",
    metadata,
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("message_id", ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
    Column("thread_id", BigInteger, nullable=False),
    Index("ix_message_threads_thread", "account_id", "thread_id"),
)

thread_links = Table(
    "thread_links",
    metadata,
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("link", String(32), primary_key=True),
    Column("thread_id", BigInteger, nullable=False),
)

# IMAP METADATA (RFC 5464, see store/metadata.py): server entries per account, mailbox entries
# per mailbox.  Names lower-case ("/private/comment"), values as sent.
account_metadata = Table(
    "account_metadata",
    metadata,
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("value", LargeBinary, nullable=False),
)

mailbox_metadata = Table(
    "mailbox_metadata",
    metadata,
    Column("mailbox_id", ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("value", LargeBinary, nullable=False),
)

# URLAUTH (RFC 4467, see store/urlauth.py): the random access key that signs a mailbox's
# authorised URLs; RESETKEY and DELETE remove it, which voids every URL it signed.
urlauth_keys = Table(
    "urlauth_keys",
    metadata,
    Column("mailbox_id", ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True),
    Column("access_key", LargeBinary, nullable=False),
)

queue = Table(
    "queue",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("sender", String(320), nullable=False),  # "" is the null reverse-path
    Column("blob_hash", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("release_at", Float, nullable=False),  # scheduled sending: not before this time
    Column("next_attempt_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("envid", String(100)),
    Column("ret", String(4)),  # DSN RET=FULL|HDRS
    Column("smtputf8", Boolean, nullable=False, default=False),
    Column("body_8bit", Boolean, nullable=False, default=False),
    Column("account_id", Integer),  # the submitting account, if any
    Column("delay_warned", Boolean, nullable=False, default=False),
    Column("claimed_by", String(128)),
    Column("claimed_until", Float),
    Index("ix_queue_next", "next_attempt_at"),
    sqlite_autoincrement=True,
)

queue_recipients = Table(
    "queue_recipients",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("queue_id", ForeignKey("queue.id", ondelete="CASCADE"), nullable=False),
    Column("address", String(320), nullable=False),
    Column("domain", String(253), nullable=False),
    # pending | delivered | failed
    Column("status", String(16), nullable=False, default="pending"),
    Column("notify", String(64)),  # DSN NOTIFY=...
    Column("orcpt", String(400)),
    Column("last_error", Text),
    Column("remote_mta", String(253)),
    Column("updated_at", Float),
    Index("ix_queue_recipients_queue", "queue_id"),
    sqlite_autoincrement=True,
)

# Message bodies up to the inline limit, content-addressed (see store/blobs.py).
blob_data = Table(
    "blob_data",
    metadata,
    Column("hash", String(64), primary_key=True),
    Column("data", LargeBinary, nullable=False),
)

# -- PIM: contacts, calendars, journals (see store/pim.py) -------------------------------------
#
# The web client and CalDAV/CardDAV read and write these same rows: a collection is an address
# book or a calendar (a journal is a calendar whose components are VJOURNAL), an object is one
# vCard or one iCalendar resource (every component sharing one UID, RFC 4791 4.1). The raw text
# is the source of truth; the other object columns are derived from it on every write, for
# queries that must not parse every object (time ranges, autocomplete, search).

pim_collections = Table(
    "pim_collections",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    # "addressbook" | "calendar"
    Column("kind", String(16), nullable=False),
    # The URL segment under the owner's home set (DAV) and the default's role: "contacts",
    # "calendar" and "journal" are the collections made on first use.
    Column("name", String(255), nullable=False),
    Column("display_name", Text, nullable=False),
    Column("colour", String(32)),
    Column("description", Text),
    # Space-separated supported components of a calendar ("VEVENT VTODO"); "" for an address book.
    Column("components", String(64), nullable=False, default=""),
    # CalDAV calendar-timezone (a VCALENDAR holding one VTIMEZONE), if a client set it.
    Column("timezone", Text),
    # Other WebDAV properties clients set with PROPPATCH, as JSON {"{ns}name": "xml text"}.
    Column("properties", Text),
    # The change counter: goes up by one on every change to the collection's objects; an
    # object's modseq and the change log use its values. Sync tokens (RFC 6578) and CTags are it.
    Column("sync_seq", BigInteger, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("account_id", "kind", "name", name="uq_pim_collections_account_kind_name"),
    sqlite_autoincrement=True,
)

pim_objects = Table(
    "pim_objects",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("collection_id", ForeignKey("pim_collections.id", ondelete="CASCADE"), nullable=False),
    # The resource name inside the collection ("<uid>.vcf", or whatever a DAV client chose).
    Column("href", String(255), nullable=False),
    Column("uid", String(255), nullable=False),
    # Hex digest of `data`: changes on every edit, so If-Match refuses a stale write.
    Column("etag", String(64), nullable=False),
    Column("data", Text, nullable=False),
    Column("size", Integer, nullable=False),
    # "VCARD" | "VEVENT" | "VTODO" | "VJOURNAL"
    Column("component", String(16), nullable=False),
    # For cards: "individual" | "group" | "org" | "location" (vCard 4.0 KIND, or Apple's
    # X-ADDRESSBOOKSERVER-KIND in 3.0); NULL for calendar objects.
    Column("card_kind", String(16)),
    # The collection's sync_seq when the object last changed.
    Column("modseq", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # Derived, for lists and queries: a card's formatted name or a component's SUMMARY.
    Column("title", Text, nullable=False, default=""),
    # A card's e-mail addresses, lower-case, one per line (autocomplete).
    Column("emails", Text, nullable=False, default=""),
    # CATEGORIES (journal tags, contact groups by category), one per line.
    Column("categories", Text, nullable=False, default=""),
    # Lower-case text searched by the web client (names, addresses, summary, description...).
    Column("search_text", Text, nullable=False, default=""),
    # Calendar objects: the earliest start and latest end over every instance (seconds, UTC;
    # floating times and dates read as UTC), last_end NULL when the recurrence never ends.
    # A time-range query reads rows whose [first_start, last_end) meets the range, then expands.
    Column("first_start", Float),
    Column("last_end", Float),
    Column("recurs", Boolean, nullable=False, default=False),
    Column("all_day", Boolean, nullable=False, default=False),
    UniqueConstraint("collection_id", "href", name="uq_pim_objects_collection_href"),
    UniqueConstraint("collection_id", "uid", name="uq_pim_objects_collection_uid"),
    Index("ix_pim_objects_time", "collection_id", "first_start"),
    sqlite_autoincrement=True,
)

# RFC 6578 sync-collection: the latest change of each resource name, with the collection's
# sync_seq at that change; a deleted resource keeps its row (deleted true) so clients holding an
# older token hear of the deletion. One row per href keeps the log as small as the collection.
pim_changes = Table(
    "pim_changes",
    metadata,
    Column("collection_id", ForeignKey("pim_collections.id", ondelete="CASCADE"), primary_key=True),
    Column("href", String(255), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("deleted", Boolean, nullable=False),
    Index("ix_pim_changes_seq", "collection_id", "seq"),
)

# Sharing a collection with another account or with every account of a domain, read-only or
# read-write (the web client's and DAV's sharing; see store/pim.py for who may do what).
pim_shares = Table(
    "pim_shares",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("collection_id", ForeignKey("pim_collections.id", ondelete="CASCADE"), nullable=False),
    # Exactly one of the two is set.
    Column("grantee_account_id", ForeignKey("accounts.id", ondelete="CASCADE")),
    Column("grantee_domain_id", ForeignKey("domains.id", ondelete="CASCADE")),
    # "read" | "read-write"
    Column("access", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_pim_shares_collection", "collection_id"),
    Index("ix_pim_shares_account", "grantee_account_id"),
    Index("ix_pim_shares_domain", "grantee_domain_id"),
    sqlite_autoincrement=True,
)

# Web client sessions (store/web_sessions.py): the browser holds a random token in a cookie; only
# its SHA-256 is stored, so a copy of the database opens no session. `generation` is the account's
# session_generation at login: a disabled account's web sessions end like its IMAP ones.
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("generation", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_seen_at", Float, nullable=False),
    Column("client", String(200), nullable=False, default=""),
    Index("ix_web_sessions_account", "account_id"),
    sqlite_autoincrement=True,
)


# What happened to mail, for the admin console (store/traffic.py): "received" (a message put into
# local mailboxes; `recipient` is the first of `recipients`), and per outbound recipient attempt
# "delivered", "deferred" (with the reason in `detail`) or "failed". Insert-only (no row is shared
# by concurrent deliveries); rows older than store.traffic.KEPT are pruned.
delivery_log = Table(
    "delivery_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", Float, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("sender", String(320), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("recipients", Integer, nullable=False, default=1),
    Column("size", BigInteger),
    Column("queue_id", Integer),
    Column("detail", Text),
    Index("ix_delivery_log_at", "at"),
    sqlite_autoincrement=True,
)

# The outbound queue's length, sampled every few minutes by the primary worker (store/traffic.py).
queue_samples = Table(
    "queue_samples",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", Float, nullable=False),
    Column("length", Integer, nullable=False),
    Index("ix_queue_samples_at", "at"),
    sqlite_autoincrement=True,
)

# Sender identities of an account (store/identities.py): a display name, one of the addresses the
# account may send as, and a signature; the web client's compose offers them.
identities = Table(
    "identities",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("address", String(320), nullable=False),
    Column("signature", Text, nullable=False, default=""),
    Column("is_default", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Index("ix_identities_account", "account_id"),
    sqlite_autoincrement=True,
)

# Sieve scripts per account (RFC 5228; store/rules.py): at most one active, which the rules engine
# runs at delivery and ManageSieve (RFC 5804) lists and edits. The web client's filter, vacation and
# forwarding settings are one generated script named "tidings-web".
sieve_scripts = Table(
    "sieve_scripts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("content", Text, nullable=False),
    Column("active", Boolean, nullable=False, default=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("account_id", "name", name="uq_sieve_scripts_account_name"),
    sqlite_autoincrement=True,
)
