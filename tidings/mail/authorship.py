"""Who a message says it is from: its From: and Sender: addresses, and the header-size limits.

RFC 5322 section 3.6.2: From: names the author(s), Sender: the mailbox that actually sent the
message. Both are read here, with the one header parser (`mail.headers.parse_header_block`), for
everyone who decides on them: the submission check (an authenticated user may only claim
addresses they own) and the DKIM signer (which domain signs). Reading them in one place is the
point: two parsers that disagree on where the header ends or which From counts let a message pass
one check as alice and be signed as someone else.

Pure functions over message bytes; nothing here raises on malformed input. What is unreadable is
reported as such (`Authors.unreadable`), never silently skipped: an address we cannot read is an
address we cannot vouch for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tidings.mail.address import BadAddress, parse_address
from tidings.mail.address_list import MAX_ADDRESSES, mail_addresses, parse_address_list
from tidings.mail.headers import MAX_STRUCTURED_VALUE, HeaderBlock, bytes_to_text, unfold

# Defaults for `limits.header_fields` and `limits.header_bytes`. A real header block has a few
# dozen fields and a few KiB (long mailing-list and ARC chains reach perhaps 200 fields, 60 KiB);
# Postfix's header_size_limit is 100 KiB. Far more than that is an attack on parsers, not mail.
DEFAULT_MAX_HEADER_FIELDS = 1000
DEFAULT_MAX_HEADER_BYTES = 256 * 1024

AUTHOR_FIELDS = ("from", "sender")


@dataclass
class Authors:
    """The addresses of every From: and Sender: field, normalised (lower-case, IDNA domain)."""

    from_addresses: list[str] = field(default_factory=list)
    sender_addresses: list[str] = field(default_factory=list)
    from_fields: int = 0
    # "From: <text>" for each field (or address) that could not be read as addresses.
    unreadable: list[str] = field(default_factory=list)

    @property
    def addresses(self) -> list[str]:
        """Every address the message claims as its author or sender, From first."""
        return self.from_addresses + self.sender_addresses

    @property
    def author_domain(self) -> str | None:
        """The domain of the first From address (the one DKIM and DMARC align on), or None."""
        return self.from_addresses[0].rpartition("@")[2] if self.from_addresses else None


def header_problem(block: HeaderBlock, max_fields: int, max_bytes: int) -> str | None:
    """Why a message's top-level header block is too big to accept, or None.

    `block` must have been read with `max_fields` above `max_fields` (e.g. `max_fields + 1`), so that
    "too many" shows as more fields or as `over_field_limit`.
    """
    if block.over_field_limit or len(block.fields) > max_fields:
        return f"more than {max_fields} header fields"
    if block.body_start - block.start > max_bytes:
        return f"header section larger than {max_bytes} octets"
    return None


def read_authors(raw: bytes, block: HeaderBlock) -> Authors:
    """From: and Sender: addresses of the message whose header block is `block`."""
    out = Authors()
    for f in block.fields:
        name = f.name.lower()
        if name not in AUTHOR_FIELDS:
            continue
        label = "From" if name == "from" else "Sender"
        target = out.from_addresses if name == "from" else out.sender_addresses
        out.from_fields += name == "from"
        value = raw[f.value_start : f.end]
        text = bytes_to_text(unfold(value)).strip()
        if len(value) > MAX_STRUCTURED_VALUE:
            out.unreadable.append(f"{label}: field longer than {MAX_STRUCTURED_VALUE} octets")
            continue
        parsed = mail_addresses(parse_address_list(" ".join(text.split())))
        if not parsed or len(parsed) >= MAX_ADDRESSES:
            out.unreadable.append(f"{label}: {text[:200]}")
            continue
        for address in parsed:
            try:
                target.append(str(parse_address(address.addr_spec)))
            except BadAddress:
                out.unreadable.append(f"{label}: {address.addr_spec[:200]}")
    return out
