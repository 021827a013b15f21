"""SCRAM-SHA-256 keys: derived whenever a password is set, and for an account older than them at
its first login with a password (on any protocol)."""

from __future__ import annotations

import pytest
from scramp import ScramMechanism
from sqlalchemy import update

from tests.auth.wire import PASSWORD, imap_login, pop3_user_pass, smtp_auth
from tidings.store import schema as s

ALICE = "alice@example.test"


def keys(running, address=ALICE):
    found = running.call(running.store.accounts.scram_keys(address))
    return None if found is None else found[1]


def forget_keys(running, address=ALICE) -> None:
    """Make the account look like one created before SCRAM keys existed (as migration 0007 leaves it)."""

    def op(tx):
        tx.conn.execute(
            update(s.accounts)
            .where(s.accounts.c.address == address)
            .values(
                scram_sha256_salt=None,
                scram_sha256_iterations=None,
                scram_sha256_stored_key=None,
                scram_sha256_server_key=None,
            )
        )

    running.call(running.store.db.write(op))


def matches(found, password: str) -> bool:
    _, stored_key, server_key, _ = ScramMechanism("SCRAM-SHA-256").make_auth_info(
        password, iteration_count=found.iterations, salt=found.salt
    )
    return (stored_key, server_key) == (found.stored_key, found.server_key)


def test_keys_are_derived_when_a_user_is_added_and_when_the_password_changes(server):
    server.add_user(ALICE, PASSWORD)
    first = keys(server)
    assert first is not None and first.iterations >= 4096 and matches(first, PASSWORD)
    server.call(server.store.accounts.set_password(ALICE, "another password 2"))
    second = keys(server)
    assert second.salt != first.salt and matches(second, "another password 2")


@pytest.mark.parametrize("login", [imap_login, pop3_user_pass, smtp_auth])
def test_an_account_without_keys_gets_them_at_its_next_password_login(server, login):
    server.add_user(ALICE, PASSWORD)
    forget_keys(server)
    assert keys(server) is None
    assert login(server.ports, "alice", "wrong password") == "failed"
    assert keys(server) is None  # a wrong password derives nothing
    assert login(server.ports, "alice", PASSWORD) == "ok"
    found = keys(server)
    assert found is not None and matches(found, PASSWORD)
