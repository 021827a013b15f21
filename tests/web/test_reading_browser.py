"""Reading, marking, moving and deleting mail in Chromium, and new mail arriving live; an HTML
message full of scripts and remote references runs nothing and loads nothing."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.web.conftest import PHONE, go, screenshot

PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


class Tracker:
    """A "remote" web server on 127.0.0.1 that counts every request made to it."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        tracker = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                tracker.hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/gif")
                self.send_header("Content-Length", str(len(PIXEL)))
                self.end_headers()
                self.wfile.write(PIXEL)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tracker():
    tracker = Tracker()
    yield tracker
    tracker.close()


def hostile_html(tracker: Tracker) -> str:
    return f"""<html><head>
<style>body {{ background: url({tracker.url("/style-tag.png")}) }}</style>
<link rel="stylesheet" href="{tracker.url("/sheet.css")}">
<script>parent.document.title = "pwned"; fetch("{tracker.url("/script")}");</script>
<meta http-equiv="refresh" content="0; url={tracker.url("/refresh")}">
</head><body>
<h2>Quarterly figures</h2>
<p style="color: #2f5fd0; background-image: url({tracker.url("/inline-style.png")})">
Dear reader, the numbers are in.</p>
<img src="{tracker.url("/pixel.gif")}" alt="tracking pixel" width="1" height="1">
<img src="x" onerror="parent.document.title='pwned'; new Image().src='{tracker.url("/onerror")}'">
<a href="javascript:parent.document.title='pwned'">a javascript: link</a>
<a href="data:text/html,<script>alert(1)</script>">a data: link</a>
<iframe src="{tracker.url("/frame")}"></iframe>
<object data="{tracker.url("/object")}"></object>
<svg><image href="{tracker.url("/svg-image")}"></image></svg>
<form action="{tracker.url("/form")}"><input name="q"><button>Go</button></form>
<video poster="{tracker.url("/poster")}"></video>
<table background="{tracker.url("/table-bg.png")}"><tr><td>Total</td><td>42</td></tr></table>
<p><a href="https://example.org/report">The full report</a></p>
</body></html>"""


def test_an_html_message_runs_nothing_and_loads_nothing_until_images_are_allowed(web, page_for, tracker):
    web.deliver("alice@example.test", subject="Figures", body="Plain version.", html=hostile_html(tracker))
    page = page_for("alice@example.test")
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    go(page, "text=Figures")
    page.wait_for_selector("iframe.html-body")
    frame = page.frame_locator("iframe.html-body")
    frame.locator("text=Dear reader, the numbers are in.").wait_for()
    page.wait_for_load_state("networkidle")
    assert tracker.hits == []
    assert page.title() != "pwned" and dialogs == []
    assert frame.locator("text=Total").is_visible()
    assert frame.locator("a", has_text="a javascript: link").get_attribute("href") is None
    assert frame.locator("a", has_text="a data: link").get_attribute("href") is None
    assert frame.locator("a", has_text="The full report").get_attribute("rel") == "noopener noreferrer"
    assert frame.locator("script, iframe, object, form, svg, video, link, meta[http-equiv]").count() == 0
    assert frame.locator("style").count() == 1  # ours, in the frame's head
    screenshot(page, "mail-html-blocked")

    go(page, "a.show-images")
    page.wait_for_selector("iframe.html-body")
    page.frame_locator("iframe.html-body").locator("text=Total").wait_for()
    page.wait_for_load_state("networkidle")
    # Allowed: the images, and nothing else (styles with URLs were removed, scripts never run).
    assert tracker.hits == ["/pixel.gif"]
    assert page.title() != "pwned" and dialogs == []
    assert page.problems == [] or all("Content Security Policy" in p or "sandbox" in p for p in page.problems)


def test_open_a_message_with_its_header_fields_and_attachments(web, page_for):
    png = PIXEL  # a GIF is an image too
    web.deliver(
        "alice@example.test",
        subject="Holiday pictures",
        body="Here they are.\nSee you soon,\nCarol",
        sender="carol@elsewhere.test",
        attachments=[
            ("beach.gif", "image/gif", png),
            ('../../etc/notes; "evil".txt', "text/plain", b"packing list"),
            ("report.pdf", "application/pdf", b"%PDF-1.4\n%%EOF\n"),
        ],
    )
    page = page_for("alice@example.test")
    go(page, "text=Holiday pictures")
    article = page.locator("article.message")
    assert article.locator("h1.subject").inner_text() == "Holiday pictures"
    assert "carol@elsewhere.test" in article.locator("dd.from").inner_text()
    assert "alice@example.test" in article.locator("dd.to").inner_text()
    assert article.locator("dd.date").inner_text()
    assert article.locator("dd.size").inner_text().endswith(("B", "KB"))
    assert "See you soon," in article.locator("pre.text-body").inner_text()
    names = article.locator(".attachment .name").all_inner_texts()
    assert names == ["beach.gif", '../../etc/notes; "evil".txt', "report.pdf"]
    assert article.locator(".attachment img.preview").count() == 1
    with page.expect_download() as download:
        article.locator(".attachment").nth(1).locator("a", has_text="Download").click()
    name = download.value.suggested_filename
    assert "notes" in name and name.endswith(".txt") and not {"/", '"', ";"} & set(name)
    with open(download.value.path(), "rb") as saved:
        assert saved.read() == b"packing list"
    screenshot(page, "mail-message")
    phone = page_for("alice@example.test", PHONE)
    go(phone, "text=Holiday pictures")
    phone.wait_for_selector("article.message")
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(phone, "mail-message")
    assert page.problems == [] and phone.problems == []


