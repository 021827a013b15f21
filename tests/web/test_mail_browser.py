"""Reading mail in Chromium (Playwright), at desktop and phone width, against a real server."""

from __future__ import annotations

from tests.web.conftest import PHONE, screenshot


def test_log_in_and_see_the_folder_list_with_unread_counts(web, page_for):
    web.deliver("alice@example.test", subject="Welcome to Tidings", body="First message.")
    web.deliver("alice@example.test", subject="Second", body="Another one.", sender="dave@elsewhere.test")
    page = page_for("alice@example.test")
    folders = page.locator("#folders")
    for name in ("Inbox", "Drafts", "Sent", "Archive", "Junk", "Trash"):
        assert folders.get_by_text(name, exact=True).is_visible()
    assert folders.locator("[aria-current=page] .count").inner_text() == "2"
    assert page.locator(".msg.unread").count() == 2
    assert page.locator(".msg .subject").first.inner_text().endswith("Second")  # newest first
    screenshot(page, "mail-inbox")
    assert page.problems == []


def test_the_inbox_at_phone_width(web, page_for):
    for n in range(3):
        web.deliver("alice@example.test", subject=f"Message number {n} with a long subject line", body="x")
    page = page_for("alice@example.test", PHONE)
    assert page.locator(".msg").count() == 3
    assert page.locator("#folders").is_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], "the page scrolls sideways at phone width"
    screenshot(page, "mail-inbox")
    assert page.problems == []
