"""The web client's sessions, kept on the server: the store side of tidings/web/session.py.

A browser that logged in holds a random token in a cookie; only the token's SHA-256 is stored,
so whoever reads the database (or a backup) cannot open a session with it. Each session has its
own CSRF token, which the web layer requires on every request that changes something.

A session is valid while
- its account exists (rows go with the account: ON DELETE CASCADE) and is not disabled, and the
  account's `session_generation` is the one it logged in under (disabling an account ends its web
  sessions exactly as it ends IMAP ones, see tidings/auth/logins.py);
- it has been used within `idle` seconds, and was created within `max_age` seconds.

Every call that acts on a session by id also takes the acting account: "log out" of one session
cannot end another account's. Never parses HTTP and never sees a password.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, insert, or_, select, update

from tidings.store import schema as s
from tidings.store.database import Database, Tx

# last_seen_at is written at most this often per session: a page load must not be a write.
TOUCH_INTERVAL = 60.0
MAX_CLIENT_TEXT = 200

_ws, _acc = s.web_sessions, s.accounts
_FIND = (
    select(
        _ws.c.id,
        _ws.c.account_id,
        _acc.c.address,
        _ws.c.csrf_token,
        _ws.c.created_at,
        _ws.c.last_seen_at,
        _ws.c.client,
        _acc.c.is_admin,
    )
    .select_from(_ws.join(_acc, _acc.c.id == _ws.c.account_id))
    .where(
        _ws.c.token_hash == bindparam("hash"),
        _acc.c.disabled.is_(False),
        _acc.c.session_generation == _ws.c.generation,
        _ws.c.last_seen_at > bindparam("idle_since"),
        _ws.c.created_at > bindparam("born_since"),
    )
)
_TOUCH = update(_ws).where(_ws.c.id == bindparam("session")).values(last_seen_at=bindparam("now"))


@dataclass(frozen=True)
class WebSession:
    id: int
    account_id: int
    address: str
    csrf_token: str
    created_at: float
    last_seen_at: float
    client: str = ""
    # The account may use the admin console: read with the session on every request (never
    # cached), so revoking it takes effect at the next page.
    admin: bool = False


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


class WebSessions:
    def __init__(self, db: Database, idle: float = 8 * 3600.0, max_age: float = 30 * 86400.0) -> None:
        self.db = db
        self.idle = idle
        self.max_age = max_age

    async def create(self, account, client: str = "") -> tuple[str, WebSession]:
        """A new session for `account` (as read with its password: its session_generation is the
        one the session lives under). Returns the token for the cookie, and the session."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = time.time()
        client = client[:MAX_CLIENT_TEXT]

        def op(tx: Tx) -> int:
            # Old sessions of this account go now: nobody else sweeps them on SQLite's single node.
            tx.conn.execute(
                delete(_ws).where(
                    _ws.c.account_id == account.id,
                    or_(_ws.c.last_seen_at <= now - self.idle, _ws.c.created_at <= now - self.max_age),
                )
            )
            return tx.conn.execute(
                insert(_ws).values(
                    token_hash=token_hash(token),
                    account_id=account.id,
                    csrf_token=csrf,
                    generation=account.session_generation,
                    created_at=now,
                    last_seen_at=now,
                    client=client,
                )
            ).inserted_primary_key[0]

        session_id = await self.db.write(op)
        return token, WebSession(session_id, account.id, account.address, csrf, now, now, client)

    async def find(self, token: str) -> WebSession | None:
        """The valid session holding `token`, or None; refreshes its last use now and then."""
        if not token or len(token) > 100:
            return None
        now = time.time()
        params = {"hash": token_hash(token), "idle_since": now - self.idle, "born_since": now - self.max_age}

        def op(tx: Tx):
            return tx.conn.execute(_FIND, params).first()

        row = await self.db.read(op)
        if row is None:
            return None
        if now - row.last_seen_at >= TOUCH_INTERVAL:

            def touch(tx: Tx) -> None:
                tx.conn.execute(_TOUCH, {"session": row.id, "now": now})

            await self.db.write_lazy(touch)
        return WebSession(
            row.id,
            row.account_id,
            row.address,
            row.csrf_token,
            row.created_at,
            row.last_seen_at,
            row.client,
            row.is_admin,
        )

    async def list(self, account_id: int) -> list[WebSession]:
        """The account's sessions that are still valid, newest use first."""
        now = time.time()

        def op(tx: Tx):
            query = (
                select(_ws, _acc.c.address)
                .select_from(_ws.join(_acc, _acc.c.id == _ws.c.account_id))
                .where(
                    _ws.c.account_id == account_id,
                    _acc.c.session_generation == _ws.c.generation,
                    _ws.c.last_seen_at > now - self.idle,
                    _ws.c.created_at > now - self.max_age,
                )
                .order_by(_ws.c.last_seen_at.desc())
            )
            return tx.conn.execute(query).all()

        rows = await self.db.read(op)
        return [
            WebSession(r.id, r.account_id, r.address, r.csrf_token, r.created_at, r.last_seen_at, r.client)
            for r in rows
        ]

    async def end(self, account_id: int, session_id: int) -> bool:
        """Log out one session of the account; False when it has no such session."""

        def op(tx: Tx) -> int:
            query = delete(_ws).where(_ws.c.id == session_id, _ws.c.account_id == account_id)
            return tx.conn.execute(query).rowcount

        return bool(await self.db.write(op))

    async def end_all(self, account_id: int) -> int:
        """Log out everywhere: every web session of the account. Returns how many ended."""

        def op(tx: Tx) -> int:
            return tx.conn.execute(delete(_ws).where(_ws.c.account_id == account_id)).rowcount

        return await self.db.write(op)
