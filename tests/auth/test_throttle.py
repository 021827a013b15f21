"""Login throttling that cannot be sidestepped: one counter per canonical account however the name
is spelled and whichever protocol is used, a limit that parallel attempts cannot race past, and one
counter for every node on a shared PostgreSQL database."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from tests.auth.wire import PASSWORD, imap_login, imap_login_async, pop3_user_pass, smtp_auth
from tests.support.running import fresh_database_url
from tidings.config import AuthSettings

ALICE = "alice@example.test"
BOB = "bob@example.test"


def start(make_server, name="srv", **auth):
    running = make_server(name, auth=AuthSettings(**auth))
    running.add_user(ALICE, PASSWORD)
    running.add_user(BOB, PASSWORD)
    return running


def failures(running, kind: str, key: str) -> int:
    window = running.config.auth.failure_window
    return running.call(running.store.login_attempts.failures(kind, key, window))


def test_respelled_names_on_different_protocols_share_one_account_counter(make_server):
    running = start(make_server, max_failures_per_ip=100, max_failures_per_account=3)
    ports = running.ports
    assert imap_login(ports, "Alice", "wrong password") == "failed"
    assert pop3_user_pass(ports, "alice", "wrong password") == "failed"
    assert smtp_auth(ports, "ALICE@Example.Test", "wrong password") == "failed"
    # The limit is reached: every spelling, on every protocol, is refused, the right password too.
    assert imap_login(ports, ALICE, PASSWORD) == "throttled"
    assert pop3_user_pass(ports, "ALICE", PASSWORD) == "throttled"
    assert smtp_auth(ports, "alice", PASSWORD, "LOGIN") == "throttled"
    assert failures(running, "account", ALICE) == 3
    assert imap_login(ports, BOB, PASSWORD) == "ok"  # another account is not affected


def test_parallel_wrong_passwords_get_no_more_checks_than_the_limit(make_server):
    running = start(make_server, max_failures_per_ip=1000, max_failures_per_account=5)

    async def attack():
        names = ["alice", "Alice", ALICE, "ALICE@EXAMPLE.TEST"] * 10
        return await asyncio.gather(
            *(imap_login_async(running.ports["imaps"], name, f"guess {i}") for i, name in enumerate(names))
        )

    outcomes = asyncio.run(attack())
    assert outcomes.count("failed") == 5
    assert outcomes.count("throttled") == 35
    assert failures(running, "account", ALICE) == 5
    assert imap_login(running.ports, ALICE, PASSWORD) == "throttled"


def test_parallel_attempts_from_one_address_stay_under_the_address_limit(make_server):
    running = start(make_server, max_failures_per_ip=4, max_failures_per_account=1000)

    async def attack():
        return await asyncio.gather(
            *(imap_login_async(running.ports["imaps"], f"user{i}", "wrong password") for i in range(30))
        )

    outcomes = asyncio.run(attack())
    assert outcomes.count("failed") == 4 and outcomes.count("throttled") == 26
    assert failures(running, "ip", "127.0.0.1") == 4


def test_parallel_right_passwords_beyond_the_limit_wait_instead_of_failing(make_server):
    """Reservations in flight are not failures: a client opening many connections at once logs in."""
    running = start(make_server, max_failures_per_ip=3, max_failures_per_account=3)

    async def connect_many():
        return await asyncio.gather(
            *(imap_login_async(running.ports["imaps"], ALICE, PASSWORD) for _ in range(20))
        )

    assert asyncio.run(connect_many()) == ["ok"] * 20


def test_a_success_does_not_wipe_the_failures_and_the_window_ends(make_server):
    # A window long enough for four logins on a loaded machine (with 2 s, the first failure had
    # expired before the fourth login under a load of 20 on 2 cores).
    window = 8.0
    running = start(make_server, max_failures_per_ip=100, max_failures_per_account=2, failure_window=window)
    ports = running.ports
    assert imap_login(ports, ALICE, "wrong password") == "failed"
    assert imap_login(ports, ALICE, PASSWORD) == "ok"
    assert imap_login(ports, ALICE, "wrong password") == "failed"
    last_failure = time.monotonic()
    assert imap_login(ports, ALICE, PASSWORD) == "throttled"
    time.sleep(max(0.0, last_failure + window + 0.2 - time.monotonic()))
    assert imap_login(ports, ALICE, PASSWORD) == "ok"


@pytest.mark.skipif(not os.environ.get("TIDINGS_TEST_DATABASE"), reason="needs TIDINGS_TEST_DATABASE")
def test_two_nodes_on_one_postgresql_database_share_the_counter(make_server, tmp_path):
    shared = {"database": fresh_database_url(), "blob_dir": tmp_path / "shared-blobs"}
    auth = AuthSettings(max_failures_per_ip=1000, max_failures_per_account=6)
    first = make_server("n1", node_id="node-1", auth=auth, **shared)
    second = make_server("n2", node_id="node-2", auth=auth, **shared)
    first.add_user(ALICE, PASSWORD)
    assert imap_login(first.ports, "alice", "wrong password") == "failed"
    assert imap_login(second.ports, "Alice", "wrong password") == "failed"

    async def attack():
        attempts = [
            imap_login_async(node.ports["imaps"], ALICE, f"guess {i}")
            for i in range(15)
            for node in (first, second)
        ]
        return await asyncio.gather(*attempts)

    outcomes = asyncio.run(attack())
    assert outcomes.count("failed") == 4 and outcomes.count("throttled") == 26
    assert imap_login(first.ports, ALICE, PASSWORD) == "throttled"
    assert imap_login(second.ports, ALICE, PASSWORD) == "throttled"
