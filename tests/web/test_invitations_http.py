"""Invitations over plain HTTP against a real server: the organiser's later changes reach the
attendee's copy by mail (one occurrence cancelled, the event deleted), an attendee cannot send
invitations for an event they were invited to, and an invitation whose From: is not its
organiser is shown without buttons and cannot be answered.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tidings.pim import imip, itip
from tidings.pim.events import Event

ALICE, BOB = "alice@example.test", "bob@example.test"


def account(web, address):
    return web.call(web.store.accounts.get_user(address))


def copy_of(web, address, uid):
    return web.call(web.store.scheduling.own_copy(account(web, address).id, uid))


def inbox(web, address):
    who = account(web, address)
    box = web.mailbox_id(address)
    _, refs = web.call(web.store.mailboxes.messages(who.id, box))
    return box, refs


def instances(web, address):
    start, end = datetime(2027, 3, 1, tzinfo=UTC), datetime(2027, 4, 1, tzinfo=UTC)
    return web.call(web.store.pim.instances(account(web, address).id, start, end))


def test_the_organisers_changes_reach_the_attendee_and_an_attendee_cannot_reinvite(web):
    alice = web.client(ALICE)
    form = {
        "csrf": alice.csrf(),
        "title": "Weekly sync",
        "start_date": "2027-03-02",
        "start_time": "09:00",
        "end_date": "2027-03-02",
        "end_time": "09:30",
        "timezone": "Europe/Paris",
        "repeat": "WEEKLY",
        "ends": "count",
        "count": "3",
        "attendees": f"Bob <{BOB}>",
    }
    assert alice.post("/calendar/new", form).status == 303
    alices = web.call(
        web.store.pim.objects(
            account(web, ALICE).id,
            web.call(web.store.pim.default_collection(account(web, ALICE).id, "calendar")).id,
            with_data=True,
        )
    )[0]
    uid = alices.uid

    bob = web.client(BOB)
    box, refs = inbox(web, BOB)
    reply = bob.post(f"/mail/{box}/{refs[-1].uid}/invitation", {"csrf": bob.csrf(), "answer": "ACCEPTED"})
    assert reply.status == 303 and "invitation=accepted" in reply.header("location")
    assert len(instances(web, BOB)) == 3
    assert itip.partstat_of(copy_of(web, ALICE, uid).data, BOB) == "ACCEPTED"

    # Bob may not invite anyone to alice's event from his copy.
    bobs = copy_of(web, BOB, uid)
    before = len(inbox(web, "alice@example.test")[1])
    refused = bob.post(
        f"/calendar/event/{bobs.id}/attendees", {"csrf": bob.csrf(), "attendees": "alice@example.test"}
    )
    assert refused.status == 400 and "Only the organiser" in refused.text
    assert len(inbox(web, ALICE)[1]) == before

    # Alice cancels the second occurrence: bob's copy loses it too.
    alices = copy_of(web, ALICE, uid)
    rid = "20270309T090000"  # RECURRENCE-ID of 9 March, in the series' zone
    cancelled = alice.post(
        f"/calendar/event/{alices.id}/cancel", {"csrf": alice.csrf(), "etag": alices.etag, "rid": rid}
    )
    assert cancelled.status == 303
    assert len(instances(web, BOB)) == 2
    assert itip.partstat_of(copy_of(web, BOB, uid).data, BOB) == "ACCEPTED"  # same time: answer kept

    # Alice deletes the event: bob's copy is marked cancelled (and free time for free/busy).
    assert alice.post(f"/calendar/event/{alices.id}/delete", {"csrf": alice.csrf()}).status == 303
    assert itip.is_cancelled(copy_of(web, BOB, uid).data)
    busy = web.call(
        web.store.scheduling.busy(
            account(web, ALICE).id, [BOB], datetime(2027, 3, 1, tzinfo=UTC), datetime(2027, 4, 1, tzinfo=UTC)
        )
    )
    assert busy[0].periods == []


def test_an_invitation_not_from_its_organiser_cannot_be_answered(web):
    event = Event(title="Free money", start=datetime(2027, 3, 2, 9, 0), timezone="UTC").to_calendar(
        uid="scam"
    )
    request = itip.make_request(itip.set_attendees(event, ALICE, [BOB]))
    raw = imip.build(
        from_addr="mallory@evil.test", to=[BOB], calendar_text=request, message_id="<s@e>", date=0
    )
    web.deliver(BOB, sender="mallory@evil.test", message=raw)
    bob = web.client(BOB)
    box, refs = inbox(web, BOB)
    page = bob.get(f"/mail/{box}/{refs[-1].uid}")
    assert "Free money" in page.text and "does not come from" in page.text
    assert 'value="ACCEPTED"' not in page.text
    answer = bob.post(f"/mail/{box}/{refs[-1].uid}/invitation", {"csrf": bob.csrf(), "answer": "ACCEPTED"})
    assert answer.status == 303 and "invitation=refused" in answer.header("location")
    assert copy_of(web, BOB, "scam") is None
    assert inbox(web, ALICE)[1] == []  # no reply went to the claimed organiser
