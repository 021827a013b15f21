"""The store: the one place that knows about SQL and blob files.

Protocols use `Store` and the typed results of its parts (`accounts`, `login_attempts`, `mailboxes`,
`threads`, `metadata`, `urls`, `queue`, `delivery`, `search`, `pim`, `scheduling`, `mail_views`,
`mail_threads`, `web_sessions`, `traffic`, `identities`, `rules`); none of them builds a query or opens a
blob file. `Store.open` runs pending Alembic migrations, so a new data directory or an upgraded one is
ready before any listener starts.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tidings.config import Config
from tidings.notify import Hub
from tidings.store.accounts import Accounts
from tidings.store.blobs import BlobStore
from tidings.store.database import AliasLoop, AlreadyExists, Database, NotFound, OverQuota, StoreError
from tidings.store.delivery import AcceptResult, Delivery, Envelope
from tidings.store.identities import Identities
from tidings.store.login_attempts import LoginAttempts
from tidings.store.mail_views import MailThreads, MailViews
from tidings.store.mailboxes import Mailboxes
from tidings.store.metadata import Metadata
from tidings.store.migrate import migrate
from tidings.store.pim import Pim
from tidings.store.queue import Queue
from tidings.store.rules import Rules
from tidings.store.scheduling import Scheduling
from tidings.store.search import Search
from tidings.store.threads import Threads
from tidings.store.traffic import Traffic
from tidings.store.urlauth import UrlAccess
from tidings.store.web_sessions import WebSessions


class Store:
    def __init__(self, config: Config, db: Database, blobs: BlobStore, hub: Hub) -> None:
        self.config = config
        self.db = db
        self.blobs = blobs
        self.hub = hub
        self.node_id = config.node_id
        self.accounts = Accounts(db, hub, self.node_id)
        self.login_attempts = LoginAttempts(db)
        self.mailboxes = Mailboxes(db, blobs, hub, self.node_id)
        self.threads = Threads(db, self.mailboxes)
        self.metadata = Metadata(db, hub, self.node_id)
        self.urls = UrlAccess(db, self.accounts, self.mailboxes)
        self.queue = Queue(db)
        self.delivery = Delivery(db, blobs, hub, self.node_id)
        self.search = Search(db, blobs)
        self.pim = Pim(db)
        self.scheduling = Scheduling(db, self.pim, self.accounts)
        # iTIP messages delivered to local accounts update their calendars (store/scheduling.py).
        self.delivery.after_local_delivery = self.scheduling.incoming
        self.mail_views = MailViews(db)
        self.mail_threads = MailThreads(db)
        self.web_sessions = WebSessions(db, config.web.session_idle, config.web.session_max_age)
        self.traffic = Traffic(db)
        self.identities = Identities(db, self.accounts)
        self.rules = Rules(db)
        self._listener = None

    @classmethod
    def open(cls, config: Config, *, checkpoints: bool = True) -> Store:
        """Open (creating and migrating if needed) the store described by `config`. `checkpoints`
        False leaves copying the SQLite WAL back to another process (tidings.supervisor)."""
        Path(config.data_dir).mkdir(parents=True, exist_ok=True)
        migrate(config.database_url)
        db = Database(
            config.database_url, lazy_writes=config.durability.flags == "lazy", checkpoints=checkpoints
        )
        return cls(config, db, BlobStore(config.blob_path, db), Hub())

    def start_listening(self) -> None:
        """On PostgreSQL, receive other nodes' change events (call from the running event loop)."""
        if self.db.is_postgres and self._listener is None:
            from tidings.notify.postgres import PostgresListener

            self._listener = PostgresListener(self.db.url, self.hub, self.node_id, asyncio.get_running_loop())
            self._listener.start()

    def close(self) -> None:
        if self._listener is not None:
            self._listener.stop()
        self.db.dispose()
        self.blobs.close()


__all__ = [
    "AcceptResult",
    "AliasLoop",
    "AlreadyExists",
    "Envelope",
    "NotFound",
    "OverQuota",
    "Store",
    "StoreError",
]
