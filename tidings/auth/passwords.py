"""Password hashing with argon2id, and the minimum strength we accept for new passwords."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# Moderate cost: a login costs ~10-20 ms of one core, which bounds guessing without starving a
# two-core box when a mail client reconnects many sessions at once.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)

MIN_PASSWORD_LENGTH = 8


class WeakPassword(ValueError):
    pass


def check_strength(password: str) -> None:
    """Refuse empty, short and trivially guessable passwords with a reason the admin can act on."""
    if not password or not password.strip():
        raise WeakPassword("the password is empty")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"the password is shorter than {MIN_PASSWORD_LENGTH} characters")
    if len(set(password)) < 4:
        raise WeakPassword("the password uses fewer than 4 different characters")
    if password.lower() in {"password", "passw0rd", "12345678", "123456789", "qwertyui", "letmein1"}:
        raise WeakPassword("the password is on the list of most common passwords")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    try:
        return _hasher.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True


# A hash to verify against when the account does not exist, so timing does not reveal which
# addresses exist.
DUMMY_HASH = _hasher.hash("not a real password, only for constant-time refusal")


class VerifiedPasswords:
    """Recently verified passwords, so a client that opens many connections pays argon2 once.

    Mail clients log in again for every folder connection and every reconnect; at ~15 ms of CPU per
    argon2 check, 5,000 IMAP logins would keep a core busy for over a minute. Like Dovecot's auth
    cache, a success is remembered for a while: as an HMAC under a key that lives only in this
    process, keyed by the stored hash, so changing the password forgets it at once. Failures are
    never remembered: every wrong password costs a full argon2 check.
    """

    def __init__(self, ttl: float = 600.0, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def _digest(self, stored_hash: str, password: str) -> bytes:
        message = stored_hash.encode() + b"\0" + password.encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def check(self, stored_hash: str, password: str) -> bool:
        entry = self._entries.get(stored_hash)
        if entry is None:
            return False
        expires, digest = entry
        if expires < time.monotonic():
            del self._entries[stored_hash]
            return False
        return hmac.compare_digest(digest, self._digest(stored_hash, password))

    def remember(self, stored_hash: str, password: str) -> None:
        self._entries[stored_hash] = (time.monotonic() + self.ttl, self._digest(stored_hash, password))
        self._entries.move_to_end(stored_hash)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
