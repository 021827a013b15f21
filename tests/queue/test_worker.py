"""The delivery worker inside a running server: relay, retry, bounces, warnings, expiry, scheduling,
DKIM and restarts. Messages enter the queue through `store.delivery.accept`, as the SMTP server does."""

from __future__ import annotations

import email
import email.policy
import time

import dkim

from tidings.cli import main
from tidings.mail.dkim import make_key
from tidings.queue.dsn import Original, RecipientReport, bounce
from tidings.store.delivery import Envelope

MESSAGE = (
    b"From: Alice <alice@a.test>\r\nTo: bob@b.test\r\nSubject: queued\r\n"
    b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <q1@a.test>\r\n\r\nHello Bob.\r\n"
)


def wait_until(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# The account id a submitted message carries (queue.account_id has no foreign key): the tests here
# model mail an authenticated user submitted, which is what gets DKIM-signed and keeps its sender.
SUBMITTER = 1


def accept(server, raw=MESSAGE, sender="alice@a.test", remote=(), local=(), **envelope):
    remote = [r if isinstance(r, tuple) else (r, None, None) for r in remote]
    envelope.setdefault("account_id", SUBMITTER)
    return server.call(server.store.delivery.accept(Envelope(sender, list(local), remote, **envelope), raw))


def inbox(server, address: str) -> list[bytes]:
    async def read():
        account = await server.store.accounts.get_user(address)
        box = await server.store.mailboxes.get(account.id, "INBOX")
        _, refs = await server.store.mailboxes.messages(account.id, box.id)
        return [await server.store.mailboxes.read_blob(ref.blob_hash) for ref in refs]

    return server.call(read())


def queue_count(server) -> int:
    return server.call(server.store.queue.count())


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=email.policy.default)


def recipient_groups(dsn_raw: bytes):
    status = list(parse(dsn_raw).iter_parts())[1]
    return status.get_payload()[1:]


def test_remote_message_is_relayed_and_leaves_the_queue(fake, sender_server):
    peer = fake()
    a = sender_server(peer)
    accept(a, remote=["bob@b.test"])
    [tx] = peer.wait_messages(1)
    assert tx.mail_from == "alice@a.test" and tx.rcpts[0][0] == "bob@b.test"
    assert tx.helo == "mail.a.test"
    assert b"Hello Bob." in tx.data
    wait_until(lambda: queue_count(a) == 0, what="empty queue")


def test_temporary_failure_is_retried_until_accepted(fake, sender_server):
    peer = fake(rcpt_replies={"bob@b.test": ["450 4.2.0 mailbox busy", "250 2.1.5 ok"]})
    a = sender_server(peer)
    result = accept(a, remote=["bob@b.test"])
    entry = wait_until(lambda: a.call(a.store.queue.list()), what="entry")[0]
    assert entry.id == result.queue_id
    peer.wait_messages(1)
    assert len(peer.transactions) == 2
    wait_until(lambda: queue_count(a) == 0, what="empty queue")


def test_one_rejected_recipient_is_bounced_while_the_other_is_delivered(fake, sender_server):
    peer = fake(rcpt_replies={"nobody@b.test": ["550 5.1.1 no such user"]})
    a = sender_server(peer)
    a.add_user("alice@a.test")
    accept(
        a, remote=[("bob@b.test", None, None), ("nobody@b.test", None, "rfc822;Nobody@b.test")], envid="E1"
    )
    [tx] = peer.wait_messages(1)
    assert [r for r, _ in tx.rcpts] == ["bob@b.test"]
    [bounce] = wait_until(lambda: inbox(a, "alice@a.test"), what="bounce")
    msg = parse(bounce)
    assert msg.get_content_type() == "multipart/report"
    assert msg["From"].addresses[0].addr_spec.startswith("MAILER-DAEMON@")
    [group] = recipient_groups(bounce)
    assert group["Final-Recipient"] == "rfc822;nobody@b.test"
    assert group["Original-Recipient"] == "rfc822;Nobody@b.test"
    assert group["Action"] == "failed" and group["Status"] == "5.1.1"
    assert group["Remote-MTA"] == "dns; 127.0.0.1"
    assert group["Diagnostic-Code"] == "smtp; 550 5.1.1 no such user"
    per_message = list(msg.iter_parts())[1].get_payload()[0]
    assert per_message["Original-Envelope-Id"] == "E1"
    returned = list(msg.iter_parts())[2]
    assert returned.get_content_type() == "text/rfc822-headers"  # RFC 3462: headers only
    assert "Message-ID: <q1@a.test>" in returned.get_content() and b"Hello Bob." not in bounce
    wait_until(lambda: queue_count(a) == 0, what="empty queue")


