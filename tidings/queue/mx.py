"""Next hops for a destination domain: static routes, MX records, or the implicit MX.

RFC 5321 section 5.1: look up MX records and try them in order of preference (randomising among
equal preferences); with no MX records, the domain's own address records act as an implicit MX of
preference 0. RFC 7505: a single MX of "." (a "null MX") means the domain accepts no mail at all.
A failing lookup (timeout, SERVFAIL) is temporary; a domain that does not exist is permanent.

The resolver is injected (anything with dnspython's `async resolve(name, rdtype)`), so tests never
touch the network. This module never opens SMTP connections.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass
from typing import Any, Protocol

import dns.asyncresolver
import dns.exception
import dns.resolver

from tidings.config import QueueSettings

SMTP_PORT = 25
MAX_HOPS = 10  # addresses tried per attempt; more only delays the retry of a broken domain


class Resolver(Protocol):
    async def resolve(self, qname: str, rdtype: str) -> Any: ...


@dataclass(frozen=True)
class NextHop:
    """Where to connect: `host` is the name (for logs, Remote-MTA and SNI), `address` the IP to dial."""

    host: str
    address: str
    port: int = SMTP_PORT
    preference: int = 0


class RoutingError(Exception):
    """No usable next hop. `permanent` decides between bounce and retry."""

    def __init__(self, permanent: bool, status: str, text: str) -> None:
        super().__init__(text)
        self.permanent = permanent
        self.status = status
        self.text = text


def make_resolver(settings: QueueSettings) -> dns.asyncresolver.Resolver:
    """The system resolver, or the configured DNS server (`queue.dns_resolver`)."""
    if settings.dns_resolver is None:
        return dns.asyncresolver.Resolver()
    resolver = dns.asyncresolver.Resolver(configure=False)
    host, port = settings.dns_resolver
    resolver.nameservers = [host]
    resolver.port = port
    return resolver


def order_mx(
    records: list[tuple[int, str]], own_hostname: str = "", rng: random.Random | None = None
) -> list[tuple[int, str]]:
    """Sort (preference, host) by preference, shuffling hosts of equal preference (RFC 5321 section 5.1).

    If we are one of the exchangers, only strictly more preferred hosts are usable: sending to an
    equal or less preferred one would loop (RFC 5321 section 5.1, last paragraphs)."""
    rng = rng or random.Random()
    shuffled = list(records)
    rng.shuffle(shuffled)
    ordered = sorted(shuffled, key=lambda r: r[0])  # sort is stable: the shuffle survives within a preference
    own = own_hostname.lower().rstrip(".")
    mine = [pref for pref, host in ordered if own and host == own]
    if mine:
        ordered = [(pref, host) for pref, host in ordered if pref < min(mine)]
        if not ordered:
            raise RoutingError(True, "5.4.6", f"{own} is the best mail exchanger but the domain is not local")
    return ordered


async def next_hops(
    domain: str,
    settings: QueueSettings,
    resolver: Resolver,
    own_hostname: str = "",
    rng: random.Random | None = None,
) -> list[NextHop]:
    """The hosts to try for `domain`, best first. Raises RoutingError when there are none."""
    domain = domain.lower().rstrip(".")
    if domain in settings.routes:
        host, port = settings.routes[domain]
        return [NextHop(host, host, port)]
    if domain.startswith("[") and domain.endswith("]"):
        literal = domain[1:-1]
        literal = literal[5:] if literal.lower().startswith("ipv6:") else literal
        try:
            ipaddress.ip_address(literal)
        except ValueError:
            raise RoutingError(True, "5.1.2", f"bad address literal {domain}") from None
        return [NextHop(literal, literal, SMTP_PORT)]

    try:
        answer = await resolver.resolve(domain, "MX")
        records = [(int(r.preference), _name(r.exchange)) for r in answer]
    except dns.resolver.NXDOMAIN:
        raise RoutingError(True, "5.1.2", f"domain {domain} does not exist") from None
    except dns.resolver.NoAnswer:
        records = []
    except dns.exception.DNSException as exc:
        raise RoutingError(False, "4.4.3", f"MX lookup for {domain} failed: {_describe(exc)}") from None

    if any(host == "" for _, host in records):
        # RFC 7505 section 3: "0 ." announces that the domain accepts no mail.
        raise RoutingError(True, "5.1.10", f"{domain} does not accept mail (null MX)")
    if not records:
        records = [(0, domain)]  # the implicit MX (RFC 5321 section 5.1)
    ordered = order_mx(records, own_hostname, rng)

    hops: list[NextHop] = []
    lookup_failed = False
    for preference, host in ordered:
        try:
            addresses = await host_addresses(resolver, host)
        except dns.exception.DNSException:
            lookup_failed = True
            continue
        hops.extend(NextHop(host, address, SMTP_PORT, preference) for address in addresses)
        if len(hops) >= MAX_HOPS:
            break
    if hops:
        return hops[:MAX_HOPS]
    if not lookup_failed and records == [(0, domain)]:
        raise RoutingError(True, "5.1.2", f"{domain} has neither MX nor address records")
    raise RoutingError(False, "4.4.4", f"no mail exchanger of {domain} has a usable address")


async def host_addresses(resolver: Resolver, host: str) -> list[str]:
    """IPv4 then IPv6 addresses of `host` (an IP literal stands for itself). Raises only on lookup
    errors; a name without addresses gives an empty list."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    addresses: list[str] = []
    errors: list[dns.exception.DNSException] = []
    for rdtype in ("A", "AAAA"):
        try:
            addresses.extend(str(r.address) for r in await resolver.resolve(host, rdtype))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            continue
        except dns.exception.DNSException as exc:
            errors.append(exc)
    if not addresses and errors:
        raise errors[0]
    return addresses


def _name(value: object) -> str:
    """A DNS name as lower-case text without the trailing dot ("." becomes "")."""
    text = value.to_text() if hasattr(value, "to_text") else str(value)
    return text.lower().rstrip(".")


def _describe(exc: Exception) -> str:
    return type(exc).__name__ + (f": {exc}" if str(exc) else "")
