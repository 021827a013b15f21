"""The store parts the admin console and the settings pages use: admin accounts, the delivery log
and hourly counts, queue samples, storage per domain, Sieve scripts and identities (each checked
against the acting account)."""

from __future__ import annotations

import time

import pytest

from tidings.mail.dkim import make_key, public_record
from tidings.store import NotFound, StoreError
from tidings.store.delivery import Envelope
from tidings.store.queue import RecipientOutcome

RAW = b"From: a@elsewhere.test\r\nTo: ann@example.org\r\nSubject: hi\r\n\r\nhello\r\n"


@pytest.fixture
def users(store, run):
    run(store.accounts.add_domain("example.org"))
    run(store.accounts.add_domain("example.net"))
    ann = run(store.accounts.add_user("ann@example.org", "ann's password 1", admin=True))
    bob = run(store.accounts.add_user("bob@example.org", "bob's password 1"))
    return ann, bob


def test_admin_flag_is_set_at_creation_granted_and_revoked(store, run, users):
    ann, bob = users
    assert ann.admin and not bob.admin
    assert run(store.accounts.is_admin(ann.id)) and not run(store.accounts.is_admin(bob.id))
    run(store.accounts.set_admin("bob@example.org", True))
    assert run(store.accounts.get_user("bob@example.org")).admin
    run(store.accounts.set_admin("ann@example.org", False))
    assert not run(store.accounts.is_admin(ann.id))
    with pytest.raises(NotFound):
        run(store.accounts.set_admin("nobody@example.org", True))


def test_a_disabled_admin_is_no_admin(store, run, users):
    ann, _ = users
    run(store.accounts.set_disabled("ann@example.org", True))
    assert not run(store.accounts.is_admin(ann.id))


def test_accepted_mail_and_queue_outcomes_are_logged_and_counted_per_hour(store, run, users):
    run(
        store.delivery.accept(Envelope("a@elsewhere.test", local=["ann@example.org", "bob@example.org"]), RAW)
    )
    result = run(
        store.delivery.accept(
            Envelope("ann@example.org", remote=[("x@far.test", None, None), ("y@far.test", None, None)]), RAW
        )
    )
    entry = run(store.queue.get(result.queue_id))
    x, y = entry.recipients
    run(
        store.queue.record(
            entry.id,
            [RecipientOutcome(x.id, "delivered"), RecipientOutcome(y.id, "pending", "451 4.7.1 greylisted")],
            time.time() + 60,
        )
    )
    log = run(store.traffic.recent())
    assert [(e.kind, e.recipient) for e in log] == [
        ("deferred", "y@far.test"),
        ("delivered", "x@far.test"),
        ("received", "ann@example.org"),
    ]
    assert log[0].detail == "451 4.7.1 greylisted" and log[0].queue_id == entry.id
    assert log[2].recipients == 2 and log[2].sender == "a@elsewhere.test"
    assert [e.kind for e in run(store.traffic.recent(kinds=("failed", "deferred")))] == ["deferred"]
    hours = run(store.traffic.per_hour(48))
    assert hours.hours == 48 and len(hours.series("received")) == 48
    assert hours.series("received")[-1] == 1 and sum(hours.series("received")) == 1
    assert hours.series("delivered")[-1] == 1 and hours.series("failed") == [0] * 48
    # an hour boundary: nothing of "now" is counted in a window that ended three hours ago
    earlier = run(store.traffic.per_hour(2, now=time.time() - 3 * 3600))
    assert sum(earlier.series("received")) == 0


def test_queue_samples_record_the_length_and_prune_old_rows(store, run, users):
    run(store.delivery.accept(Envelope("ann@example.org", remote=[("x@far.test", None, None)]), RAW))
    now = time.time()
    assert run(store.traffic.sample_queue(now - 8 * 86400)) == 1
    assert run(store.traffic.sample_queue(now)) == 1
    assert [length for _, length in run(store.traffic.queue_lengths(now - 86400))] == [1]
    assert run(store.traffic.queue_lengths(0)) == [(now, 1)]  # the 8-day-old one was pruned


def test_storage_by_domain_counts_every_domain(store, run, users):
    run(store.delivery.accept(Envelope("a@elsewhere.test", local=["ann@example.org"]), RAW))
    assert run(store.accounts.storage_by_domain()) == [("example.net", 0, 0), ("example.org", 2, len(RAW))]


def test_the_dkim_record_of_a_stored_key_is_the_one_made_with_it():
    private_pem, record = make_key(1024)
    assert public_record(private_pem) == record


def test_sieve_scripts_belong_to_their_account_and_one_is_active(store, run, users):
    ann, bob = users
    rules = store.rules
    run(rules.put(ann.id, "one", "keep;", activate=True))
    run(rules.put(ann.id, "two", "discard;"))
    assert run(rules.active(ann.id)).name == "one"
    run(rules.put(ann.id, "two", "stop;", activate=True))
    assert [(x.name, x.active, x.content) for x in run(rules.scripts(ann.id))] == [
        ("one", False, "keep;"),
        ("two", True, "stop;"),
    ]
    assert run(rules.scripts(bob.id)) == [] and run(rules.active(bob.id)) is None
    with pytest.raises(NotFound):
        run(rules.get(bob.id, "two"))
    with pytest.raises(NotFound):
        run(rules.delete(bob.id, "two"))
    with pytest.raises(NotFound):
        run(rules.set_active(bob.id, "two"))
    run(rules.set_active(ann.id, None))
    assert run(rules.active(ann.id)) is None
    with pytest.raises(StoreError):
        run(rules.put(ann.id, "bad\nname", "keep;"))


def test_identities_use_only_the_accounts_own_addresses(store, run, users):
    ann, bob = users
    run(store.accounts.add_alias("sales@example.org", ["ann@example.org"]))
    assert [(i.id, i.address) for i in run(store.identities.list(ann.id))] == [(0, "ann@example.org")]
    first = run(store.identities.save(ann.id, None, "Ann", "ann@example.org", "-- \nAnn", False))
    assert first.is_default
    second = run(store.identities.save(ann.id, None, "Sales", "sales@example.org", "", True))
    assert [(i.name, i.is_default) for i in run(store.identities.list(ann.id))] == [
        ("Sales", True),
        ("Ann", False),
    ]
    with pytest.raises(StoreError, match="not an address of this account"):
        run(store.identities.save(ann.id, None, "Bob", "bob@example.org", "", False))
    with pytest.raises(NotFound):
        run(store.identities.save(bob.id, second.id, "Mine", "bob@example.org", "", False))
    with pytest.raises(NotFound):
        run(store.identities.delete(bob.id, second.id))
    run(store.identities.delete(ann.id, second.id))
    assert [(i.name, i.is_default) for i in run(store.identities.list(ann.id))] == [("Ann", True)]
