"""Web client test harness: a real server with the "http" listener, accounts with mail delivered
over SMTP, a plain HTTP client, and logged-in Chromium pages (Playwright) at desktop and phone
size whose screenshots go to tests/artifacts/.

    def test_something(web, page_for):
        web.deliver("alice@example.test", subject="Hello", body="Hi")
        page = page_for("alice@example.test")            # desktop 1280x800, logged in
        phone = page_for("alice@example.test", PHONE)    # 390x844
        screenshot(page, "mail-inbox")                   # tests/artifacts/mail-inbox-desktop.png
"""

from __future__ import annotations

import os
import smtplib
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.support.running import ALL_LISTENERS, RunningServer
from tests.web.client import WebClient

CHROMIUM = os.environ.get("TIDINGS_CHROMIUM", "/usr/lib/chromium/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
PASSWORDS = {
    "alice@example.test": "alice's password 1",
    "bob@example.test": "bob's password 2",
}


@dataclass
class WebServer:
    running: RunningServer
    passwords: dict[str, str] = field(default_factory=lambda: dict(PASSWORDS))

    @property
    def port(self) -> int:
        return self.running.ports["http"]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def store(self):
        return self.running.store

    def call(self, coro):
        return self.running.call(coro)

    def client(self, address: str | None = None, tls: bool = False) -> WebClient:
        """A plain HTTP client (HTTPS with `tls`); logged in as `address` when given."""
        client = WebClient("127.0.0.1", self.running.ports["https"] if tls else self.port, tls)
        if address is not None:
            reply = client.login(address, self.passwords[address])
            assert reply.status == 303, reply.text
        return client

    def deliver(
        self,
        to: str,
        subject: str = "Hello",
        body: str = "Hello there.",
        sender: str = "carol@elsewhere.test",
        html: str | None = None,
        attachments: list[tuple[str, str, bytes]] = (),
        message: EmailMessage | bytes | None = None,
    ) -> None:
        """Deliver a message over SMTP (the MX listener), as another server would."""
        if message is None:
            message = EmailMessage()
            message["From"] = sender
            message["To"] = to
            message["Subject"] = subject
            message["Message-ID"] = f"<{uuid.uuid4().hex}@elsewhere.test>"
            message.set_content(body)
            if html is not None:
                message.add_alternative(html, subtype="html")
            for filename, content_type, data in attachments:
                maintype, subtype = content_type.split("/")
                message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
        raw = message if isinstance(message, bytes) else message.as_bytes()
        with smtplib.SMTP("127.0.0.1", self.running.ports["smtp"], timeout=30) as smtp:
            smtp.sendmail(sender, [to], raw)

    def mailbox_id(self, address: str, name: str = "INBOX") -> int:
        account = self.call(self.store.accounts.get_user(address))
        return self.call(self.store.mailboxes.get(account.id, name)).id


@pytest.fixture
def web(make_server, request) -> WebServer:
    """A server with the web client on 127.0.0.1 (port 0) and the accounts in PASSWORDS.
    `@pytest.mark.web_server(auth=AuthSettings(...))` passes settings to the server."""
    marker = request.node.get_closest_marker("web_server")
    listeners = (*ALL_LISTENERS, "http", "https")
    running = make_server("web", listeners=listeners, **(marker.kwargs if marker else {}))
    for address, password in PASSWORDS.items():
        running.add_user(address, password)
    return WebServer(running)


@pytest.fixture(scope="module")
def browser():
    """One Chromium per test module, not per session: Playwright's sync API keeps an asyncio loop
    running in this thread while it is started, and every later test that runs a loop of its own
    (asyncio.run) failed with "Cannot run the event loop while another loop is running" whenever it
    came after a browser test in the same pytest run."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page_for(web, browser):
    """`page_for(address, viewport=DESKTOP)`: a new browser context logged in as `address`
    through the login form, on its mail page. Console errors and CSP violations are collected in
    `page.problems` (a test can assert there are none)."""
    contexts = []

    def make(address: str, viewport: dict = DESKTOP, login: bool = True):
        context = browser.new_context(viewport=viewport, base_url=web.base)
        contexts.append(context)
        page = context.new_page()
        page.problems = []
        page.on("console", lambda msg: msg.type == "error" and page.problems.append(msg.text))
        page.on("pageerror", lambda exc: page.problems.append(str(exc)))
        page.set_default_timeout(15_000)
        if login:
            page.goto("/login")
            page.fill("input[name=username]", address)
            page.fill("input[name=password]", web.passwords[address])
            page.click("button[type=submit]")
            page.wait_for_url("**/mail/*")
        return page

    yield make
    for context in contexts:
        context.close()


def screenshot(page, name: str) -> Path:
    """Save what `page` shows as tests/artifacts/<name>-<desktop|phone>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    size = "phone" if page.viewport_size["width"] < 700 else "desktop"
    path = ARTIFACTS / f"{name}-{size}.png"
    page.screenshot(path=str(path))
    return path


def go(page, target) -> None:
    """Click `target` (a selector or a locator) that loads another page (a link, a form's button),
    and wait until that page has loaded: what the test reads next is the new page, not the old
    one or half of the new."""
    locator = page.locator(target) if isinstance(target, str) else target
    with page.expect_navigation(wait_until="load"):
        locator.first.click()
