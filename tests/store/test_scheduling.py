"""iMIP at delivery: scheduling messages delivered to local accounts update their calendars.

A REPLY changes the organiser's copy only when the mail system vouches for the attendee (a
local one submitted it while logged in; a remote one's envelope sender and From: agree); a
CANCEL marks the attendee's copy cancelled only from its organiser; plain mail and messages
too large to be an invitation are delivered without being looked into.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tidings.pim import imip, itip
from tidings.pim.events import Event
from tidings.store import Envelope

ALICE, BOB, CAROL = "alice@example.test", "bob@example.test", "carol@elsewhere.test"


@pytest.fixture
def people(store, run):
    run(store.accounts.add_domain("example.test"))
    alice = run(store.accounts.add_user(ALICE, "pw-alice-1"))
    bob = run(store.accounts.add_user(BOB, "pw-bob-1"))
    return alice, bob


def organise(store, run, alice) -> str:
    text = Event(
        title="Review",
        start=datetime(2026, 12, 9, 14, 0),
        end=datetime(2026, 12, 9, 15, 0),
        timezone="Europe/Paris",
        repeat="DAILY",
        count=3,
    ).to_calendar(uid="review-1")
    text = itip.set_attendees(text, ALICE, [BOB, CAROL])
    calendar = run(store.pim.default_collection(alice.id, "calendar"))
    run(store.pim.put(alice.id, calendar.id, None, text))
    return text


def mail(calendar_text: str, sender: str, to: str, **headers) -> bytes:
    raw = imip.build(from_addr=sender, to=[to], calendar_text=calendar_text, message_id="<t@x>", date=0)
    for name, value in headers.items():
        raw = raw.replace(f"{name}: ".encode(), f"{name}: {value}\r\nX-Old-{name}: ".encode(), 1)
    return raw


def deliver(store, run, raw: bytes, sender: str, to: str, account_id: int | None):
    envelope = Envelope(sender=sender, local=[to], account_id=account_id)
    result = run(store.delivery.accept(envelope, raw))
    assert result.delivered == [to]  # the INBOX gets it whatever the calendar does


def partstat(store, run, account, address):
    copy = run(store.scheduling.own_copy(account.id, "review-1"))
    return itip.partstat_of(copy.data, address) if copy else None


def test_a_local_attendees_reply_submitted_by_them_updates_the_organisers_event(store, run, people):
    alice, bob = people
    request = itip.make_request(organise(store, run, alice))
    reply = itip.make_reply(request, BOB, "ACCEPTED")
    deliver(store, run, mail(reply, BOB, ALICE), BOB, ALICE, bob.id)
    assert partstat(store, run, alice, BOB) == "ACCEPTED"
    assert partstat(store, run, alice, CAROL) == "NEEDS-ACTION"


def test_a_reply_in_a_local_attendees_name_from_outside_changes_nothing(store, run, people):
    alice, bob = people
    request = itip.make_request(organise(store, run, alice))
    reply = itip.make_reply(request, BOB, "DECLINED")
    # An outside MTA hands over mail "from" bob: no login vouches for it.
    deliver(store, run, mail(reply, BOB, ALICE), BOB, ALICE, None)
    # Alice herself (logged in) cannot answer for bob either.
    deliver(store, run, mail(reply, BOB, ALICE), ALICE, ALICE, alice.id)
    assert partstat(store, run, alice, BOB) == "NEEDS-ACTION"


def test_a_remote_attendees_reply_needs_their_envelope_sender(store, run, people):
    alice, _ = people
    request = itip.make_request(organise(store, run, alice))
    reply = itip.make_reply(request, CAROL, "TENTATIVE")
    deliver(store, run, mail(reply, CAROL, ALICE), "mallory@evil.test", ALICE, None)
    assert partstat(store, run, alice, CAROL) == "NEEDS-ACTION"
    deliver(store, run, mail(reply, CAROL, ALICE), CAROL, ALICE, None)
    assert partstat(store, run, alice, CAROL) == "TENTATIVE"


def test_a_reply_reaching_an_attendee_never_changes_their_copy(store, run, people):
    alice, bob = people
    request = itip.make_request(organise(store, run, alice))
    stored, reply = run(store.scheduling.answer_invitation(bob.id, request, "ACCEPTED"))
    # carol's (remote) reply sent to bob as well: bob is not the organiser.
    carols = itip.make_reply(request, CAROL, "DECLINED")
    deliver(store, run, mail(carols, CAROL, BOB), CAROL, BOB, None)
    copy = run(store.scheduling.own_copy(bob.id, "review-1"))
    assert copy.etag == stored.etag
    assert itip.partstat_of(copy.data, CAROL) == "NEEDS-ACTION"


def test_answering_puts_the_event_in_the_invitees_calendar_and_the_cancel_marks_it(store, run, people):
    alice, bob = people
    organised = organise(store, run, alice)
    request = itip.make_request(organised)
    stored, reply = run(store.scheduling.answer_invitation(bob.id, request, "TENTATIVE"))
    calendar = run(store.pim.default_collection(bob.id, "calendar"))
    assert stored.collection_id == calendar.id
    assert partstat(store, run, bob, BOB) == "TENTATIVE"
    assert itip.parse(reply).attendees[0].partstat == "TENTATIVE"
    instances = run(
        store.pim.instances(bob.id, datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 31, tzinfo=UTC))
    )
    assert len(instances) == 3
    cancel = itip.make_cancel(itip.cancelled(organised))
    # Not from the organiser: nothing changes.
    deliver(store, run, mail(cancel, BOB, BOB), BOB, BOB, bob.id)
    assert not itip.is_cancelled(run(store.scheduling.own_copy(bob.id, "review-1")).data)
    deliver(store, run, mail(cancel, ALICE, BOB), ALICE, BOB, alice.id)
    assert itip.is_cancelled(run(store.scheduling.own_copy(bob.id, "review-1")).data)
    busy = run(
        store.scheduling.busy(
            alice.id, [BOB], datetime(2026, 12, 9, tzinfo=UTC), datetime(2026, 12, 10, tzinfo=UTC)
        )
    )
    assert busy[0].periods == []  # a cancelled event is free time


def test_free_busy_shows_colleagues_periods_only_within_the_domain(store, run, people):
    alice, bob = people
    organise(store, run, alice)
    busy = run(
        store.scheduling.busy(
            bob.id,
            [ALICE, CAROL, "nobody@example.test"],
            datetime(2026, 12, 10, tzinfo=UTC),
            datetime(2026, 12, 11, tzinfo=UTC),
        )
    )
    assert [b.address for b in busy] == [ALICE]
    ((start, end),) = busy[0].periods
    assert (start.astimezone(UTC).hour, end.astimezone(UTC).hour) == (13, 14)
    assert not hasattr(busy[0], "title")


def test_plain_and_oversized_mail_is_delivered_without_calendar_work(store, run, people):
    alice, bob = people
    request = itip.make_request(organise(store, run, alice))
    reply = itip.make_reply(request, BOB, "DECLINED")
    big = mail(reply, BOB, ALICE) + b"\r\n" + b"A" * (imip.MAX_MESSAGE_BYTES + 10)
    deliver(store, run, big, BOB, ALICE, bob.id)
    deliver(store, run, b"From: bob@example.test\r\nSubject: hi\r\n\r\nhello\r\n", BOB, ALICE, bob.id)
    assert partstat(store, run, alice, BOB) == "NEEDS-ACTION"
    assert run(store.scheduling.incoming(b"Subject: x\r\n\r\ntext/calendar", BOB, bob.id, [ALICE])) == []


def test_an_organiser_inviting_herself_keeps_her_own_copy(store, run, people):
    alice, _ = people
    organised = itip.set_attendees(organise(store, run, alice), ALICE, [BOB, ALICE])
    before = run(store.scheduling.own_copy(alice.id, "review-1"))
    request = itip.make_request(organised)
    deliver(store, run, mail(request, ALICE, ALICE), ALICE, ALICE, alice.id)
    assert run(store.scheduling.own_copy(alice.id, "review-1")).etag == before.etag
