"""Writing mail in Chromium (Playwright) against a real server: compose with an attachment (the
upload's progress bar), send it to another account and see it arrive there; reply; find it with
search; a draft saved while typing; send later, listed and cancelled; address suggestions from the
domain's accounts. Desktop and phone width, with screenshots."""

from __future__ import annotations

import time

from tests.web.conftest import PHONE, screenshot

ALICE, BOB = "alice@example.test", "bob@example.test"


def wait_for(condition, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"waited {timeout:.0f} s for {what}"
        time.sleep(0.1)


def inbox_subjects(web, address: str, name: str = "INBOX") -> list[str]:
    account = web.call(web.store.accounts.get_user(address))
    box = web.call(web.store.mailboxes.get(account.id, name))
    _, refs = web.call(web.store.mailboxes.messages(account.id, box.id))
    summaries = web.call(web.store.mailboxes.summaries(account.id, refs))
    return [summaries[r.message_id].subject for r in refs if r.message_id in summaries]


def web_draft_text(web) -> str:
    account = web.call(web.store.accounts.get_user(ALICE))
    box = web.call(web.store.mailboxes.get(account.id, "Drafts"))
    _, refs = web.call(web.store.mailboxes.messages(account.id, box.id))
    return b"".join(web.call(web.store.mailboxes.read_blob(r.blob_hash)) for r in refs).decode(
        "utf-8", "replace"
    )


def latest_draft_uid(web) -> int:
    account = web.call(web.store.accounts.get_user(ALICE))
    box = web.call(web.store.mailboxes.get(account.id, "Drafts"))
    _, refs = web.call(web.store.mailboxes.messages(account.id, box.id))
    return refs[-1].uid


def test_send_with_an_attachment_it_arrives_the_reply_comes_back_and_search_finds_it(web, page_for, tmp_path):
    report = tmp_path / "Quarterly report.pdf"
    report.write_bytes(b"%PDF-1.4\n" + b"x" * 300_000 + b"\n%%EOF\n")
    notes = tmp_path / "notes.txt"
    notes.write_text("Zanzibar itinerary, day by day.\n")

    alice = page_for(ALICE)
    alice.click("a.compose-link")
    alice.wait_for_url("**/mail/compose")
    alice.fill("#c-to", "bob@exam")
    suggestion = alice.locator("#suggestions li", has_text=BOB)
    suggestion.wait_for()  # the domain's accounts are suggested
    suggestion.dispatch_event("mousedown")
    assert alice.input_value("#c-to") == f"Bob <{BOB}>, "
    alice.fill("#c-subject", "Travel plans for Zanzibar")
    alice.fill("#c-text", "Hello Bob,\nthe plans are attached.\nAlice")
    alice.set_input_files("#c-files", [str(report), str(notes)])
    alice.locator("#attachment-list li", has_text="notes.txt").wait_for()
    assert alice.locator("#attachment-list li").count() == 2
    assert "Uploaded" in alice.inner_text("#upload-status")
    screenshot(alice, "compose")
    alice.click("button[value=send]")
    alice.wait_for_url("**/mail/*")

    # It arrived in bob's inbox, live on his open page; a copy is in alice's Sent.
    bob = page_for(BOB)
    bob.locator(".msg .subject", has_text="Travel plans for Zanzibar").wait_for()
    assert "Travel plans for Zanzibar" in inbox_subjects(web, ALICE, "Sent")
    bob.click("text=Travel plans for Zanzibar")
    attachments = bob.locator(".attachment .name")
    assert sorted(attachments.all_inner_texts()) == ["Quarterly report.pdf", "notes.txt"]
    assert "the plans are attached" in bob.inner_text(".text-body")

    # Bob replies; alice sees it, quoted, with threading fields.
    bob.get_by_role("button", name="Reply", exact=True).click()
    bob.wait_for_url("**/mail/compose?draft=*")
    assert bob.input_value("#c-to") == ALICE
    assert bob.input_value("#c-subject") == "Re: Travel plans for Zanzibar"
    assert "> the plans are attached." in bob.input_value("#c-text")
    bob.fill("#c-text", "Sounds great!\n" + bob.input_value("#c-text"))
    screenshot(bob, "compose-reply")
    bob.click("button[value=send]")
    bob.wait_for_url("**/mail/*")
    wait_for(lambda: "Re: Travel plans for Zanzibar" in inbox_subjects(web, ALICE), "the reply")
    account = web.call(web.store.accounts.get_user(ALICE))
    box = web.call(web.store.mailboxes.get(account.id, "INBOX"))
    _, refs = web.call(web.store.mailboxes.messages(account.id, box.id))
    summaries = web.call(web.store.mailboxes.summaries(account.id, refs))
    reply = next(s for s in summaries.values() if s.subject.startswith("Re:"))
    sent = web.call(web.store.mailboxes.get(account.id, "Sent"))
    _, sent_refs = web.call(web.store.mailboxes.messages(account.id, sent.id))
    original = web.call(web.store.mailboxes.summaries(account.id, sent_refs))[sent_refs[0].message_id]
    assert reply.in_reply_to == original.message_id

    # Search finds both by a body word, and the attachment search only the original.
    bob.goto("/mail/search?q=zanzibar")
    wait_for(lambda: bob.reload() or bob.locator(".search-results .msg").count() == 2, "the index")
    bob.goto("/mail/search?q=zanzibar&attachment=1")
    assert bob.locator(".search-results .subject").all_inner_texts() == ["📎Travel plans for Zanzibar"]
    bob.goto("/mail/search?q=")
    bob.fill(".search-form input[name=q]", "plans")
    bob.click(".search-form summary")
    bob.fill(".search-form input[name=from]", "alice")
    bob.click(".search-form button[type=submit]")
    bob.locator(".search-results .msg").first.wait_for()
    assert bob.locator(".search-results .subject").all_inner_texts() == ["📎Travel plans for Zanzibar"]
    screenshot(bob, "search")
    bob.click(".search-results a.open")
    bob.locator("article.message").wait_for()
    assert bob.inner_text("h1.subject") == "Travel plans for Zanzibar"
    assert alice.problems == [] and bob.problems == []


def test_a_draft_is_saved_while_typing_and_opens_again(web, page_for):
    page = page_for(ALICE)
    page.goto("/mail/compose")
    page.fill("#c-to", "carol@elsewhere.test")
    page.fill("#c-subject", "Unfinished thoughts")
    page.fill("#c-text", "To be continued")
    page.locator("#save-status", has_text="Draft saved").wait_for()
    assert "draft=" in page.url
    assert inbox_subjects(web, ALICE, "Drafts") == ["Unfinished thoughts"]
    page.fill("#c-text", "To be continued, later")
    wait_for(lambda: "later" in web_draft_text(web), "the second save")
    page.wait_for_url(f"**/mail/compose?draft={latest_draft_uid(web)}")
    page.goto(page.url)
    assert page.input_value("#c-subject") == "Unfinished thoughts"
    assert page.input_value("#c-to") == "carol@elsewhere.test"
    wait_for(lambda: len(inbox_subjects(web, ALICE, "Drafts")) == 1, "one draft only")


def test_send_later_is_listed_and_cancelled_back_to_drafts(web, page_for):
    page = page_for(ALICE, PHONE)
    page.goto("/mail/compose")
    page.fill("#c-to", BOB)
    page.fill("#c-subject", "Birthday wishes")
    page.fill("#c-text", "Happy birthday!")
    # Ten days ahead at 09:30, in the browser's time zone, as the date picker gives it.
    when = page.evaluate(
        "(() => { const d = new Date(Date.now() + 10 * 86400000); d.setHours(9, 30, 0, 0);"
        " const p = (n) => String(n).padStart(2, '0');"
        " return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T09:30`; })()"
    )
    page.fill("#c-send-at", when)
    screenshot(page, "compose")
    page.click("button[value=schedule]")
    page.wait_for_url("**/mail/scheduled*")
    entry = page.locator(".scheduled-entry")
    assert entry.count() == 1
    assert "Birthday wishes" in entry.inner_text() and BOB in entry.inner_text()
    account = web.call(web.store.accounts.get_user(ALICE))
    (queued,) = web.call(web.store.queue.scheduled(account.id))
    assert queued.release_at == page.evaluate(f"new Date('{when}').getTime() / 1000")
    assert "Birthday wishes" not in inbox_subjects(web, BOB)
    screenshot(page, "scheduled")
    page.click(".scheduled-entry button.danger")
    page.wait_for_url("**/mail/compose?draft=*")
    assert page.input_value("#c-subject") == "Birthday wishes"
    assert web.call(web.store.queue.scheduled(account.id)) == []
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], "the compose page scrolls sideways at phone width"
    assert page.problems == []


def test_forward_as_attachment_and_inline(web, page_for):
    web.deliver(
        ALICE, subject="Original news", body="The news itself.", attachments=[("a.txt", "text/plain", b"A")]
    )
    page = page_for(ALICE)
    page.click("text=Original news")
    page.get_by_role("button", name="Forward as attachment", exact=True).click()
    page.wait_for_url("**/mail/compose?draft=*")
    assert page.input_value("#c-subject") == "Fwd: Original news"
    assert page.locator("#attachment-list li").all_inner_texts()[0].startswith("Original news.eml")
    page.fill("#c-to", BOB)
    page.click("button[value=send]")
    page.wait_for_url("**/mail/*")
    wait_for(lambda: "Fwd: Original news" in inbox_subjects(web, BOB), "the forward")
    page.goto("/mail")
    page.click("text=Original news")
    page.get_by_role("button", name="Forward", exact=True).click()
    page.wait_for_url("**/mail/compose?draft=*")
    assert "---------- Forwarded message ----------" in page.input_value("#c-text")
    assert "The news itself." in page.input_value("#c-text")
    assert page.locator("#attachment-list li").all_inner_texts()[0].startswith("a.txt")
    assert page.problems == []
