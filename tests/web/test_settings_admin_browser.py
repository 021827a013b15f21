"""Settings and the admin console in Chromium (Playwright), at desktop and phone width: change
settings, download the Thunderbird autoconfig, an admin adds a user and sees the queue."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

import pytest

from tests.web.conftest import DESKTOP, PHONE, screenshot
from tidings.store.delivery import Envelope

ALICE = "alice@example.test"
BOB = "bob@example.test"


def no_sideways_scroll(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"the page scrolls sideways ({width} px)"


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_change_settings_vacation_filter_and_identity(web, page_for, viewport):
    page = page_for(ALICE, viewport)
    page.goto("/settings")
    page.fill("form.identity input[name=name]", "Alice Liddell")
    page.fill("form.identity textarea[name=signature]", "-- \nAlice")
    page.click("form.identity button.primary")
    page.wait_for_url("**/settings?done=identity")
    assert page.get_by_text("Identity saved.").is_visible()
    screenshot(page, "settings-identities")
    no_sideways_scroll(page)

    page.click("nav.tabs >> text=Filters")
    page.check("input[name=vacation]")
    page.fill("input[name=subject]", "Out of office")
    page.fill("textarea[name=message]", "I am away until January.")
    page.fill("input[name=start]", "2026-12-20")
    page.fill("input[name=end]", "2027-01-04")
    page.fill("input[name=value-0]", "invoice")
    page.select_option("select[name=field-0]", "subject")
    page.fill("input[name=target-0]", "Archive")
    page.click("button:has-text('Save rules')")
    page.wait_for_url("**/settings/rules?done=rules")
    assert page.input_value("input[name=value-0]") == "invoice"
    assert page.is_checked("input[name=vacation]")
    screenshot(page, "settings-rules")
    no_sideways_scroll(page)
    account = web.call(web.store.accounts.get_user(ALICE))
    script = web.call(web.store.rules.active(account.id)).content
    assert 'fileinto "Archive";' in script and "I am away until January." in script
    identity = web.call(web.store.identities.list(account.id))[0]
    assert (identity.name, identity.signature) == ("Alice Liddell", "-- \nAlice")
    assert page.problems == []


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_download_the_thunderbird_autoconfig(web, page_for, viewport):
    page = page_for(BOB, viewport)
    page.goto("/settings/clients")
    screenshot(page, "settings-clients")
    no_sideways_scroll(page)
    with page.expect_download() as download:
        page.click("text=Thunderbird settings (autoconfig)")
    path = download.value.path()
    root = ET.parse(path).getroot()
    assert root.tag == "clientConfig"
    ports = {int(e.text) for e in root.iter("port")}
    assert web.running.ports["imaps"] in ports and web.running.ports["submission"] in ports
    assert {e.text for e in root.iter("username")} == {BOB}
    assert page.problems == []


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_an_admin_adds_a_user_and_sees_the_queue(web, page_for, viewport):
    web.call(web.store.accounts.set_admin(ALICE, True))
    web.deliver(BOB, subject="one for the chart")
    tomorrow = time.time() + 86400
    envelope = Envelope(BOB, remote=[("friend@far.test", None, None)], release_at=tomorrow)
    web.call(web.store.delivery.accept(envelope, b"Subject: later\r\n\r\nsee you\r\n"))
    web.call(web.store.traffic.sample_queue())
    page = page_for(ALICE, viewport)
    page.goto("/admin")
    assert page.locator("figure.chart svg").count() == 2
    screenshot(page, "admin-overview")
    no_sideways_scroll(page)

    page.click("nav.tabs >> text=Users")
    page.locator("details.card summary").click()
    page.fill("input[name=address]", "carol@example.test")
    page.fill("form[action='/admin/users'] input[name=password]", "carol's secret 1")
    page.fill("form[action='/admin/users'] input[name=quota]", "1G")
    page.click("button:has-text('Add user')")
    page.wait_for_url("**/admin/users?done=user")
    assert page.locator("#u-carol\\@example\\.test").is_visible()
    screenshot(page, "admin-users")
    carol = web.call(web.store.accounts.get_user("carol@example.test"))
    assert carol.quota_bytes == 1024**3

    page.click("nav.tabs >> text=Queue")
    row = page.locator("table.queue tbody tr").first
    assert "friend@far.test" in row.inner_text() and "scheduled" in row.inner_text()
    screenshot(page, "admin-queue")
    page.click("nav.tabs >> text=Status")
    assert page.locator("text=not answering").count() == 0
    screenshot(page, "admin-status")
    page.click("nav.tabs >> text=Domains")
    screenshot(page, "admin-domains")
    assert page.problems == []


def test_a_normal_user_finds_no_admin_console(web, page_for):
    page = page_for(BOB)
    response = page.goto("/admin")
    assert response.status == 404
