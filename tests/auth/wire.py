"""One login attempt over each protocol, with the stdlib clients over TLS, read as an outcome:
"ok", "failed" (wrong password or unknown name) or "throttled". Every path a client can log in by
(IMAP LOGIN and AUTHENTICATE, POP3 USER/PASS and AUTH, SMTP AUTH PLAIN and LOGIN) is here, so the
tests can say "the same rule on every path"."""

from __future__ import annotations

import asyncio
import base64
import imaplib
import poplib
import smtplib

from tests.support.clients import client_tls

PASSWORD = "correct horse 1"


def _plain(user: str, password: str, authzid: str = "") -> str:
    return base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()


def imap_login(ports, user: str, password: str) -> str:
    client = imaplib.IMAP4_SSL("127.0.0.1", ports["imaps"], ssl_context=client_tls(), timeout=10)
    try:
        typ, data = client._simple_command("LOGIN", _quote(user), _quote(password))
    except imaplib.IMAP4.error as error:
        return _imap_outcome(str(error).encode())
    finally:
        client.shutdown()
    return "ok" if typ == "OK" else _imap_outcome(data[0])


def imap_authenticate_plain(ports, user: str, password: str) -> str:
    client = imaplib.IMAP4_SSL("127.0.0.1", ports["imaps"], ssl_context=client_tls(), timeout=10)
    try:
        typ, data = client._simple_command("AUTHENTICATE", "PLAIN", _plain(user, password))
    except imaplib.IMAP4.error as error:
        return _imap_outcome(str(error).encode())
    finally:
        client.shutdown()
    return "ok" if typ == "OK" else _imap_outcome(data[0])


def _imap_outcome(text: bytes) -> str:
    if b"[UNAVAILABLE]" in text:
        return "throttled"
    assert b"[AUTHENTICATIONFAILED]" in text, text
    return "failed"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def pop3_user_pass(ports, user: str, password: str) -> str:
    client = poplib.POP3_SSL("127.0.0.1", ports["pop3s"], context=client_tls(), timeout=10)
    try:
        client.user(user)
        client.pass_(password)
        client.quit()
        return "ok"
    except poplib.error_proto as error:
        return _pop3_outcome(error.args[0])
    finally:
        client.close()


def pop3_auth_plain(ports, user: str, password: str) -> str:
    client = poplib.POP3_SSL("127.0.0.1", ports["pop3s"], context=client_tls(), timeout=10)
    try:
        client._shortcmd("AUTH PLAIN " + _plain(user, password))
        client.quit()
        return "ok"
    except poplib.error_proto as error:
        return _pop3_outcome(error.args[0])
    finally:
        client.close()


def _pop3_outcome(text: bytes) -> str:
    assert text.startswith(b"-ERR [AUTH]"), text
    return "throttled" if b"too many failed logins" in text else "failed"


def smtp_auth(ports, user: str, password: str, mechanism: str = "PLAIN") -> str:
    with smtplib.SMTP_SSL("127.0.0.1", ports["submissions"], context=client_tls(), timeout=10) as client:
        client.ehlo()
        client.user, client.password = user, password
        method = client.auth_plain if mechanism == "PLAIN" else client.auth_login
        try:
            client.auth(mechanism, method, initial_response_ok=mechanism == "PLAIN")
        except smtplib.SMTPAuthenticationError as error:
            if error.smtp_code == 454:
                return "throttled"
            assert error.smtp_code == 535, error
            return "failed"
        return "ok"


def smtp_auth_login(ports, user: str, password: str) -> str:
    return smtp_auth(ports, user, password, "LOGIN")


# Every way in, by name, for parametrised tests.
PATHS = {
    "imap LOGIN": imap_login,
    "imap AUTHENTICATE PLAIN": imap_authenticate_plain,
    "pop3 USER/PASS": pop3_user_pass,
    "pop3 AUTH PLAIN": pop3_auth_plain,
    "smtp AUTH PLAIN": smtp_auth,
    "smtp AUTH LOGIN": smtp_auth_login,
}


async def imap_login_async(port: int, user: str, password: str) -> str:
    """One IMAP LOGIN on its own connection, for many at once with asyncio.gather."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_tls())
    try:
        await reader.readline()  # greeting
        writer.write(f"a LOGIN {_quote(user)} {_quote(password)}\r\n".encode())
        await writer.drain()
        while True:
            line = await asyncio.wait_for(reader.readline(), 60)
            assert line, "connection closed before the tagged reply"
            if line.startswith(b"a "):
                return "ok" if line.startswith(b"a OK") else _imap_outcome(line)
    finally:
        writer.close()
