"""iTIP (RFC 5546) and iMIP (RFC 6047): the messages made for an event, and who may change what.

The organiser's copy changes only by a REPLY of an invited attendee, for that attendee's
PARTSTAT; an attendee's copy changes only by the organiser's newer REQUEST or CANCEL; older
messages (SEQUENCE, then DTSTAMP) are refused, and malformed or hostile ones never apply.
"""

from __future__ import annotations

import email
import email.policy
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tidings.pim import InvalidObject, imip, itip
from tidings.pim.events import Event

PARIS = ZoneInfo("Europe/Paris")
ALICE, BOB, CAROL = "alice@example.test", "bob@example.test", "carol@elsewhere.test"


def organised(attendees=(BOB, CAROL)) -> str:
    text = Event(
        title="Planning",
        start=datetime(2026, 12, 7, 10, 0),
        end=datetime(2026, 12, 7, 11, 0),
        timezone="Europe/Paris",
        repeat="WEEKLY",
        count=4,
        reminders=[15],
    ).to_calendar(uid="plan-1")
    return itip.set_attendees(text, ALICE, attendees, "Alice")


def test_request_carries_organiser_attendees_and_method_but_not_the_organisers_alarms():
    request = itip.make_request(organised())
    message = itip.parse(request)
    assert message.method == "REQUEST"
    assert message.uid == "plan-1"
    assert message.organizer == ALICE
    assert [a.address for a in message.attendees] == [BOB, CAROL]
    assert all(a.partstat == "NEEDS-ACTION" and a.rsvp for a in message.attendees)
    assert message.recurs
    assert "VALARM" not in request
    assert "RRULE:FREQ=WEEKLY;COUNT=4" in request


def test_round_trip_request_accept_reply_updates_the_organisers_copy():
    stored = organised()
    request = itip.make_request(stored)
    bobs = itip.attendee_copy(request, BOB, "ACCEPTED")
    assert itip.partstat_of(bobs, BOB) == "ACCEPTED"
    assert "METHOD" not in bobs
    reply = itip.make_reply(request, BOB, "ACCEPTED")
    parsed = itip.parse(reply)
    assert parsed.method == "REPLY" and [a.address for a in parsed.attendees] == [BOB]
    updated, answer = itip.apply_reply(stored, reply, {ALICE}, BOB)
    assert answer.partstat == "ACCEPTED"
    assert itip.partstat_of(updated, BOB) == "ACCEPTED"
    assert itip.partstat_of(updated, CAROL) == "NEEDS-ACTION"


def test_a_reply_changes_only_the_replying_attendee_and_only_from_that_attendee():
    stored = organised()
    reply = itip.make_reply(itip.make_request(stored), BOB, "DECLINED")
    with pytest.raises(itip.Refused):
        itip.apply_reply(stored, reply, {ALICE}, CAROL)  # carol sends a reply in bob's name


def test_a_reply_is_applied_only_to_the_organisers_own_copy():
    stored = organised()
    reply = itip.make_reply(itip.make_request(stored), BOB, "ACCEPTED")
    with pytest.raises(itip.Refused):
        itip.apply_reply(stored, reply, {CAROL}, BOB)  # carol's account is not the organiser


def test_a_reply_from_someone_never_invited_is_refused():
    stored = organised(attendees=(CAROL,))
    request = itip.make_request(organised())  # a request that does list bob
    reply = itip.make_reply(request, BOB, "ACCEPTED")
    with pytest.raises(itip.Refused):
        itip.apply_reply(stored, reply, {ALICE}, BOB)


def test_a_reply_naming_another_organiser_is_refused():
    stored = organised()
    request = itip.make_request(organised()).replace("mailto:alice@", "mailto:mallory@")
    reply = itip.make_reply(request, BOB, "ACCEPTED")
    with pytest.raises(itip.Refused):
        itip.apply_reply(stored, reply, {ALICE}, BOB)


def test_a_reply_to_an_older_sequence_is_stale():
    stored = organised()
    old_request = itip.make_request(stored)
    newer = Event.from_calendar(stored)
    newer.title = "Planning (moved)"
    stored = newer.to_calendar(existing=stored)  # SEQUENCE raised
    reply = itip.make_reply(old_request, BOB, "DECLINED")
    with pytest.raises(itip.Stale):
        itip.apply_reply(stored, reply, {ALICE}, BOB)


def test_an_older_reply_does_not_overwrite_a_later_one():
    stored = organised()
    request = itip.make_request(stored)
    early = itip.make_reply(request, BOB, "TENTATIVE").replace("DTSTAMP:2", "DTSTAMP:1", 1)
    late = itip.make_reply(request, BOB, "ACCEPTED")
    stored, _ = itip.apply_reply(stored, late, {ALICE}, BOB)
    with pytest.raises(itip.Stale):
        itip.apply_reply(stored, early, {ALICE}, BOB)
    assert itip.partstat_of(stored, BOB) == "ACCEPTED"


def test_cancel_marks_the_attendees_copy_cancelled_only_from_its_organiser():
    stored = organised()
    bobs = itip.attendee_copy(itip.make_request(stored), BOB, "ACCEPTED")
    cancel = itip.make_cancel(itip.cancelled(stored))
    assert itip.parse(cancel).method == "CANCEL"
    assert not itip.is_cancelled(bobs)
    assert itip.is_cancelled(itip.apply_cancel(bobs, cancel))
    forged = cancel.replace("mailto:alice@", "mailto:mallory@")
    with pytest.raises(itip.Refused):
        itip.apply_cancel(bobs, forged)


