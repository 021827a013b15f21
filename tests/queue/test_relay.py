"""The SMTP client side against a scripted server: per-recipient results, extensions, TLS, hosts."""

import asyncio
import ssl

import pytest

from tests.queue.fake_smtp import FakeSMTP
from tidings.config import QueueSettings
from tidings.net.tls import client_context, ensure_self_signed, server_context
from tidings.queue.mx import NextHop
from tidings.queue.relay import RelayJob, RelayRecipient, relay, xtext

MESSAGE = b"From: a@a.test\r\nTo: x@b.test\r\nSubject: t\r\n\r\n.leading dot\r\nbody\r\n"


@pytest.fixture
def fake():
    servers = []

    def make(**kwargs):
        server = FakeSMTP(**kwargs).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


def run(job, hops, **settings):
    settings.setdefault("connect_timeout", 3)
    return asyncio.run(
        relay(job, hops, helo="mail.a.test", settings=QueueSettings(**settings), tls_context=client_context())
    )


def hop(server):
    return NextHop("mx.b.test", "127.0.0.1", server.port)


def job(*recipients, **kwargs):
    return RelayJob("a@a.test", [RelayRecipient(i, r) for i, r in enumerate(recipients)], MESSAGE, **kwargs)


def test_each_recipient_gets_its_own_result(fake):
    server = fake(rcpt_replies={"bad@b.test": ["550 5.1.1 no such user"], "busy@b.test": ["450 4.2.1 busy"]})
    results = run(job("ok@b.test", "bad@b.test", "busy@b.test"), [hop(server)])
    assert [results[i].state for i in range(3)] == ["delivered", "failed", "deferred"]
    assert results[1].reply == "550 5.1.1 no such user" and results[1].remote_mta == "mx.b.test"
    assert results[2].status == "4.2.1"
    [tx] = server.wait_messages(1)
    assert tx.rcpts == [("ok@b.test", [])]
    assert tx.data == MESSAGE  # dot-stuffing undone by the server: content arrives unchanged
    assert tx.helo == "mail.a.test"


def test_data_reply_applies_to_all_accepted_recipients(fake):
    server = fake(data_replies=["554 5.6.0 content rejected"])
    results = run(job("x@b.test", "y@b.test"), [hop(server)])
    assert {r.state for r in results.values()} == {"failed"} and results[0].status == "5.6.0"


def test_dsn_size_and_8bit_parameters_are_sent_when_advertised(fake):
    server = fake()
    j = RelayJob(
        "a@a.test",
        [RelayRecipient(0, "x@b.test", notify="SUCCESS,FAILURE", orcpt="rfc822;x+tag@b.test")],
        MESSAGE,
        envid="id=1",
        ret="hdrs",
        body_8bit=True,
    )
    run(j, [hop(server)])
    [tx] = server.wait_messages(1)
    assert set(tx.mail_params) == {f"SIZE={len(MESSAGE)}", "BODY=8BITMIME", "RET=HDRS", "ENVID=id+3D1"}
    assert tx.rcpts == [("x@b.test", ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;x+2Btag@b.test"])]


def test_no_extension_parameters_to_a_plain_server(fake):
    server = fake(extensions=())
    j = RelayJob(
        "a@a.test", [RelayRecipient(0, "x@b.test", notify="SUCCESS")], MESSAGE, envid="e", ret="FULL"
    )
    results = run(j, [hop(server)])
    [tx] = server.wait_messages(1)
    assert tx.mail_params == [] and tx.rcpts == [("x@b.test", [])]
    # NOTIFY=SUCCESS could not be passed on: we must report "relayed" ourselves (RFC 3461 section 5.2.2).
    assert results[0].relayed_without_dsn


def test_message_larger_than_advertised_size_fails_permanently(fake):
    server = fake(extensions=("SIZE 10",))
    results = run(job("x@b.test"), [hop(server)])
    assert results[0].state == "failed" and results[0].status == "5.3.4"
    assert server.transactions == []


def test_smtputf8_message_to_server_without_it_fails_5_6_7(fake):
    server = fake(extensions=("8BITMIME",))
    results = run(job("x@b.test", smtputf8=True), [hop(server)])
    assert results[0].state == "failed" and results[0].status == "5.6.7"


def test_starttls_is_used_when_offered(fake, tmp_path):
    ensure_self_signed(tmp_path / "c.pem", tmp_path / "k.pem", "mx.b.test")
    server = fake(tls=server_context(tmp_path / "c.pem", tmp_path / "k.pem"))
    results = run(job("x@b.test"), [hop(server)])
    assert results[0].state == "delivered"
    [tx] = server.wait_messages(1)
    assert tx.tls


def test_required_tls_defers_when_not_offered(fake):
    server = fake()
    results = run(job("x@b.test"), [hop(server)], require_tls=True)
    assert results[0].state == "deferred" and results[0].status == "4.7.10"
    assert server.messages == []


def test_unreachable_host_falls_through_to_the_next_one(fake):
    server = fake()
    dead = fake()
    dead.stop()
    results = run(job("x@b.test"), [NextHop("dead.b.test", "127.0.0.1", dead.port), hop(server)])
    assert results[0].state == "delivered" and results[0].remote_mta == "mx.b.test"


def test_greeting_refusal_moves_on_and_all_hosts_failing_defers(fake):
    refusing = fake(greeting="554 5.7.1 go away")
    results = run(job("x@b.test"), [NextHop("r.b.test", "127.0.0.1", refusing.port)])
    assert results[0].state == "deferred"


def test_xtext_encodes_plus_equals_and_non_printables():
    assert xtext("a+b=c d") == "a+2Bb+3Dc+20d"


def test_failed_tls_handshake_falls_back_to_plain_text(fake, tmp_path):
    ensure_self_signed(tmp_path / "c.pem", tmp_path / "k.pem", "mx.b.test")
    picky = server_context(tmp_path / "c.pem", tmp_path / "k.pem")
    picky.verify_mode = ssl.CERT_REQUIRED  # we present no client certificate: the handshake fails
    picky.load_verify_locations(tmp_path / "c.pem")
    server = fake(tls=picky)
    results = run(job("x@b.test"), [hop(server)])
    assert results[0].state == "delivered"
    [tx] = server.wait_messages(1)
    assert not tx.tls and server.connections == 2
    assert run(job("x@b.test"), [hop(server)], require_tls=True)[0].state == "deferred"
