"""Contacts, calendar and journal in Chromium (Playwright), desktop and phone width, against a
real server: a contact with a photo and a group of contacts, a repeating event with one
occurrence moved and one cancelled, a journal entry found by word and by tag, vCard and
iCalendar import and export — and another account's ids in URLs and forms giving 404.
"""

from __future__ import annotations

import base64
import re
from datetime import datetime
from pathlib import Path

from tests.web.conftest import PHONE, screenshot

# A 2x2 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg=="
)
MONTH = "2027-03-01"


def no_sideways_scroll(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"] + 1, "the page scrolls sideways"


def add_contact(page, book_url: str, given: str, family: str, email: str, **more) -> None:
    page.goto(book_url)
    page.get_by_role("link", name="New contact").click()
    page.fill("input[name=given]", given)
    page.fill("input[name=family]", family)
    page.locator("input[name=email]").first.fill(email)
    if "phone" in more:
        page.locator("input[name=phone]").first.fill(more["phone"])
    if "organisation" in more:
        page.fill("input[name=organisation]", more["organisation"])
    if "note" in more:
        page.fill("textarea[name=note]", more["note"])
    if "photo" in more:
        page.set_input_files(
            "input[name=photo]", {"name": "me.png", "mimeType": "image/png", "buffer": more["photo"]}
        )
    page.get_by_role("button", name="Add contact").click()
    page.wait_for_url(re.compile(r"/contacts/\d+\?saved=1"))


def test_make_contacts_and_a_group_usable_as_recipients(web, page_for, tmp_path):
    page = page_for("alice@example.test")
    page.goto("/contacts")
    assert page.locator("h1").inner_text().startswith("Contacts")
    book_url = page.url
    add_contact(
        page,
        book_url,
        "Jane",
        "Doe",
        "jane@acme.example",
        phone="+33 6 12 34 56 78",
        organisation="Acme",
        note="Met at the conference.",
        photo=PNG,
    )
    assert page.locator(".notice").inner_text() == "Saved."
    assert page.locator("img.photo").evaluate("img => img.naturalWidth") == 2
    add_contact(page, book_url, "Kim", "Lee", "kim@acme.example")
    # A group of both.
    page.goto(book_url)
    page.get_by_role("link", name="New group").click()
    page.get_by_label("Group name").fill("Acme team")
    page.get_by_label("Jane Doe").check()
    page.get_by_label("Kim Lee").check()
    page.get_by_role("button", name="Add group").click()
    page.wait_for_url(re.compile(r"/contacts/\d+\?saved=1"))
    page.goto(book_url)
    rows = page.locator("#contact-list .name")
    assert rows.all_inner_texts() == ["Acme team group", "Jane Doe", "Kim Lee"]
    screenshot(page, "contacts-book")
    # Compose's recipient suggestions offer the group with both addresses, and the directory.
    suggestions = page.request.get("/contacts/suggest?q=acme").json()
    group = next(s for s in suggestions if s["source"] == "group")
    assert group["name"] == "Acme team" and sorted(group["addresses"]) == [
        "jane@acme.example",
        "kim@acme.example",
    ]
    directory = page.request.get("/contacts/suggest?q=bob").json()
    assert [(s["email"], s["source"]) for s in directory] == [("bob@example.test", "directory")]
    # Edit: the form shows what was saved; a change is kept.
    page.goto(book_url)
    page.get_by_role("link", name="Jane Doe").click()
    assert page.input_value("input[name=organisation]") == "Acme"
    assert page.input_value("input[name=phone]") == "+33 6 12 34 56 78"
    page.fill("input[name=organisation]", "Acme Labs")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"\?saved=1"))
    assert page.input_value("input[name=organisation]") == "Acme Labs"
    screenshot(page, "contacts-contact")
    # Export as vCard 4.0 and 3.0; import a file into a new address book.
    page.goto(book_url)
    with page.expect_download() as caught:
        page.get_by_role("link", name="Export vCard 4.0").click()
    exported = Path(caught.value.path()).read_text(encoding="utf-8")
    assert exported.count("BEGIN:VCARD") == 3 and "VERSION:4.0" in exported and "KIND:group" in exported
    assert "PHOTO:data:image/png;base64," in exported and "ORG:Acme Labs" in exported
    page.fill("input[name=name][placeholder='New address book']", "Imported")
    page.locator(".new-collection button").click()
    page.wait_for_url(re.compile(r"/contacts/book/\d+$"))
    upload = tmp_path / "people.vcf"
    upload.write_text(exported.replace("VERSION:4.0", "VERSION:4.0", 1))
    page.set_input_files("input[name=file]", str(upload))
    page.get_by_role("button", name="Import", exact=True).click()
    assert "Imported 3 new and 0 updated contacts." in page.locator(".notice").inner_text()
    assert page.locator("#contact-list .name").count() == 3
    # The directory lists the domain's accounts.
    page.get_by_role("link", name="Directory").click()
    assert page.locator("#directory-list").inner_text().count("@example.test") == 2
    assert page.problems == []
    phone = page_for("alice@example.test", PHONE)
    phone.goto(book_url)
    no_sideways_scroll(phone)
    screenshot(phone, "contacts-book")
    phone.get_by_role("link", name="Jane Doe").click()
    no_sideways_scroll(phone)
    screenshot(phone, "contacts-contact")
    assert phone.problems == []


