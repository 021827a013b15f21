"""Invitations in Chromium (Playwright), desktop and phone width, against a real server: alice
makes a repeating event and invites bob (seeing when he is busy), bob finds the invitation in
his mailbox and accepts it, the event is in his calendar, and alice's copy shows he accepted —
the mail both ways going through the submission path and local delivery, as it would remotely.
"""

from __future__ import annotations

import re
from datetime import datetime

from tests.web.conftest import PHONE, screenshot
from tidings.pim import itip
from tidings.pim.events import Event

ALICE, BOB = "alice@example.test", "bob@example.test"


def give_bob_a_meeting(web) -> None:
    bob = web.call(web.store.accounts.get_user(BOB))
    calendar = web.call(web.store.pim.default_collection(bob.id, "calendar"))
    busy = Event(
        title="Dentist (private)",
        start=datetime(2027, 3, 1, 14, 0),
        end=datetime(2027, 3, 1, 15, 30),
        timezone="Europe/Paris",
    )
    web.call(web.store.pim.put(bob.id, calendar.id, None, busy.to_calendar()))


def alices_event(web):
    alice = web.call(web.store.accounts.get_user(ALICE))
    calendar = web.call(web.store.pim.default_collection(alice.id, "calendar"))
    found = web.call(web.store.pim.objects(alice.id, calendar.id, with_data=True))
    return next(o for o in found if o.title == "Planning")


def test_alice_invites_bob_to_a_repeating_event_and_sees_him_accept(web, page_for):
    give_bob_a_meeting(web)
    alice = page_for(ALICE)
    alice.goto("/calendar/new?date=2027-03-01&hour=10")
    alice.fill("input[name=title]", "Planning")
    alice.fill("input[name=start_time]", "10:00")
    alice.fill("input[name=end_time]", "11:00")
    alice.select_option("select[name=timezone]", "Europe/Paris")
    alice.select_option("select[name=repeat]", "WEEKLY")
    alice.check("input[name=ends][value=count]")
    alice.fill("input[name=count]", "4")
    alice.fill("textarea[name=attendees]", BOB)
    alice.get_by_role("button", name="Add event").click()
    alice.wait_for_url(re.compile(r"notice=added"))

    event = alices_event(web)
    assert itip.partstat_of(event.data, BOB) == "NEEDS-ACTION"
    alice.goto(f"/calendar/event/{event.id}/attendees")
    row = alice.locator(f".attendee[data-address='{BOB}']")
    assert "needs action" in row.inner_text()
    # Bob's free/busy for the day: the period, never what it is.
    busy = alice.locator(f".busy-row[data-address='{BOB}']")
    assert "busy 14:00–15:30" in busy.inner_text()
    assert alice.locator("text=Dentist").count() == 0
    assert busy.locator("rect.busy").count() == 1
    screenshot(alice, "invitation-attendees")

    # Bob: the invitation is in his INBOX; he accepts it there.
    bob = page_for(BOB)
    bob.locator("a", has_text="Invitation: Planning").first.click()
    bob.wait_for_url(re.compile(r"/mail/\d+/\d+"))
    card = bob.locator("section.invitation")
    assert "Planning" in card.inner_text() and "(repeats)" in card.inner_text()
    assert "alice@example.test" in card.inner_text()
    screenshot(bob, "invitation-message")
    bob.get_by_role("button", name="Accept").click()
    bob.wait_for_url(re.compile(r"invitation=accepted"))
    assert "accepted" in bob.locator(".your-answer").inner_text()
    assert "on its way to the organiser" in bob.locator(".notice").inner_text()
    bob.goto("/calendar?date=2027-03-01")
    assert bob.locator(".month .event", has_text="Planning").count() == 4

    # Alice's copy is updated from bob's reply (delivered to her INBOX like any mail).
    alice.goto(f"/calendar/event/{event.id}/attendees")
    assert "accepted" in alice.locator(f".attendee[data-address='{BOB}']").inner_text()
    assert itip.partstat_of(alices_event(web).data, BOB) == "ACCEPTED"
    screenshot(alice, "invitation-accepted")
    alice.goto(f"/mail/{web.mailbox_id(ALICE)}")
    alice.locator("a", has_text="accepted: Planning").first.click()
    alice.wait_for_url(re.compile(r"/mail/\d+/\d+"))
    assert "bob@example.test: accepted" in alice.locator("section.invitation").inner_text()
    # The event form shows the answer too, with the list still editable for her.
    alice.goto(f"/calendar/event/{event.id}")
    assert "bob@example.test: accepted" in alice.locator(".attendee-summary").inner_text()
    assert alice.locator("textarea[name=attendees]").input_value().strip() == BOB
    assert "busy 10:00–11:00, 14:00–15:30" in alice.locator(f".busy-row[data-address='{BOB}']").inner_text()
    alice.locator(".freebusy").scroll_into_view_if_needed()
    screenshot(alice, "invitation-event-form")

    # Phone width: the invitation and the attendee page fit.
    phone_bob = page_for(BOB, viewport=PHONE)
    phone_bob.locator("a", has_text="Invitation: Planning").first.click()
    phone_bob.get_by_role("button", name="Tentative").wait_for()
    screenshot(phone_bob, "invitation-message")
    phone_alice = page_for(ALICE, viewport=PHONE)
    phone_alice.goto(f"/calendar/event/{event.id}/attendees")
    screenshot(phone_alice, "invitation-accepted")
    for page in (alice, bob, phone_bob, phone_alice):
        assert page.problems == []
