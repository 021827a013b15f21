"""Domains, users and aliases: validation, uniqueness, address resolution, authentication."""

from __future__ import annotations

import pytest

from tidings.auth.passwords import WeakPassword
from tidings.mail.address import BadAddress
from tidings.store import AlreadyExists, NotFound, StoreError


def test_new_user_gets_the_standard_mailboxes_with_special_use(store, run):
    run(store.accounts.add_domain("example.org"))
    account = run(store.accounts.add_user("Bob@Example.org", "secret pass 1"))
    assert account.address == "bob@example.org"
    boxes = {m.name: m.special_use for m in run(store.mailboxes.list(account.id))}
    assert boxes == {
        "INBOX": None,
        "Drafts": "\\Drafts",
        "Sent": "\\Sent",
        "Trash": "\\Trash",
        "Junk": "\\Junk",
        "Archive": "\\Archive",
    }


def test_user_in_unknown_domain_is_refused_and_nothing_is_written(store, run):
    with pytest.raises(NotFound, match="unknown domain"):
        run(store.accounts.add_user("bob@nowhere.test", "secret pass 1"))
    assert run(store.accounts.list_users()) == []


def test_duplicate_user_and_duplicate_domain_are_refused(store, run):
    run(store.accounts.add_domain("example.org"))
    with pytest.raises(AlreadyExists):
        run(store.accounts.add_domain("EXAMPLE.org"))
    run(store.accounts.add_user("bob@example.org", "secret pass 1"))
    with pytest.raises(AlreadyExists):
        run(store.accounts.add_user("BOB@example.org", "secret pass 2"))


@pytest.mark.parametrize("password", ["", "   ", "short", "aaaaaaaaaaaa", "password"])
def test_weak_passwords_are_refused(store, run, password):
    run(store.accounts.add_domain("example.org"))
    with pytest.raises(WeakPassword):
        run(store.accounts.add_user("bob@example.org", password))


@pytest.mark.parametrize(
    "address",
    ["bob", "@example.org", "bob@", "bo b@example.org", "bob@exa_mple.org", "a" * 65 + "@example.org"],
)
def test_malformed_addresses_are_refused(store, run, address):
    run(store.accounts.add_domain("example.org"))
    with pytest.raises(BadAddress):
        run(store.accounts.add_user(address, "secret pass 1"))


def test_authenticate_accepts_only_the_right_password(store, run):
    run(store.accounts.add_domain("example.org"))
    run(store.accounts.add_user("bob@example.org", "secret pass 1"))
    assert run(store.accounts.authenticate("bob@example.org", "secret pass 1")).address == "bob@example.org"
    assert run(store.accounts.authenticate("BOB@example.org", "secret pass 1")) is not None
    assert run(store.accounts.authenticate("bob@example.org", "secret pass 2")) is None
    assert run(store.accounts.authenticate("nobody@example.org", "secret pass 1")) is None
    assert run(store.accounts.authenticate("not an address", "x")) is None
    run(store.accounts.set_password("bob@example.org", "another pass 2"))
    assert run(store.accounts.authenticate("bob@example.org", "secret pass 1")) is None
    assert run(store.accounts.authenticate("bob@example.org", "another pass 2")) is not None


def test_resolve_follows_aliases_plus_addressing_and_catch_all(store, run):
    acc = store.accounts
    run(acc.add_domain("example.org"))
    run(acc.add_user("bob@example.org", "secret pass 1"))
    run(acc.add_user("amy@example.org", "secret pass 1"))
    run(acc.add_alias("team@example.org", ["bob@example.org", "amy@example.org", "ext@remote.test"]))
    assert run(acc.resolve("bob@example.org")) == ["bob@example.org"]
    assert run(acc.resolve("Bob+lists@example.org")) == ["bob@example.org"]
    assert run(acc.resolve("team@example.org")) == ["bob@example.org", "amy@example.org", "ext@remote.test"]
    assert run(acc.resolve("nobody@example.org")) is None
    assert run(acc.resolve("bob@remote.test")) is None
    run(acc.add_alias("@example.org", ["amy@example.org"]))
    assert run(acc.resolve("nobody@example.org")) == ["amy@example.org"]
    assert run(acc.resolve("bob@example.org")) == ["bob@example.org"]


def test_alias_loops_are_detected(store, run):
    acc = store.accounts
    run(acc.add_domain("example.org"))
    run(acc.add_alias("a@example.org", ["b@example.org"]))
    run(acc.add_alias("b@example.org", ["a@example.org"]))
    with pytest.raises(StoreError, match="loop"):
        run(acc.resolve("a@example.org"))


def test_senders_allowed_are_own_address_and_aliases_pointing_to_it(store, run):
    acc = store.accounts
    run(acc.add_domain("example.org"))
    bob = run(acc.add_user("bob@example.org", "secret pass 1"))
    run(acc.add_alias("info@example.org", ["bob@example.org"]))
    run(acc.add_alias("@example.org", ["bob@example.org"]))
    assert run(acc.senders_allowed(bob)) == {"bob@example.org", "info@example.org"}


def test_domain_with_users_is_only_removed_with_force(store, run):
    acc = store.accounts
    run(acc.add_domain("example.org"))
    run(acc.add_user("bob@example.org", "secret pass 1"))
    with pytest.raises(StoreError, match="still has"):
        run(acc.remove_domain("example.org"))
    run(acc.remove_domain("example.org", force=True))
    assert run(acc.list_domains()) == []
    assert run(acc.list_users()) == []


def test_a_verified_password_is_remembered_until_it_changes(store, run, monkeypatch):
    import tidings.store.accounts as accounts_module

    run(store.accounts.add_domain("example.org"))
    run(store.accounts.add_user("bob@example.org", "secret pass 1"))
    assert run(store.accounts.authenticate("bob@example.org", "secret pass 1")) is not None
    calls = []
    real_verify = accounts_module.verify_password
    monkeypatch.setattr(accounts_module, "verify_password", lambda *a: calls.append(a) or real_verify(*a))
    assert run(store.accounts.authenticate("bob@example.org", "secret pass 1")) is not None
    assert calls == []  # remembered: no second argon2 check
    assert run(store.accounts.authenticate("bob@example.org", "wrong pass 1")) is None
    assert len(calls) == 1  # a wrong password always costs a full check
    run(store.accounts.set_password("bob@example.org", "another pass 2"))
    assert run(store.accounts.authenticate("bob@example.org", "secret pass 1")) is None
    assert run(store.accounts.authenticate("bob@example.org", "another pass 2")) is not None