def test_mark_flag_move_and_delete(web, page_for):
    for subject in ("Alpha", "Beta", "Gamma"):
        web.deliver("alice@example.test", subject=subject)
    page = page_for("alice@example.test")
    row = page.locator(".msg", has_text="Beta")
    row.locator("input[type=checkbox]").check()
    go(page, "button[value=flag]")
    assert "flagged" in page.locator(".msg", has_text="Beta").get_attribute("class")
    page.locator(".msg", has_text="Gamma").locator("input[type=checkbox]").check()
    go(page, "button[value=read]")
    assert "unread" not in page.locator(".msg", has_text="Gamma").get_attribute("class")
    assert page.locator("#folders [aria-current=page] .count").inner_text() == "2"

    # Reading marks read; "Mark unread" undoes it.
    go(page, "text=Alpha")
    go(page, "button[value=unread]")
    assert "unread" in page.locator(".msg", has_text="Alpha").get_attribute("class")

    # Move Beta to Archive, delete Gamma (to Trash), then delete it from Trash for good.
    page.locator(".msg", has_text="Beta").locator("input[type=checkbox]").check()
    page.select_option("#message-list select[name=target]", label="Archive")
    go(page, "#message-list button[value=move]")
    page.locator(".msg", has_text="Gamma").locator("input[type=checkbox]").check()
    go(page, "#message-list button[value=delete]")
    assert page.locator(".msg .subject").all_inner_texts() == ["Alpha"]
    go(page, "#folders >> text=Archive")
    assert page.locator(".msg .subject").all_inner_texts() == ["★Beta"]
    go(page, "#folders >> text=Trash")
    assert page.locator(".msg .subject").all_inner_texts() == ["Gamma"]
    page.locator(".msg", has_text="Gamma").locator("input[type=checkbox]").check()
    go(page, "#message-list button[value=delete]")
    assert page.locator(".msg").count() == 0 and page.locator(".messages .empty").is_visible()
    assert page.problems == []


def test_create_rename_and_delete_folders(web, page_for):
    page = page_for("alice@example.test")
    go(page, "text=Manage folders")
    page.fill("form[action='/mail/folders'] input[name=name]", "Projects")
    go(page, "form[action='/mail/folders'] button")
    page.fill("form[action='/mail/folders'] input[name=name]", "Garden")
    page.select_option("form[action='/mail/folders'] select[name=parent]", label="Projects")
    go(page, "form[action='/mail/folders'] button")
    assert page.locator("#folders").get_by_text("Garden", exact=True).is_visible()
    item = page.locator(".folder-admin li", has=page.locator(".name", has_text="Projects/Garden"))
    item.locator("input[name=name]").fill("Projects/Allotment")
    go(page, item.locator("button", has_text="Rename"))
    assert page.locator(".folder-admin .name", has_text="Projects/Allotment").is_visible()
    screenshot(page, "mail-folders")
    page.on("dialog", lambda dialog: dialog.accept())
    go(
        page,
        page.locator(".folder-admin li", has=page.locator(".name", has_text="Projects/Allotment")).locator(
            "button", has_text="Delete"
        ),
    )
    assert page.locator(".folder-admin .name", has_text="Allotment").count() == 0
    # An impossible name is explained, not a crash.
    page.fill("form[action='/mail/folders'] input[name=name]", "bad*name")
    go(page, "form[action='/mail/folders'] button")
    assert "wildcard" in page.locator(".error").inner_text()
    assert page.problems == []


def test_new_mail_appears_live_in_every_open_tab(web, page_for):
    web.deliver("alice@example.test", subject="Before")
    first = page_for("alice@example.test")
    second = first.context.new_page()
    second.goto("/mail")
    for page in (first, second):
        page.wait_for_function("document.body.dataset.live === 'open'")
    web.deliver("alice@example.test", subject="Arrived while you watched")
    for page in (first, second):
        page.locator(".msg", has_text="Arrived while you watched").wait_for()
        assert page.locator("#folders [aria-current=page] .count").inner_text() == "2"
    screenshot(first, "mail-live")
    assert first.problems == []


