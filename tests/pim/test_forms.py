"""What the web forms write into vCards and iCalendar objects, and read back from them.

Editing a field must never lose what the form does not show (a DAV client's properties, a
series' exceptions), and an instance changed or removed from a series must stay so.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tidings.pim import InvalidObject, ical, vcard
from tidings.pim.contacts import Contact, member_ref
from tidings.pim.events import Entry, Event, cancel_instance, edit_instance

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 20


def test_a_new_contact_is_a_vcard_3_with_every_field():
    contact = Contact(
        given="Jane",
        family="Doe",
        emails=[("work", "jane@acme.example"), ("home", "jane@home.example")],
        phones=[("cell", "+33 6 12 34 56 78")],
        organisation="Acme",
        job_title="CTO",
        note="Met at FOSDEM, likes tea; call after 10",
        photo=("image/png", PNG),
    )
    text = contact.to_card(uid="c1")
    _, index = vcard.index_card(text)
    assert (index.uid, index.title, index.emails) == (
        "c1",
        "Jane Doe",
        ("jane@acme.example", "jane@home.example"),
    )
    assert "VERSION:3.0" in text and "PHOTO;ENCODING=b;TYPE=PNG:" in text
    back = Contact.from_card(text)
    assert back.emails == contact.emails and back.phones == contact.phones
    assert (back.organisation, back.job_title, back.note, back.photo) == (
        "Acme",
        "CTO",
        contact.note,
        contact.photo,
    )


def test_editing_keeps_what_the_form_does_not_show_and_the_version():
    original = (
        "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:9\r\nFN:Old Name\r\nN:Name;Old;;;\r\n"
        "BDAY:19800101\r\nX-CLIENT-THING:keep me\r\nADR;TYPE=home:;;1 Rue;Paris;;75001;France\r\n"
        "PHOTO:data:image/png;base64,iVBORw0KGgo=\r\nEND:VCARD\r\n"
    )
    contact = Contact.from_card(original)
    assert contact.photo == ("image/png", b"\x89PNG\r\n\x1a\n")
    contact.name, contact.emails = "New Name", [("work", "new@example.org")]
    text = contact.to_card(existing=original)
    assert "VERSION:4.0" in text and "X-CLIENT-THING:keep me" in text and "BDAY:19800101" in text
    assert "ADR;TYPE=home:;;1 Rue;Paris;;75001;France" in text
    assert "PHOTO:data:image/png;base64,iVBORw0KGgo=" in text
    assert vcard.index_card(text)[1].title == "New Name"


def test_groups_are_spelt_as_their_version_spells_them():
    group = Contact(name="Team", is_group=True, members=[member_ref("a"), member_ref("urn:uuid:b")])
    v3 = group.to_card(uid="g")
    assert "X-ADDRESSBOOKSERVER-KIND:group" in v3 and "X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:a" in v3
    assert vcard.index_card(v3)[1].members == ("urn:uuid:a", "urn:uuid:b")
    v4 = group.to_card(existing=vcard.convert(v3, "4.0"))
    assert "KIND:group" in v4 and "MEMBER:urn:uuid:b" in v4 and "X-ADDRESSBOOKSERVER" not in v4
    assert Contact.from_card(v4).is_group


def test_a_contact_needs_a_name_or_address_and_a_small_picture():
    with pytest.raises(InvalidObject):
        Contact().to_card()
    with pytest.raises(InvalidObject):
        Contact(name="x", photo=("image/svg+xml", b"<svg/>")).to_card()
    assert Contact(emails=[("work", "only@example.org")]).label == "only@example.org"


def test_an_event_in_a_time_zone_keeps_its_wall_clock_time_over_a_dst_change():
    event = Event(
        title="Call",
        start=datetime(2026, 10, 20, 9, 0),
        end=datetime(2026, 10, 20, 10, 0),
        timezone="America/New_York",
        repeat="WEEKLY",
        count=4,
        reminders=[15],
    )
    text = event.to_calendar(uid="call")
    assert "BEGIN:VTIMEZONE" in text and "TZID:America/New_York" in text
    found = ical.expand(text, datetime(2026, 10, 1, tzinfo=NEW_YORK), datetime(2026, 12, 1, tzinfo=NEW_YORK))
    assert [o.start.astimezone(NEW_YORK).hour for o in found] == [9, 9, 9, 9]  # DST ends on Nov 1
    assert {o.start.utcoffset() for o in found} == {timedelta(hours=-4), timedelta(hours=-5)}
    back = Event.from_calendar(text)
    assert (back.timezone, back.repeat, back.count, back.reminders) == ("America/New_York", "WEEKLY", 4, [15])


def test_one_instance_moved_and_one_cancelled_stay_so_when_the_series_is_retitled():
    text = Event(
        title="Stand-up",
        start=datetime(2026, 11, 30, 9, 30),
        timezone="Europe/Paris",
        repeat="DAILY",
        count=5,
    ).to_calendar(uid="s")
    week = (datetime(2026, 11, 30, tzinfo=PARIS), datetime(2026, 12, 7, tzinfo=PARIS))
    ids = [o.recurrence_id for o in ical.expand(text, *week)]
    text = cancel_instance(text, ids[1])
    moved = Event.from_calendar(text, ids[3])
    assert moved.start == datetime(2026, 12, 3, 9, 30, tzinfo=PARIS)
    moved.start, moved.end, moved.title = moved.start.replace(hour=15), moved.end.replace(hour=16), "Late"
    text = edit_instance(text, ids[3], moved)
    series = Event.from_calendar(text)
    series.title = "Daily"
    text = series.to_calendar(existing=text)
    shown = [(o.start.strftime("%d %H"), o.title) for o in ical.expand(text, *week)]
    assert shown == [("30 09", "Daily"), ("02 09", "Daily"), ("03 15", "Late"), ("04 09", "Daily")]
    # A new start time moves the whole series: the old exceptions no longer apply.
    series.start = datetime(2026, 11, 30, 8, 0, tzinfo=PARIS)
    series.end = series.start + timedelta(hours=1)
    text = series.to_calendar(existing=text)
    assert len(ical.expand(text, *week)) == 5 and "RECURRENCE-ID" not in text


def test_all_day_events_and_bad_input():
    text = Event(title="Trip", start=date(2026, 12, 24), end=date(2026, 12, 27), all_day=True).to_calendar()
    assert "DTSTART;VALUE=DATE:20261224" in text and "DTEND;VALUE=DATE:20261227" in text
    assert ical.index_calendar(text)[1].all_day
    for bad in (
        Event(title=""),
        Event(title="x", timezone="Mars/Olympus"),
        Event(title="x", start=datetime(2026, 1, 2, 10), end=datetime(2026, 1, 1, 10)),
        Event(title="x", repeat="HOURLY"),
    ):
        with pytest.raises(InvalidObject):
            bad.to_calendar()


def test_a_journal_entry_is_a_dated_vjournal_with_tags():
    text = Entry(
        day=date(2026, 12, 2), title="Garden", text="Planted tulips", tags=["home", "garden"]
    ).to_calendar()
    _, index = ical.index_calendar(text, ["VJOURNAL"])
    assert (index.component, index.title, index.categories) == ("VJOURNAL", "Garden", ("home", "garden"))
    entry = Entry.from_calendar(text)
    assert (entry.day, entry.text, entry.tags) == (date(2026, 12, 2), "Planted tulips", ["home", "garden"])
    entry.text = "Planted tulips and daffodils"
    assert "daffodils" in Entry.from_calendar(entry.to_calendar(existing=text)).text
    with pytest.raises(InvalidObject):
        Entry(title="", text=" ").to_calendar()


def test_a_series_saved_again_from_the_form_keeps_its_exceptions():
    """The form gives naive wall-clock times and a zone name: the same start as stored."""
    text = Event(
        title="Stand-up", start=datetime(2027, 3, 1, 9, 30), timezone="Europe/Paris", repeat="DAILY", count=3
    ).to_calendar(uid="s")
    days = (datetime(2027, 3, 1, tzinfo=PARIS), datetime(2027, 3, 8, tzinfo=PARIS))
    text = cancel_instance(text, ical.expand(text, *days)[1].recurrence_id)
    again = Event(
        title="Renamed", start=datetime(2027, 3, 1, 9, 30), end=datetime(2027, 3, 1, 10, 30),
        timezone="Europe/Paris", repeat="DAILY", count=3,
    )  # fmt: skip
    text = again.to_calendar(existing=text)
    assert [o.start.day for o in ical.expand(text, *days)] == [1, 3]
