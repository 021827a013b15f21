"""Relay hops of a message: how many times it went through an MTA, to stop mail loops.

RFC 5321 section 6.3: a message that loops between misconfigured systems (forwarders pointing at
each other, an MX that relays back) must be stopped; the count of Received fields is the simple,
traditional measure. Every MTA adds one (section 4.4), so a number far beyond any real path means a
loop. MAX_HOPS is Postfix's `hopcount_limit` default.

Pure functions over message bytes; the one header reader (`mail.headers`) does the parsing.
"""

from __future__ import annotations

from tidings.mail.headers import HeaderBlock, parse_header_block

MAX_HOPS = 50


def hop_count(raw: bytes) -> int:
    """The number of Received fields in the message's header section."""
    return hops_in(parse_header_block(raw, 0, len(raw)))


def hops_in(block: HeaderBlock) -> int:
    """The number of Received fields in an already read header block."""
    return sum(1 for f in block.fields if f.name.lower() == "received")
