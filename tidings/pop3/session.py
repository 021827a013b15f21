"""One POP3 connection: the RFC 1939 state machine AUTHORIZATION -> TRANSACTION -> UPDATE.

Commands come from `parser.parse_command`; each handler is registered with the states it is legal
in (`@command(Stat, TRANSACTION)`), so "what may the client do now" lives in `HANDLERS` alone.
Handlers write their replies or raise `Refused`, which the loop turns into `-ERR [code] text`.

Decisions (see also the module docstrings of maildrop.py and wire.py):
- The maildrop is the account's INBOX, snapshotted at login; one session per maildrop per node
  (`tidings.store.locks.LOCKS`), a second login gets `-ERR [IN-USE]` (RFC 2449 section 8.1.1).
- Nothing changes in the store before QUIT in TRANSACTION state (UPDATE, RFC 1939 section 6): then
  messages marked with DELE are removed and messages sent in full by RETR get \\Seen (as Dovecot
  does by default). A dropped connection or an idle timeout changes nothing.
- Sizes (STAT, LIST, the RETR reply) are the stored octet counts. Messages are sent with CRLF line
  ends and byte-stuffing; a stored message with bare LF line ends therefore goes out a few octets
  longer than its reported size (SMTP and IMAP APPEND deliver CRLF, so this is rare).
- Login needs TLS unless `config.auth.allow_plaintext`: before STLS, USER/PASS/AUTH answer
  `-ERR [AUTH]` and CAPA does not list USER or SASL (RFC 2595 section 2.1 / RFC 2449 section 6).
- A message expunged over IMAP during the session keeps its number; RETR/TOP of it answer -ERR.
- When the account is removed or disabled, `tidings.auth.logins.Logins` closes the connection at
  once, without UPDATE (nothing marked with DELE is removed); every command first checks that the
  login has not ended, so QUIT cannot apply deletions for an ended account either.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable
from enum import Enum

from tidings.auth.login import LoginRefused, Reason, tls_binding
from tidings.auth.sasl import SaslError, b64decode_strict
from tidings.net.listener import Slot
from tidings.net.tls import server_end_point
from tidings.notify import Waiter
from tidings.pop3 import parser as p
from tidings.pop3.errors import Refused
from tidings.pop3.maildrop import Maildrop
from tidings.pop3.stream import LineStream, LineTooLong
from tidings.pop3.wire import message_pieces, multiline_lines, status, top_length
from tidings.store import StoreError
from tidings.store.locks import LOCKS, lock_dir

log = logging.getLogger(__name__)

IMPLEMENTATION = "Tidings"
TLS_HANDSHAKE_TIMEOUT = 30.0


class State(Enum):
    AUTHORIZATION = "authorization"
    TRANSACTION = "transaction"
    CLOSED = "closed"  # after QUIT (UPDATE done) or a fatal error: the loop ends


AUTHORIZATION = State.AUTHORIZATION
TRANSACTION = State.TRANSACTION

Handler = Callable[["Session", p.Command], Awaitable[None]]
HANDLERS: dict[type[p.Command], tuple[Handler, frozenset[State]]] = {}


def command(kind: type[p.Command], *states: State) -> Callable[[Handler], Handler]:
    """Register a handler for a command class, legal in `states`."""

    def register(handler: Handler) -> Handler:
        HANDLERS[kind] = (handler, frozenset(states))
        return handler

    return register


class Session:
    def __init__(self, app, stream: LineStream, slot: Slot, *, starttls_offered: bool) -> None:
        self.app = app
        self.slot = slot  # the listener's admission; knows the login deadline
        self.store = app.store
        self.config = app.config
        self.stream = stream
        self.starttls_offered = starttls_offered
        self.state = AUTHORIZATION
        self.pending_user: str | None = None
        self.maildrop: Maildrop | None = None
        self.waiter: Waiter | None = None
        self.login = None  # tidings.auth.logins.Login once logged in
        self.peer = stream.peer_host

    # -- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            self.reply(True, f"{IMPLEMENTATION} POP3 server ready")
            while self.state is not State.CLOSED:
                if not self.stream.has_line():
                    await self.stream.flush()
                try:
                    line = await self.stream.read_line(self.read_timeout)
                except LineTooLong as too_long:
                    self.reply(False, "line too long")
                    if too_long.fatal:
                        break
                    continue
                except TimeoutError:
                    # RFC 1939 section 3: autologout timer; the session ends without UPDATE.
                    if self.slot.expired:
                        self.reply(False, "autologout: time to log in is over", "SYS/TEMP")
                    else:
                        self.reply(False, "autologout: idle for too long")
                    break
                if line is None:
                    break
                await self.execute(line)
                await self.stream.pace()  # no further command while the client is not reading
            await self.stream.flush()
        except (ConnectionError, OSError) as error:
            log.debug("pop3 connection from %s ended: %s", self.peer, error)
        finally:
            self._release()
            await self.stream.close()

    async def execute(self, line: bytes) -> None:
        if self.login is not None and self.login.ended:
            self.state = State.CLOSED  # the account was removed or disabled: no reply, no UPDATE
            return
        try:
            cmd = p.parse_command(line)
            handler, states = HANDLERS[type(cmd)]
            if self.state not in states:
                raise Refused(f"{cmd.keyword} is not allowed in the {self.state.value} state")
            await handler(self, cmd)
        except p.ParseError as error:
            self.reply(False, str(error))
        except Refused as refused:
            self.reply(False, refused.text, refused.code)
            if refused.close:
                self.state = State.CLOSED
        except StoreError as error:
            log.warning("pop3 store error for %s: %s", self.peer, error)
            self.reply(False, "temporary problem with the maildrop, try again later", "SYS/TEMP")
        except (ConnectionError, OSError):
            raise
        except Exception:
            # A bug must cost the client one command, not the connection (and never the server).
            log.exception("pop3 command failed for %s", self.peer)
            self.reply(False, "internal error", "SYS/TEMP")

    @property
    def read_timeout(self) -> float:
        """The idle timeout, cut short by the login deadline while in AUTHORIZATION."""
        return self.slot.read_timeout(self.config.limits.idle_timeout)

    def reply(self, ok: bool, text: str = "", code: str | None = None) -> None:
        self.stream.write(status(ok, text, code))

    def account_ended(self) -> None:
        """The account was removed or disabled (called by Logins, outside this task): close the
        connection now, in whatever state, without UPDATE."""
        self.state = State.CLOSED
        self.stream.abort()

    def _release(self) -> None:
        if self.login is not None:
            self.login.close()
        if self.waiter is not None:
            self.waiter.close()
            self.waiter = None
        if self.maildrop is not None:
            LOCKS.release(self.config.database_url, self.maildrop.account_id)
            self.maildrop = None

    # -- login ---------------------------------------------------------------------------------

    @property
    def login_allowed(self) -> bool:
        """RFC 2595 section 2.1: no clear-text passwords over an unprotected connection by default."""
        return self.stream.tls_active or self.config.auth.allow_plaintext

    def channel_binding(self):
        """This connection's TLS channel binding for SCRAM-SHA-256-PLUS (None without TLS)."""
        return tls_binding(server_end_point(self.stream.writer.get_extra_info("ssl_object")))

    def _require_login_allowed(self) -> None:
        if not self.login_allowed:
            raise Refused("log in after STLS: plaintext authentication is disabled", "AUTH")

    async def log_in(self, attempt: Awaitable) -> None:
        """Await `attempt` (an `Authenticator` call), lock and snapshot the maildrop, enter
        TRANSACTION (RFC 1939 section 4)."""
        try:
            account = await attempt
        except LoginRefused as refused:
            if refused.reason is Reason.THROTTLED:
                # Refused without looking at the password, so guessing costs the attacker time, not us CPU.
                raise Refused("too many failed logins, try again later", "AUTH") from None
            if refused.reason is Reason.AUTHZID:
                # We have no proxy-authorization: acting as someone else is refused outright.
                raise Refused("authorization identity must be empty or the user name", "AUTH") from None
            raise Refused("invalid user name or password", "AUTH") from None
        login = self.app.logins.begin(account, self.account_ended)
        if login is None:  # disabled while its password was being checked
            raise Refused("invalid user name or password", "AUTH")
        self.login = login
        self.slot.logged_in()
        database = self.config.database_url
        if not LOCKS.acquire(database, account.id, lock_dir(self.config.data_dir)):
            raise Refused("maildrop is already in use by another session", "IN-USE")
        try:
            inbox = await self.store.mailboxes.get(account.id, "INBOX")
            # Subscribe before the snapshot so no expunge between the two goes unnoticed.
            self.waiter = Waiter(self.store.hub, account.id)
            box, refs = await self.store.mailboxes.messages(account.id, inbox.id)
        except BaseException:
            if self.waiter is not None:
                self.waiter.close()
                self.waiter = None
            LOCKS.release(database, account.id)
            raise
        self.maildrop = Maildrop(account.id, box, refs)
        self.state = TRANSACTION
        count, octets = self.maildrop.totals()
        self.reply(True, f"maildrop has {count} messages ({octets} octets)")


