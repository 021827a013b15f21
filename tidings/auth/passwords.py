"""Password hashing with argon2id, and the minimum strength we accept for new passwords."""

from __future__ import annotations

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
