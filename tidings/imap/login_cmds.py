"""Getting from NOT AUTHENTICATED to AUTHENTICATED: STARTTLS, AUTHENTICATE PLAIN, LOGIN.

RFC 9051 6.2 (and RFC 3501 6.2), SASL-IR (RFC 4959), SASL PLAIN (RFC 4616).  Passwords are only
accepted over TLS unless ``auth.allow_plaintext`` is set (LOGINDISABLED, RFC 8314 / RFC 9051
6.2.3).  Failed attempts count towards :class:`~tidings.auth.throttle.LoginThrottle`; once an IP
or account is throttled, attempts are refused without checking the password.
"""

from __future__ import annotations

from tidings.auth.sasl import SaslError, b64decode_strict, decode_plain
from tidings.imap import commands as c
from tidings.imap.states import ANSWERED, NOT_AUTHENTICATED, Bad, No, State, command
from tidings.notify import Waiter

MAX_USERNAME = 320


@command("STARTTLS", NOT_AUTHENTICATED)
async def starttls(session, cmd: c.StartTls) -> None:
    """RFC 9051 6.2.1: OK, then the TLS handshake; earlier pipelined bytes are discarded."""
    if session.conn.tls:
        raise Bad("TLS is already active")
    if session.listener != "imap":
        raise Bad("STARTTLS is not offered on this port")
    session.tagged(cmd.tag, "OK", "Begin TLS negotiation now")
    await session.flush()
    session.parser.discard_buffered()
    await session.conn.start_tls(session.app.tls)
    return ANSWERED


@command("LOGIN", NOT_AUTHENTICATED)
async def login(session, cmd: c.Login) -> None:
    """RFC 9051 6.2.3."""
    if session.login_disabled:
        raise No("Log in after STARTTLS", "PRIVACYREQUIRED")
    return await _log_in(session, cmd.username, cmd.password)


@command("AUTHENTICATE", NOT_AUTHENTICATED)
async def authenticate(session, cmd: c.Authenticate) -> None:
    """RFC 9051 6.2.2 with SASL-IR; only PLAIN is offered."""
    if cmd.mechanism != "PLAIN":
        raise No(f"Unsupported authentication mechanism {cmd.mechanism}", "CANNOT")
    if session.login_disabled:
        raise No("Authenticate after STARTTLS", "PRIVACYREQUIRED")
    response = cmd.initial_response
    if response is None:
        session.write(b"+ \r\n")
        await session.flush()
        line = await session.read_raw_line()
        if line is None:
            raise Bad("Authentication response too long")
        if line.strip() == b"*":
            raise Bad("Authentication cancelled")
        try:
            response = b64decode_strict(line)
        except SaslError:
            raise Bad("Invalid base64 in authentication response") from None
    try:
        authzid, authcid, password = decode_plain(response)
    except SaslError as exc:
        raise Bad(f"Malformed PLAIN response: {exc}") from None
    if authzid and authzid.lower() != authcid.lower():
        raise No("Acting as another user is not allowed", "AUTHORIZATIONFAILED")
    return await _log_in(session, authcid, password)


async def _log_in(session, username: str, password: str):
    if len(username) > MAX_USERNAME:
        raise No("Invalid user name or password", "AUTHENTICATIONFAILED")
    address = username if "@" in username else f"{username}@{session.config.default_domain}"
    throttle = session.app.throttle
    ip = session.conn.peer_ip
    if throttle.is_blocked(ip, address):
        raise No("Too many failed logins; try again later", "UNAVAILABLE")
    account = await session.store.accounts.authenticate(address, password)
    login = None if account is None else session.app.logins.begin(account, session.account_ended)
    if login is None:
        throttle.record_failure(ip, address)
        raise No("Invalid user name or password", "AUTHENTICATIONFAILED")
    throttle.record_success(ip, address)
    session.login = login
    session.slot.logged_in()
    session.account = account
    session.state = State.AUTHENTICATED
    session.waiter = Waiter(session.store.hub, account.id)
    return "CAPABILITY " + " ".join(session.capabilities()), "Logged in"