def test_an_older_request_does_not_replace_a_newer_copy():
    stored = organised()
    first = itip.make_request(stored)
    changed = Event.from_calendar(stored)
    changed.title = "Planning v2"
    stored = changed.to_calendar(existing=stored)
    second = itip.make_request(stored)
    bobs = itip.attendee_copy(second, BOB, "ACCEPTED")
    with pytest.raises(itip.Stale):
        itip.apply_request(bobs, first, BOB)
    # The same time with a newer sequence keeps bob's answer; a new time asks again.
    assert itip.partstat_of(itip.apply_request(bobs, second, BOB), BOB) == "ACCEPTED"
    moved = Event.from_calendar(stored)
    moved.start = datetime(2026, 12, 8, 10, 0)
    moved.end = datetime(2026, 12, 8, 11, 0)
    third = itip.make_request(moved.to_calendar(existing=stored))
    assert itip.partstat_of(itip.apply_request(bobs, third, BOB), BOB) == "NEEDS-ACTION"


def test_set_attendees_keeps_answers_and_refuses_what_is_not_an_address():
    stored, _ = itip.apply_reply(
        organised(), itip.make_reply(itip.make_request(organised()), BOB, "ACCEPTED"), {ALICE}, BOB
    )
    again = itip.set_attendees(stored, ALICE, [BOB, "dave@example.test"])
    assert itip.partstat_of(again, BOB) == "ACCEPTED"
    assert itip.partstat_of(again, "dave@example.test") == "NEEDS-ACTION"
    assert itip.partstat_of(again, CAROL) is None
    for bad in ("bob", "bob@localhost", "a b@example.test", "x@y.test\r\nATTENDEE:mailto:z@z.test"):
        with pytest.raises(InvalidObject):
            itip.set_attendees(stored, ALICE, [bad])
    plain = itip.set_attendees(stored, ALICE, [])
    assert "ORGANIZER" not in plain and "ATTENDEE" not in plain


@pytest.mark.parametrize(
    "text",
    [
        "not a calendar",
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART:20261201T100000Z\r\n"
        "ORGANIZER:mailto:a@b.test\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",  # no METHOD
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\n"
        "DTSTART:20261201T100000Z\r\nORGANIZER:mailto:a@b.test\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",  # no UID
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:a\r\n"
        "DTSTART:20261201T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",  # no ORGANIZER
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\nUID:a\r\n"
        "ORGANIZER:mailto:a@b.test\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:b@b.test\r\n"
        "ATTENDEE;PARTSTAT=ACCEPTED:mailto:c@b.test\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",  # two in a REPLY
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nMETHOD:PUBLISH\r\nBEGIN:VEVENT\r\nUID:a\r\n"
        "ORGANIZER:mailto:a@b.test\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",  # not a method we take
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:a\r\n"
        "ORGANIZER:mailto:a@b.test\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:b\r\n"
        "ORGANIZER:mailto:a@b.test\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",  # two UIDs
    ],
)
def test_malformed_scheduling_messages_are_refused(text):
    with pytest.raises(InvalidObject):
        itip.parse(text)


def test_a_huge_inline_attachment_is_not_parsed():
    request = itip.make_request(organised())
    huge = request.replace(
        "END:VEVENT", "ATTACH;ENCODING=BASE64;VALUE=BINARY:" + "QUFB" * 200_000 + "\r\nEND:VEVENT", 1
    )
    with pytest.raises(InvalidObject):
        itip.parse(huge)


def test_imip_message_is_alternative_text_and_calendar_with_method():
    request = itip.make_request(organised())
    raw = imip.build(
        from_addr=ALICE, from_name="Alice", to=[BOB, CAROL], calendar_text=request, message_id="<m@x>", date=0
    )
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    text, calendar = parsed.get_payload()
    assert text.get_content_type() == "text/plain" and "Planning" in text.get_content()
    assert calendar.get_content_type() == "text/calendar"
    assert calendar.get_param("method") == "REQUEST"
    assert parsed["Subject"] == "Invitation: Planning"
    found = imip.find(raw)
    assert found is not None and found.uid == "plan-1" and found.method == "REQUEST"


def test_imip_find_skips_oversized_messages_and_plain_mail():
    request = itip.make_request(organised())
    raw = imip.build(from_addr=ALICE, to=[BOB], calendar_text=request, message_id="<m@x>", date=0)
    assert imip.find(b"From: a@b\r\nSubject: hi\r\n\r\nno calendar here\r\n") is None
    assert imip.find(raw + b"x" * (imip.MAX_MESSAGE_BYTES + 1)) is None


def test_an_invitation_beside_a_large_attachment_is_still_found():
    request = itip.make_request(organised())
    raw = imip.build(from_addr=ALICE, to=[BOB], calendar_text=request, message_id="<m@x>", date=0)
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    outer = email.message.EmailMessage()
    for name in ("From", "To", "Subject", "Date", "Message-ID"):
        outer[name] = parsed[name]
    outer.make_mixed()
    outer.attach(parsed)
    outer.add_attachment(
        b"\0" * 2_000_000, maintype="application", subtype="octet-stream", filename="big.bin"
    )
    found = imip.find(outer.as_bytes())
    assert found is not None and found.uid == "plan-1"