def open_instance(page, title: str, day: str):
    page.goto(f"/calendar?view=day&date={day}")
    page.locator(".event", has_text=title).first.click()
    page.wait_for_url(re.compile(r"/calendar/event/\d+\?rid="))


def test_make_a_repeating_event_with_one_occurrence_moved_and_one_cancelled(web, page_for, tmp_path):
    page = page_for("alice@example.test")
    page.goto(f"/calendar?date={MONTH}")
    page.get_by_role("link", name="New event", exact=True).click()
    page.fill("input[name=title]", "Stand-up")
    page.fill("input[name=start_date]", "2027-03-01")
    page.fill("input[name=start_time]", "09:30")
    page.fill("input[name=end_date]", "2027-03-01")
    page.fill("input[name=end_time]", "09:45")
    page.select_option("select[name=timezone]", "Europe/Paris")
    page.select_option("select[name=repeat]", "DAILY")
    page.check("input[name=ends][value=count]")
    page.fill("input[name=count]", "5")
    page.select_option("select[name=reminder]", "10")
    page.fill("input[name=location]", "Room 4")
    page.get_by_role("button", name="Add event").click()
    page.wait_for_url(re.compile(r"/calendar\?date=2027-03-01&notice=added"))
    assert page.locator(".notice").inner_text() == "Event added."
    assert page.locator(".month .event", has_text="Stand-up").count() == 5
    # Move Wednesday's to the afternoon, only that one.
    open_instance(page, "Stand-up", "2027-03-03")
    assert "one occurrence" in page.locator(".instance-note").inner_text()
    page.fill("input[name=title]", "Stand-up (late)")
    page.fill("input[name=start_time]", "15:00")
    page.fill("input[name=end_time]", "15:15")
    page.get_by_role("button", name="Save this occurrence").click()
    page.wait_for_url(re.compile(r"notice=saved"))
    # Cancel Tuesday's.
    open_instance(page, "Stand-up", "2027-03-02")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete this occurrence").click()
    page.wait_for_url(re.compile(r"notice=saved"))
    page.goto("/calendar?view=week&date=2027-03-01&tz=Europe/Paris")
    shown = page.locator(".day .event").all_inner_texts()
    assert [s.split()[0] for s in shown] == ["09:30", "15:00", "09:30", "09:30"]
    assert "Stand-up (late)" in page.locator(".day").nth(2).inner_text()
    assert "Nothing planned." in page.locator(".day").nth(1).inner_text()
    screenshot(page, "calendar-week")
    page.goto(f"/calendar?view=month&date={MONTH}&tz=Europe/Paris")
    assert page.locator(".month .event").count() == 4
    screenshot(page, "calendar-month")
    page.goto("/calendar?view=agenda&date=2027-03-01&tz=Europe/Paris")
    assert page.locator(".agenda-day").count() == 4
    screenshot(page, "calendar-agenda")
    page.goto("/calendar?view=day&date=2027-03-03&tz=Europe/Paris")
    assert "until 15:15" in page.locator(".day").inner_text()
    screenshot(page, "calendar-day")
    # An all-day event, and a series retitled keeps its exceptions.
    page.goto("/calendar/new?date=2027-03-05")
    page.fill("input[name=title]", "Team day")
    page.check("#all-day")
    assert page.locator("input[name=start_time]").is_hidden()
    page.get_by_role("button", name="Add event").click()
    page.wait_for_url(re.compile(r"notice=added"))
    open_instance(page, "Stand-up", "2027-03-04")
    page.get_by_role("link", name="Edit the whole series").click()
    assert page.input_value("select[name=repeat]") == "DAILY" and page.input_value("input[name=count]") == "5"
    page.fill("input[name=title]", "Daily stand-up")
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url(re.compile(r"notice=saved"))
    page.goto("/calendar?view=agenda&date=2027-03-01&tz=Europe/Paris")
    agenda = page.locator(".agenda").inner_text()
    assert agenda.count("Daily stand-up") == 3 and "Stand-up (late)" in agenda and "Team day" in agenda
    screenshot(page, "calendar-agenda")
    # Export as .ics and import it into a new calendar: the same events.
    page.goto("/calendar")
    page.fill("input[name=name][placeholder='New calendar']", "Copy")
    page.locator(".new-collection button").click()
    page.wait_for_url(re.compile(r"cal=\d+"))
    copy_url = page.url
    calendars = web.call(web.store.pim.collections(account_id(web, "alice@example.test"), "calendar"))
    default = next(c for c in calendars if c.name == "calendar")
    with page.expect_download() as caught:
        page.goto(f"/calendar?cal={default.id}")
        page.get_by_role("link", name="Export .ics").click()
    exported = Path(caught.value.path()).read_text(encoding="utf-8")
    assert exported.count("BEGIN:VEVENT") == 3 and "RECURRENCE-ID" in exported and "EXDATE" in exported
    page.goto(copy_url)
    upload = tmp_path / "cal.ics"
    upload.write_text(exported)
    page.set_input_files("input[name=file]", str(upload))
    page.get_by_role("button", name="Import", exact=True).click()
    assert "Imported 2 new and 0 updated events." in page.locator(".notice").inner_text()
    assert page.problems == []
    phone = page_for("alice@example.test", PHONE)
    for view in ("month", "week", "agenda"):
        phone.goto(f"/calendar?view={view}&date={MONTH}&cal={default.id}&tz=Europe/Paris")
        screenshot(phone, f"calendar-{view}")
        no_sideways_scroll(phone)
    open_instance(phone, "Daily stand-up", "2027-03-01")
    no_sideways_scroll(phone)
    screenshot(phone, "calendar-event")
    screenshot(page_goto(page, phone.url), "calendar-event")
    assert phone.problems == []


