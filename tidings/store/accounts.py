"""Domains, accounts and aliases: who exists, who may log in, where an address delivers to.

Removing or disabling an account also tells every running server to end its open sessions: the
same transaction adds an `account_events` row (read by servers in other processes, see
`account_events.py`) and publishes a `Change(account, None, "account")` (this process's hub, and
other nodes through PostgreSQL NOTIFY). Disabling raises `session_generation`, so a session that
logged in before is told apart from one that logs in after an `enable`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select, update

from tidings.auth.passwords import (
    DUMMY_HASH,
    VerifiedPasswords,
    check_strength,
    hash_password,
    verify_password,
)
from tidings.auth.scram import ScramKeys, derive_keys
from tidings.mail.address import BadAddress, normalise_domain, parse_address, without_plus_tag
from tidings.notify import Change, Hub
from tidings.store import schema as s
from tidings.store.database import AliasLoop, AlreadyExists, Database, NotFound, StoreError, Tx

# Every new account gets these, with their RFC 6154 special-use attributes.
DEFAULT_MAILBOXES = [
    ("INBOX", None),
    ("Drafts", "\\Drafts"),
    ("Sent", "\\Sent"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
]


@dataclass(frozen=True)
class Domain:
    id: int
    name: str
    dkim_selector: str | None = None
    dkim_private_key: str | None = None


@dataclass(frozen=True)
class Account:
    id: int
    address: str
    domain_id: int
    quota_bytes: int | None
    used_bytes: int
    disabled: bool = False
    session_generation: int = 0  # sessions that logged in under an older value must end
    admin: bool = False  # may use the web client's admin console

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]


def _scram_columns(keys: ScramKeys | None) -> dict:
    return {
        "scram_sha256_salt": keys.salt if keys else None,
        "scram_sha256_iterations": keys.iterations if keys else None,
        "scram_sha256_stored_key": keys.stored_key if keys else None,
        "scram_sha256_server_key": keys.server_key if keys else None,
    }


def _account(row) -> Account:
    return Account(
        row.id,
        row.address,
        row.domain_id,
        row.quota_bytes,
        row.used_bytes,
        row.disabled,
        row.session_generation,
        row.is_admin,
    )


ACCOUNT_EVENTS_KEPT = 24 * 3600.0  # seconds; servers read new events within a second or two


class Accounts:
    def __init__(self, db: Database, hub: Hub | None = None, node_id: str = "") -> None:
        self.db = db
        self.hub = hub if hub is not None else Hub()
        self.node_id = node_id
        self.verified = VerifiedPasswords()

    def _sessions_must_end(self, tx: Tx, account_id: int) -> None:
        """In the transaction that removes or disables an account: tell every server, once this
        commits, to end the account's open sessions."""
        from tidings.store.mailboxes import publish

        now = time.time()
        events = s.account_events
        tx.conn.execute(delete(events).where(events.c.created_at < now - ACCOUNT_EVENTS_KEPT))
        tx.conn.execute(insert(events).values(account_id=account_id, created_at=now))
        publish(tx, self.hub, self.node_id, Change(account_id, None, "account"))

    # -- domains -------------------------------------------------------------------------------

    async def add_domain(self, name: str) -> Domain:
        name = normalise_domain(name)

        def op(tx: Tx) -> Domain:
            if tx.conn.execute(select(s.domains.c.id).where(s.domains.c.name == name)).first():
                raise AlreadyExists(f"domain {name} already exists")
            result = tx.conn.execute(insert(s.domains).values(name=name, created_at=time.time()))
            return Domain(result.inserted_primary_key[0], name)

        return await self.db.write(op)

    async def list_domains(self) -> list[Domain]:
        def op(tx: Tx) -> list[Domain]:
            rows = tx.conn.execute(select(s.domains).order_by(s.domains.c.name))
            return [Domain(r.id, r.name, r.dkim_selector, r.dkim_private_key) for r in rows]

        return await self.db.read(op)

    async def get_domain(self, name: str) -> Domain:
        name = normalise_domain(name)

        def op(tx: Tx) -> Domain:
            row = tx.conn.execute(select(s.domains).where(s.domains.c.name == name)).first()
            if row is None:
                raise NotFound(f"unknown domain {name}")
            return Domain(row.id, row.name, row.dkim_selector, row.dkim_private_key)

        return await self.db.read(op)

    async def set_dkim(self, name: str, selector: str, private_key_pem: str) -> None:
        domain = await self.get_domain(name)

        def op(tx: Tx) -> None:
            tx.conn.execute(
                update(s.domains)
                .where(s.domains.c.id == domain.id)
                .values(dkim_selector=selector, dkim_private_key=private_key_pem)
            )

        await self.db.write(op)

    async def remove_domain(self, name: str, force: bool = False) -> None:
        """Remove a domain; refuses while it still has accounts unless `force`."""
        name = normalise_domain(name)

        def op(tx: Tx) -> None:
            row = tx.conn.execute(select(s.domains.c.id).where(s.domains.c.name == name)).first()
            if row is None:
                raise NotFound(f"unknown domain {name}")
            count = tx.conn.execute(
                select(func.count()).select_from(s.accounts).where(s.accounts.c.domain_id == row.id)
            ).scalar_one()
            if count and not force:
                raise StoreError(f"domain {name} still has {count} account(s); remove them or use --force")
            for account_id in (
                tx.conn.execute(select(s.accounts.c.id).where(s.accounts.c.domain_id == row.id))
                .scalars()
                .all()
            ):
                _delete_account_rows(tx, account_id)
                self._sessions_must_end(tx, account_id)
            tx.conn.execute(delete(s.aliases).where(s.aliases.c.domain_id == row.id))
            tx.conn.execute(delete(s.domains).where(s.domains.c.id == row.id))

        await self.db.write(op)

    async def is_local_domain(self, name: str) -> bool:
        try:
            name = normalise_domain(name)
        except BadAddress:
            return False

        def op(tx: Tx) -> bool:
            return tx.conn.execute(select(s.domains.c.id).where(s.domains.c.name == name)).first() is not None

        return await self.db.read(op)

    # -- accounts ------------------------------------------------------------------------------

    async def add_user(
        self, address: str, password: str, quota_bytes: int | None = None, *, admin: bool = False
    ) -> Account:
        addr = parse_address(address)
        check_strength(password)
        if quota_bytes is not None and quota_bytes < 0:
            raise StoreError("quota must not be negative")
        password_hash = hash_password(password)
        scram = _scram_columns(derive_keys(password))
        from tidings.store.mailboxes import create_mailbox_rows

        def op(tx: Tx) -> Account:
            domain = tx.conn.execute(select(s.domains.c.id).where(s.domains.c.name == addr.domain)).first()
            if domain is None:
                raise NotFound(f"unknown domain {addr.domain}; add it first with `tidings domain add`")
            if tx.conn.execute(select(s.accounts.c.id).where(s.accounts.c.address == str(addr))).first():
                raise AlreadyExists(f"user {addr} already exists")
            if tx.conn.execute(select(s.aliases.c.id).where(s.aliases.c.source == str(addr))).first():
                raise AlreadyExists(f"{addr} is already an alias")
            result = tx.conn.execute(
                insert(s.accounts).values(
                    domain_id=domain.id,
                    address=str(addr),
                    password_hash=password_hash,
                    quota_bytes=quota_bytes,
                    used_bytes=0,
                    created_at=time.time(),
                    disabled=False,
                    last_uidvalidity=0,
                    is_admin=admin,
                    **scram,
                )
            )
            account_id = result.inserted_primary_key[0]
            for name, special_use in DEFAULT_MAILBOXES:
                create_mailbox_rows(tx, account_id, name, special_use)
            return Account(account_id, str(addr), domain.id, quota_bytes, 0, admin=admin)

        return await self.db.write(op)

    async def set_password(self, address: str, password: str) -> None:
        addr = parse_address(address)
        check_strength(password)
        password_hash = hash_password(password)
        scram = _scram_columns(derive_keys(password))

        def op(tx: Tx) -> None:
            result = tx.conn.execute(
                update(s.accounts)
                .where(s.accounts.c.address == str(addr))
                .values(password_hash=password_hash, **scram)
            )
            if result.rowcount == 0:
                raise NotFound(f"unknown user {addr}")

        await self.db.write(op)

    async def set_quota(self, address: str, quota_bytes: int | None) -> None:
        addr = parse_address(address)

        def op(tx: Tx) -> None:
            result = tx.conn.execute(
                update(s.accounts).where(s.accounts.c.address == str(addr)).values(quota_bytes=quota_bytes)
            )
            if result.rowcount == 0:
                raise NotFound(f"unknown user {addr}")

        await self.db.write(op)

    async def set_admin(self, address: str, admin: bool) -> None:
        """Grant or take away the admin console (takes effect at the next page: it is checked on
        every admin request, never cached in the web session)."""
        addr = parse_address(address)

        def op(tx: Tx) -> None:
            result = tx.conn.execute(
                update(s.accounts).where(s.accounts.c.address == str(addr)).values(is_admin=admin)
            )
            if result.rowcount == 0:
                raise NotFound(f"unknown user {addr}")

        await self.db.write(op)

    async def is_admin(self, account_id: int) -> bool:
        """True only for an existing, enabled admin account."""

        def op(tx: Tx) -> bool:
            row = tx.conn.execute(
                select(s.accounts.c.is_admin, s.accounts.c.disabled).where(s.accounts.c.id == account_id)
            ).first()
            return row is not None and row.is_admin and not row.disabled

        return await self.db.read(op)

    async def storage_by_domain(self) -> list[tuple[str, int, int]]:
        """(domain, accounts, bytes used in mailboxes) for every domain, by name."""

        def op(tx: Tx) -> list[tuple[str, int, int]]:
            a = s.accounts
            rows = tx.conn.execute(
                select(s.domains.c.name, func.count(a.c.id), func.coalesce(func.sum(a.c.used_bytes), 0))
                .select_from(s.domains.outerjoin(a, a.c.domain_id == s.domains.c.id))
                .group_by(s.domains.c.name)
                .order_by(s.domains.c.name)
            )
            return [(r[0], int(r[1]), int(r[2])) for r in rows]

        return await self.db.read(op)

    async def list_users(self, domain: str | None = None) -> list[Account]:
        def op(tx: Tx) -> list[Account]:
            query = select(s.accounts).order_by(s.accounts.c.address)
            if domain:
                query = query.where(s.accounts.c.address.like(f"%@{normalise_domain(domain)}"))
            return [_account(r) for r in tx.conn.execute(query)]

        return await self.db.read(op)

    async def get_user(self, address: str) -> Account:
        addr = parse_address(address)

        def op(tx: Tx) -> Account:
            row = tx.conn.execute(select(s.accounts).where(s.accounts.c.address == str(addr))).first()
            if row is None:
                raise NotFound(f"unknown user {addr}")
            return _account(row)

        return await self.db.read(op)

    async def get_user_by_id(self, account_id: int) -> Account:
        def op(tx: Tx) -> Account:
            row = tx.conn.execute(select(s.accounts).where(s.accounts.c.id == account_id)).first()
            if row is None:
                raise NotFound(f"unknown account {account_id}")
            return _account(row)

        return await self.db.read(op)

    async def remove_user(self, address: str) -> None:
        addr = parse_address(address)

        def op(tx: Tx) -> None:
            row = tx.conn.execute(select(s.accounts.c.id).where(s.accounts.c.address == str(addr))).first()
            if row is None:
                raise NotFound(f"unknown user {addr}")
            _delete_account_rows(tx, row.id)
            tx.conn.execute(delete(s.aliases).where(s.aliases.c.target == str(addr)))
            self._sessions_must_end(tx, row.id)

        await self.db.write(op)

    async def set_disabled(self, address: str, disabled: bool) -> Account:
        """Disable an account (it cannot log in; its open sessions end; mail to it is still
        accepted) or enable it again. Disabling a disabled account changes nothing."""
        addr = parse_address(address)

        def op(tx: Tx) -> Account:
            row = tx.conn.execute(select(s.accounts).where(s.accounts.c.address == str(addr))).first()
            if row is None:
                raise NotFound(f"unknown user {addr}")
            if disabled and not row.disabled:
                tx.conn.execute(
                    update(s.accounts)
                    .where(s.accounts.c.id == row.id)
                    .values(disabled=True, session_generation=s.accounts.c.session_generation + 1)
                )
                self._sessions_must_end(tx, row.id)
            elif not disabled and row.disabled:
                tx.conn.execute(update(s.accounts).where(s.accounts.c.id == row.id).values(disabled=False))
            return _account(tx.conn.execute(select(s.accounts).where(s.accounts.c.id == row.id)).one())

        return await self.db.write(op)

    async def session_generation(self, account_id: int) -> int | None:
        """The account's session generation, or None when it no longer exists: what a running
        server compares its sessions' logins with (tidings.auth.logins)."""

        def op(tx: Tx) -> int | None:
            return tx.conn.execute(
                select(s.accounts.c.session_generation).where(s.accounts.c.id == account_id)
            ).scalar()

        return await self.db.read(op)

    async def authenticate(self, address: str, password: str) -> Account | None:
        """The account if `password` is right and the account enabled; None otherwise (same timing)."""
        try:
            addr: str | None = str(parse_address(address))
        except BadAddress:
            addr = None

        def op(tx: Tx):
            return tx.conn.execute(select(s.accounts).where(s.accounts.c.address == addr)).first()

        row = await self.db.read(op) if addr else None
        usable = row is not None and not row.disabled
        # argon2 takes milliseconds of CPU: keep it off the event loop. Unknown users are checked
        # against a dummy hash so the reply takes as long as for a wrong password.
        stored = row.password_hash if usable else DUMMY_HASH
        if usable and self.verified.check(stored, password):
            ok = True
        else:
            loop = asyncio.get_running_loop()
            ok = await loop.run_in_executor(None, verify_password, stored, password)
            if ok and usable:
                self.verified.remember(stored, password)
        if not (ok and usable):
            return None
        if row.scram_sha256_stored_key is None:
            await self._add_scram_keys(row.id, stored, password)
        return _account(row)

    async def _add_scram_keys(self, account_id: int, password_hash: str, password: str) -> None:
        """An account older than SCRAM gets its keys at its first password login (auth/scram.py)."""
        keys = await asyncio.get_running_loop().run_in_executor(None, derive_keys, password)
        if keys is None:
            return

        def op(tx: Tx) -> None:
            # Only if the password is still the one just checked and nobody added keys meanwhile.
            tx.conn.execute(
                update(s.accounts)
                .where(
                    s.accounts.c.id == account_id,
                    s.accounts.c.password_hash == password_hash,
                    s.accounts.c.scram_sha256_stored_key.is_(None),
                )
                .values(**_scram_columns(keys))
            )

        await self.db.write(op)

    async def scram_keys(self, address: str) -> tuple[Account, ScramKeys] | None:
        """The enabled account at canonical `address` and its SCRAM-SHA-256 keys; None when there is
        no such account, it is disabled, or it has no keys yet."""

        def op(tx: Tx):
            return tx.conn.execute(select(s.accounts).where(s.accounts.c.address == address)).first()

        row = await self.db.read(op)
        if row is None or row.disabled or row.scram_sha256_stored_key is None:
            return None
        keys = ScramKeys(
            row.scram_sha256_salt,
            row.scram_sha256_iterations,
            row.scram_sha256_stored_key,
            row.scram_sha256_server_key,
        )
        return _account(row), keys

    # -- aliases -------------------------------------------------------------------------------

    async def add_alias(self, source: str, targets: list[str]) -> None:
        """`source` is `alias@domain` or `@domain` (catch-all); targets are any addresses."""
        if source.startswith("@"):
            domain = normalise_domain(source[1:])
            source_norm = "@" + domain
        else:
            addr = parse_address(source)
            domain, source_norm = addr.domain, str(addr)
        if not targets:
            raise StoreError("an alias needs at least one target")
        target_norms = [str(parse_address(t)) for t in targets]

        def op(tx: Tx) -> None:
            row = tx.conn.execute(select(s.domains.c.id).where(s.domains.c.name == domain)).first()
            if row is None:
                raise NotFound(f"unknown domain {domain}")
            if tx.conn.execute(select(s.accounts.c.id).where(s.accounts.c.address == source_norm)).first():
                raise AlreadyExists(f"{source_norm} is a user, not an alias")
            for target in target_norms:
                exists = tx.conn.execute(
                    select(s.aliases.c.id).where(
                        s.aliases.c.source == source_norm, s.aliases.c.target == target
                    )
                ).first()
                if exists:
                    raise AlreadyExists(f"alias {source_norm} -> {target} already exists")
                tx.conn.execute(insert(s.aliases).values(domain_id=row.id, source=source_norm, target=target))

        await self.db.write(op)

    async def list_aliases(self) -> list[tuple[str, str]]:
        def op(tx: Tx):
            rows = tx.conn.execute(
                select(s.aliases.c.source, s.aliases.c.target).order_by(s.aliases.c.source)
            )
            return [(r.source, r.target) for r in rows]

        return await self.db.read(op)

    async def remove_alias(self, source: str, target: str | None = None) -> None:
        source_norm = (
            "@" + normalise_domain(source[1:]) if source.startswith("@") else str(parse_address(source))
        )

        def op(tx: Tx) -> None:
            query = delete(s.aliases).where(s.aliases.c.source == source_norm)
            if target:
                query = query.where(s.aliases.c.target == str(parse_address(target)))
            if tx.conn.execute(query).rowcount == 0:
                raise NotFound(f"unknown alias {source_norm}")

        await self.db.write(op)

    # -- routing -------------------------------------------------------------------------------

    async def resolve(self, address: str) -> list[str] | None:
        """Final addresses that mail to `address` goes to, or None when it is not ours.

        Local accounts resolve to themselves; aliases expand (recursively, up to 10 levels, to local
        or remote targets); `user+tag@` falls back to `user@`; `@domain` catch-alls apply last.
        Returns None when the domain is not local or no account/alias matches.
        """
        addr = parse_address(address)
        return await self.db.read(resolve_rows, str(addr))

    async def senders_allowed(self, account: Account) -> set[str]:
        """Addresses an authenticated account may use as envelope/header sender."""

        def op(tx: Tx) -> set[str]:
            allowed = {account.address}
            rows = tx.conn.execute(select(s.aliases.c.source).where(s.aliases.c.target == account.address))
            allowed.update(r.source for r in rows if not r.source.startswith("@"))
            return allowed

        return await self.db.read(op)

    async def count(self) -> tuple[int, int, int]:
        def op(tx: Tx):
            count = lambda t: tx.conn.execute(select(func.count()).select_from(t)).scalar_one()  # noqa: E731
            return count(s.domains), count(s.accounts), count(s.aliases)

        return await self.db.read(op)


