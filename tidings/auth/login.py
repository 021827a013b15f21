"""The one login rule and the one way in: every protocol's LOGIN, USER/PASS and AUTH call `Authenticator`.

The rule (`canonical_account`): a login name is an account address compared case-insensitively
(stored lower-case, IDNA domain); a bare local part means that local part at `default_domain`.
`Alice`, `alice` and `ALICE@Example.ORG` (with default domain example.org) are one account, for
logging in and for the throttle. Nothing else is rewritten: `alice+tag@example.org` is not alice.
A SASL authorization identity must be empty or name the same account by this rule.

`Authenticator` applies the rule, the throttle (auth/throttle.py) and the password check, and writes one
line per authentication to the `tidings.auth` logger, for people and for fail2ban::

    auth ok protocol=imap ip=192.0.2.7 account=alice@example.org mechanism=PLAIN
    auth failed protocol=smtp ip=192.0.2.7 account=alice@example.org mechanism=LOGIN reason=password

`reason` is `password` (wrong password, unknown or disabled account: not told apart), `throttled`,
`authzid`, `binding` (SCRAM channel binding missing or wrong) or `malformed`. `account` is the
canonical account, or the name as given with every character outside printable ASCII replaced by
`?` when it is not an address; it never contains a space, so nothing a client sends can add a
field. docs/admin.md has the fail2ban filter.
Protocol packages never decide any of this; they frame the exchange and map `LoginRefused` to
their replies.
"""

from __future__ import annotations

import enum
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from tidings.auth import scram
from tidings.auth.sasl import SaslError, decode_login_response, decode_plain
from tidings.auth.throttle import LoginThrottle, Throttled
from tidings.mail.address import BadAddress, parse_address
from tidings.net.listener import client_key

audit = logging.getLogger("tidings.auth")

MAX_LOGIN_NAME = 320  # RFC 5321's longest address; longer names are refused unread
PASSWORD_MECHANISMS = ("PLAIN", "LOGIN")

# Sends the server's SASL data (raw bytes; the protocol base64-encodes and frames it) and returns
# the client's decoded response. The protocol raises its own error for a cancel or bad base64.
Challenge = Callable[[bytes], Awaitable[bytes]]


def canonical_account(name: str, default_domain: str) -> str | None:
    """The account address a login name means, or None when it cannot be an address."""
    if not name or len(name) > MAX_LOGIN_NAME:
        return None
    if "@" not in name:
        name = f"{name}@{default_domain}"
    try:
        return str(parse_address(name))
    except BadAddress:
        return None


def tls_binding(end_point: bytes | None) -> scram.ChannelBinding | None:
    """The channel binding SCRAM-SHA-256-PLUS uses on a TLS connection whose server certificate
    hashes to `end_point` (net.tls.server_end_point); None without TLS."""
    return scram.ChannelBinding(scram.TLS_SERVER_END_POINT, end_point) if end_point else None


def loggable(name: str) -> str:
    """A login name as one log field: no space, no control character, bounded length."""
    return re.sub(r"[^\x21-\x7e]", "?", name[:MAX_LOGIN_NAME]) or "-"


class Reason(enum.Enum):
    PASSWORD = "password"
    THROTTLED = "throttled"
    AUTHZID = "authzid"
    MALFORMED = "malformed"
    BINDING = "binding"


class LoginRefused(Exception):
    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(detail or reason.value)
        self.reason = reason


class AccountStore(Protocol):
    """What `Authenticator` needs of store.accounts (auth does not import the store)."""

    async def authenticate(self, address: str, password: str) -> Any | None: ...

    async def scram_keys(self, address: str) -> tuple[Any, scram.ScramKeys] | None: ...