def page_goto(page, url):
    page.goto(url)
    return page


def account_id(web, address: str) -> int:
    return web.call(web.store.accounts.get_user(address)).id


def test_reminders_of_the_next_day_are_shown_in_the_calendar(web, page_for):
    from datetime import UTC, datetime, timedelta

    from tidings.pim.events import Event

    alice = account_id(web, "alice@example.test")
    calendar = web.call(web.store.pim.default_collection(alice, "calendar"))
    soon = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=2)
    text = Event(title="Dentist", start=soon, end=soon + timedelta(hours=1), reminders=[150]).to_calendar()
    web.call(web.store.pim.put(alice, calendar.id, None, text))
    page = page_for("alice@example.test")
    page.goto("/calendar")
    reminder = page.locator(".reminders .reminder", has_text="Dentist")
    assert reminder.count() == 1
    reminder.and_(page.locator(".due")).wait_for()  # fired half an hour ago: shown as due
    assert page.problems == []


def test_write_a_journal_entry_and_find_it_by_word_and_tag(web, page_for):
    page = page_for("alice@example.test")
    page.goto("/journal")
    page.fill("input[name=day]", "2027-03-01")
    page.fill("input[name=title]", "Garden")
    page.fill("textarea[name=text]", "Planted the tulips by the wall.")
    page.fill("input[name=tags]", "home, garden")
    page.get_by_role("button", name="Save entry").click()
    page.wait_for_url(re.compile(r"notice=saved"))
    page.fill("input[name=day]", "2027-03-02")
    page.fill("textarea[name=text]", "Quarterly review went well.")
    page.fill("input[name=tags]", "work")
    page.get_by_role("button", name="Save entry").click()
    page.wait_for_url(re.compile(r"notice=saved"))
    assert page.locator(".entry .entry-head").all_inner_texts()[0].startswith("Tue 02 Mar 2027")
    screenshot(page, "journal")
    page.fill("input[name=q]", "tulips")
    page.get_by_role("button", name="Search").click()
    assert page.locator(".entry").count() == 1 and "Garden" in page.locator(".entry").inner_text()
    page.goto("/journal")
    page.get_by_role("link", name="#work").first.click()
    assert page.locator(".entry").count() == 1 and "Quarterly" in page.locator(".entry").inner_text()
    page.locator(".entry-head").first.click()
    page.fill("textarea[name=text]", "Quarterly review went very well.")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"notice=saved"))
    assert "very well" in page.locator("#entries").inner_text()
    # Stored as VJOURNAL in the account's journal.
    alice = account_id(web, "alice@example.test")
    journal = web.call(web.store.pim.default_collection(alice, "journal"))
    texts = [o.data for o in web.call(web.store.pim.objects(alice, journal.id, with_data=True))]
    assert len(texts) == 2 and all("BEGIN:VJOURNAL" in t for t in texts)
    assert any("CATEGORIES:home,garden" in t for t in texts)
    assert page.problems == []
    phone = page_for("alice@example.test", PHONE)
    phone.goto("/journal")
    no_sideways_scroll(phone)
    screenshot(phone, "journal")
    assert phone.problems == []


