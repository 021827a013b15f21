"""PIM storage: collections of vCards and iCalendar objects with ETags, sync tokens and shares.

The web client and CalDAV/CardDAV both read these rows, so the rules the DAV issue relies on are
specified here: conditional writes refuse a stale edit, every change raises the sync counter and
lands in the change log, and no call reaches a collection the account neither owns nor was given.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tidings.pim import InvalidObject
from tidings.pim import vcard as vcard_text
from tidings.store import NotFound
from tidings.store.pim import InvalidSyncToken, NotAllowed, PreconditionFailed, ReadOnly, UidConflict

PARIS = ZoneInfo("Europe/Paris")


def card(uid: str, name: str, email: str, version: str = "3.0", extra: str = "") -> str:
    return (
        f"BEGIN:VCARD\r\nVERSION:{version}\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\n"
        f"EMAIL;TYPE=INTERNET:{email}\r\n{extra}END:VCARD\r\n"
    )


RECURRING = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
    "BEGIN:VEVENT\r\nUID:standup\r\nDTSTAMP:20261101T000000Z\r\n"
    "DTSTART;TZID=Europe/Paris:20261130T093000\r\nDTEND;TZID=Europe/Paris:20261130T094500\r\n"
    "RRULE:FREQ=DAILY;COUNT=5\r\nEXDATE;TZID=Europe/Paris:20261202T093000\r\nSUMMARY:Stand-up\r\n"
    "BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT10M\r\nDESCRIPTION:soon\r\nEND:VALARM\r\n"
    "END:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:standup\r\nDTSTAMP:20261101T000000Z\r\n"
    "RECURRENCE-ID;TZID=Europe/Paris:20261203T093000\r\n"
    "DTSTART;TZID=Europe/Paris:20261203T140000\r\nDTEND;TZID=Europe/Paris:20261203T141500\r\n"
    "SUMMARY:Stand-up (moved)\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def event(uid: str, start: str, summary: str = "x", rule: str = "", end: str | None = None) -> str:
    ending = f"DTEND:{end}\r\n" if end else ""
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20261101T000000Z\r\nDTSTART:{start}\r\n{ending}{rule}SUMMARY:{summary}\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def journal(uid: str, day: str, summary: str, text: str, tags: str) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VJOURNAL\r\n"
        f"UID:{uid}\r\nDTSTAMP:20261101T000000Z\r\nDTSTART;VALUE=DATE:{day}\r\nSUMMARY:{summary}\r\n"
        f"DESCRIPTION:{text}\r\nCATEGORIES:{tags}\r\nEND:VJOURNAL\r\nEND:VCALENDAR\r\n"
    )


@pytest.fixture
def people(store, run):
    run(store.accounts.add_domain("example.org"))
    run(store.accounts.add_domain("other.test"))
    alice = run(store.accounts.add_user("alice@example.org", "secret pass 1"))
    bob = run(store.accounts.add_user("bob@example.org", "secret pass 2"))
    carol = run(store.accounts.add_user("carol@other.test", "secret pass 3"))
    return alice, bob, carol


def defaults(store, run, account):
    found = {c.name: c for c in run(store.pim.collections(account.id))}
    return found["contacts"], found["calendar"], found["journal"]


def test_each_account_gets_contacts_calendar_and_journal_on_first_use(store, run, people):
    alice, bob, _ = people
    found = run(store.pim.collections(alice.id))
    assert [(c.kind, c.name, c.display_name, c.components) for c in found] == [
        ("addressbook", "contacts", "Contacts", ()),
        ("calendar", "calendar", "Calendar", ("VEVENT", "VTODO")),
        ("calendar", "journal", "Journal", ("VJOURNAL",)),
    ]
    assert all(c.access == "owner" and c.sync_seq == 0 and c.owner_id == alice.id for c in found)
    assert run(store.pim.collections(alice.id)) == found  # made once
    assert [c.name for c in run(store.pim.collections(bob.id, "addressbook"))] == ["contacts"]
    assert {c.id for c in found}.isdisjoint(c.id for c in run(store.pim.collections(bob.id)))


def test_put_keeps_the_text_and_its_etag_is_the_digest_of_it(store, run, people):
    alice = people[0]
    contacts, _, _ = defaults(store, run, alice)
    text = card("u1", "Jane Doe", "Jane@Example.org", extra="ORG:Acme\r\nTEL:+1 555\r\n")
    stored = run(store.pim.put(alice.id, contacts.id, "jane.vcf", text))
    assert stored.data == text
    assert stored.etag == hashlib.sha256(text.encode()).hexdigest()
    assert (stored.uid, stored.title, stored.emails, stored.component) == (
        "u1",
        "Jane Doe",
        ("jane@example.org",),
        "VCARD",
    )
    again = run(store.pim.object_by_href(alice.id, contacts.id, "jane.vcf"))
    assert again.data == text and again.etag == stored.etag and again.id == stored.id
    assert run(store.pim.object(alice.id, stored.id)).data == text


def test_a_stale_if_match_is_refused_and_the_other_edit_is_kept(store, run, people):
    alice = people[0]
    contacts, _, _ = defaults(store, run, alice)
    first = run(store.pim.put(alice.id, contacts.id, "j.vcf", card("u1", "Jane", "j@example.org")))
    mine = run(
        store.pim.put(
            alice.id, contacts.id, "j.vcf", card("u1", "Jane A", "j@example.org"), if_match=first.etag
        )
    )
    assert mine.etag != first.etag
    with pytest.raises(PreconditionFailed):  # a second client still holding the first ETag
        run(
            store.pim.put(
                alice.id, contacts.id, "j.vcf", card("u1", "Jane B", "j@example.org"), if_match=first.etag
            )
        )
    assert run(store.pim.object_by_href(alice.id, contacts.id, "j.vcf")).title == "Jane A"
    with pytest.raises(PreconditionFailed):
        run(
            store.pim.put(
                alice.id, contacts.id, "j.vcf", card("u1", "C", "j@example.org"), if_none_match=True
            )
        )
    with pytest.raises(PreconditionFailed):
        run(
            store.pim.put(
                alice.id, contacts.id, "new.vcf", card("u9", "C", "c@example.org"), if_match=first.etag
            )
        )
    with pytest.raises(PreconditionFailed):
        run(store.pim.delete(alice.id, contacts.id, "j.vcf", if_match=first.etag))
    assert run(store.pim.object_by_href(alice.id, contacts.id, "j.vcf")).etag == mine.etag
    run(store.pim.delete(alice.id, contacts.id, "j.vcf", if_match=f'"{mine.etag}"'))
    with pytest.raises(NotFound):
        run(store.pim.object_by_href(alice.id, contacts.id, "j.vcf"))


def test_a_uid_lives_at_one_href_per_collection(store, run, people):
    alice = people[0]
    contacts, _, _ = defaults(store, run, alice)
    run(store.pim.put(alice.id, contacts.id, "a.vcf", card("same", "A", "a@example.org")))
    with pytest.raises(UidConflict) as refused:
        run(store.pim.put(alice.id, contacts.id, "b.vcf", card("same", "B", "b@example.org")))
    assert refused.value.href == "a.vcf"
    new = run(store.pim.put(alice.id, contacts.id, None, card("fresh-uid", "F", "f@example.org")))
    assert new.href == "fresh-uid.vcf"


def test_objects_must_fit_their_collection(store, run, people):
    alice = people[0]
    contacts, calendar, journal_ = defaults(store, run, alice)
    with pytest.raises(InvalidObject):
        run(store.pim.put(alice.id, calendar.id, "c.ics", card("u", "x", "x@example.org")))
    with pytest.raises(InvalidObject):
        run(store.pim.put(alice.id, contacts.id, "e.vcf", event("e", "20261201T100000Z")))
    with pytest.raises(InvalidObject):  # the journal takes VJOURNAL only
        run(store.pim.put(alice.id, journal_.id, "e.ics", event("e", "20261201T100000Z")))
    two_uids = event("a", "20261201T100000Z").replace(
        "END:VCALENDAR", "BEGIN:VEVENT\r\nUID:b\r\nDTSTART:20261201T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR"
    )
    with pytest.raises(InvalidObject):
        run(store.pim.put(alice.id, calendar.id, "two.ics", two_uids))
    for bad in ("", "BEGIN:VCARD\r\nFN:x\r\n", "not a card at all"):
        with pytest.raises(InvalidObject):
            run(store.pim.put(alice.id, contacts.id, "bad.vcf", bad))
    for href in ("../x.vcf", "a/b.vcf", "..", ""):
        with pytest.raises(InvalidObject):
            run(store.pim.put(alice.id, contacts.id, href, card("u2", "x", "x@example.org")))
    assert run(store.pim.objects(alice.id, contacts.id)) == []
    assert run(store.pim.collection(alice.id, contacts.id)).sync_seq == 0


def test_sync_collection_reports_changes_and_deletions_after_a_token(store, run, people):
    alice = people[0]
    contacts, _, _ = defaults(store, run, alice)
    run(store.pim.put(alice.id, contacts.id, "a.vcf", card("a", "A", "a@example.org")))
    run(store.pim.put(alice.id, contacts.id, "b.vcf", card("b", "B", "b@example.org")))
    start = run(store.pim.changes_since(alice.id, contacts.id, 0))
    assert (start.seq, start.changed, start.deleted) == (2, ["a.vcf", "b.vcf"], [])
    run(store.pim.put(alice.id, contacts.id, "a.vcf", card("a", "A2", "a@example.org")))
    run(store.pim.delete(alice.id, contacts.id, "b.vcf"))
    run(store.pim.put(alice.id, contacts.id, "c.vcf", card("c", "C", "c@example.org")))
    later = run(store.pim.changes_since(alice.id, contacts.id, start.seq))
    assert (later.seq, later.changed, later.deleted) == (5, ["a.vcf", "c.vcf"], ["b.vcf"])
    assert run(store.pim.changes_since(alice.id, contacts.id, later.seq)).changed == []
    with pytest.raises(InvalidSyncToken):
        run(store.pim.changes_since(alice.id, contacts.id, 99))


def test_another_accounts_collections_and_objects_are_not_found(store, run, people):
    alice, bob, _ = people
    contacts, calendar, _ = defaults(store, run, alice)
    obj = run(store.pim.put(alice.id, contacts.id, "a.vcf", card("a", "A", "a@example.org")))
    calls = [
        store.pim.collection(bob.id, contacts.id),
        store.pim.objects(bob.id, contacts.id),
        store.pim.object(bob.id, obj.id),
        store.pim.object_by_href(bob.id, contacts.id, "a.vcf"),
        store.pim.put(bob.id, contacts.id, "a.vcf", card("a", "Mallory", "m@example.org")),
        store.pim.put(bob.id, contacts.id, "b.vcf", card("b", "Mallory", "m@example.org")),
        store.pim.delete(bob.id, contacts.id, "a.vcf"),
        store.pim.delete_object(bob.id, obj.id),
        store.pim.changes_since(bob.id, contacts.id, 0),
        store.pim.search(bob.id, contacts.id, "a"),
        store.pim.export_text(bob.id, contacts.id),
        store.pim.import_text(bob.id, contacts.id, card("z", "Z", "z@example.org")),
        store.pim.update_collection(bob.id, contacts.id, display_name="mine"),
        store.pim.delete_collection(bob.id, contacts.id),
        store.pim.share(bob.id, contacts.id, grantee_address="bob@example.org"),
        store.pim.shares(bob.id, contacts.id),
        store.pim.instances(
            bob.id,
            datetime(2026, 1, 1, tzinfo=UTC),
            datetime(2027, 1, 1, tzinfo=UTC),
            collection_ids=[calendar.id],
        ),
        store.pim.group_addresses(bob.id, obj.id),
    ]
    for call in calls:
        with pytest.raises(NotFound):
            run(call)
    bob_contacts, _, _ = defaults(store, run, bob)
    with pytest.raises(NotFound):
        run(store.pim.move(bob.id, obj.id, bob_contacts.id))
    after = run(store.pim.object(alice.id, obj.id))
    assert (after.data, after.modseq) == (obj.data, obj.modseq)
    assert run(store.pim.collection(alice.id, contacts.id)).display_name == "Contacts"
    assert run(store.pim.suggest(bob.id, "A")) == [] or all(
        s.source == "directory" for s in run(store.pim.suggest(bob.id, "A"))
    )


def test_shares_give_read_or_read_write_until_revoked(store, run, people):
    alice, bob, carol = people
    _, calendar, _ = defaults(store, run, alice)
    run(store.pim.put(alice.id, calendar.id, "e.ics", event("e", "20261201T100000Z", "Review")))
    share = run(store.pim.share(alice.id, calendar.id, grantee_address="bob@example.org"))
    assert (share.grantee_address, share.access) == ("bob@example.org", "read")
    seen = [c for c in run(store.pim.collections(bob.id)) if c.id == calendar.id]
    assert [(c.access, c.owner_address) for c in seen] == [("read", "alice@example.org")]
    assert run(store.pim.object_by_href(bob.id, calendar.id, "e.ics")).title == "Review"
    with pytest.raises(ReadOnly):
        run(store.pim.put(bob.id, calendar.id, "e.ics", event("e", "20261201T100000Z", "Hijack")))
    with pytest.raises(ReadOnly):
        run(store.pim.delete(bob.id, calendar.id, "e.ics"))
    run(store.pim.share(alice.id, calendar.id, grantee_address="bob@example.org", access="read-write"))
    run(store.pim.put(bob.id, calendar.id, "e.ics", event("e", "20261201T100000Z", "Reviewed")))
    with pytest.raises(NotAllowed):  # the collection itself stays the owner's
        run(store.pim.delete_collection(bob.id, calendar.id))
    with pytest.raises(NotFound):  # another domain
        run(store.pim.collection(carol.id, calendar.id))
    run(store.pim.unshare(alice.id, calendar.id, share.id))
    with pytest.raises(NotFound):
        run(store.pim.object_by_href(bob.id, calendar.id, "e.ics"))
    domain_share = run(store.pim.share(alice.id, calendar.id, grantee_domain="example.org"))
    assert domain_share.grantee_domain == "example.org"
    assert run(store.pim.collection(bob.id, calendar.id)).access == "read"
    with pytest.raises(NotFound):
        run(store.pim.collection(carol.id, calendar.id))
    assert [s.id for s in run(store.pim.shares(alice.id, calendar.id))] == [domain_share.id]


def test_a_recurring_event_expands_with_its_exception_and_exdate(store, run, people):
    alice = people[0]
    _, calendar, _ = defaults(store, run, alice)
    stored = run(store.pim.put(alice.id, calendar.id, "standup.ics", RECURRING))
    assert stored.recurs and stored.last_end is not None
    week = run(
        store.pim.instances(
            alice.id, datetime(2026, 11, 30, tzinfo=PARIS), datetime(2026, 12, 7, tzinfo=PARIS)
        )
    )
    shown = [(i.occurrence.start.astimezone(PARIS).strftime("%a %d %H:%M"), i.occurrence.title) for i in week]
    assert shown == [
        ("Mon 30 09:30", "Stand-up"),
        ("Tue 01 09:30", "Stand-up"),
        ("Thu 03 14:00", "Stand-up (moved)"),
        ("Fri 04 09:30", "Stand-up"),
    ]
    assert week[0].occurrence.alarms == (timedelta(minutes=10),)
    assert week[2].occurrence.recurrence_id == "20261203T093000"
    assert (
        run(
            store.pim.instances(alice.id, datetime(2026, 12, 5, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
        )
        == []
    )


def test_never_ending_and_all_day_events_are_found_in_any_range(store, run, people):
    alice = people[0]
    _, calendar, _ = defaults(store, run, alice)
    weekly = run(
        store.pim.put(
            alice.id, calendar.id, None, event("w", "20200106T080000Z", "Weekly", "RRULE:FREQ=WEEKLY\r\n")
        )
    )
    assert weekly.recurs and weekly.last_end is None
    holiday = event("h", "20261225", "Christmas").replace("DTSTART:20261225", "DTSTART;VALUE=DATE:20261225")
    assert run(store.pim.put(alice.id, calendar.id, None, holiday)).all_day
    found = run(
        store.pim.instances(
            alice.id, datetime(2026, 12, 21, tzinfo=PARIS), datetime(2026, 12, 28, tzinfo=PARIS)
        )
    )
    assert [(i.occurrence.title, i.occurrence.all_day) for i in found] == [
        ("Weekly", False),
        ("Christmas", True),
    ]
    far = run(
        store.pim.instances(alice.id, datetime(2031, 3, 3, tzinfo=UTC), datetime(2031, 3, 10, tzinfo=UTC))
    )
    assert [i.occurrence.title for i in found if i.occurrence.title == "Weekly"] and len(far) == 1


def test_autocomplete_finds_contacts_groups_and_the_directory(store, run, people):
    alice = people[0]
    contacts, _, _ = defaults(store, run, alice)
    run(store.pim.put(alice.id, contacts.id, None, card("j", "Jane Doe", "jane@acme.example")))
    run(store.pim.put(alice.id, contacts.id, None, card("k", "Kim Lee", "kim@acme.example")))
    group = (
        "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:team\r\nFN:Team Acme\r\nKIND:group\r\n"
        "MEMBER:urn:uuid:j\r\nMEMBER:mailto:extra@acme.example\r\nEND:VCARD\r\n"
    )
    team = run(store.pim.put(alice.id, contacts.id, None, group))
    names = [(s.name, s.email, s.source) for s in run(store.pim.suggest(alice.id, "ja"))]
    assert names == [("Jane Doe", "jane@acme.example", "contact")]
    assert ("Team Acme", "", "group") in [
        (s.name, s.email, s.source) for s in run(store.pim.suggest(alice.id, "acme"))
    ]
    assert run(store.pim.group_addresses(alice.id, team.id)) == ["jane@acme.example", "extra@acme.example"]
    assert [(s.email, s.source) for s in run(store.pim.suggest(alice.id, "bob"))] == [
        ("bob@example.org", "directory")
    ]
    directory = run(store.pim.directory(alice.id))
    assert [d.address for d in directory] == ["alice@example.org", "bob@example.org"]
    assert "EMAIL;TYPE=INTERNET,WORK:bob@example.org" in directory[1].data


def test_vcard_3_and_4_import_and_export_both_ways(store, run, people):
    alice = people[0]
    contacts, _, _ = defaults(store, run, alice)
    v4 = (
        "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:4\r\nFN:Four\r\nN:Four;;;;\r\nEMAIL;TYPE=work:four@example.org\r\n"
        "PHOTO:data:image/png;base64,iVBORw0KGgoAAAANSUhEUg==\r\nEND:VCARD\r\n"
    )
    v3 = card("3", "Three", "three@example.org", extra="PHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQSkZJRg==\r\n")
    result = run(
        store.pim.import_text(alice.id, contacts.id, v3 + v4 + "BEGIN:VCARD\r\nVERSION:3.0\r\nEND:VCARD\r\n")
    )
    assert (result.added, result.updated, len(result.failed)) == (2, 0, 1)  # the last has no FN
    as3 = run(store.pim.export_text(alice.id, contacts.id, "3.0"))
    as4 = run(store.pim.export_text(alice.id, contacts.id, "4.0"))
    assert as3.count("VERSION:3.0") == 2 and "VERSION:4.0" not in as3
    assert "PHOTO;ENCODING=b;TYPE=PNG:iVBORw0KGgoAAAANSUhEUg==" in as3
    assert as4.count("VERSION:4.0") == 2 and "PHOTO:data:image/jpeg;base64,/9j/4AAQSkZJRg==" in as4
    # Importing an export again replaces the same objects (same UIDs), adds nothing.
    before = sorted(o.uid for o in run(store.pim.objects(alice.id, contacts.id)))
    again = run(store.pim.import_text(alice.id, contacts.id, as4))
    assert (again.added, again.updated) == (0, 2)
    assert sorted(o.uid for o in run(store.pim.objects(alice.id, contacts.id))) == before


def test_icalendar_import_splits_by_uid_and_export_joins(store, run, people):
    alice = people[0]
    _, calendar, _ = defaults(store, run, alice)
    other = event("solo", "20261205T120000Z", "Lunch")
    both = RECURRING.replace("END:VCALENDAR\r\n", "") + other.split("PRODID:-//test//EN\r\n", 1)[1]
    result = run(store.pim.import_text(alice.id, calendar.id, both))
    assert (result.added, result.failed) == (2, [])
    standup = run(store.pim.object_by_href(alice.id, calendar.id, "standup.ics"))
    assert standup.data.count("BEGIN:VEVENT") == 2
    exported = run(store.pim.export_text(alice.id, calendar.id))
    assert exported.count("BEGIN:VEVENT") == 3 and exported.count("BEGIN:VCALENDAR") == 1
    assert (run(store.pim.import_text(alice.id, calendar.id, exported)).updated) == 2


def test_journal_entries_are_found_by_text_and_tag(store, run, people):
    alice = people[0]
    _, _, journal_ = defaults(store, run, alice)
    run(
        store.pim.put(
            alice.id, journal_.id, None, journal("j1", "20261201", "Garden", "Planted tulips", "home,garden")
        )
    )
    run(
        store.pim.put(
            alice.id, journal_.id, None, journal("j2", "20261202", "Work", "Quarterly review 50%", "work")
        )
    )
    assert [o.title for o in run(store.pim.search(alice.id, journal_.id, "TULIP"))] == ["Garden"]
    assert [o.title for o in run(store.pim.search(alice.id, journal_.id, category="garden"))] == ["Garden"]
    assert [o.title for o in run(store.pim.search(alice.id, journal_.id, "50%"))] == ["Work"]
    assert [o.title for o in run(store.pim.search(alice.id, journal_.id, "%"))] == ["Work"]
    assert [o.title for o in run(store.pim.search(alice.id, journal_.id))] == ["Work", "Garden"]


def test_removing_an_account_removes_its_collections_and_shares(store, run, people):
    alice, bob, _ = people
    contacts, _, _ = defaults(store, run, alice)
    bob_contacts, _, _ = defaults(store, run, bob)
    run(store.pim.put(alice.id, contacts.id, None, card("a", "A", "a@example.org")))
    run(store.pim.share(bob.id, bob_contacts.id, grantee_address="alice@example.org"))
    run(store.accounts.remove_user("alice@example.org"))
    assert run(store.pim.shares(bob.id, bob_contacts.id)) == []
    with pytest.raises(NotFound):
        run(store.pim.collection(bob.id, contacts.id))


# -- properties ------------------------------------------------------------------------------


_names = st.text(alphabet="abcdefghij KLMNOP-éü", min_size=1, max_size=20).map(str.strip).filter(bool)
_ops = st.lists(
    st.tuples(st.sampled_from(["put", "delete"]), st.sampled_from(["a", "b", "c"]), _names), max_size=12
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_ops)
def test_every_change_raises_the_token_and_sync_reports_exactly_what_changed(store, run, people, ops):
    """Against a model: the token goes up by one per change and never otherwise, each edit gives
    a new ETag, and changes_since(t) names exactly the hrefs touched after t, in their last state."""
    alice = people[0]
    book = run(store.pim.create_collection(alice.id, "addressbook", "prop"))
    model: dict[str, str] = {}
    touched: list[tuple[int, str]] = []
    seq = 0
    for op, name, fn in ops:
        href = f"{name}.vcf"
        if op == "put":
            text = card(name, f"{fn} {seq}", f"{name}@example.org")
            old = model.get(href)
            stored = run(store.pim.put(alice.id, book.id, href, text))
            assert stored.etag != (hashlib.sha256(old.encode()).hexdigest() if old else None)
            model[href] = text
        elif href in model:
            run(store.pim.delete(alice.id, book.id, href))
            del model[href]
        else:
            with pytest.raises(NotFound):
                run(store.pim.delete(alice.id, book.id, href))
            continue
        seq += 1
        touched.append((seq, href))
        assert run(store.pim.collection(alice.id, book.id)).sync_seq == seq
    for token in range(seq + 1):
        changes = run(store.pim.changes_since(alice.id, book.id, token))
        after = {href for s, href in touched if s > token}
        assert changes.seq == seq
        assert set(changes.changed) == {h for h in after if h in model}
        assert set(changes.deleted) == ({h for h in after if h not in model} if token else set())
    listed = run(store.pim.objects(alice.id, book.id, with_data=True))
    assert {o.href: o.data for o in listed} == model
    run(store.pim.delete_collection(alice.id, book.id))


_emails = st.lists(st.from_regex(r"[a-z]{1,8}@[a-z]{1,8}\.example", fullmatch=True), min_size=1, max_size=3)


@settings(max_examples=40, deadline=None)
@given(
    name=_names,
    emails=_emails,
    note=st.text(alphabet="abc ,;:\\xyz", max_size=20),
    version=st.sampled_from(["3.0", "4.0"]),
)
def test_a_card_converted_to_the_other_version_and_back_means_the_same(name, emails, note, version):
    lines = "".join(f"EMAIL:{e}\r\n" for e in emails)
    escaped = note.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;")
    text = (
        f"BEGIN:VCARD\r\nVERSION:{version}\r\nUID:x1\r\nFN:{name}\r\n{lines}NOTE:{escaped}\r\nEND:VCARD\r\n"
    )
    _, before = vcard_text.index_card(text)
    other = "4.0" if version == "3.0" else "3.0"
    there = vcard_text.convert(text, other)
    back = vcard_text.convert(there, version)
    for converted in (there, back):
        card_, index = vcard_text.index_card(converted)
        assert (index.uid, index.title, index.emails) == (before.uid, before.title, before.emails)
        assert card_.note.value == note
    assert f"VERSION:{other}" in there


def test_calendar_query_finds_the_objects_with_an_instance_in_the_range(store, run, people):
    alice = people[0]
    _, calendar, _ = defaults(store, run, alice)
    run(store.pim.put(alice.id, calendar.id, "standup.ics", RECURRING))
    run(store.pim.put(alice.id, calendar.id, "lunch.ics", event("lunch", "20261210T120000Z", "Lunch")))
    in_range = run(
        store.pim.objects_in_range(
            alice.id, calendar.id, datetime(2026, 12, 2, 8, tzinfo=UTC), datetime(2026, 12, 2, 9, tzinfo=UTC)
        )
    )
    assert in_range == []  # the 2 December stand-up is an EXDATE
    found = run(
        store.pim.objects_in_range(
            alice.id, calendar.id, datetime(2026, 12, 3, tzinfo=UTC), datetime(2026, 12, 11, tzinfo=UTC)
        )
    )
    assert sorted(o.href for o in found) == ["lunch.ics", "standup.ics"] and all(o.data for o in found)


def test_the_directory_version_changes_with_the_accounts(store, run, people):
    alice = people[0]
    before = run(store.pim.directory_version(alice.id))
    assert run(store.pim.directory_version(alice.id)) == before
    run(store.accounts.add_user("dave@example.org", "secret pass 4"))
    after = run(store.pim.directory_version(alice.id))
    assert after != before
    run(store.accounts.set_disabled("dave@example.org", True))
    assert run(store.pim.directory_version(alice.id)) == before
