"""Login throttling: at most N failed logins per client address and per account in a window.

The limit holds however the attempts are spelled and however many arrive at once:

- the per-account key is the canonical account (`tidings.auth.login.canonical_account`), so
  `Alice`, `alice` and `alice@default.domain` are one counter;
- an attempt is *reserved* before its password is checked, in one atomic step of the counter
  (`AttemptCounter.reserve`): it is admitted only while failures + attempts in flight stay under
  the limit, so a thousand parallel guesses get at most N password checks, not N per connection;
- the counter lives in the store (`tidings.store.login_attempts`), so on PostgreSQL every node
  shares it.

When the limit is reached by failures, further attempts are refused without checking the password
(guessing costs the attacker time, not us CPU) until `window` seconds after the first failure have
passed. When only attempts in flight fill the limit (a mail client opening ten connections at once),
the next attempt waits for them to settle instead of being refused. A success does not wipe the
failures: the owner logging in must not give a guesser a fresh allowance.
"""

from __future__ import annotations

import asyncio
import enum
import time
from dataclasses import dataclass
from typing import Protocol

# How long an attempt waits for others in flight to settle before it counts as throttled.
BUSY_WAIT_LIMIT = 10.0


class Verdict(enum.Enum):
    ADMITTED = "admitted"  # reserved: check the password, then settle
    BLOCKED = "blocked"  # failures reached a limit: refuse
    BUSY = "busy"  # attempts in flight fill a limit: try again shortly


@dataclass(frozen=True)
class Limit:
    kind: str  # "ip" or "account"
    key: str
    limit: int


class AttemptCounter(Protocol):
    """Where the counts live. Both methods are atomic with respect to every other caller,
    on every node that shares the counter."""

    async def reserve(self, limits: list[Limit], window: float, now: float) -> Verdict: ...

    async def settle(self, limits: list[Limit], failed: bool, window: float, now: float) -> None: ...


class Throttled(Exception):
    """Too many failed logins for this client address or account."""


@dataclass
class Attempt:
    limits: list[Limit]
    settled: bool = False


class LoginThrottle:
    def __init__(
        self, counter: AttemptCounter, max_per_ip: int = 10, max_per_account: int = 10, window: float = 300.0
    ) -> None:
        self.counter = counter
        self.max_per_ip = max_per_ip
        self.max_per_account = max_per_account
        self.window = window

    def limits(self, client: str, account: str | None) -> list[Limit]:
        limits = [Limit("ip", client, self.max_per_ip)]
        if account:
            limits.append(Limit("account", account, self.max_per_account))
        return limits

    async def begin(self, client: str, account: str | None) -> Attempt:
        """Reserve one attempt for `client` (the client key, see `net.listener.client_key`) and the
        canonical `account` (None when the name is not an address); raise Throttled if over a limit.
        Every admitted attempt must be passed to `finish` exactly once."""
        limits = self.limits(client, account)
        deadline = time.monotonic() + BUSY_WAIT_LIMIT
        delay = 0.01
        while True:
            verdict = await self.counter.reserve(limits, self.window, time.time())
            if verdict is Verdict.ADMITTED:
                return Attempt(limits)
            if verdict is Verdict.BLOCKED or time.monotonic() + delay > deadline:
                raise Throttled()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)

    async def finish(self, attempt: Attempt, ok: bool) -> None:
        if attempt.settled:
            return
        attempt.settled = True
        await self.counter.settle(attempt.limits, not ok, self.window, time.time())
