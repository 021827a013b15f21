"""IMAP session: greeting, capabilities, login paths, STARTTLS/LOGINDISABLED, ID, ENABLE,
NAMESPACE, COMPRESS=DEFLATE, state rules and autologout."""

from __future__ import annotations

import base64
import imaplib
import ssl

import pytest
from imapclient import IMAPClient

from tests.imap.session_support import ALICE, PASSWORD, ImapTestServer, RawImap, client_tls, quote
from tidings.config import AuthSettings
from tidings.imap import session as imap_session


@pytest.fixture
def imap(server) -> ImapTestServer:
    return ImapTestServer(server)


def test_greeting_carries_capabilities_and_implicit_tls_offers_auth_plain(imap):
    raw = imap.raw()
    assert raw.greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 IMAP4rev2")
    assert b"AUTH=PLAIN" in raw.greeting
    assert b"STARTTLS" not in raw.greeting and b"LOGINDISABLED" not in raw.greeting


def test_plain_port_disables_login_until_starttls(imap):
    client = imaplib.IMAP4("127.0.0.1", imap.ports["imap"], timeout=10)
    assert "LOGINDISABLED" in client.capabilities and "STARTTLS" in client.capabilities
    status, data = client._simple_command("LOGIN", ALICE, quote(PASSWORD))
    assert status == "NO" and data[0].startswith(b"[PRIVACYREQUIRED]")
    client.starttls(ssl_context=client_tls())
    assert "LOGINDISABLED" not in client.capabilities and "STARTTLS" not in client.capabilities
    assert client.login(ALICE, PASSWORD)[0] == "OK"
    client.logout()


def test_plaintext_login_allowed_when_configured(make_server):
    running = make_server(auth=AuthSettings(allow_plaintext=True), listeners=("imap",))
    running.add_user(ALICE, PASSWORD)
    client = imaplib.IMAP4("127.0.0.1", running.ports["imap"], timeout=10)
    assert "LOGINDISABLED" not in client.capabilities
    assert client.login(ALICE, PASSWORD)[0] == "OK"
    client.logout()


def test_login_reply_lists_full_capabilities(imap):
    raw = imap.raw()
    tagged = raw.command(f"LOGIN {ALICE} {quote(PASSWORD)}")[-1]
    assert tagged.startswith(b"T1 OK [CAPABILITY IMAP4rev1")
    for capability in (b"IDLE", b"MOVE", b"QRESYNC", b"CONDSTORE", b"COMPRESS=DEFLATE", b"APPENDLIMIT="):
        assert capability in tagged


def test_wrong_password_is_authenticationfailed_and_throttled_later(make_server):
    running = make_server(auth=AuthSettings(max_failures_per_ip=3, max_failures_per_account=3))
    running.add_user(ALICE, PASSWORD)
    raw = RawImap("127.0.0.1", running.ports["imaps"])
    for _ in range(3):
        assert b"NO [AUTHENTICATIONFAILED]" in raw.command(f"LOGIN {ALICE} wrong")[-1]
    # Even the right password is refused while throttled.
    assert b"NO [UNAVAILABLE]" in raw.command(f"LOGIN {ALICE} {quote(PASSWORD)}")[-1]


def test_authenticate_plain_with_initial_response(imap):
    raw = imap.raw()
    token = base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode()).decode()
    assert b"OK [CAPABILITY" in raw.command(f"AUTHENTICATE PLAIN {token}")[-1]
    assert raw.command("SELECT INBOX")[-1].startswith(b"T2 OK")


def test_authenticate_plain_with_continuation_and_cancel(imap):
    raw = imap.raw()
    raw.send(b"A1 AUTHENTICATE PLAIN\r\n")
    assert raw.line() == b"+ "
    raw.send(b"*\r\n")
    assert raw.line().startswith(b"A1 BAD")
    raw.send(b"A2 AUTHENTICATE PLAIN\r\n")
    assert raw.line() == b"+ "
    raw.send(base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode()) + b"\r\n")
    assert raw.line().startswith(b"A2 OK")