def test_a_stale_edit_is_refused_not_lost(web):
    """Two tabs open the same contact; the second save must not overwrite the first."""
    alice = account_id(web, "alice@example.test")
    book = web.call(web.store.pim.default_collection(alice, "contacts"))
    card = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:x\r\nFN:Pat\r\nN:;Pat;;;\r\nEND:VCARD\r\n"
    obj = web.call(web.store.pim.put(alice, book.id, None, card))
    client = web.client("alice@example.test")
    first = client.get(f"/contacts/{obj.id}")
    etag = re.search(r'name="etag" value="([^"]+)"', first.text).group(1)
    form = {"csrf": first.csrf(), "etag": etag, "given": "Pat", "family": "One"}
    assert client.post(f"/contacts/{obj.id}", form).status == 303
    reply = client.post(f"/contacts/{obj.id}", {**form, "family": "Two"})
    assert reply.status == 409 and "changed elsewhere" in reply.text
    assert web.call(web.store.pim.object(alice, obj.id)).title == "Pat One"


def test_another_accounts_collections_and_objects_give_404(web):
    """Bob's address book, calendar, journal and their objects, by id in URLs and in forms."""
    bob = account_id(web, "bob@example.test")
    pim = web.store.pim
    book = web.call(pim.default_collection(bob, "contacts"))
    calendar = web.call(pim.default_collection(bob, "calendar"))
    journal = web.call(pim.default_collection(bob, "journal"))
    card = web.call(
        pim.put(bob, book.id, None, "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:b\r\nFN:Bob secret\r\nEND:VCARD\r\n")
    )
    from tidings.pim.events import Entry, Event

    event = web.call(pim.put(bob, calendar.id, None, Event(title="Bob secret", repeat="DAILY").to_calendar()))
    entry = web.call(pim.put(bob, journal.id, None, Entry(title="Bob secret", text="diary").to_calendar()))
    before = [web.call(pim.changes_since(bob, c.id, 0)) for c in (book, calendar, journal)]
    client = web.client("alice@example.test")
    csrf = client.csrf()
    gets = [
        f"/contacts/book/{book.id}",
        f"/contacts/book/{book.id}/new",
        f"/contacts/book/{book.id}/export",
        f"/contacts/{card.id}",
        f"/contacts/{card.id}/photo",
        f"/calendar?cal={calendar.id}",
        f"/calendar/event/{event.id}",
        f"/calendar/{calendar.id}/export",
        f"/journal?j={journal.id}",
        f"/journal/{entry.id}",
        f"/calendar/event/{card.id}",
        f"/journal/{event.id}",
        f"/contacts/{entry.id}",
    ]
    for path in gets:
        reply = client.get(path)
        assert reply.status == 404, (path, reply.status)
        assert b"Bob secret" not in reply.body
    posts = [
        (f"/contacts/book/{book.id}/new", {"name": "x", "email": "x@example.org"}),
        (f"/contacts/book/{book.id}/delete", {}),
        (f"/contacts/book/{book.id}/import", {}),
        (f"/contacts/{card.id}", {"name": "Stolen"}),
        (f"/contacts/{card.id}/delete", {}),
        ("/calendar/new", {"title": "x", "calendar": calendar.id, "start_date": "2027-01-01"}),
        (f"/calendar/event/{event.id}", {"title": "Stolen", "start_date": "2027-01-01"}),
        (f"/calendar/event/{event.id}/instance", {"title": "Stolen", "rid": "20270101T090000Z"}),
        (f"/calendar/event/{event.id}/cancel", {"rid": "20270101T090000Z"}),
        (f"/calendar/event/{event.id}/delete", {}),
        (f"/calendar/{calendar.id}/import", {}),
        (f"/calendar/{calendar.id}/delete", {}),
        ("/journal/new", {"journal": journal.id, "text": "x"}),
        (f"/journal/{entry.id}", {"text": "Stolen"}),
        (f"/journal/{entry.id}/delete", {}),
    ]
    for path, form in posts:
        reply = client.post(path, {"csrf": csrf, **form})
        assert reply.status == 404, (path, reply.status)
    after = [web.call(pim.changes_since(bob, c.id, 0)) for c in (book, calendar, journal)]
    assert after == before
    assert b"Bob secret" not in client.get("/contacts/suggest?q=bob").body


