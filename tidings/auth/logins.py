"""Who is logged in, and ending the sessions of an account that was removed or disabled.

Every session that logs in (IMAP, POP3, SMTP AUTH) holds a `Login`: the account id, the account's
`session_generation` as read with its password hash, and the session's own way to end. `Logins`
listens for `Change(account, None, "account")` on the hub (published by this process after commit,
by other nodes through PostgreSQL NOTIFY, by other processes through store/account_events.py),
re-reads that account's generation, and ends every session that logged in under an older one, or
all of them when the account no longer exists. A removed account's id is never given to another
account (ids are never reused), so "no such account" is final.

Sessions also look at `Login.ended` before each command, which costs nothing, so a session never
acts for an ended account even while its ending is under way. What is known per account only
ever goes up, so events read twice or out of order cannot bring an ended login back.

Never touches SQL: the store's lookup is passed in.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable

from tidings.notify import Change, Hub

log = logging.getLogger(__name__)

GONE = math.inf  # the generation of an account that no longer exists: every login is older
LOOKUP_ATTEMPTS = 3


class Login:
    """One session's login; `ended` turns true (for good) when the account's sessions must end."""

    __slots__ = ("account_id", "generation", "ended", "_end", "_logins")

    def __init__(self, logins: Logins, account_id: int, generation: int, end: Callable[[], None]) -> None:
        self._logins = logins
        self.account_id = account_id
        self.generation = generation
        self._end = end
        self.ended = False

    def end(self) -> None:
        """The account was removed or disabled: mark the login ended and have the session close."""
        if self.ended:
            return
        self.ended = True
        self._logins._forget(self)
        try:
            self._end()
        except Exception:
            log.exception("ending a session of account %s failed", self.account_id)

    def close(self) -> None:
        """The session is over by itself (logout, disconnect)."""
        self._logins._forget(self)


class Logins:
    """The open logins of one server process, by account; see the module docstring."""

    def __init__(self, hub: Hub, generation_of: Callable[[int], Awaitable[int | None]]) -> None:
        self._generation_of = generation_of
        self._open: dict[int, set[Login]] = {}
        # Highest generation learnt from events, only for accounts that had one (a few).
        self._known: dict[int, float] = {}
        self._checks: set[asyncio.Task] = set()
        self._unsubscribe = hub.subscribe(None, self._on_change)

    def begin(self, account, end: Callable[[], None]) -> Login | None:
        """Register a session that has just logged in as `account` (read with its password), with
        the function that ends it. None when the account was removed or disabled meanwhile: the
        login must then fail like a wrong password."""
        if self._known.get(account.id, -1) > account.session_generation:
            return None
        login = Login(self, account.id, account.session_generation, end)
        self._open.setdefault(account.id, set()).add(login)
        return login

    def count(self, account_id: int) -> int:
        return len(self._open.get(account_id, ()))

    def _forget(self, login: Login) -> None:
        logins = self._open.get(login.account_id)
        if logins is not None:
            logins.discard(login)
            if not logins:
                del self._open[login.account_id]

    def _on_change(self, change: Change) -> None:
        if change.kind != "account":
            return
        try:
            task = asyncio.get_running_loop().create_task(self._check(change.account_id))
        except RuntimeError:  # published outside a running loop (a synchronous admin write)
            return
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)

    async def _check(self, account_id: int) -> None:
        for attempt in range(LOOKUP_ATTEMPTS):
            try:
                generation = await self._generation_of(account_id)
                break
            except Exception:
                log.exception("could not read account %s to end its sessions", account_id)
                if attempt == LOOKUP_ATTEMPTS - 1:
                    return
                await asyncio.sleep(1.0)
        current = max(GONE if generation is None else generation, self._known.get(account_id, -1))
        self._known[account_id] = current
        ended = [login for login in self._open.get(account_id, ()) if login.generation < current]
        if ended:
            log.info("ending %d session(s) of account %s: removed or disabled", len(ended), account_id)
        for login in ended:
            login.end()

    def close(self) -> None:
        self._unsubscribe()
        for task in self._checks:
            task.cancel()