def test_delay_warning_is_sent_once_then_delivery_continues(fake, sender_server):
    peer = fake(rcpt_replies={"bob@b.test": ["451 4.3.0 later"] * 6 + ["250 ok"]})
    a = sender_server(peer, delay_warning=0.5, retry_base=0.2, retry_max=0.3)
    a.add_user("alice@a.test")
    accept(a, remote=["bob@b.test"])
    peer.wait_messages(1, timeout=15)
    messages = inbox(a, "alice@a.test")
    assert len(messages) == 1
    msg = parse(messages[0])
    assert msg["Subject"].startswith("Delayed Mail")
    [group] = recipient_groups(messages[0])
    assert group["Action"] == "delayed" and group["Status"] == "4.3.0" and group["Will-Retry-Until"]


def test_notify_never_suppresses_delay_warning_and_bounce(fake, sender_server):
    peer = fake(rcpt_replies={"bob@b.test": ["450 4.2.0 later"]})
    a = sender_server(peer, delay_warning=0.2, lifetime=1.0, retry_base=0.2, retry_max=0.3)
    a.add_user("alice@a.test")
    accept(a, remote=[("bob@b.test", "NEVER", None)])
    wait_until(lambda: queue_count(a) == 0, what="expiry")
    assert inbox(a, "alice@a.test") == []


def test_message_expires_after_its_lifetime_with_a_bounce(fake, sender_server):
    peer = fake(rcpt_replies={"bob@b.test": ["450 4.2.0 still busy"]})
    a = sender_server(peer, lifetime=1.5, delay_warning=100, retry_base=0.3, retry_max=0.5)
    a.add_user("alice@a.test")
    accept(a, remote=["bob@b.test"])
    [bounce] = wait_until(lambda: inbox(a, "alice@a.test"), timeout=15, what="bounce")
    [group] = recipient_groups(bounce)
    assert group["Action"] == "failed" and group["Status"] == "5.4.7"
    assert group["Diagnostic-Code"] == "smtp; 450 4.2.0 still busy"
    wait_until(lambda: queue_count(a) == 0, what="the expiry recorded")  # recorded after the bounce
    assert peer.messages == []


def test_bounce_of_a_null_sender_message_is_dropped(fake, sender_server):
    peer = fake(rcpt_replies={"bob@b.test": ["550 5.1.1 gone"]})
    a = sender_server(peer)
    a.add_user("alice@a.test")
    accept(a, sender="", remote=["bob@b.test"])
    wait_until(lambda: queue_count(a) == 0, what="entry finished")
    assert inbox(a, "alice@a.test") == []


def test_bounce_to_a_remote_sender_is_queued_with_the_null_reverse_path(fake, sender_server):
    peer = fake(rcpt_replies={"nobody@b.test": ["550 5.1.1 no such user"]})
    a = sender_server(peer)
    accept(a, sender="someone@b.test", remote=["nobody@b.test"])
    [tx] = peer.wait_messages(1)
    assert tx.mail_from == "" and tx.rcpts == [("someone@b.test", ["NOTIFY=NEVER"])]
    assert parse(tx.data).get_content_type() == "multipart/report"
    wait_until(lambda: queue_count(a) == 0, what="empty queue")


