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