def test_sharing_a_calendar_and_an_address_book_until_it_is_revoked(web, page_for):
    alice, bob = account_id(web, "alice@example.test"), account_id(web, "bob@example.test")
    from tidings.pim.events import Event

    pim = web.store.pim
    calendar = web.call(pim.default_collection(alice, "calendar"))
    book = web.call(pim.default_collection(alice, "contacts"))
    text = Event(title="Planning", start=datetime(2027, 3, 2, 10, 0), timezone="UTC").to_calendar()
    event = web.call(pim.put(alice, calendar.id, None, text))
    owner = web.client("alice@example.test")
    csrf = owner.csrf()
    reply = owner.post(f"/calendar/{calendar.id}/share", {"csrf": csrf, "grantee": "bob@example.test"})
    assert reply.status == 303
    reply = owner.post(
        f"/contacts/book/{book.id}/share", {"csrf": csrf, "everyone": "1", "access": "read-write"}
    )
    assert reply.status == 303
    assert "everyone at example.test" in owner.get(f"/contacts/book/{book.id}").text
    guest = web.client("bob@example.test")
    guest_csrf = guest.csrf()
    assert "Planning" in guest.get("/calendar?view=agenda&date=2027-03-01").text
    page = guest.get(f"/calendar/event/{event.id}")
    assert page.status == 200 and "<fieldset disabled>" in page.text
    reply = guest.post(
        f"/calendar/event/{event.id}", {"csrf": guest_csrf, "etag": event.etag, "title": "Mine"}
    )
    assert reply.status == 400 and "read-only" in reply.text
    reply = guest.post(f"/calendar/{calendar.id}/share", {"csrf": guest_csrf, "grantee": "bob@example.test"})
    assert reply.status == 400  # only the owner shares
    reply = guest.post(
        f"/contacts/book/{book.id}/new", {"csrf": guest_csrf, "name": "From Bob", "email": "b@x.org"}
    )
    assert reply.status == 303  # read-write
    assert [o.title for o in web.call(pim.objects(alice, book.id))] == ["From Bob"]
    mine = page_for("alice@example.test")
    mine.goto(f"/contacts/book/{book.id}")
    assert "everyone at example.test" in mine.locator(".shares").inner_text()
    screenshot(mine, "contacts-sharing")
    # The other sees the shared collections in the lists, with the owner's name; then it is revoked.
    page = page_for("bob@example.test")
    page.goto("/calendar?view=agenda&date=2027-03-01")
    assert "alice" in page.locator(".pim-nav").inner_text()
    screenshot(page, "calendar-shared")
    assert page.problems == []
    for share in web.call(pim.shares(alice, calendar.id)):
        owner.post(f"/calendar/{calendar.id}/share", {"csrf": csrf, "share_id": share.id})
    assert guest.get(f"/calendar/event/{event.id}").status == 404
    assert "Planning" not in guest.get("/calendar?view=agenda&date=2027-03-01").text
    assert web.call(pim.collections(bob, "calendar"))[0].owner_id == bob
