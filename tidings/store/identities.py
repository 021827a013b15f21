"""Sender identities: the names, addresses and signatures an account writes under.

An identity's address must be one the account may send as (`Accounts.senders_allowed`: its own
address and the aliases that lead to it), checked when it is saved; submission checks it again when
mail is sent. The web client's compose offers the identities, the default one first. Every call
takes the acting account: another account's identity ids are NotFound.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update

from tidings.mail.address import parse_address
from tidings.store import schema as s
from tidings.store.accounts import Accounts
from tidings.store.database import Database, NotFound, StoreError, Tx

MAX_SIGNATURE = 10_000
MAX_IDENTITIES = 50


@dataclass(frozen=True)
class Identity:
    id: int
    name: str
    address: str
    signature: str
    is_default: bool


class Identities:
    def __init__(self, db: Database, accounts: Accounts) -> None:
        self.db = db
        self.accounts = accounts

    async def list(self, account_id: int) -> list[Identity]:
        """The account's identities, the default first; one made from the account itself when it
        has none saved (id 0)."""

        def op(tx: Tx) -> list[Identity]:
            t = s.identities
            rows = tx.conn.execute(
                select(t).where(t.c.account_id == account_id).order_by(t.c.is_default.desc(), t.c.id)
            )
            return [Identity(r.id, r.name, r.address, r.signature, r.is_default) for r in rows]

        found = await self.db.read(op)
        if found:
            return found
        account = await self.accounts.get_user_by_id(account_id)
        return [Identity(0, "", account.address, "", True)]

    async def save(
        self,
        account_id: int,
        identity_id: int | None,
        name: str,
        address: str,
        signature: str,
        is_default: bool,
    ) -> Identity:
        """Add (identity_id None or 0) or change one of the account's identities."""
        account = await self.accounts.get_user_by_id(account_id)
        address = str(parse_address(address))
        if address not in await self.accounts.senders_allowed(account):
            raise StoreError(f"{address} is not an address of this account")
        name = " ".join(name.split())[:200]
        if len(signature) > MAX_SIGNATURE:
            raise StoreError(f"the signature is longer than {MAX_SIGNATURE} characters")
        signature = signature.replace("\r\n", "\n")

        def op(tx: Tx) -> Identity:
            t = s.identities
            owned = t.c.account_id == account_id
            existing = tx.conn.execute(select(t.c.id).where(owned)).scalars().all()
            if identity_id and identity_id not in existing:
                raise NotFound("no such identity")
            if not identity_id and len(existing) >= MAX_IDENTITIES:
                raise StoreError(f"an account may have at most {MAX_IDENTITIES} identities")
            default = is_default or not existing
            if default:
                tx.conn.execute(update(t).where(owned).values(is_default=False))
            values = {"name": name, "address": address, "signature": signature, "is_default": default}
            if identity_id:
                tx.conn.execute(update(t).where(owned, t.c.id == identity_id).values(**values))
                new_id = identity_id
            else:
                result = tx.conn.execute(
                    insert(t).values(account_id=account_id, created_at=time.time(), **values)
                )
                new_id = result.inserted_primary_key[0]
            return Identity(new_id, name, address, signature, default)

        return await self.db.write(op)

    async def delete(self, account_id: int, identity_id: int) -> None:
        def op(tx: Tx) -> None:
            t = s.identities
            owned = t.c.account_id == account_id
            if tx.conn.execute(delete(t).where(owned, t.c.id == identity_id)).rowcount == 0:
                raise NotFound("no such identity")
            if not tx.conn.execute(select(t.c.id).where(owned, t.c.is_default.is_(True))).first():
                first = tx.conn.execute(select(t.c.id).where(owned).order_by(t.c.id)).first()
                if first is not None:
                    tx.conn.execute(update(t).where(t.c.id == first.id).values(is_default=True))

        await self.db.write(op)
