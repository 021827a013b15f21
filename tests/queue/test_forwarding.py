"""We sign only what we authored; what we forward keeps its own signatures and gets an SRS sender.

Three hosts: d.test (a Tidings instance on 127.0.0.3, where dave lives), a.test (the Tidings instance
under test on 127.0.0.2, with fwd@a.test forwarding to carol@c.test) and c.test (a scripted server
that records what arrives). Mail goes over real sockets between all three.
"""

from __future__ import annotations

import smtplib

import dkim
import pytest

from tests.queue.fake_smtp import FakeSMTP
from tests.queue.test_end_to_end import PASSWORD, inbox, submit, wait_until
from tidings.config import QueueSettings
from tidings.mail.dkim import make_key
from tidings.server import load_srs_secret

KEYS = {"a.test": make_key(1024), "d.test": make_key(1024)}


def published_key(name: bytes, timeout: int = 5) -> bytes | None:
    """DNS for dkimpy: the TXT records both domains publish."""
    for domain, (_, txt) in KEYS.items():
        if name == f"sel._domainkey.{domain}.".encode():
            return txt.encode()
    return None


def signing_domains(message: bytes) -> list[str]:
    return [
        line.split(b"d=", 1)[1].split(b";", 1)[0].decode()
        for line in message.replace(b"\r\n\t", b" ").split(b"\r\n")
        if line.lower().startswith(b"dkim-signature:")
    ]


@pytest.fixture
def hosts(make_server):
    remote = FakeSMTP().start()
    settings = dict(poll_interval=0.2, retry_base=0.3, retry_max=1.0, connect_timeout=2.0)
    listeners = ("smtp", "submission")
    d = make_server(
        "d", host="127.0.0.3", domain="d.test", listeners=listeners, queue=QueueSettings(**settings)
    )
    routes = {"c.test": ("127.0.0.1", remote.port), "d.test": ("127.0.0.3", d.ports["smtp"])}
    a = make_server(
        "a",
        host="127.0.0.2",
        domain="a.test",
        listeners=listeners,
        queue=QueueSettings(routes=routes, **settings),
    )
    d.config.queue.routes["a.test"] = ("127.0.0.2", a.ports["smtp"])
    for server, domain in ((a, "a.test"), (d, "d.test")):
        server.call(server.store.accounts.set_dkim(domain, "sel", KEYS[domain][0]))
    a.add_user("alice@a.test", PASSWORD)
    a.call(a.store.accounts.add_alias("fwd@a.test", ["carol@c.test"]))
    d.add_user("dave@d.test", PASSWORD)
    yield a, d, remote
    remote.stop()


def test_forwarded_mail_keeps_its_signature_and_gets_an_srs_sender(hosts):
    a, d, remote = hosts
    submit(d, "dave@d.test", ["fwd@a.test"], "Hello via the alias")
    [tx] = remote.wait_messages(1)
    assert tx.rcpts[0][0] == "carol@c.test"
    assert tx.mail_from.startswith("SRS0=") and tx.mail_from.endswith("=d.test=dave@a.test")
    assert a.app.srs.reverse(tx.mail_from) == "dave@d.test"
    assert signing_domains(tx.data) == ["d.test"]  # dave's server signed; a.test did not add its own
    assert dkim.verify(tx.data, dnsfunc=published_key)


def test_mail_from_outside_is_never_signed_with_our_key_even_when_it_claims_our_domain(hosts):
    a, _, remote = hosts
    spoof = b"From: Alice <alice@a.test>\r\nTo: fwd@a.test\r\nSubject: wire the money\r\n\r\nNow.\r\n"
    with smtplib.SMTP(a.host, a.ports["smtp"], timeout=10) as client:
        client.sendmail("mallory@evil.test", ["fwd@a.test"], spoof)
    [tx] = remote.wait_messages(1)
    assert signing_domains(tx.data) == []
    assert tx.mail_from.startswith("SRS0=") and tx.mail_from.endswith("=evil.test=mallory@a.test")


def test_a_bounce_to_the_srs_address_reaches_the_original_sender(hosts):
    a, d, remote = hosts
    submit(d, "dave@d.test", ["fwd@a.test"], "Will bounce")
    [tx] = remote.wait_messages(1)
    bounce = (
        f"From: MAILER-DAEMON@c.test\r\nTo: {tx.mail_from}\r\nSubject: Undelivered Mail\r\n\r\n"
        "carol@c.test: mailbox unavailable\r\n"
    ).encode()
    with smtplib.SMTP(a.host, a.ports["smtp"], timeout=10) as client:
        client.sendmail("", [tx.mail_from], bounce)
    [returned] = wait_until(lambda: inbox(d, "dave@d.test"), what="the bounce at dave's")
    assert b"carol@c.test: mailbox unavailable" in returned


def test_forged_or_unknown_srs_addresses_are_refused(hosts):
    a, d, remote = hosts
    submit(d, "dave@d.test", ["fwd@a.test"], "Hello")
    [tx] = remote.wait_messages(1)
    srs_hash = tx.mail_from.split("=")[1]
    forged_hash = tx.mail_from.replace(srs_hash, "AAAAAA" if srs_hash != "AAAAAA" else "BBBBBB", 1)
    other_target = tx.mail_from.replace("=d.test=dave@", "=victim.test=dave@")
    wait_until(lambda: a.call(a.store.queue.count()) == 0, what="the forward recorded as done")
    with smtplib.SMTP(a.host, a.ports["smtp"], timeout=10) as client:
        client.ehlo()
        client.mail("")
        for address in (forged_hash, other_target, "SRS0=x@a.test"):
            code, text = client.rcpt(address)
            assert code == 550 and text.startswith(b"5.7.1"), (address, text)
    assert a.call(a.store.queue.count()) == 0  # nothing was queued for the forged addresses


def test_authenticated_submission_is_signed_and_keeps_its_sender(hosts):
    a, _, remote = hosts
    submit(a, "alice@a.test", ["carol@c.test"], "Signed by a.test")
    [tx] = remote.wait_messages(1)
    assert tx.mail_from == "alice@a.test"
    assert signing_domains(tx.data) == ["a.test"]
    assert dkim.verify(tx.data, dnsfunc=published_key)


def test_srs_secret_is_created_once_and_read_back_on_the_next_start(hosts):
    a, _, _ = hosts
    path = a.config.srs_secret_path
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_srs_secret(a.config) == a.app.srs.secret  # what the next start will use
    assert len(a.app.srs.secret) == 64


def test_catch_all_forward_is_rewritten_and_unsigned_too(hosts):
    a, _, remote = hosts
    a.call(a.store.accounts.add_alias("@a.test", ["catcher@c.test"]))
    spoof = b"From: Alice <alice@a.test>\r\nTo: anything@a.test\r\nSubject: caught\r\n\r\nHi.\r\n"
    with smtplib.SMTP(a.host, a.ports["smtp"], timeout=10) as client:
        client.sendmail("mallory@evil.test", ["anything@a.test"], spoof)
    [tx] = remote.wait_messages(1)
    assert tx.rcpts[0][0] == "catcher@c.test" and signing_domains(tx.data) == []
    assert a.app.srs.reverse(tx.mail_from) == "mallory@evil.test"