# -- AUTHORIZATION state --------------------------------------------------------------------------


@command(p.Capa, AUTHORIZATION, TRANSACTION)
async def capa(session: Session, cmd: p.Capa) -> None:
    """RFC 2449 section 5: the capabilities valid in the current state, honestly."""
    lines = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE NEVER", "LOGIN-DELAY 0"]
    if session.state is AUTHORIZATION:
        if session.starttls_offered and not session.stream.tls_active:
            lines.append("STLS")
        if session.login_allowed:
            lines.append("USER")
            mechanisms = session.app.authenticator.mechanisms(session.channel_binding() is not None)
            lines.append("SASL " + " ".join(mechanisms))
    lines.append(f"IMPLEMENTATION {IMPLEMENTATION}")
    session.reply(True, "capability list follows")
    session.stream.write(multiline_lines(lines))


@command(p.Stls, AUTHORIZATION)
async def stls(session: Session, cmd: p.Stls) -> None:
    """RFC 2595 section 4: only in AUTHORIZATION, only once, only on the plain listener."""
    if not session.starttls_offered:
        raise Refused("STLS is not available on this port")
    if session.stream.tls_active:
        raise Refused("TLS is already active")
    session.reply(True, "begin TLS negotiation")
    await session.stream.flush()
    try:
        await session.stream.start_tls(session.app.tls, TLS_HANDSHAKE_TIMEOUT)
    except Exception as error:  # a failed handshake leaves nothing to talk over
        log.info("pop3 STLS handshake with %s failed: %s", session.peer, error)
        session.state = State.CLOSED
        return
    # Forget everything learnt before TLS (RFC 2595 section 4: the client discards it too).
    session.pending_user = None


