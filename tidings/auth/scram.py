"""SCRAM-SHA-256 (RFC 5802, RFC 7677): the keys we store per account.

A SCRAM server never sees the password: it keeps a salt, an iteration count, StoredKey and
ServerKey, derived once from the password (PBKDF2-HMAC-SHA-256) when it is set. Accounts made
before SCRAM existed get them at their next login with a password (PLAIN, LOGIN, IMAP LOGIN,
POP3 USER/PASS). The same four values serve every protocol (and any other SCRAM server of ours,
such as a chat server) -- they are the standard ones, not tied to mail.

StoredKey and ServerKey let nobody log in, but they are an offline guessing target (PBKDF2 is
cheaper than argon2), so the database and its backups need the same care as the password hashes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from scramp import ScramException, ScramMechanism

MECHANISM = "SCRAM-SHA-256"
# RFC 7677 section 4 asks for at least 4096; every SCRAM client pays this per login unless it
# caches the salted password, so we stay at the common value (as Dovecot and mox do).
ITERATIONS = 4096

_mechanism = ScramMechanism(MECHANISM)


@dataclass(frozen=True)
class ScramKeys:
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


def derive_keys(password: str, iterations: int = ITERATIONS) -> ScramKeys | None:
    """New SCRAM-SHA-256 keys for `password` (a fresh random salt every time); None for a password
    SASLprep (RFC 4013) refuses, which can then only be used with PLAIN and LOGIN."""
    try:
        salt, stored_key, server_key, count = _mechanism.make_auth_info(password, iteration_count=iterations)
    except ScramException:
        return None
    return ScramKeys(salt, count, stored_key, server_key)


# -- the server side of one exchange --------------------------------------------------------------
#
# The exchange (RFC 5802 section 5): client-first (gs2 header, n=user, r=nonce), server-first (r=,
# s=salt, i=iterations), client-final (c=channel binding, r=, p=proof), server-final (v=signature).
# scramp checks the proof and the channel binding; we read the user name first, because the keys
# come from the store (an await) and scramp asks for them synchronously.

MECHANISMS = (MECHANISM, MECHANISM + "-PLUS")
# RFC 5929 section 4: the hash of the server's certificate. The TLS 1.3 "tls-exporter" binding
# (RFC 9266) needs the TLS exporter, which Python's ssl module does not expose.
TLS_SERVER_END_POINT = "tls-server-end-point"


@dataclass(frozen=True)
class ChannelBinding:
    name: str
    data: bytes


@dataclass(frozen=True)
class ClientFirst:
    text: str
    flag: str  # "n" (client cannot bind), "y" (client could, thinks we cannot), "p" (binds)
    binding: str  # the channel binding type named with "p=", else ""
    authzid: str
    username: str


class ScramFailed(Exception):
    """The exchange failed; `reason` is `password` (wrong proof), `binding` or `malformed`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


def _saslname(value: str) -> str:
    """RFC 5802 section 5.1: "=2C" is ",", "=3D" is "=", any other "=" is malformed."""
    if "=" in value.replace("=2C", "").replace("=3D", ""):
        raise ScramFailed("malformed", "bad escape in a user name")
    return value.replace("=2C", ",").replace("=3D", "=")


def read_client_first(data: bytes) -> ClientFirst:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ScramFailed("malformed", "client-first-message is not UTF-8") from None
    parts = text.split(",")
    if len(parts) < 4 or not parts[2].startswith("n=") or not parts[3].startswith("r="):
        raise ScramFailed("malformed", "bad client-first-message")
    flag, authzid = parts[0], parts[1]
    binding = ""
    if flag.startswith("p="):
        flag, binding = "p", flag[2:]
    elif flag not in ("n", "y"):
        raise ScramFailed("malformed", "bad channel binding flag")
    if authzid and not authzid.startswith("a="):
        raise ScramFailed("malformed", "bad authorization identity")
    return ClientFirst(text, flag, binding, _saslname(authzid[2:]), _saslname(parts[2][2:]))


def stand_in_keys(name: str, secret: bytes) -> ScramKeys:
    """Keys for a name with no usable keys (no such account, disabled, not yet derived): the same
    salt for the same name on every attempt and a proof that never matches, so the exchange looks
    like any other until it fails."""
    digest = hmac.new(secret, name.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
    return ScramKeys(digest[:16], ITERATIONS, secrets.token_bytes(32), secrets.token_bytes(32))


class ScramServer:
    """One SCRAM-SHA-256 or SCRAM-SHA-256-PLUS exchange once the user's keys are known.

    `binding` is the connection's channel binding (None without TLS). It is given to the server
    for both mechanisms: with plain SCRAM-SHA-256 a client saying "y" (it could bind but thinks we
    cannot) is then refused, as RFC 5802 section 6 asks, since that means someone took -PLUS out
    of our mechanism list."""

    def __init__(self, mechanism: str, keys: ScramKeys, binding: ChannelBinding | None) -> None:
        if mechanism not in MECHANISMS:
            raise ScramFailed("malformed", f"unsupported mechanism {mechanism}")
        if mechanism.endswith("-PLUS") and binding is None:
            raise ScramFailed("binding", "channel binding needs TLS")
        cb = (binding.name, binding.data) if binding is not None else None
        auth_info = (keys.salt, keys.stored_key, keys.server_key, keys.iterations)
        self._server = ScramMechanism(mechanism).make_server(lambda _user: auth_info, channel_binding=cb)
        self.mechanism = mechanism

    def server_first(self, client_first: ClientFirst) -> bytes:
        if self.mechanism.endswith("-PLUS") and client_first.flag != "p":
            raise ScramFailed("binding", "SCRAM-SHA-256-PLUS without channel binding")
        try:
            self._server.set_client_first(client_first.text)
            return self._server.get_server_first().encode()
        except ScramException as error:
            raise ScramFailed(_reason(error), str(error)) from None

    def server_final(self, client_final: bytes) -> bytes:
        try:
            self._server.set_client_final(client_final.decode("utf-8"))
            return self._server.get_server_final().encode()
        except UnicodeDecodeError:
            raise ScramFailed("malformed", "client-final-message is not UTF-8") from None
        except ScramException as error:
            raise ScramFailed(_reason(error), str(error)) from None


def _reason(error: ScramException) -> str:
    server_error = getattr(error, "server_error", None)
    if server_error is None:
        return "malformed"
    value = server_error.value
    if value == "invalid-proof":
        return "password"
    if "binding" in value:
        return "binding"
    return "malformed"
