"""Getting from NOT AUTHENTICATED to AUTHENTICATED: STARTTLS, AUTHENTICATE, LOGIN.

RFC 9051 6.2 (and RFC 3501 6.2), SASL-IR (RFC 4959).  Passwords are only accepted over TLS unless
``auth.allow_plaintext`` is set (LOGINDISABLED, RFC 8314 / RFC 9051 6.2.3).  Which names mean which
account, the throttle, the SASL mechanisms and the log line are :mod:`tidings.auth.login`'s: this
module only frames the exchange (``+ base64`` continuations, ``*`` cancels) and words the replies.
"""

from __future__ import annotations

import base64

from tidings.auth.login import LoginRefused, Reason
from tidings.auth.sasl import SaslError, b64decode_strict
from tidings.imap import commands as c
from tidings.imap.states import ANSWERED, NOT_AUTHENTICATED, Bad, No, State, command
from tidings.notify import Waiter


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
    try:
        account = await session.app.authenticator.password(
            "imap", session.conn.peer_ip, cmd.username, cmd.password, mechanism="LOGIN"
        )
    except LoginRefused as refused:
        raise _refusal(refused) from None
    return _logged_in(session, account)


@command("AUTHENTICATE", NOT_AUTHENTICATED)
async def authenticate(session, cmd: c.Authenticate) -> None:
    """RFC 9051 6.2.2 with SASL-IR (RFC 4959); the exchange itself is auth.login's."""
    binding = session.channel_binding()
    if cmd.mechanism not in session.app.authenticator.mechanisms(binding is not None):
        raise No(f"Unsupported authentication mechanism {cmd.mechanism}", "CANNOT")
    if session.login_disabled:
        raise No("Authenticate after STARTTLS", "PRIVACYREQUIRED")

    async def challenge(data: bytes) -> bytes:
        session.write(b"+ " + base64.b64encode(data) + b"\r\n")
        await session.flush()
        line = await session.read_raw_line()
        if line is None:
            raise Bad("Authentication response too long")
        if line.strip() == b"*":
            raise Bad("Authentication cancelled")
        try:
            return b64decode_strict(line)
        except SaslError:
            raise Bad("Invalid base64 in authentication response") from None

    try:
        account = await session.app.authenticator.sasl(
            "imap", session.conn.peer_ip, cmd.mechanism, cmd.initial_response, challenge, binding
        )
    except SaslError as exc:
        raise Bad(f"Malformed {cmd.mechanism} response: {exc}") from None
    except LoginRefused as refused:
        raise _refusal(refused) from None
    return _logged_in(session, account)


def _refusal(refused: LoginRefused) -> No:
    if refused.reason is Reason.THROTTLED:
        return No("Too many failed logins; try again later", "UNAVAILABLE")
    if refused.reason is Reason.AUTHZID:
        return No("Acting as another user is not allowed", "AUTHORIZATIONFAILED")
    return No("Invalid user name or password", "AUTHENTICATIONFAILED")


def _logged_in(session, account):
    login = session.app.logins.begin(account, session.account_ended)
    if login is None:  # disabled while its password was being checked
        raise No("Invalid user name or password", "AUTHENTICATIONFAILED")
    session.login = login
    session.slot.logged_in()
    session.account = account
    session.state = State.AUTHENTICATED
    session.waiter = Waiter(session.store.hub, account.id)
    return "CAPABILITY " + " ".join(session.capabilities()), "Logged in"
