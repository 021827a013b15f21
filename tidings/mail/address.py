"""Mail addresses: validation and the normal form we store (lower-case, IDNA domain).

Local parts are compared case-insensitively, as users expect and as nearly every server does.
Plus-addressing: `user+tag@domain` is delivered to `user@domain` when no exact match exists, and
whoever may send as `user@domain` may send as `user+tag@domain`. `without_plus_tag` is the one place
that rule lives: routing (store.accounts), recipient policy and sender ownership all ask it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LOCAL_DOT_ATOM = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]+)*$"
)
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class BadAddress(ValueError):
    pass


@dataclass(frozen=True)
class Address:
    local: str
    domain: str

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}"

    @property
    def base_local(self) -> str:
        """The local part without a +tag (plus-addressing)."""
        base = without_plus_tag(str(self))
        return self.local if base is None else base.rpartition("@")[0]


def without_plus_tag(address: str) -> str | None:
    """`user@domain` for a normalised `user+tag@domain`, None when the address has no +tag.

    The tag starts at the first "+" after the first character (a local part that starts with "+"
    is an address of its own, as in Postfix's recipient_delimiter handling).
    """
    local, at, domain = address.rpartition("@")
    if not at or "+" not in local[1:]:
        return None
    return f"{local[0]}{local[1:].split('+', 1)[0]}@{domain}"


def normalise_domain(domain: str) -> str:
    domain = domain.strip().rstrip(".").lower()
    if not domain:
        raise BadAddress("empty domain")
    try:
        ascii_domain = domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        raise BadAddress(f"invalid domain {domain!r}") from None
    if len(ascii_domain) > 253:
        raise BadAddress("domain too long")
    if ascii_domain.startswith("[") and ascii_domain.endswith("]"):
        return ascii_domain  # address literal
    labels = ascii_domain.split(".")
    if not all(_LABEL.match(label) for label in labels):
        raise BadAddress(f"invalid domain {domain!r}")
    return ascii_domain


def parse_address(text: str) -> Address:
    """Validate `local@domain` and return it normalised; raise BadAddress with the reason."""
    text = text.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    if "@" not in text:
        raise BadAddress(f"{text!r} has no @domain")
    local, _, domain = text.rpartition("@")
    if not local:
        raise BadAddress(f"{text!r} has an empty local part")
    if len(local) > 64:
        raise BadAddress("local part longer than 64 octets")
    if local.startswith('"') and local.endswith('"') and len(local) >= 2:
        if any(c in local[1:-1] for c in "\r\n\0"):
            raise BadAddress("invalid quoted local part")
    elif not _LOCAL_DOT_ATOM.match(local):
        raise BadAddress(f"invalid local part {local!r}")
    return Address(local.lower(), normalise_domain(domain))