def test_imapclient_login_and_capabilities(imap):
    with IMAPClient(
        "127.0.0.1", imap.ports["imaps"], ssl=True, ssl_context=client_tls(), timeout=10
    ) as client:
        client.login(ALICE, PASSWORD)
        caps = client.capabilities()
        assert b"UIDPLUS" in caps and b"SPECIAL-USE" in caps and b"AUTH=PLAIN" not in caps
        assert client.id_({"name": "pytest"})[0][:2] == (b"name", b"Tidings")
        assert client.namespace().personal == (("", "/"),)
        assert set(client.enable("CONDSTORE", "UNKNOWNTHING")) == {b"CONDSTORE"}


def test_commands_in_the_wrong_state_are_bad(imap):
    raw = imap.raw()
    assert raw.command("SELECT INBOX")[-1].startswith(b"T1 BAD")
    assert raw.command("FETCH 1 FLAGS")[-1].startswith(b"T2 BAD")
    raw.command(f"LOGIN {ALICE} {quote(PASSWORD)}")
    assert raw.command(f"LOGIN {ALICE} {quote(PASSWORD)}")[-1].startswith(b"T4 BAD")
    assert raw.command("EXPUNGE")[-1].startswith(b"T5 BAD")
    assert raw.command("STARTTLS")[-1].startswith(b"T6 BAD")


def test_noop_logout_and_unknown_command(imap):
    raw = imap.raw(login=ALICE)
    assert raw.command("NOOP")[-1] == b"T2 OK NOOP completed"
    assert raw.command("FROBNICATE")[-1].startswith(b"T3 BAD")
    lines = raw.command("LOGOUT")
    assert lines[0].startswith(b"* BYE") and lines[-1] == b"T4 OK LOGOUT completed"
    assert raw.closed_by_server()


def test_compress_deflate_compresses_both_directions(imap):
    imap.deliver(b"Subject: compressed\r\n\r\n" + b"the same words again " * 200 + b"\r\n")
    raw = imap.raw(login=ALICE)
    assert raw.command("COMPRESS DEFLATE")[-1] == b"T2 OK DEFLATE active"
    raw.start_compression()
    assert raw.command("SELECT INBOX")[-1].startswith(b"T3 OK")
    lines = raw.command("FETCH 1 BODY.PEEK[TEXT]")
    assert b"the same words again" in lines[0] and lines[-1].startswith(b"T4 OK")
    assert b"COMPRESS=DEFLATE" not in b"".join(raw.command("CAPABILITY"))
    assert b"NO [COMPRESSIONACTIVE]" in raw.command("COMPRESS DEFLATE")[-1]


def test_autologout_before_login(imap, monkeypatch):
    monkeypatch.setattr(imap_session, "PRELOGIN_TIMEOUT", 0.3)
    raw = imap.raw()
    assert raw.closed_by_server(wait=5)
    assert b"* BYE Autologout" in raw.buffer


def test_implicit_tls_port_refuses_plaintext(imap):
    import socket

    sock = socket.create_connection(("127.0.0.1", imap.ports["imaps"]), timeout=5)
    sock.sendall(b"A1 CAPABILITY\r\n")
    try:
        data = sock.recv(100)
    except (ConnectionError, ssl.SSLError, OSError):
        data = b""
    assert not data.startswith(b"* OK")
    sock.close()


def test_starttls_discards_plaintext_pipelined_behind_it(imap):
    import socket

    sock = socket.create_connection(("127.0.0.1", imap.ports["imap"]), timeout=10)
    reader = sock.makefile("rb")
    reader.readline()
    sock.sendall(b"S1 STARTTLS\r\nS2 CAPABILITY\r\n")  # S2 must not survive into the TLS session
    assert reader.readline().startswith(b"S1 OK")
    tls = client_tls().wrap_socket(sock)
    tls.sendall(b"S3 NOOP\r\n")
    reply = tls.recv(4096)
    assert reply.startswith(b"S3 OK") and b"S2" not in reply
    tls.close()
