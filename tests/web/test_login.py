"""Logging in to the web client over real HTTP: the shared login rule and throttle, cookies,
CSRF on the login form, logout and "log out everywhere"."""

from __future__ import annotations

import imaplib

import pytest

from tests.support.clients import client_tls
from tidings.config import AuthSettings
from tidings.web.security import CONTENT_SECURITY_POLICY


def test_the_login_page_carries_a_strict_content_security_policy(web):
    reply = web.client().get("/login")
    assert reply.status == 200
    policy = reply.header("Content-Security-Policy")
    assert policy == CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in policy and "script-src 'self'" in policy
    assert reply.header("X-Content-Type-Options") == "nosniff"
    assert reply.header("X-Frame-Options") == "SAMEORIGIN"
    assert "<script>" not in reply.text and " onclick=" not in reply.text and " style=" not in reply.text


def test_every_response_says_how_long_the_server_took(web):
    """Server-Timing (what bench/web.py reads, and the browser's developer tools show)."""
    client = web.client()
    for path in ("/login", "/mail", "/static/tidings.css", "/no/such/page"):
        timing = client.get(path).header("Server-Timing") or ""
        assert timing.startswith("app;dur="), (path, timing)
        assert float(timing.removeprefix("app;dur=")) >= 0


def test_logging_in_sets_an_httponly_samesite_session_cookie_and_opens_the_inbox(web):
    client = web.client()
    page = client.get("/login")
    reply = client.post(
        "/login", {"csrf": page.csrf(), "username": "Alice", "password": web.passwords["alice@example.test"]}
    )
    assert reply.status == 303
    cookie = next(c for c in reply.headers.get_all("Set-Cookie") if c.startswith("tidings_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie  # plain HTTP
    inbox = client.get("/mail")
    assert inbox.status == 303 and inbox.header("Location").startswith("/mail/")
    page = client.get(inbox.header("Location"))
    assert page.status == 200 and "alice@example.test" in page.text and "Inbox" in page.text


def test_over_https_the_session_cookie_is_secure(web):
    client = web.client(tls=True)
    page = client.get("/login")
    assert page.status == 200 and page.header("Content-Security-Policy") == CONTENT_SECURITY_POLICY
    reply = client.post(
        "/login", {"csrf": page.csrf(), "username": "alice", "password": web.passwords["alice@example.test"]}
    )
    assert reply.status == 303
    cookies = reply.headers.get_all("Set-Cookie")
    session = next(c for c in cookies if c.startswith("tidings_session="))
    assert "Secure" in session and "HttpOnly" in session
    assert all("Secure" in c for c in page.headers.get_all("Set-Cookie"))  # the login form's too
    assert client.get("/mail/folders").status == 200


def test_only_the_hash_of_the_session_token_is_stored(web):
    client = web.client("alice@example.test")
    token = client.cookies["tidings_session"]
    account = web.call(web.store.accounts.get_user("alice@example.test"))
    sessions = web.call(web.store.web_sessions.list(account.id))
    assert len(sessions) == 1
    rows = web.call(web.store.db.read(lambda tx: tx.conn.exec_driver_sql("SELECT * FROM web_sessions").all()))
    dump = repr([tuple(row) for row in rows])
    assert token not in dump


def test_a_login_form_without_its_token_is_refused(web):
    client = web.client()
    client.get("/login")
    reply = client.post("/login", {"username": "alice", "password": web.passwords["alice@example.test"]})
    assert reply.status == 403
    assert "tidings_session" not in client.cookies


def test_a_wrong_password_is_refused_without_a_session(web):
    client = web.client()
    reply = client.login("alice@example.test", "not the password")
    assert reply.status == 401 and "Wrong address or password" in reply.text
    assert "tidings_session" not in client.cookies
    assert client.get("/mail").status == 303  # to the login page


@pytest.mark.web_server(auth=AuthSettings(max_failures_per_account=3, max_failures_per_ip=100))
def test_wrong_passwords_are_throttled_with_the_same_counter_as_imap(web):
    client = web.client()
    for _ in range(3):
        assert client.login("alice@example.test", "guess").status == 401
    # Now even the right password is refused, on the web and over IMAP: one throttle for all.
    reply = client.login("alice@example.test", web.passwords["alice@example.test"])
    assert reply.status == 429 and "Too many failed logins" in reply.text
    imap = imaplib.IMAP4("127.0.0.1", web.running.ports["imap"])
    try:
        imap.starttls(ssl_context=client_tls())
        with pytest.raises(imaplib.IMAP4.error):
            imap.login("alice@example.test", web.passwords["alice@example.test"])
    finally:
        imap.shutdown()


def test_logging_out_ends_the_session_on_the_server(web):
    client = web.client("alice@example.test")
    token = client.cookies["tidings_session"]
    reply = client.post("/logout", {"csrf": client.csrf()})
    assert reply.status == 303
    client.cookies["tidings_session"] = token  # a copy of the cookie kept somewhere
    assert client.get("/mail").status == 303


def test_log_out_everywhere_ends_every_session_of_the_account_only(web):
    laptop = web.client("alice@example.test")
    phone = web.client("alice@example.test")
    bob = web.client("bob@example.test")
    assert phone.post("/logout/everywhere", {"csrf": phone.csrf()}).status == 303
    assert laptop.get("/mail").status == 303
    assert phone.get("/mail").status == 303
    assert bob.get("/mail").status == 303 and bob.get("/mail/folders").status == 200


def test_a_disabled_account_is_logged_out_of_the_web_client(web):
    client = web.client("alice@example.test")
    assert client.get("/mail/folders").status == 200
    web.call(web.store.accounts.set_disabled("alice@example.test", True))
    assert client.get("/mail/folders").status == 303


def test_with_a_configured_certificate_http_redirects_to_https(make_server, tmp_path):
    from tests.support.running import ALL_LISTENERS
    from tests.web.client import WebClient
    from tidings.net.tls import make_self_signed

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make_self_signed(cert, key, "mail.example.test")  # stands in for a real one: it is configured
    running = make_server("tls", listeners=(*ALL_LISTENERS, "http", "https"), tls_cert=cert, tls_key=key)
    plain = WebClient("127.0.0.1", running.ports["http"])
    reply = plain.get("/mail/3?sort=subject", headers={"Host": "mail.example.test"})
    assert reply.status == 308
    https_port = running.ports["https"]
    assert reply.header("Location") == f"https://mail.example.test:{https_port}/mail/3?sort=subject"
    assert plain.post("/login", {"username": "a", "password": "b"}).status == 308
    secure = WebClient("127.0.0.1", running.ports["https"], tls=True)
    assert secure.get("/login").status == 200
