"""The admin console over plain HTTP: only admin accounts see it (everyone else gets the 404 of a
missing page, on every route, GET and POST), and its actions change the store."""

from __future__ import annotations

import re
import time

import pytest
from markupsafe import escape

from tidings.config import QueueSettings
from tidings.store.delivery import Envelope
from tidings.web.routes.admin import routes as admin_routes

ADMIN = "alice@example.test"
USER = "bob@example.test"


@pytest.fixture
def admin(web):
    web.call(web.store.accounts.set_admin(ADMIN, True))
    return web.client(ADMIN)


def concrete(path: str) -> str:
    return (
        path.replace("{domain}", "example.test")
        .replace("{address}", USER)
        .replace("{change}", "disable")
        .replace("{id:int}", "1")
    )


def every_admin_route():
    for route in admin_routes:
        for method in sorted(route.methods - {"HEAD"}):
            yield method, concrete(route.path)


def test_a_normal_user_gets_404_on_every_admin_route(web):
    tomorrow = time.time() + 86400  # scheduled: stays in the queue
    envelope = Envelope(ADMIN, remote=[("x@far.test", None, None)], release_at=tomorrow)
    web.call(web.store.delivery.accept(envelope, b"Subject: x\r\n\r\nx\r\n"))
    client = web.client(USER)
    csrf = client.csrf()
    before = web.call(web.store.accounts.list_users())
    for method, path in every_admin_route():
        if method == "GET":
            reply = client.get(path)
        else:
            reply = client.post(
                path,
                {
                    "csrf": csrf,
                    "domain": "evil.test",
                    "address": "x@example.test",
                    "password": "long pass 12345",
                    "alias": "a@example.test",
                    "targets": USER,
                },
            )
        assert reply.status == 404, (method, path, reply.status)
        assert "Admin" not in re.sub(r"<nav.*?</nav>", "", reply.text, flags=re.S), path
    assert web.call(web.store.accounts.list_users()) == before
    assert web.call(web.store.queue.count()) == 1
    assert [d.name for d in web.call(web.store.accounts.list_domains())] == ["example.test"]


def test_logged_out_visitors_are_sent_to_log_in_and_posts_refused(web):
    client = web.client()
    for method, path in every_admin_route():
        reply = client.get(path) if method == "GET" else client.post(path, {})
        assert reply.status in ((303,) if method == "GET" else (403,)), (method, path, reply.status)


def test_revoking_the_admin_flag_closes_the_console_at_the_next_page(web, admin):
    assert admin.get("/admin").status == 200
    web.call(web.store.accounts.set_admin(ADMIN, False))
    assert admin.get("/admin").status == 404


def test_admin_actions_without_the_csrf_token_are_refused(web, admin):
    reply = admin.post("/admin/users", {"address": "eve@example.test", "password": "long pass 12345"})
    assert reply.status == 403
    assert "eve@example.test" not in [a.address for a in web.call(web.store.accounts.list_users())]


def test_an_admin_adds_changes_and_removes_a_user(web, admin):
    csrf = admin.get("/admin/users").csrf()
    reply = admin.post(
        "/admin/users",
        {"csrf": csrf, "address": "Carol@example.test", "password": "carol's pass 1", "quota": "5M"},
    )
    assert reply.status == 303
    carol = web.call(web.store.accounts.get_user("carol@example.test"))
    assert carol.quota_bytes == 5 * 1024 * 1024 and not carol.admin
    assert admin.post("/admin/users/carol@example.test/quota", {"csrf": csrf, "quota": "1G"}).status == 303
    assert admin.post("/admin/users/carol@example.test/disable", {"csrf": csrf}).status == 303
    carol = web.call(web.store.accounts.get_user("carol@example.test"))
    assert carol.quota_bytes == 1024**3 and carol.disabled
    assert admin.post("/admin/users/carol@example.test/enable", {"csrf": csrf}).status == 303
    reset = admin.post(
        "/admin/users/carol@example.test/password", {"csrf": csrf, "password": "a new pass 22"}
    )
    assert reset.status == 303
    assert web.client().login("carol@example.test", "a new pass 22").status == 303
    weak = admin.post("/admin/users/carol@example.test/password", {"csrf": csrf, "password": "short"})
    assert weak.status == 400 and "shorter than" in weak.text
    assert admin.post("/admin/users/carol@example.test/admin", {"csrf": csrf}).status == 303
    assert web.call(web.store.accounts.get_user("carol@example.test")).admin
    assert admin.post("/admin/users/carol@example.test/remove", {"csrf": csrf}).status == 303
    assert "carol@example.test" not in [a.address for a in web.call(web.store.accounts.list_users())]
    refused = admin.post(f"/admin/users/{ADMIN}/disable", {"csrf": csrf})
    assert refused.status == 400 and not web.call(web.store.accounts.get_user(ADMIN)).disabled
    listing = admin.get("/admin/users").text
    assert USER in listing and "admin</span>" in listing


