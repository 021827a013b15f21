"""SRS addresses: forward and reverse, forgeries and expired ones refused, SRS1 for a second hop."""

from __future__ import annotations

import pytest

from tidings.mail.srs import SenderRewriter, SrsError, is_srs

DAY = 86400.0
NOW = 1_780_000_000.0
srs = SenderRewriter(b"secret one", "fwd.test", max_age=21 * DAY)


def test_forward_makes_an_srs0_address_that_reverses_to_the_original():
    address = srs.forward("Carol@Example.com", now=NOW)
    local, _, domain = address.rpartition("@")
    assert domain == "fwd.test" and local.startswith("SRS0=") and local.endswith("=Example.com=Carol")
    assert is_srs(address)
    assert srs.reverse(address, now=NOW + 3 * DAY) == "Carol@Example.com"
    assert srs.reverse(address.lower(), now=NOW) == "carol@example.com"  # servers may lower-case it


def test_null_sender_and_addresses_without_domain_stay_as_they_are():
    assert srs.forward("") == ""
    assert srs.forward("postmaster") == "postmaster"


def test_a_changed_or_foreign_hash_is_refused():
    address = srs.forward("carol@example.com", now=NOW)
    _, hash_, stamp, host, local = address.split("@")[0].split("=", 4)
    with pytest.raises(SrsError, match="forged"):
        srs.reverse(f"SRS0=AAAAAA={stamp}={host}={local}@fwd.test", now=NOW)
    with pytest.raises(SrsError, match="forged"):  # another target with the same hash
        srs.reverse(f"SRS0={hash_}={stamp}=victim.test={local}@fwd.test", now=NOW)
    with pytest.raises(SrsError, match="forged"):  # the same characters split differently
        srs.reverse(f"SRS0={hash_}={stamp}={host}c={local[1:]}@fwd.test", now=NOW)
    other = SenderRewriter(b"secret two", "fwd.test")
    with pytest.raises(SrsError, match="forged"):
        other.reverse(address, now=NOW)


def test_an_expired_address_is_refused():
    address = srs.forward("carol@example.com", now=NOW)
    assert srs.reverse(address, now=NOW + 21 * DAY) == "carol@example.com"
    with pytest.raises(SrsError, match="expired"):
        srs.reverse(address, now=NOW + 22 * DAY)


@pytest.mark.parametrize(
    "address",
    [
        "SRS0=abc@fwd.test",
        "SRS0==AA=x.test=y@fwd.test",
        "SRS1=xyz@fwd.test",
        "carol@fwd.test",
        "SRS0@fwd.test",
    ],
)
def test_malformed_addresses_are_refused(address):
    with pytest.raises(SrsError):
        srs.reverse(address, now=NOW)


def test_a_second_forwarder_makes_srs1_and_each_hop_reverses_its_part():
    first = srs.forward("carol@example.com", now=NOW)
    second = SenderRewriter(b"other secret", "hop2.test")
    srs1 = second.forward(first, now=NOW)
    first_local = first.rpartition("@")[0]
    assert srs1.startswith("SRS1=") and srs1.endswith(f"=fwd.test={first_local[4:]}@hop2.test")
    back_to_first = second.reverse(srs1, now=NOW)
    assert back_to_first.lower() == first.lower()
    assert srs.reverse(back_to_first, now=NOW) == "carol@example.com"
    third = SenderRewriter(b"third", "hop3.test").forward(srs1, now=NOW)  # SRS1 stays SRS1, one level
    assert third.startswith("SRS1=") and third.count("SRS1") == 1 and "=fwd.test==" in third
