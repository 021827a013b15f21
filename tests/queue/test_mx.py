"""Next-hop resolution with an injected resolver: MX order, implicit MX, null MX, failures."""

import asyncio
import random
from types import SimpleNamespace

import dns.exception
import dns.name
import dns.resolver
import pytest

from tidings.config import QueueSettings
from tidings.queue.mx import NextHop, RoutingError, make_resolver, next_hops, order_mx


class FakeResolver:
    """Answers from a dict {(name, rdtype): [records] | exception class}; anything else is NoAnswer."""

    def __init__(self, zone: dict):
        self.zone = zone
        self.queries: list[tuple[str, str]] = []

    async def resolve(self, qname, rdtype):
        self.queries.append((qname, rdtype))
        answer = self.zone.get((qname, rdtype))
        if answer is None:
            raise dns.resolver.NoAnswer()
        if isinstance(answer, type) and issubclass(answer, Exception):
            raise answer()
        if rdtype == "MX":
            return [SimpleNamespace(preference=p, exchange=dns.name.from_text(h)) for p, h in answer]
        return [SimpleNamespace(address=a) for a in answer]


def hops(domain, zone, settings=None, own=""):
    return asyncio.run(
        next_hops(domain, settings or QueueSettings(), FakeResolver(zone), own, random.Random(1))
    )


def test_mx_hosts_are_tried_in_preference_order_with_their_addresses():
    zone = {
        ("b.test", "MX"): [(20, "mx2.b.test."), (10, "mx1.b.test.")],
        ("mx1.b.test", "A"): ["192.0.2.1"],
        ("mx1.b.test", "AAAA"): ["2001:db8::1"],
        ("mx2.b.test", "A"): ["192.0.2.2"],
    }
    assert hops("b.test", zone) == [
        NextHop("mx1.b.test", "192.0.2.1", 25, 10),
        NextHop("mx1.b.test", "2001:db8::1", 25, 10),
        NextHop("mx2.b.test", "192.0.2.2", 25, 20),
    ]


def test_equal_preferences_are_shuffled_but_never_before_better_ones():
    records = [(10, "a"), (10, "b"), (10, "c"), (5, "best"), (20, "last")]
    seen_first = set()
    for seed in range(30):
        ordered = order_mx(records, rng=random.Random(seed))
        assert ordered[0] == (5, "best") and ordered[-1] == (20, "last")
        seen_first.add(ordered[1][1])
    assert seen_first == {"a", "b", "c"}


def test_own_hostname_in_mx_list_drops_it_and_worse_hosts():
    assert order_mx([(10, "mx1"), (20, "me.test"), (30, "mx3")], "me.test") == [(10, "mx1")]
    with pytest.raises(RoutingError) as info:
        order_mx([(10, "me.test"), (20, "mx2")], "me.test")
    assert info.value.permanent


def test_no_mx_falls_back_to_the_domains_address_records():
    zone = {("b.test", "A"): ["192.0.2.7"]}
    assert hops("b.test", zone) == [NextHop("b.test", "192.0.2.7", 25, 0)]


def test_null_mx_is_a_permanent_failure_5_1_10():
    with pytest.raises(RoutingError) as info:
        hops("nomail.test", {("nomail.test", "MX"): [(0, ".")]})
    assert info.value.permanent and info.value.status == "5.1.10"


def test_nonexistent_domain_is_permanent_and_lookup_timeout_is_temporary():
    with pytest.raises(RoutingError) as info:
        hops("gone.test", {("gone.test", "MX"): dns.resolver.NXDOMAIN})
    assert info.value.permanent and info.value.status == "5.1.2"
    with pytest.raises(RoutingError) as info:
        hops("slow.test", {("slow.test", "MX"): dns.exception.Timeout})
    assert not info.value.permanent and info.value.status.startswith("4.")


def test_domain_without_mx_or_address_records_is_permanent():
    with pytest.raises(RoutingError) as info:
        hops("empty.test", {})
    assert info.value.permanent


def test_mx_hosts_that_do_not_resolve_now_are_temporary():
    zone = {("b.test", "MX"): [(10, "mx1.b.test.")], ("mx1.b.test", "A"): dns.resolver.NoNameservers}
    with pytest.raises(RoutingError) as info:
        hops("b.test", zone)
    assert not info.value.permanent


def test_static_route_bypasses_dns():
    settings = QueueSettings(routes={"b.test": ("127.0.0.3", 2525)})
    resolver = FakeResolver({})
    result = asyncio.run(next_hops("B.test", settings, resolver))
    assert result == [NextHop("127.0.0.3", "127.0.0.3", 2525)] and resolver.queries == []


def test_address_literal_is_its_own_next_hop():
    assert hops("[192.0.2.9]", {}) == [NextHop("192.0.2.9", "192.0.2.9", 25)]


def test_configured_dns_server_is_used():
    resolver = make_resolver(QueueSettings(dns_resolver=("127.0.0.53", 5353)))
    assert resolver.nameservers == ["127.0.0.53"] and resolver.port == 5353
