"""Two Tidings instances (a.test on 127.0.0.2, b.test on 127.0.0.3) exchanging mail through their
queues: submission on one side, SMTP relay, MX reception on the other, bounces back."""

from __future__ import annotations

import email
import email.policy
import smtplib
import ssl
import time

import pytest

from tidings.config import QueueSettings

PASSWORD = "correct horse 1"


def wait_until(predicate, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return value


def inbox(server, address: str) -> list[bytes]:
    async def read():
        account = await server.store.accounts.get_user(address)
        box = await server.store.mailboxes.get(account.id, "INBOX")
        _, refs = await server.store.mailboxes.messages(account.id, box.id)
        return [await server.store.mailboxes.read_blob(ref.blob_hash) for ref in refs]

    return server.call(read())


def submit(server, user: str, recipients: list[str], body: str) -> None:
    with smtplib.SMTP(server.host, server.ports["submission"], timeout=10) as client:
        client.starttls(context=ssl._create_unverified_context())
        client.login(user, PASSWORD)
        message = f"From: <{user}>\r\nTo: {', '.join(recipients)}\r\nSubject: e2e\r\n\r\n{body}\r\n"
        client.sendmail(user, recipients, message.encode())


@pytest.fixture
def pair(make_server):
    settings = dict(poll_interval=0.2, retry_base=0.3, retry_max=1.0, connect_timeout=2.0)
    listeners = ("smtp", "submission")
    b = make_server(
        "b", host="127.0.0.3", domain="b.test", listeners=listeners, queue=QueueSettings(**settings)
    )
    a = make_server(
        "a",
        host="127.0.0.2",
        domain="a.test",
        listeners=listeners,
        queue=QueueSettings(routes={"b.test": ("127.0.0.3", b.ports["smtp"])}, **settings),
    )
    b.config.queue.routes["a.test"] = ("127.0.0.2", a.ports["smtp"])  # the worker reads routes live
    a.add_user("alice@a.test", PASSWORD)
    b.add_user("bob@b.test", PASSWORD)
    return a, b


def test_mail_submitted_on_a_arrives_on_b_and_the_reply_comes_back(pair):
    a, b = pair
    submit(a, "alice@a.test", ["bob@b.test"], "Hello from A")
    [received] = wait_until(lambda: inbox(b, "bob@b.test"), what="mail on b")
    assert b"Hello from A" in received
    assert b"Received:" in received
    submit(b, "bob@b.test", ["alice@a.test"], "Hello back from B")
    [reply] = wait_until(lambda: inbox(a, "alice@a.test"), what="reply on a")
    assert b"Hello back from B" in reply
    wait_until(
        lambda: a.call(a.store.queue.count()) == 0 and b.call(b.store.queue.count()) == 0, what="empty"
    )


def test_unknown_remote_user_comes_back_as_a_bounce(pair):
    a, b = pair
    submit(a, "alice@a.test", ["bob@b.test", "nobody@b.test"], "one of two")
    wait_until(lambda: inbox(b, "bob@b.test"), what="mail for bob")
    [bounce] = wait_until(lambda: inbox(a, "alice@a.test"), what="bounce")
    report = email.message_from_bytes(bounce, policy=email.policy.default)
    assert report.get_content_type() == "multipart/report"
    group = list(report.iter_parts())[1].get_payload()[1]
    assert group["Final-Recipient"] == "rfc822;nobody@b.test"
    assert group["Action"] == "failed" and group["Status"].startswith("5.")
    assert group["Remote-MTA"] == "dns; 127.0.0.3"