def test_bounce_api_reports_over_quota_recipients_for_the_smtp_server(sender_server):
    a = sender_server(None)
    a.add_user("alice@a.test")
    stored = accept(a, remote=[], local=["alice@a.test"])  # only to have the message as a blob
    original = Original("alice@a.test", stored.blob_hash, time.time(), envid="X1", ret="HDRS")
    full = RecipientReport("full@a.test", "failed", "5.2.2", "552 5.2.2 mailbox full", notify="FAILURE")
    silent = RecipientReport("quiet@a.test", "failed", "5.2.2", notify="NEVER")
    assert a.call(bounce(a.app, original, [full, silent])) is True
    messages = wait_until(lambda: len(inbox(a, "alice@a.test")) == 2 and inbox(a, "alice@a.test"), what="DSN")
    [group] = recipient_groups(messages[1])
    assert group["Final-Recipient"] == "rfc822;full@a.test" and group["Status"] == "5.2.2"
    assert list(parse(messages[1]).iter_parts())[2].get_content_type() == "text/rfc822-headers"


def test_notify_success_to_a_server_without_dsn_gives_a_relayed_report(fake, sender_server):
    peer = fake(extensions=("8BITMIME",))
    a = sender_server(peer)
    a.add_user("alice@a.test")
    accept(a, remote=[("bob@b.test", "SUCCESS", None)])
    [report] = wait_until(lambda: inbox(a, "alice@a.test"), what="success DSN")
    [group] = recipient_groups(report)
    assert group["Action"] == "relayed" and group["Status"] == "2.0.0"


def test_scheduled_message_is_held_until_its_release_time(fake, sender_server):
    peer = fake()
    a = sender_server(peer)
    release = time.time() + 1.5
    accept(a, remote=["bob@b.test"], release_at=release)
    time.sleep(1.0)
    assert peer.messages == [] and queue_count(a) == 1
    peer.wait_messages(1, timeout=5)
    assert time.time() >= release


def test_scheduled_message_to_a_local_user_is_delivered_by_the_queue(fake, sender_server):
    a = sender_server(None)
    a.add_user("alice@a.test")
    a.add_user("carol@a.test")
    accept(a, local=["carol@a.test"], release_at=time.time() + 0.8)
    assert inbox(a, "carol@a.test") == []
    [message] = wait_until(lambda: inbox(a, "carol@a.test"), what="local delivery")
    assert b"Hello Bob." in message
    # The outcome is recorded after the delivery (a crash between them repeats it, never loses it).
    wait_until(lambda: queue_count(a) == 0, what="the delivery recorded")


def test_scheduled_message_to_a_full_mailbox_bounces_with_5_2_2(fake, sender_server):
    a = sender_server(None)
    a.add_user("alice@a.test")
    a.add_user("full@a.test", quota=10)
    accept(a, local=["full@a.test"], release_at=time.time() + 0.3)
    [bounce] = wait_until(lambda: inbox(a, "alice@a.test"), what="bounce")
    [group] = recipient_groups(bounce)
    assert group["Status"] == "5.2.2" and group["Final-Recipient"] == "rfc822;full@a.test"


def test_outgoing_mail_is_dkim_signed_for_a_domain_with_a_key(fake, sender_server):
    peer = fake()
    a = sender_server(peer)
    private_key, txt = make_key(1024)
    a.call(a.store.accounts.set_dkim("a.test", "sel1", private_key))
    accept(a, remote=["bob@b.test"])
    [tx] = peer.wait_messages(1)
    assert tx.data.startswith(b"DKIM-Signature:")
    lookups = []

    def dnsfunc(name, timeout=5):
        lookups.append(name)
        return txt.encode() if name == b"sel1._domainkey.a.test." else None

    assert dkim.verify(tx.data, dnsfunc=dnsfunc)
    assert lookups == [b"sel1._domainkey.a.test."]


