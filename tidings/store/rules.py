"""Per-account Sieve scripts (RFC 5228): stored here, run at delivery by the rules engine.

At most one script of an account is active (RFC 5804 section 1.3: ManageSieve's SETACTIVE); the
rules engine runs that one. The web client's settings (filters, vacation, forwarding) write one
generated script, tidings.web.sieve_form.SCRIPT_NAME, through `put`, and the rules issue's
ManageSieve and `tidings user forward|vacation` edit the same rows. Every call takes the acting
account: one account's scripts are invisible to every other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update

from tidings.store import schema as s
from tidings.store.database import Database, NotFound, StoreError, Tx

MAX_SCRIPT_BYTES = 64 * 1024
MAX_SCRIPTS = 32


@dataclass(frozen=True)
class SieveScript:
    id: int
    name: str
    content: str
    active: bool
    updated_at: float


def _script(row) -> SieveScript:
    return SieveScript(row.id, row.name, row.content, row.active, row.updated_at)


class Rules:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def scripts(self, account_id: int) -> list[SieveScript]:
        def op(tx: Tx) -> list[SieveScript]:
            t = s.sieve_scripts
            rows = tx.conn.execute(select(t).where(t.c.account_id == account_id).order_by(t.c.name))
            return [_script(r) for r in rows]

        return await self.db.read(op)

    async def get(self, account_id: int, name: str) -> SieveScript:
        def op(tx: Tx) -> SieveScript:
            t = s.sieve_scripts
            row = tx.conn.execute(select(t).where(t.c.account_id == account_id, t.c.name == name)).first()
            if row is None:
                raise NotFound(f"no script {name!r}")
            return _script(row)

        return await self.db.read(op)

    async def active(self, account_id: int) -> SieveScript | None:
        """The script the rules engine runs for this account at delivery, if any."""

        def op(tx: Tx) -> SieveScript | None:
            t = s.sieve_scripts
            row = tx.conn.execute(select(t).where(t.c.account_id == account_id, t.c.active.is_(True))).first()
            return _script(row) if row is not None else None

        return await self.db.read(op)

    async def put(self, account_id: int, name: str, content: str, *, activate: bool = False) -> SieveScript:
        """Create or replace the script `name`; `activate` makes it the only active one."""
        if not name or len(name) > 255 or any(ord(c) < 32 or ord(c) == 127 for c in name):
            raise StoreError("a script name is 1 to 255 characters, none of them control characters")
        if len(content.encode("utf-8")) > MAX_SCRIPT_BYTES:
            raise StoreError(f"the script is larger than {MAX_SCRIPT_BYTES // 1024} KiB")

        def op(tx: Tx) -> SieveScript:
            t = s.sieve_scripts
            now = time.time()
            mine = t.c.account_id == account_id
            row = tx.conn.execute(select(t.c.id).where(mine, t.c.name == name)).first()
            if activate:
                tx.conn.execute(update(t).where(t.c.account_id == account_id).values(active=False))
            if row is None:
                count = len(tx.conn.execute(select(t.c.id).where(t.c.account_id == account_id)).all())
                if count >= MAX_SCRIPTS:
                    raise StoreError(f"an account may keep at most {MAX_SCRIPTS} scripts")
                tx.conn.execute(
                    insert(t).values(
                        account_id=account_id, name=name, content=content, active=activate, updated_at=now
                    )
                )
            else:
                values: dict = {"content": content, "updated_at": now}
                if activate:
                    values["active"] = True
                tx.conn.execute(update(t).where(t.c.id == row.id).values(**values))
            return _script(
                tx.conn.execute(select(t).where(t.c.account_id == account_id, t.c.name == name)).one()
            )

        return await self.db.write(op)

    async def set_active(self, account_id: int, name: str | None) -> None:
        """Make `name` the active script, or (None) deactivate all of them."""

        def op(tx: Tx) -> None:
            t = s.sieve_scripts
            if name is not None:
                found = tx.conn.execute(
                    select(t.c.id).where(t.c.account_id == account_id, t.c.name == name)
                ).first()
                if found is None:
                    raise NotFound(f"no script {name!r}")
            tx.conn.execute(update(t).where(t.c.account_id == account_id).values(active=False))
            if name is not None:
                tx.conn.execute(update(t).where(t.c.id == found.id).values(active=True))

        await self.db.write(op)

    async def delete(self, account_id: int, name: str) -> None:
        def op(tx: Tx) -> None:
            t = s.sieve_scripts
            if tx.conn.execute(delete(t).where(t.c.account_id == account_id, t.c.name == name)).rowcount == 0:
                raise NotFound(f"no script {name!r}")

        await self.db.write(op)