class Authenticator:
    def __init__(
        self, accounts: AccountStore, throttle: LoginThrottle, default_domain: str, offer_plus: bool = False
    ) -> None:
        self.accounts = accounts
        self.offer_plus = offer_plus  # auth.scram_plus
        self.throttle = throttle
        self.default_domain = default_domain
        self._stand_in_secret = secrets.token_bytes(32)  # see scram.stand_in_keys

    def canonical(self, name: str) -> str | None:
        return canonical_account(name, self.default_domain)

    def mechanisms(self, binding: bool = False) -> list[str]:
        """SASL mechanisms to offer, strongest first (only where the protocol allows logging in:
        the protocols decide that). `binding`: the connection has a TLS channel binding, so
        SCRAM-SHA-256-PLUS can be offered."""
        plus = [scram.MECHANISM + "-PLUS"] if binding and self.offer_plus else []
        return [*plus, scram.MECHANISM, *PASSWORD_MECHANISMS]

    async def password(
        self, protocol: str, ip: str, name: str, password: str, *, mechanism: str = "USER", authzid: str = ""
    ):
        """The account for `name` and `password`, or LoginRefused. `mechanism` is for the log
        line: the SASL mechanism, or the protocol's own command (LOGIN for IMAP, USER for POP3)."""
        account_name, shown, attempt = await self._begin(protocol, ip, mechanism, name, authzid)
        account = None
        try:
            # An unusable name is still checked (against a dummy hash): same timing as a wrong password.
            account = await self.accounts.authenticate(account_name or "-", password)
        finally:
            await self.throttle.finish(attempt, account is not None)
        if account is None:
            self.log_failure(protocol, ip, shown, mechanism, Reason.PASSWORD)
            raise LoginRefused(Reason.PASSWORD)
        self.log_success(protocol, ip, account.address, mechanism)
        return account

    async def sasl(
        self,
        protocol: str,
        ip: str,
        mechanism: str,
        initial: bytes | None,
        challenge: Challenge,
        binding: scram.ChannelBinding | None = None,
    ):
        """Run one SASL exchange (RFC 4422) of `mechanism` (upper case, one of `mechanisms()`).

        `initial` is the decoded initial response (b"" for "=", None when absent); `binding` the
        connection's TLS channel binding, if any. Returns the account; raises LoginRefused, or
        SaslError for an exchange that cannot be decoded (also logged as a failure)."""
        if mechanism in scram.MECHANISMS:
            # Without -PLUS on offer, a client that could bind rightly says "y": no binding then.
            binding = binding if self.offer_plus else None
            return await self._scram(protocol, ip, mechanism, initial, challenge, binding)
        try:
            if mechanism == "PLAIN":
                response = initial if initial is not None else await challenge(b"")
                authzid, name, password = decode_plain(response)
            elif mechanism == "LOGIN":
                # draft-murchison-sasl-login: "Username:" then "Password:" (an initial response is the name).
                raw_name = initial if initial is not None else await challenge(b"Username:")
                raw_password = await challenge(b"Password:")
                authzid, name = "", decode_login_response(raw_name)
                password = decode_login_response(raw_password)
            else:
                raise SaslError(f"unsupported mechanism {mechanism}")
        except SaslError:
            self.log_failure(protocol, ip, "-", mechanism, Reason.MALFORMED)
            raise
        return await self.password(protocol, ip, name, password, mechanism=mechanism, authzid=authzid)

    async def _begin(self, protocol: str, ip: str, mechanism: str, name: str, authzid: str):
        """What every credential check starts with: the canonical account for `name` (and how the
        log line shows it), an authorization identity naming that same account, and the attempt
        reserved with the throttle (finished by the caller). Refusals are logged and raised."""
        account_name = self.canonical(name)
        shown = account_name or loggable(name)
        if authzid and self.canonical(authzid) != account_name:
            self.log_failure(protocol, ip, shown, mechanism, Reason.AUTHZID)
            raise LoginRefused(Reason.AUTHZID)
        try:
            attempt = await self.throttle.begin(client_key(ip), account_name)
        except Throttled:
            self.log_failure(protocol, ip, shown, mechanism, Reason.THROTTLED)
            raise LoginRefused(Reason.THROTTLED) from None
        return account_name, shown, attempt

    async def _scram(self, protocol, ip, mechanism, initial, challenge, binding):
        """SCRAM-SHA-256(-PLUS), RFC 5802 / RFC 7677: the password never crosses the wire; the
        stored keys (auth/scram.py) check the client's proof, and the client checks ours."""
        try:
            first = scram.read_client_first(initial if initial is not None else await challenge(b""))
        except scram.ScramFailed as failed:
            self.log_failure(protocol, ip, "-", mechanism, Reason.MALFORMED)
            raise SaslError(str(failed)) from None
        account_name, shown, attempt = await self._begin(
            protocol, ip, mechanism, first.username, first.authzid
        )
        account = None
        reason = Reason.PASSWORD
        try:
            found = await self.accounts.scram_keys(account_name) if account_name else None
            keys = found[1] if found else scram.stand_in_keys(shown, self._stand_in_secret)
            server = scram.ScramServer(mechanism, keys, binding)
            client_final = await challenge(server.server_first(first))
            server_final = server.server_final(client_final)
            if found is not None:
                # RFC 4954 / 5034 / 9051: the server's signature goes out as one more challenge,
                # answered by an empty response.
                if await challenge(server_final) != b"":
                    raise scram.ScramFailed("malformed", "non-empty response to the server signature")
                account = found[0]
        except scram.ScramFailed as failed:
            reason = {"binding": Reason.BINDING, "malformed": Reason.MALFORMED}.get(
                failed.reason, Reason.PASSWORD
            )
        finally:
            await self.throttle.finish(attempt, account is not None)
        if account is None:
            self.log_failure(protocol, ip, shown, mechanism, reason)
            raise LoginRefused(reason)
        self.log_success(protocol, ip, account.address, mechanism)
        return account

    # -- the log line ----------------------------------------------------------------------------

    def log_failure(self, protocol: str, ip: str, account: str, mechanism: str, reason: Reason) -> None:
        audit.warning(
            "auth failed protocol=%s ip=%s account=%s mechanism=%s reason=%s",
            protocol,
            loggable(ip),
            account,
            loggable(mechanism),
            reason.value,
        )

    def log_success(self, protocol: str, ip: str, account: str, mechanism: str) -> None:
        audit.info(
            "auth ok protocol=%s ip=%s account=%s mechanism=%s",
            protocol,
            loggable(ip),
            account,
            loggable(mechanism),
        )