@command(p.User, AUTHORIZATION)
async def user(session: Session, cmd: p.User) -> None:
    """RFC 1939 section 7. The answer never tells whether the user exists."""
    session.pending_user = None
    session._require_login_allowed()
    session.pending_user = cmd.name
    session.reply(True, "send PASS")


@command(p.Pass, AUTHORIZATION)
async def pass_(session: Session, cmd: p.Pass) -> None:
    """RFC 1939 section 7: PASS right after a successful USER."""
    name, session.pending_user = session.pending_user, None
    session._require_login_allowed()
    if name is None:
        raise Refused("USER first")
    attempt = session.app.authenticator.password("pop3", session.peer, name, cmd.password, mechanism="USER")
    await session.log_in(attempt)


@command(p.Auth, AUTHORIZATION)
async def auth(session: Session, cmd: p.Auth) -> None:
    """RFC 5034 section 4: AUTH mechanism [initial-response]; "AUTH" alone lists the mechanisms."""
    session.pending_user = None
    if cmd.mechanism is None:
        if not session.login_allowed:
            raise Refused("log in after STLS: plaintext authentication is disabled", "AUTH")
        session.reply(True, "supported mechanisms follow")
        binding = session.channel_binding() is not None
        session.stream.write(multiline_lines(session.app.authenticator.mechanisms(binding)))
        return
    session._require_login_allowed()
    binding = session.channel_binding()
    if cmd.mechanism not in session.app.authenticator.mechanisms(binding is not None):
        raise Refused(f"unsupported SASL mechanism {cmd.mechanism}")
    initial = None
    if cmd.initial_response is not None:
        initial = _sasl_decode(cmd.initial_response, cmd.mechanism)

    async def challenge(data: bytes) -> bytes:
        session.stream.write(b"+ " + base64.b64encode(data) + b"\r\n")
        await session.stream.flush()
        try:
            line = await session.stream.read_line(session.read_timeout)
        except LineTooLong as too_long:
            raise Refused("SASL response too long", close=too_long.fatal) from None
        if line is None:
            raise ConnectionResetError("connection closed during SASL")
        response = p.parse_sasl_response(line)
        if response is None:
            raise Refused("authentication cancelled")
        return _sasl_decode(response, cmd.mechanism)

    try:
        authenticator = session.app.authenticator
        await session.log_in(
            authenticator.sasl("pop3", session.peer, cmd.mechanism, initial, challenge, binding)
        )
    except SaslError as error:
        raise Refused(f"bad {cmd.mechanism} response: {error}") from None


def _sasl_decode(response: str, mechanism: str) -> bytes:
    """RFC 5034 section 4: base64, "=" for an empty initial response."""
    try:
        return b64decode_strict(response)
    except SaslError as error:
        raise Refused(f"bad {mechanism} response: {error}") from None


# -- both states ----------------------------------------------------------------------------------


@command(p.Quit, AUTHORIZATION, TRANSACTION)
async def quit_(session: Session, cmd: p.Quit) -> None:
    """RFC 1939 section 6: in TRANSACTION, QUIT enters UPDATE — the only time the store changes."""
    maildrop = session.maildrop
    session.state = State.CLOSED
    if maildrop is None:
        session.reply(True, "bye")
        return
    store = session.store.mailboxes
    try:
        seen = maildrop.seen_uids()
        if seen:
            await store.store_flags(maildrop.account_id, maildrop.mailbox_id, seen, "add", ["\\Seen"])
        doomed = maildrop.deleted_uids()
        if doomed:
            await store.delete_messages(maildrop.account_id, maildrop.mailbox_id, doomed)
    except StoreError as error:
        log.warning("pop3 UPDATE failed for account %s: %s", maildrop.account_id, error)
        session.reply(False, "some deleted messages were not removed", "SYS/TEMP")
        return
    count, _ = maildrop.totals()
    session.reply(True, f"bye ({count} messages left)")