def resolve_rows(tx: Tx, address: str, depth: int = 0) -> list[str] | None:
    domain = address.rpartition("@")[2]
    conn = tx.conn
    if conn.execute(select(s.domains.c.id).where(s.domains.c.name == domain)).first() is None:
        return None
    candidates = [address]
    base = without_plus_tag(address)
    if base is not None:
        candidates.append(base)
    for candidate in candidates:
        account = conn.execute(
            # A disabled account still receives mail (it only cannot log in), as most servers do.
            select(s.accounts.c.address).where(s.accounts.c.address == candidate)
        ).first()
        if account:
            return [account.address]
        targets = (
            conn.execute(
                select(s.aliases.c.target).where(s.aliases.c.source == candidate).order_by(s.aliases.c.id)
            )
            .scalars()
            .all()
        )
        if targets:
            return _expand(tx, targets, depth)
    catch_all = (
        conn.execute(
            select(s.aliases.c.target).where(s.aliases.c.source == "@" + domain).order_by(s.aliases.c.id)
        )
        .scalars()
        .all()
    )
    if catch_all:
        return _expand(tx, catch_all, depth)
    return None


def _expand(tx: Tx, targets: list[str], depth: int) -> list[str] | None:
    if depth >= 10:
        raise AliasLoop("alias loop (more than 10 levels)")
    result: list[str] = []
    for target in targets:
        resolved = resolve_rows(tx, target, depth + 1)
        if resolved is None:
            # Either remote (forward) or a dangling local target: keep it, the caller decides.
            result.append(target)
        else:
            result.extend(resolved)
    # De-duplicate while keeping order.
    return list(dict.fromkeys(result)) or None


def _delete_account_rows(tx: Tx, account_id: int) -> None:
    mailbox_ids = (
        tx.conn.execute(select(s.mailboxes.c.id).where(s.mailboxes.c.account_id == account_id))
        .scalars()
        .all()
    )
    if mailbox_ids:
        tx.conn.execute(delete(s.mailbox_messages).where(s.mailbox_messages.c.mailbox_id.in_(mailbox_ids)))
        tx.conn.execute(delete(s.expunged).where(s.expunged.c.mailbox_id.in_(mailbox_ids)))
        tx.conn.execute(delete(s.mailboxes).where(s.mailboxes.c.id.in_(mailbox_ids)))
    tx.conn.execute(delete(s.accounts).where(s.accounts.c.id == account_id))