def test_archive_junk_and_drag_a_message_onto_a_folder(web, page_for):
    for subject in ("Keep me", "Spam offer", "Drag me", "Drag me too"):
        web.deliver("alice@example.test", subject=subject)
    page = page_for("alice@example.test")
    page.locator(".msg", has_text="Keep me").locator("input[type=checkbox]").check()
    go(page, "#message-list button[value=archive]")
    page.locator(".msg", has_text="Spam offer").locator("input[type=checkbox]").check()
    go(page, "#message-list button[value=junk]")
    assert sorted(page.locator(".msg .subject").all_inner_texts()) == ["Drag me", "Drag me too"]
    page.wait_for_function("document.body.dataset.live === 'open'")
    page.drag_and_drop(".msg:has-text('Drag me too') .open", "#folders a:has-text('Junk')")
    page.locator(".msg", has_text="Drag me too").wait_for(state="detached")
    assert page.locator(".msg .subject").all_inner_texts() == ["Drag me"]
    go(page, "#folders >> text=Junk")
    assert sorted(page.locator(".msg .subject").all_inner_texts()) == ["Drag me too", "Spam offer"]
    go(page, "#folders >> text=Archive")
    assert page.locator(".msg .subject").all_inner_texts() == ["Keep me"]
    assert page.problems == []


def test_conversations_group_a_message_and_its_replies(web, page_for):
    from email.message import EmailMessage

    def mail(subject: str, message_id: str, reply_to: str | None = None) -> EmailMessage:
        message = EmailMessage()
        message["From"] = "dave@elsewhere.test"
        message["To"] = "alice@example.test"
        message["Subject"] = subject
        message["Message-ID"] = message_id
        if reply_to:
            message["In-Reply-To"] = reply_to
            message["References"] = reply_to
        message.set_content("text")
        return message

    web.deliver("alice@example.test", message=mail("Plans for Friday", "<p1@elsewhere.test>"))
    web.deliver("alice@example.test", message=mail("Unrelated", "<u1@elsewhere.test>"))
    web.deliver(
        "alice@example.test",
        message=mail("Re: Plans for Friday", "<p2@elsewhere.test>", "<p1@elsewhere.test>"),
    )
    account = web.call(web.store.accounts.get_user("alice@example.test"))
    inbox = web.mailbox_id("alice@example.test")
    _, refs = web.call(web.store.mailboxes.messages(account.id, inbox))
    web.call(web.store.threads.thread_ids(account.id, refs))  # what the background indexer does
    page = page_for("alice@example.test")
    go(page, "a.view-toggle")
    rows = page.locator(".msg")
    assert rows.count() == 2
    assert rows.nth(0).locator(".thread-size").inner_text() == "2"
    assert rows.nth(0).locator(".subject").inner_text().endswith("Re: Plans for Friday")
    assert rows.nth(1).locator(".thread-size").count() == 0
    screenshot(page, "mail-conversations")
    go(page, rows.nth(0).locator(".open"))
    items = page.locator(".conversation li")
    assert items.count() == 2 and "aria-current" not in (items.nth(0).get_attribute("aria-current") or "")
    assert items.nth(1).get_attribute("aria-current") == "true"
    go(page, items.nth(0).locator("a"))
    assert page.locator("h1.subject").inner_text() == "Plans for Friday"
    go(page, "p.back a")
    assert page.locator(".msg").count() == 2  # back to the conversations view
    # Selecting a conversation acts on all of its messages.
    page.locator(".msg", has_text="Plans").locator("input[type=checkbox]").check()
    go(page, "#message-list button[value=archive]")
    assert page.locator(".msg .subject").all_inner_texts() == ["Unrelated"]
    go(page, "#folders >> text=Archive")
    assert sorted(page.locator(".msg .subject").all_inner_texts()) == [
        "Plans for Friday",
        "Re: Plans for Friday",
    ]
    assert page.problems == []


def test_inline_cid_images_show_inside_the_html_body(web, page_for, tracker):
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"] = "newsletter@elsewhere.test"
    message["To"] = "alice@example.test"
    message["Subject"] = "With a logo"
    message.set_content("Logo version.")
    message.add_alternative(
        f'<p>Our logo: <img src="cid:logo@elsewhere.test" alt="logo" width="20" height="20"></p>'
        f'<p><img src="{tracker.url("/remote.gif")}" alt="remote"></p>',
        subtype="html",
    )
    message.get_payload()[1].add_related(PIXEL, "image", "gif", cid="<logo@elsewhere.test>")
    web.deliver("alice@example.test", message=message)
    page = page_for("alice@example.test")
    go(page, "text=With a logo")
    page.frame_locator("iframe.html-body").locator("img[alt=logo]").wait_for()
    body = next(frame for frame in page.frames if frame.url.endswith("/body"))
    body.wait_for_function("document.querySelector('img[alt=logo]').complete")
    assert body.evaluate("document.querySelector('img[alt=logo]').naturalWidth") == 1
    assert body.evaluate("document.querySelector('img[alt=remote]').getAttribute('src')") == (
        "/static/remote-image.svg"
    )
    assert tracker.hits == []
    # The inline image is part of the body, not listed as an attachment.
    assert page.locator(".attachment").count() == 0
