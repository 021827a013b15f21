"""The queue's failure paths: one broken domain, a lost body, an alias loop, a mail loop, a lease
lost to another node. Each must end in a clean result (delivered once, bounced, or left to the node
that holds the claim) and never in an entry that is re-sent or retried for ever."""

from __future__ import annotations

import time

from sqlalchemy import update

from tests.queue.test_worker import (
    MESSAGE,
    accept,
    inbox,
    parse,
    queue_count,
    recipient_groups,
    wait_until,
)
from tidings.store import schema


def test_a_domain_whose_delivery_breaks_keeps_the_others_results_and_still_expires(fake, sender_server):
    peer = fake()
    # c.test goes to the same peer; its recipient cannot even be written in a plain-ASCII session, so
    # relaying to c.test raises inside the SMTP client on every attempt.
    a = sender_server(
        peer,
        routes={"b.test": ("127.0.0.1", peer.port), "c.test": ("127.0.0.1", peer.port)},
        lifetime=2.0,
        delay_warning=100,
        retry_base=0.3,
        retry_max=0.5,
    )
    a.add_user("alice@a.test")
    accept(a, remote=["bob@b.test", "jörg@c.test"])
    [bounce] = wait_until(lambda: inbox(a, "alice@a.test"), timeout=15, what="expiry bounce")
    [group] = recipient_groups(bounce)
    assert group["Final-Recipient"] == "rfc822;jörg@c.test"
    assert group["Action"] == "failed" and group["Status"] == "5.4.7"
    wait_until(lambda: queue_count(a) == 0, what="entry finished")
    assert [[r for r, _ in tx.rcpts] for tx in peer.messages] == [["bob@b.test"]]  # relayed once


def test_alias_loop_at_delivery_time_bounces_5_4_6_and_the_relayed_recipient_gets_one_copy(
    fake, sender_server
):
    peer = fake()
    a = sender_server(peer)
    a.add_user("alice@a.test")
    a.call(a.store.accounts.add_alias("loop1@a.test", ["loop2@a.test"]))
    a.call(a.store.accounts.add_alias("loop2@a.test", ["loop1@a.test"]))
    # Scheduled: the local recipient is resolved by the queue at release time, beside the remote one.
    accept(a, local=["loop1@a.test"], remote=["bob@b.test"], release_at=time.time() + 0.3)
    [bounce] = wait_until(lambda: inbox(a, "alice@a.test"), timeout=10, what="bounce")
    [group] = recipient_groups(bounce)
    assert group["Final-Recipient"] == "rfc822;loop1@a.test"
    assert group["Status"] == "5.4.6" and "alias loop" in group["Diagnostic-Code"]
    wait_until(lambda: queue_count(a) == 0, what="entry finished")
    time.sleep(0.8)  # several retry periods: nothing is sent again
    assert len(peer.messages) == 1


def test_missing_message_body_bounces_without_the_original(fake, sender_server):
    peer = fake()
    a = sender_server(peer)
    a.add_user("alice@a.test")
    big = MESSAGE + b"x" * 600_000 + b"\r\n"  # larger than the inline limit: a blob file
    result = accept(a, big, remote=["bob@b.test"], release_at=time.time() + 0.5)
    a.store.blobs.files.path_of(result.blob_hash).unlink()  # lost (a disk fault, a bad restore)
    [bounce] = wait_until(lambda: inbox(a, "alice@a.test"), timeout=10, what="bounce")
    assert [p.get_content_type() for p in parse(bounce).iter_parts()] == [
        "text/plain",
        "message/delivery-status",
    ]
    [group] = recipient_groups(bounce)
    assert group["Final-Recipient"] == "rfc822;bob@b.test" and group["Status"] == "5.3.0"
    wait_until(lambda: queue_count(a) == 0, what="entry finished")
    assert peer.transactions == []


def test_message_with_too_many_hops_is_bounced_5_4_6_instead_of_relayed(fake, sender_server):
    peer = fake()
    a = sender_server(peer)
    a.add_user("alice@a.test")
    hops = b"".join(
        b"Received: from relay%d.test by relay%d.test; Mon, 1 Jan 2024\r\n" % (n, n) for n in range(51)
    )
    accept(a, hops + MESSAGE, remote=["bob@b.test"])
    [bounce] = wait_until(lambda: inbox(a, "alice@a.test"), timeout=10, what="bounce")
    [group] = recipient_groups(bounce)
    assert group["Status"] == "5.4.6" and "Too many hops" in group["Diagnostic-Code"]
    wait_until(lambda: queue_count(a) == 0, what="entry finished")
    assert peer.transactions == []


def test_a_node_whose_claim_was_taken_over_records_nothing(fake, sender_server):
    peer = fake(data_delays=[1.5])
    a = sender_server(peer, lease=30)
    result = accept(a, remote=["bob@b.test"])
    wait_until(lambda: peer.data_started, what="DATA")

    def taken_over(tx):
        # What another node does once this node's lease has lapsed (a stalled process): claim it.
        tx.conn.execute(
            update(schema.queue)
            .where(schema.queue.c.id == result.queue_id)
            .values(claimed_by="node-b", claimed_until=time.time() + 60)
        )

    a.call(a.store.db.write(taken_over))
    peer.wait_messages(1)
    time.sleep(0.5)  # the first node's attempt has ended by now
    entry = a.call(a.store.queue.get(result.queue_id))
    assert [r.status for r in entry.recipients] == ["pending"]  # node-b's attempt decides
    assert entry.attempts == 0


def test_a_failure_report_that_cannot_be_sent_keeps_the_message_until_it_can(fake, sender_server):
    peer = fake(rcpt_replies={"nobody@b.test": ["550 5.1.1 no such user"]})
    a = sender_server(peer)
    a.add_user("alice@a.test")
    # The sender's own address is misconfigured (an alias loop): the bounce cannot be queued.
    a.call(a.store.accounts.add_alias("team@a.test", ["crew@a.test"]))
    a.call(a.store.accounts.add_alias("crew@a.test", ["team@a.test"]))
    result = accept(a, sender="team@a.test", remote=["nobody@b.test"])
    entry = wait_until(
        lambda: (e := a.call(a.store.queue.get(result.queue_id))).attempts >= 1 and e, what="an attempt"
    )
    assert [r.status for r in entry.recipients] == ["pending"]  # kept, not dropped without a word
    a.call(a.store.accounts.remove_alias("crew@a.test"))
    a.call(a.store.accounts.add_alias("crew@a.test", ["alice@a.test"]))
    [bounce] = wait_until(lambda: inbox(a, "alice@a.test"), timeout=10, what="bounce")
    [group] = recipient_groups(bounce)
    assert group["Final-Recipient"] == "rfc822;nobody@b.test" and group["Status"] == "5.1.1"
    wait_until(lambda: queue_count(a) == 0, what="entry finished")