# -- TRANSACTION state ----------------------------------------------------------------------------


def _maildrop(session: Session) -> Maildrop:
    assert session.maildrop is not None  # TRANSACTION state implies a maildrop
    return session.maildrop


@command(p.Stat, TRANSACTION)
async def stat(session: Session, cmd: p.Stat) -> None:
    """RFC 1939 section 5: "+OK count octets", deleted messages not counted."""
    count, octets = _maildrop(session).totals()
    session.reply(True, f"{count} {octets}")


@command(p.List, TRANSACTION)
async def list_(session: Session, cmd: p.List) -> None:
    """RFC 1939 section 5: scan listing of one message or all that are not deleted."""
    maildrop = _maildrop(session)
    if cmd.number is not None:
        message = maildrop.message(cmd.number)
        session.reply(True, f"{message.number} {message.size}")
        return
    count, octets = maildrop.totals()
    session.reply(True, f"{count} messages ({octets} octets)")
    session.stream.write(multiline_lines([f"{m.number} {m.size}" for m in maildrop.present()]))


@command(p.Uidl, TRANSACTION)
async def uidl(session: Session, cmd: p.Uidl) -> None:
    """RFC 1939 section 7: unique-id listing."""
    maildrop = _maildrop(session)
    if cmd.number is not None:
        message = maildrop.message(cmd.number)
        session.reply(True, f"{message.number} {message.unique_id}")
        return
    session.reply(True, "unique-id listing follows")
    session.stream.write(multiline_lines([f"{m.number} {m.unique_id}" for m in maildrop.present()]))


async def _content(session: Session, number: int) -> tuple[int, bytes]:
    """The numbered message's size and stored content; -ERR if it vanished (expunged over IMAP)."""
    maildrop = _maildrop(session)
    message = maildrop.message(number)
    waiter = session.waiter
    if waiter is not None and waiter.pending:
        waiter.clear()
        changes = await session.store.mailboxes.changes_since(
            maildrop.account_id, maildrop.mailbox_id, maildrop.modseq
        )
        maildrop.mark_vanished(changes.expunged)
    if message.vanished:
        raise Refused(f"message {number} was removed by another session")
    try:
        raw = await session.store.mailboxes.read_blob(message.blob_hash)
    except OSError:
        log.warning("pop3: blob %s of message uid %s is missing", message.blob_hash, message.uid)
        raise Refused(f"message {number} is not available", "SYS/TEMP") from None
    return message.size, raw


async def _send_message(session: Session, content: bytes, end: int | None = None) -> None:
    """Send content[:end] as a multi-line response, piece by piece, waiting for the client to
    read when it falls behind: a reply never sits in memory whole, transformed."""
    for piece in message_pieces(content, end):
        session.stream.write(piece)
        await session.stream.pace()


@command(p.Retr, TRANSACTION)
async def retr(session: Session, cmd: p.Retr) -> None:
    """RFC 1939 section 5: the whole message, byte-stuffed; it gets \\Seen at QUIT."""
    size, content = await _content(session, cmd.number)
    session.reply(True, f"{size} octets")
    await _send_message(session, content)
    _maildrop(session).message(cmd.number).retrieved = True


@command(p.Top, TRANSACTION)
async def top(session: Session, cmd: p.Top) -> None:
    """RFC 1939 section 7: the header, the blank line and the first n body lines."""
    _, content = await _content(session, cmd.number)
    session.reply(True, "top of message follows")
    await _send_message(session, content, top_length(content, cmd.lines))


@command(p.Dele, TRANSACTION)
async def dele(session: Session, cmd: p.Dele) -> None:
    """RFC 1939 section 5: mark deleted; removed only at QUIT."""
    _maildrop(session).delete(cmd.number)
    session.reply(True, f"message {cmd.number} deleted")


@command(p.Rset, TRANSACTION)
async def rset(session: Session, cmd: p.Rset) -> None:
    """RFC 1939 section 5: unmark every message marked deleted."""
    maildrop = _maildrop(session)
    maildrop.reset()
    count, octets = maildrop.totals()
    session.reply(True, f"maildrop has {count} messages ({octets} octets)")


@command(p.Noop, TRANSACTION)
async def noop(session: Session, cmd: p.Noop) -> None:
    """RFC 1939 section 5."""
    session.reply(True)
