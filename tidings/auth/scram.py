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

import base64
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
# scramp derives the keys (above) and is the tests' client; the server side is here (see ScramServer).

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

    The checks are ours (a few HMACs, RFC 5802 section 3): scramp refuses a client-first message
    with an authorization identity, which Cyrus SASL clients (mbsync, mutt) always send; whether
    that identity is acceptable is decided before, by the login rule.

    `binding` is the connection's channel binding (None without TLS). A client saying "y" (it could
    bind but thinks we cannot) is refused when we could, as RFC 5802 section 6 asks: someone took
    -PLUS out of our mechanism list."""

    def __init__(self, mechanism: str, keys: ScramKeys, binding: ChannelBinding | None) -> None:
        if mechanism not in MECHANISMS:
            raise ScramFailed("malformed", f"unsupported mechanism {mechanism}")
        self.plus = mechanism.endswith("-PLUS")
        if self.plus and binding is None:
            raise ScramFailed("binding", "channel binding needs TLS")
        self.keys = keys
        self.binding = binding
        self._expected_c = b""
        self._bare = ""
        self._server_first = ""
        self._nonce = ""

    def server_first(self, client_first: ClientFirst) -> bytes:
        cb_data = b""
        if client_first.flag == "p":
            if not self.plus or self.binding is None or client_first.binding != self.binding.name:
                raise ScramFailed("binding", f"channel binding {client_first.binding!r} is not ours")
            cb_data = self.binding.data
        elif self.plus:
            raise ScramFailed("binding", "SCRAM-SHA-256-PLUS without channel binding")
        elif client_first.flag == "y" and self.binding is not None:
            raise ScramFailed("binding", "client could bind, but -PLUS was not offered to it")
        gs2_end = _nth_comma(client_first.text, 2)
        gs2_header, self._bare = client_first.text[: gs2_end + 1], client_first.text[gs2_end + 1 :]
        attributes = self._bare.split(",")
        if attributes[0].startswith("m="):
            raise ScramFailed("malformed", "mandatory extension not supported")
        client_nonce = attributes[1][2:]
        if not client_nonce or not client_nonce.isprintable():
            raise ScramFailed("malformed", "bad client nonce")
        self._expected_c = gs2_header.encode() + cb_data
        self._nonce = client_nonce + base64.b64encode(secrets.token_bytes(18)).decode()
        salt = base64.b64encode(self.keys.salt).decode()
        self._server_first = f"r={self._nonce},s={salt},i={self.keys.iterations}"
        return self._server_first.encode()

    def server_final(self, client_final: bytes) -> bytes:
        try:
            text = client_final.decode("utf-8")
        except UnicodeDecodeError:
            raise ScramFailed("malformed", "client-final-message is not UTF-8") from None
        without_proof, separator, proof_text = text.rpartition(",p=")
        attributes = without_proof.split(",")
        if not separator or len(attributes) < 2 or not attributes[0].startswith("c="):
            raise ScramFailed("malformed", "bad client-final-message")
        if not attributes[1].startswith("r=") or attributes[1][2:] != self._nonce:
            raise ScramFailed("malformed", "the nonce is not this exchange's")
        try:
            channel = base64.b64decode(attributes[0][2:], validate=True)
            proof = base64.b64decode(proof_text, validate=True)
        except ValueError:
            raise ScramFailed("malformed", "bad base64 in client-final-message") from None
        if not hmac.compare_digest(channel, self._expected_c):
            raise ScramFailed("binding", "channel binding does not match this connection")
        auth_message = f"{self._bare},{self._server_first},{without_proof}".encode()
        signature = hmac.new(self.keys.stored_key, auth_message, hashlib.sha256).digest()
        if len(proof) != len(signature):
            raise ScramFailed("malformed", "bad proof length")
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(hashlib.sha256(client_key).digest(), self.keys.stored_key):
            raise ScramFailed("password", "wrong proof")
        server_signature = hmac.new(self.keys.server_key, auth_message, hashlib.sha256).digest()
        return b"v=" + base64.b64encode(server_signature)


def _nth_comma(text: str, n: int) -> int:
    index = -1
    for _ in range(n):
        index = text.index(",", index + 1)
    return index