def test_an_admin_manages_domains_dkim_and_aliases(web, admin):
    csrf = admin.get("/admin/domains").csrf()
    assert admin.post("/admin/domains", {"csrf": csrf, "domain": "Second.test"}).status == 303
    assert admin.post("/admin/domains/second.test/dkim", {"csrf": csrf, "selector": "s2"}).status == 303
    page = admin.get("/admin/domains").text
    assert "s2._domainkey.second.test. IN TXT &#34;v=DKIM1; k=rsa; p=" in page
    domain = web.call(web.store.accounts.get_domain("second.test"))
    assert domain.dkim_selector == "s2"
    assert (
        admin.post("/admin/aliases", {"csrf": csrf, "alias": "info@second.test", "targets": USER}).status
        == 303
    )
    assert ("info@second.test", USER) in web.call(web.store.accounts.list_aliases())
    bad = admin.post("/admin/aliases", {"csrf": csrf, "alias": "x@nowhere.test", "targets": USER})
    assert bad.status == 400 and "unknown domain" in bad.text
    assert (
        admin.post(
            "/admin/aliases/remove", {"csrf": csrf, "alias": "info@second.test", "target": USER}
        ).status
        == 303
    )
    assert web.call(web.store.accounts.list_aliases()) == []
    assert admin.post("/admin/domains/second.test/remove", {"csrf": csrf}).status == 303
    assert [d.name for d in web.call(web.store.accounts.list_domains())] == ["example.test"]


@pytest.mark.web_server(
    queue=QueueSettings(routes={"far.test": ("127.0.0.1", 1)}, retry_base=3600, poll_interval=0.2)
)
def test_the_queue_shows_why_a_message_waits_and_retry_and_delete_work(web, admin):
    store = web.store
    result = web.call(
        store.delivery.accept(Envelope(USER, remote=[("x@far.test", None, None)]), b"Subject: x\r\n\r\nx\r\n")
    )
    wait_for(lambda: web.call(store.queue.get(result.queue_id)).attempts == 1)
    page = admin.get("/admin/queue")
    assert page.status == 200 and "x@far.test" in page.text
    reason = web.call(store.queue.get(result.queue_id)).pending[0].last_error
    assert reason and str(escape(reason)) in page.text
    csrf = page.csrf()
    assert admin.post(f"/admin/queue/{result.queue_id}/retry", {"csrf": csrf}).status == 303
    wait_for(lambda: web.call(store.queue.get(result.queue_id)).attempts == 2)
    deliveries = admin.get("/admin/deliveries?show=failures").text
    assert deliveries.count("x@far.test") == 2 and "deferred" in deliveries
    assert admin.post(f"/admin/queue/{result.queue_id}/delete", {"csrf": csrf}).status == 303
    assert web.call(store.queue.count()) == 0
    assert admin.post(f"/admin/queue/{result.queue_id}/delete", {"csrf": csrf}).status == 404


def wait_for(condition, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_overview_and_status_pages_draw_their_charts_and_listeners(web, admin):
    web.deliver(USER, subject="counted")
    web.call(web.store.traffic.sample_queue())
    page = admin.get("/admin")
    assert page.status == 200
    assert page.text.count("<svg") == 2 and "<script" not in page.text.split("</head>")[1]
    assert 'aria-label="Messages per hour' in page.text and "received: 1" in page.text
    status = admin.get("/admin/status").text
    for name, port in web.running.ports.items():
        assert f"127.0.0.1:{port}" in status, name
    assert "not answering" not in status
    assert USER in status  # largest mailboxes


def test_only_admins_see_the_admin_link(web, admin):
    assert 'href="/admin"' in admin.get("/settings").text
    assert 'href="/admin"' not in web.client(USER).get("/settings").text
