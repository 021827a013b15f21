"""Who may send what to whom: recipient routing, relay refusal, quota at RCPT, sender ownership.

Shared by every way mail is submitted: the SMTP server (MX and submission) and the web client's
compose both route recipients and check senders here, so the two can never disagree on who may
send as whom or what goes to the queue. Replies carry RFC 3463 status codes, which SMTP sends as
they are and the web client shows as text.

The rules (also in the operator documentation):

- Mail for our domains is accepted from anyone when the address resolves (account, alias, plus
  address, catch-all); an unknown user in a local domain is refused at RCPT (550 5.1.1).
- Aliases that point at each other are refused at RCPT (550 5.4.6), not expanded for ever.
- Mail for other domains is relayed only for authenticated sessions; otherwise 554 5.7.1. There is
  no IP-based relay permission, so the server is never an open relay.
- An authenticated user sends only as one of `store.accounts.senders_allowed(account)` (their
  address and aliases pointing at them, `user+tag@` included): envelope sender and From: header.
- A bounce to an SRS address at one of our domains (`SRS0=...@`, made when we forwarded mail; see
  `mail.srs`) goes back to the original sender, also when that is remote: the hash in the address
  is what allows the relaying. A forged or expired one is refused at RCPT (550 5.7.1).
- Quota (RFC 3463 X.2.2), answered while the client still holds the message, never by a bounce of
  ours to a reverse-path that may be forged:
  - at RCPT, a recipient none of whose mailboxes has room is deferred (452 4.2.2): its owner can make
    room, and the sending MTA retries; one whose quota is smaller than the SIZE declared at MAIL FROM
    is refused (552 5.2.2), since that message can never fit;
  - at the end of DATA/BDAT, when the message fits nobody it was meant for: the same two answers,
    by the message's actual size;
  - when it fits some recipients but not others (SMTP has one reply for the whole message), it is
    accepted and the full mailboxes' copies wait in the queue, which delivers them once there is
    room and reports to the sender only if the queue lifetime ends first (what an MTA in front of
    an LMTP server answering 452 would do).

Decisions come back as `RecipientRoute` or a `PolicyRefusal` carrying the SMTP reply; this module
asks the store through its public API only.

`RecipientRouter` remembers positive routing answers for ROUTE_CACHE_SECONDS (like Postfix's
lookup caches): a busy MX asks the database once per address and second instead of once per
message. Refusals are never cached, so a new user or alias works at once; a removed one may still
be accepted for that long (delivery then refuses it). Quota is always checked fresh when the
account has a quota.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from tidings.mail.address import BadAddress, normalise_domain, parse_address, without_plus_tag
from tidings.mail.srs import SenderRewriter, SrsError, is_srs
from tidings.store import AliasLoop, NotFound, Store
from tidings.store.accounts import Account


class PolicyRefusal(Exception):
    def __init__(self, code: int, status: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.status = status
        self.text = text


@dataclass
class RecipientRoute:
    """Where one RCPT address goes: local account addresses and remote addresses."""

    address: str  # as given (normalised)
    local: list[str] = field(default_factory=list)
    remote: list[str] = field(default_factory=list)
    quota_checked: bool = False  # some local account has a quota (re-check it on every use)


# How far ahead an authenticated sender may schedule a message (FUTURERELEASE, X-Tidings-Send-At,
# the web client's send later).
MAX_HOLD_SECONDS = 30 * 86400
ROUTE_CACHE_SECONDS = 2.0
ROUTE_CACHE_ENTRIES = 10_000


class RecipientRouter:
    """`route_recipient` with a short-lived cache of positive answers (one per listener)."""

    def __init__(self, store: Store, default_domain: str, srs: SenderRewriter | None = None) -> None:
        self.store = store
        self.default_domain = default_domain
        self.srs = srs
        self._cache: dict[tuple[str, bool], tuple[float, RecipientRoute, bool]] = {}

    async def route(self, address: str, *, authenticated: bool, declared_size: int | None) -> RecipientRoute:
        key = (address, authenticated)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            _, route, has_quota = hit
            if has_quota:
                await _check_quota(self.store, route.local, declared_size, route.address)
            return replace(route, local=list(route.local), remote=list(route.remote))
        route = await route_recipient(
            self.store,
            address,
            authenticated=authenticated,
            default_domain=self.default_domain,
            declared_size=declared_size,
            srs=self.srs,
        )
        if len(self._cache) >= ROUTE_CACHE_ENTRIES:
            self._cache.clear()
        self._cache[key] = (now + ROUTE_CACHE_SECONDS, route, route.quota_checked)
        return replace(route, local=list(route.local), remote=list(route.remote))


async def route_recipient(
    store: Store,
    address: str,
    *,
    authenticated: bool,
    default_domain: str,
    declared_size: int | None = None,
    srs: SenderRewriter | None = None,
) -> RecipientRoute:
    """Resolve one recipient or raise PolicyRefusal (RFC 5321 section 3.6 relaying)."""
    if "@" not in address and address.lower() == "postmaster":
        address = f"postmaster@{default_domain}"  # RFC 5321 section 4.5.1
    if srs is not None and is_srs(address):
        domain = address.rpartition("@")[2]
        try:
            is_ours = await store.accounts.is_local_domain(normalise_domain(domain))
        except BadAddress:
            is_ours = False
        if is_ours:
            return await _route_srs_bounce(store, srs, address, default_domain, declared_size)
    try:
        normal = str(parse_address(address))
    except BadAddress as exc:
        raise PolicyRefusal(501, "5.1.3", f"Bad recipient address syntax: {exc}") from None
    try:
        targets = await store.accounts.resolve(normal)
    except AliasLoop:
        raise PolicyRefusal(550, "5.4.6", f"<{normal}>: alias loop") from None  # RFC 3463: routing loop
    if targets is None:
        domain = normal.rpartition("@")[2]
        if await store.accounts.is_local_domain(domain):
            raise PolicyRefusal(550, "5.1.1", f"<{normal}>: no such user here")
        if not authenticated:
            raise PolicyRefusal(554, "5.7.1", f"<{normal}>: Relay access denied")
        return RecipientRoute(normal, remote=[normal])
    route = RecipientRoute(normal)
    for target in targets:
        if await _is_account(store, target, targets, normal):
            route.local.append(target)
        elif await store.accounts.is_local_domain(target.rpartition("@")[2]):
            continue  # an alias pointing at a user that no longer exists: nothing to deliver to
        else:
            route.remote.append(target)
    if not route.local and not route.remote:
        raise PolicyRefusal(550, "5.1.1", f"<{normal}>: no such user here")
    if route.local and not route.remote:
        route.quota_checked = await _check_quota(store, route.local, declared_size, normal)
    return route


async def _route_srs_bounce(
    store: Store, srs: SenderRewriter, address: str, default_domain: str, declared_size: int | None
) -> RecipientRoute:
    """Mail to an SRS address we made goes to the sender it encodes (checked before parse_address:
    SRS local parts may be longer than the 64 octets RFC 5321 section 4.5.3.1.1 allows)."""
    try:
        original = parse_address(srs.reverse(address))
    except (SrsError, BadAddress) as exc:
        raise PolicyRefusal(550, "5.7.1", f"<{address}>: not a valid SRS address of ours ({exc})") from None
    if await store.accounts.is_local_domain(original.domain):
        route = await route_recipient(
            store,
            str(original),
            authenticated=False,
            default_domain=default_domain,
            declared_size=declared_size,
        )
        return replace(route, address=address.lower())
    return RecipientRoute(address.lower(), remote=[str(original)])


async def _is_account(store: Store, target: str, targets: list[str], address: str) -> bool:
    # resolve() returns an account's own address for it; only other targets need a second look.
    if targets == [target] and _same_mailbox(target, address):
        return True
    resolved = await store.accounts.resolve(target) if "@" in target else None
    return resolved == [target]


def _same_mailbox(target: str, address: str) -> bool:
    """`address` is `target` itself or its plus-address."""
    return target == address or without_plus_tag(address) == target


async def _check_quota(store: Store, accounts: list[str], declared_size: int | None, address: str) -> bool:
    """Refuse when no local mailbox of this recipient has room (RFC 1870 section 6.1, RFC 3463 X.2.2).
    Returns whether any of the accounts has a quota at all."""
    limited = False
    found = []
    for target in accounts:
        try:
            account = await store.accounts.get_user(target)
        except NotFound:
            continue
        limited = limited or account.quota_bytes is not None
        if has_room(account, declared_size or 0):
            return limited
        found.append(account)
    raise PolicyRefusal(*_full_reply(found, declared_size or 0, f"<{address}>"))


async def quota_refusal(store: Store, addresses: list[str], size: int) -> tuple[int, str, str]:
    """The reply for a message of `size` octets that none of `addresses` (accounts) has room for."""
    accounts = []
    for address in addresses:
        try:
            accounts.append(await store.accounts.get_user(address))
        except NotFound:
            continue
    return _full_reply(accounts, size, ", ".join(f"<{a}>" for a in addresses))


def _full_reply(accounts: list[Account], size: int, who: str) -> tuple[int, str, str]:
    """552 5.2.2 when the message is larger than every quota (it can never fit), else 452 4.2.2."""
    if accounts and all(a.quota_bytes is not None and size > a.quota_bytes for a in accounts):
        return 552, "5.2.2", f"{who}: message is larger than the mailbox quota"
    return 452, "4.2.2", f"{who}: mailbox full"


def has_room(account: Account, size: int) -> bool:
    if account.quota_bytes is None:
        return True
    return account.used_bytes < account.quota_bytes and account.used_bytes + size <= account.quota_bytes


def sender_allowed(address: str, allowed: set[str]) -> bool:
    """An authenticated user's sender address check (plus-addresses of allowed ones pass too).

    The one rule for envelope sender, From: and Sender: alike (like Postfix's
    reject_sender_login_mismatch): the address must be one the account owns."""
    try:
        normal = str(parse_address(address))
    except BadAddress:
        return False
    return normal in allowed or without_plus_tag(normal) in allowed
