"""Sender Rewriting Scheme (SRS): envelope senders of forwarded mail, and their reversal for bounces.

When we forward mail that we did not author (an alias or catch-all pointing at a remote address),
the next hop checks SPF for the envelope sender's domain, and we are not in that domain's record.
So the envelope sender is rewritten into an address at our domain that encodes the original one,
in the SRS0 form of Shevek's SRS paper as libsrs2 and postsrsd write it::

    SRS0=HHHHHH=TT=example.com=carol@forwarder.test

HHHHHH is a truncated HMAC-SHA1 over timestamp, domain and local part under our secret; TT is the
day (days since the epoch, modulo 1024) in two base32 characters. A bounce to that address is
reversed to carol@example.com after checking the hash and that the timestamp is at most `max_age`
old; anything else is a forgery and refused, so the reversal is no open relay.

An address that already is SRS0 (we are the second forwarder) becomes SRS1, which keeps the first
forwarder's host and its SRS0 part instead of nesting (local parts would grow without bound)::

    SRS1=HHHHHH=first.test==HHHH=TT=example.com=carol@forwarder.test

Our hash is base32 (case-insensitive) rather than libsrs2's base64, because SMTP servers, ours
included, may lower-case local parts; only we ever check our hashes, so nothing else needs to agree.

Pure functions: no I/O. The secret is loaded (or created) by the server at start.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

HASH_LENGTH = 6  # base32 characters: 30 bits; a forger gets 20 guesses per connection
TIME_PRECISION = 86400  # one timestamp step is a day
TIME_SLOTS = 1024  # two base32 characters
_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_SEPARATORS = "=+-"  # libsrs2 accepts all three after SRS0/SRS1


class SrsError(ValueError):
    """An SRS address that is malformed, forged or expired."""


def is_srs(address: str) -> bool:
    """Whether the local part of `address` looks like SRS0 or SRS1 (case-insensitive)."""
    local = address.rpartition("@")[0]
    return len(local) > 5 and local[:4].upper() in ("SRS0", "SRS1") and local[4] in _SEPARATORS


@dataclass(frozen=True)
class SenderRewriter:
    secret: bytes
    domain: str  # the domain of the rewritten addresses (one of ours)
    max_age: float = 21 * 86400.0

    def forward(self, sender: str, now: float | None = None) -> str:
        """The envelope sender to use when forwarding mail from `sender`. The null sender stays null
        (RFC 5321 section 4.5.5: it must never be replaced), and so does an address without a domain."""
        local, at, host = sender.rpartition("@")
        if not sender or not at or not local:
            return sender
        if is_srs(sender):
            try:
                return self._forward_srs(local, host)
            except SrsError:
                pass  # not really SRS1 after all: wrap it like any other address
        stamp = _timestamp(now)
        return f"SRS0={self._hash(stamp, host, local)}={stamp}={host}={local}@{self.domain}"

    def _forward_srs(self, local: str, host: str) -> str:
        separator, rest = local[4], local[5:]
        if local[:4].upper() == "SRS0":
            original_host, srs0_rest = host, separator + rest
        else:
            # SRS1<sep>hash=first-host=<sep>srs0-rest: keep the first host and SRS0 part, re-hash.
            try:
                _hash, original_host, srs0_rest = rest.split("=", 2)
            except ValueError:
                raise SrsError(f"malformed SRS1 address {local}@{host}") from None
        return f"SRS1={self._hash(original_host, srs0_rest)}={original_host}={srs0_rest}@{self.domain}"

    def reverse(self, address: str, now: float | None = None) -> str:
        """The address a bounce to our SRS `address` goes to; SrsError when it is not one we made."""
        local = address.rpartition("@")[0]
        if not is_srs(address):
            raise SrsError(f"{address} is not an SRS address")
        kind, rest = local[:4].upper(), local[5:]
        if kind == "SRS0":
            parts = rest.split("=", 3)
            if len(parts) != 4 or not all(parts):
                raise SrsError("malformed SRS0 address")
            given, stamp, host, original_local = parts
            self._check(given, stamp, host, original_local)
            self._check_age(stamp, now)
            return f"{original_local}@{host}"
        parts = rest.split("=", 2)
        if len(parts) != 3 or not all(parts) or len(parts[2]) < 2 or parts[2][0] not in _SEPARATORS:
            raise SrsError("malformed SRS1 address")
        given, host, srs0_rest = parts
        self._check(given, host, srs0_rest)
        return f"SRS0{srs0_rest}@{host}"

    def _hash(self, *parts: str) -> str:
        # "=" cannot occur in a domain, so joining with it keeps the parts apart: the hash of
        # x.com + carol cannot be reused for x.comc + arol (plain concatenation would allow that).
        data = "=".join(parts).lower().encode("utf-8")
        digest = hmac.new(self.secret, data, hashlib.sha1).digest()
        return base64.b32encode(digest).decode("ascii")[:HASH_LENGTH]

    def _check(self, given: str, *parts: str) -> None:
        if not hmac.compare_digest(given.upper().encode(), self._hash(*parts).encode()):
            raise SrsError("SRS hash does not match (forged address)")

    def _check_age(self, stamp: str, now: float | None) -> None:
        stamp = stamp.upper()
        if len(stamp) != 2 or any(ch not in _BASE32 for ch in stamp):
            raise SrsError("malformed SRS timestamp")
        then = _BASE32.index(stamp[0]) * 32 + _BASE32.index(stamp[1])
        today = _day(now)
        age_days = (today - then) % TIME_SLOTS
        if age_days * TIME_PRECISION > self.max_age:
            raise SrsError("SRS address expired")


def _day(now: float | None) -> int:
    return int((time.time() if now is None else now) // TIME_PRECISION) % TIME_SLOTS


def _timestamp(now: float | None) -> str:
    day = _day(now)
    return _BASE32[day // 32] + _BASE32[day % 32]