def test_queued_entry_survives_a_restart_and_is_delivered(fake, sender_server):
    a = sender_server(None)  # b.test unreachable: the entry stays queued
    accept(a, remote=["bob@b.test"])
    time.sleep(0.5)
    database = a.config.database
    a.stop()
    peer = fake()
    restarted = sender_server(peer, name="a", database=database)
    peer.wait_messages(1)
    wait_until(lambda: queue_count(restarted) == 0, what="empty queue")


def test_shutdown_releases_claims_of_running_deliveries(fake, sender_server):
    peer = fake(data_delays=[30.0])
    a = sender_server(peer, lease=60)
    result = accept(a, remote=["bob@b.test"])
    wait_until(lambda: peer.data_started, what="DATA")
    worker = a.server.workers[0]
    a.loop.call_soon_threadsafe(worker.cancel)
    wait_until(worker.done, what="worker stopped")
    entry = a.call(a.store.queue.get(result.queue_id))
    assert entry.pending  # nothing lost, and due again at once rather than after the 60 s lease
    assert a.call(a.store.queue.next_due()) <= time.time()


def test_lease_of_a_long_delivery_is_renewed(fake, sender_server):
    peer = fake(data_delays=[2.0])
    a = sender_server(peer, lease=0.9)
    accept(a, remote=["bob@b.test"])
    peer.wait_messages(1, timeout=10)
    wait_until(lambda: queue_count(a) == 0, what="empty queue")
    assert len(peer.transactions) == 1  # never claimed a second time while the first was running


def test_connections_per_domain_are_limited(fake, sender_server):
    peer = fake(data_delays=[0.3])
    a = sender_server(peer, per_domain_concurrency=2)
    for _ in range(5):
        accept(a, remote=["bob@b.test"])
    peer.wait_messages(5, timeout=10)
    assert peer.max_active == 2


def test_worker_wakes_on_queue_change_without_waiting_for_the_poll(fake, sender_server):
    peer = fake()
    a = sender_server(peer, poll_interval=30)
    time.sleep(0.3)  # the worker is now asleep for up to 30 s
    start = time.monotonic()
    accept(a, remote=["bob@b.test"])
    peer.wait_messages(1, timeout=5)
    assert time.monotonic() - start < 3


def test_queue_cli_shows_scheduled_time_and_retry_keeps_it(sender_server, tmp_path, capsys):
    a = sender_server(None)
    result = accept(a, remote=["bob@b.test"], release_at=time.time() + 3600)
    config = tmp_path / "cli.toml"
    config.write_text(f'data_dir = "{a.config.data_dir}"\ndatabase = "{a.config.database}"\n')
    cli = ["--config", str(config), "queue"]
    assert main([*cli, "list"]) == 0
    listing = capsys.readouterr().out
    assert f"{result.queue_id}  from <alice@a.test>  to bob@b.test" in listing
    assert "scheduled" in listing and "1 message(s) in the queue" in listing
    assert main([*cli, "retry"]) == 0
    assert "0 message(s) will be retried" in capsys.readouterr().out
    assert main([*cli, "delete", str(result.queue_id)]) == 0
    assert queue_count(a) == 0


def test_a_cancel_that_arrives_with_a_wake_up_stops_the_worker(sender_server):
    """The worker sleeps until woken or due; a shutdown that cancels it just as a change wakes it
    must still stop it (asyncio.wait_for on Python 3.11 returned normally there, the loop went on
    and server.stop() hung — seen once in a few hundred runs of this file)."""
    import asyncio

    from tidings.queue.worker import QueueWorker

    a = sender_server(None, poll_interval=30)

    async def race() -> str:
        worker = QueueWorker(a.app)
        sleeper = asyncio.create_task(worker._sleep())
        await asyncio.sleep(0.2)  # asleep on the wake event now
        worker.wake()
        sleeper.cancel()
        try:
            await sleeper
        except asyncio.CancelledError:
            return "stopped"
        return "cancellation swallowed"

    assert a.call(race()) == "stopped"
