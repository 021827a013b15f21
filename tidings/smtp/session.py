"""The SMTP session: one state machine per connection, executing parsed commands against the store.

Commands come from `parser.parse_command`; each verb has one handler, registered with the states it
is legal in (`@command(MailFrom, states=...)`), so "which command may come now" lives in one table.
Handlers raise `Refused(code, status, text)` and the loop turns that into the reply. Input framing
and reply batching are the connection's job (`connection.Connection`); store access goes through
`policy` and `app.store`.

Listeners (RFC 5321 MX, RFC 6409 submission, RFC 8314 implicit TLS):

- "smtp" (MX): mail for local recipients from anyone; relaying needs AUTH. AUTH is offered here too,
  but only after STARTTLS (unless auth.allow_plaintext): an authenticated MX session gets the
  submission rules (sender ownership, relaying, Date/Message-ID completion, scheduling).
- "submission": STARTTLS, then AUTH before MAIL (530 5.7.0).
- "submissions": the same over implicit TLS.

A session logged in as an account that is then removed or disabled is ended at once with 421
4.7.0 (by `tidings.auth.logins.Logins`), and every command first checks that its login has not
ended, so nothing is sent on behalf of an ended account.

Every reply carries an enhanced status code (RFC 2034), except the greeting, EHLO/HELO and the 334
and 354 intermediate replies, as RFC 2034 section 3 specifies. "250 OK" after DATA is sent only
after `store.delivery.accept` returned, i.e. after the message is on disk and committed.
"""

from __future__ import annotations

import base64
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum

from tidings.auth.login import LoginRefused, Reason, tls_binding
from tidings.auth.sasl import SaslError, b64decode_strict
from tidings.mail.address import BadAddress, parse_address
from tidings.mail.authorship import header_problem
from tidings.mail.headers import HeaderBlock, parse_header_block
from tidings.mail.hops import MAX_HOPS, hops_in
from tidings.mail.imapurl import BadUrl, parse_imap_url
from tidings.net.tls import server_end_point
from tidings.offload import run_sized
from tidings.policy import (
    MAX_HOLD_SECONDS,
    PolicyRefusal,
    RecipientRoute,
    RecipientRouter,
    quota_refusal,
    sender_allowed,
)
from tidings.smtp import headers as hdr
from tidings.smtp.connection import TOO_BIG, Connection, ConnectionClosed
from tidings.smtp.parser import (
    Auth,
    Bdat,
    Burl,
    CommandError,
    Data,
    Expn,
    Hello,
    Help,
    MailFrom,
    MailParams,
    Noop,
    Quit,
    RcptParams,
    RcptTo,
    Reply,
    Rset,
    StartTls,
    Vrfy,
    parse_command,
)
from tidings.smtp.reader import LineTooLong, canonical_line_endings
from tidings.store import Envelope

log = logging.getLogger(__name__)

# After this many bad commands (syntax errors, commands out of sequence, refused recipients) the
# connection is dropped: real clients never get there, address harvesters and confused bots do.
MAX_BAD_COMMANDS = 20
MAX_SKIPPED_LINE = 1024 * 1024  # an over-long AUTH response line is dropped up to this, then we close
# RFC 4865: the longest we hold a message for FUTURERELEASE / X-Tidings-Send-At.


class State(Enum):
    CONNECTED = "connected"  # before EHLO/HELO
    READY = "ready"  # greeted, no transaction
    MAIL = "mail"  # MAIL FROM accepted, no recipient yet
    RCPT = "rcpt"  # at least one recipient accepted
    CHUNKING = "chunking"  # BDAT chunks arriving (RFC 3030)


ANY_STATE = frozenset(State)
GREETED = frozenset({State.READY, State.MAIL, State.RCPT, State.CHUNKING})


@dataclass(frozen=True)
class ListenerMode:
    """What a listener name means for the session."""

    name: str
    submission: bool  # AUTH required before MAIL (RFC 6409)
    implicit_tls: bool  # TLS from the first byte (RFC 8314)

    @classmethod
    def for_listener(cls, name: str) -> ListenerMode:
        return cls(name, submission=name in ("submission", "submissions"), implicit_tls=name == "submissions")


class Refused(Exception):
    """A handler's negative reply; `bad` ones count towards MAX_BAD_COMMANDS."""

    def __init__(self, code: int, status: str, text: str, bad: bool = False) -> None:
        super().__init__(text)
        self.reply = Reply(code, status, text)
        self.bad = bad


ACCOUNT_ENDED = "This account is no longer available, closing connection"


class CloseSession(Exception):
    """Stop after sending what is queued (QUIT, too many errors)."""


@dataclass
class Transaction:
    """One mail transaction (RFC 5321 section 3.3), from MAIL FROM to the end of DATA."""

    sender: str
    params: MailParams
    release_at: float | None = None
    recipients: list[tuple[RecipientRoute, RcptParams]] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)  # BDAT
    chunk_total: int = 0
    chunk_too_big: bool = False


Handler = Callable[["Session", object], Awaitable[None]]
HANDLERS: dict[type, tuple[Handler, frozenset[State]]] = {}


def command(kind: type, states: frozenset[State] = ANY_STATE) -> Callable[[Handler], Handler]:
    """Register the handler of one command type and the states it is legal in."""

    def register(handler: Handler) -> Handler:
        HANDLERS[kind] = (handler, states)
        return handler

    return register


def _encoded(code: int, status: str, text: str) -> bytes:
    return Reply(code, status, text).encode()


OK = _encoded(250, "2.0.0", "OK")
SENDER_OK = _encoded(250, "2.1.0", "Sender OK")
RECIPIENT_OK = _encoded(250, "2.1.5", "Recipient OK")
START_DATA = b"354 End data with <CR><LF>.<CR><LF>\r\n"
BYE = _encoded(221, "2.0.0", "Bye")

# Replies for commands sent in the wrong state, by command type.
OUT_OF_SEQUENCE = {
    MailFrom: "Send EHLO/HELO first",
    RcptTo: "Need MAIL before RCPT",
    Data: "Need RCPT before DATA",
    Bdat: "Need RCPT before BDAT",
    Burl: "Need RCPT before BURL",
    StartTls: "STARTTLS not allowed during a mail transaction",
    Auth: "AUTH not allowed now",
}


class Session:
    def __init__(self, app, mode: ListenerMode, conn: Connection, router: RecipientRouter) -> None:
        self.app = app
        self.router = router
        self.mode = mode
        self.conn = conn
        self.limits = app.config.limits
        self.hostname = app.hostname
        self.state = State.CONNECTED
        self.helo: str | None = None
        self.extended = False
        self.account = None  # tidings.store.accounts.Account once authenticated
        self.login = None  # its tidings.auth.logins.Login
        self.allowed_senders: set[str] = set()
        self.tx: Transaction | None = None
        self.bad_commands = 0
        self.messages = 0

    # -- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        conn = self.conn
        try:
            conn.send(f"220 {self.hostname} ESMTP Tidings ready\r\n".encode())
            while True:
                try:
                    line = await conn.read_line()
                except LineTooLong:
                    conn.send(_encoded(500, "5.5.2", "Line too long, closing connection"))
                    conn.close_lingering()
                    return
                try:
                    await self.execute(line)
                except CloseSession:
                    break
                await conn.pace()
        except ConnectionClosed:
            pass
        except TimeoutError:
            if conn.slot.expired:
                text = "Session time limit reached" if self.mode.name == "smtp" else "Time to log in is over"
                conn.send(_encoded(421, "4.4.2", f"{self.hostname} {text}, closing connection"))
            else:
                conn.send(_encoded(421, "4.4.2", f"{self.hostname} Idle timeout, closing connection"))
        except (ssl.SSLError, OSError) as exc:
            log.debug("smtp %s: connection error: %s", conn.peer_ip, exc)
        except Exception:
            log.exception("smtp %s: session failed", conn.peer_ip)
            conn.send(_encoded(421, "4.3.0", f"{self.hostname} Internal error, closing connection"))
        finally:
            self.log_out()
            conn.close()

    def log_out(self) -> None:
        if self.login is not None:
            self.login.close()
        self.login = None
        self.account = None

    def account_ended(self) -> None:
        """The account was removed or disabled (called by Logins, outside this task): 421 and close
        now, whatever the session is doing; a message still being received is not accepted."""
        self.send(421, "4.7.0", f"{self.hostname} {ACCOUNT_ENDED}")
        self.conn.close()

    async def execute(self, line: bytes) -> None:
        """Parse and run one command line, queueing its reply."""
        if self.login is not None and self.login.ended:
            self.send(421, "4.7.0", f"{self.hostname} {ACCOUNT_ENDED}")
            raise CloseSession()
        try:
            cmd = parse_command(line)
            handler, states = HANDLERS[type(cmd)]
            if self.state not in states:
                raise self.out_of_sequence(cmd)
            await handler(self, cmd)
        except CommandError as exc:
            self.refuse(exc.reply, bad=True)
        except Refused as exc:
            self.refuse(exc.reply, exc.bad)

    def refuse(self, reply: Reply, bad: bool) -> None:
        self.conn.send(reply.encode())
        if bad:
            self.bad_commands += 1
            if self.bad_commands >= MAX_BAD_COMMANDS:
                self.conn.send(_encoded(421, "4.7.0", f"{self.hostname} Too many errors, closing connection"))
                raise CloseSession()

    def out_of_sequence(self, cmd: object) -> Refused:
        if isinstance(cmd, Data) and self.state is State.MAIL:
            return Refused(554, "5.5.1", "No valid recipients", bad=True)  # RFC 2920 section 3.1
        if isinstance(cmd, MailFrom) and self.state in (State.MAIL, State.RCPT, State.CHUNKING):
            return Refused(503, "5.5.1", "Nested MAIL command", bad=True)
        if self.state is State.CHUNKING:
            return Refused(503, "5.5.1", "BDAT transaction in progress; send BDAT LAST or RSET", bad=True)
        return Refused(503, "5.5.1", OUT_OF_SEQUENCE.get(type(cmd), "Bad sequence of commands"), bad=True)

    def send(self, code: int, status: str, text: str) -> None:
        self.conn.send(_encoded(code, status, text))

    @property
    def authenticated(self) -> bool:
        return self.account is not None

    def reset_transaction(self) -> None:
        self.tx = None
        if self.state is not State.CONNECTED:
            self.state = State.READY

    # -- greeting and extensions -------------------------------------------------------------

    def channel_binding(self):
        """This connection's TLS channel binding for SCRAM-SHA-256-PLUS (None without TLS)."""
        if not self.conn.tls_active:
            return None
        return tls_binding(server_end_point(self.conn.transport.get_extra_info("ssl_object")))

    def auth_available(self) -> bool:
        return self.conn.tls_active or self.app.config.auth.allow_plaintext

    def extensions(self) -> list[str]:
        """EHLO keywords (RFC 5321 section 4.1.1.1 and each extension's RFC)."""
        keywords = [
            "PIPELINING",  # RFC 2920
            f"SIZE {self.limits.message_size}",  # RFC 1870
            "8BITMIME",  # RFC 6152
            "SMTPUTF8",  # RFC 6531
            "ENHANCEDSTATUSCODES",  # RFC 2034
            "DSN",  # RFC 3461
            "CHUNKING",  # RFC 3030
        ]
        if not self.conn.tls_active:
            keywords.append("STARTTLS")  # RFC 3207
        if self.auth_available() and not self.authenticated:
            mechanisms = self.app.authenticator.mechanisms(self.channel_binding() is not None)
            keywords.append("AUTH " + " ".join(mechanisms))  # RFC 4954
        if self.mode.submission:
            keywords.append("BURL imap")  # RFC 4468: URLAUTH-authorised IMAP URLs of this server
            until = datetime.fromtimestamp(time.time() + MAX_HOLD_SECONDS, UTC)
            keywords.append(
                f"FUTURERELEASE {MAX_HOLD_SECONDS} {until.strftime('%Y-%m-%dT%H:%M:%SZ')}"
            )  # 4865
        keywords.append("HELP")
        return keywords

    @command(Hello)
    async def hello(self, cmd: Hello) -> None:
        """EHLO/HELO, RFC 5321 section 4.1.1.1: any state; resets the transaction."""
        self.helo = cmd.domain
        self.extended = cmd.extended
        self.tx = None
        self.state = State.READY
        greeting = f"{self.hostname} Hello {cmd.domain} [{self.conn.peer_ip}]"
        if not cmd.extended:
            self.conn.send(f"250 {greeting}\r\n".encode())
            return
        lines = [greeting, *self.extensions()]
        text = "".join(f"250-{line}\r\n" for line in lines[:-1]) + f"250 {lines[-1]}\r\n"
        self.conn.send(text.encode())

    @command(StartTls, states=frozenset({State.CONNECTED, State.READY}))
    async def starttls(self, cmd: StartTls) -> None:
        """STARTTLS, RFC 3207 section 4: afterwards the session starts over (4.2)."""
        if self.conn.tls_active:
            raise Refused(503, "5.5.1", "TLS already active", bad=True)
        self.send(220, "2.0.0", "Ready to start TLS")
        try:
            await self.conn.start_tls(self.app.tls)
        except (ssl.SSLError, OSError, ConnectionError) as exc:
            log.info("smtp %s: TLS handshake failed: %s", self.conn.peer_ip, exc)
            raise ConnectionClosed() from None
        self.helo = None
        self.log_out()
        self.tx = None
        self.state = State.CONNECTED

    # -- authentication ----------------------------------------------------------------------

    @command(Auth, states=frozenset({State.READY}))
    async def auth(self, cmd: Auth) -> None:
        """AUTH, RFC 4954 section 4; the mechanisms, the throttle and the login rule are auth.login's."""
        if self.authenticated:
            raise Refused(503, "5.5.1", "Already authenticated", bad=True)
        if not self.auth_available():
            raise Refused(538, "5.7.11", "Encryption required for requested authentication mechanism")
        authenticator = self.app.authenticator
        binding = self.channel_binding()
        if cmd.mechanism not in authenticator.mechanisms(binding is not None):
            raise Refused(504, "5.5.4", f"Unrecognized authentication mechanism {cmd.mechanism}")
        try:
            initial = None if cmd.initial is None else b64decode_strict(cmd.initial)
            ip = self.conn.peer_ip
            account = await authenticator.sasl("smtp", ip, cmd.mechanism, initial, self.challenge, binding)
        except SaslError as exc:
            raise Refused(501, "5.5.2", f"Malformed authentication data: {exc}", bad=True) from None
        except LoginRefused as refused:
            if refused.reason is Reason.THROTTLED:
                raise Refused(454, "4.7.0", "Too many failed logins, try again later") from None
            raise Refused(535, "5.7.8", "Authentication credentials invalid") from None
        login = self.app.logins.begin(account, self.account_ended)
        if login is None:  # disabled while its password was being checked
            raise Refused(535, "5.7.8", "Authentication credentials invalid")
        self.conn.slot.logged_in()
        self.login = login
        self.account = account
        self.allowed_senders = await self.app.store.accounts.senders_allowed(account)
        self.send(235, "2.7.0", "Authentication successful")

    async def challenge(self, data: bytes) -> bytes:
        """One SASL round trip: `334 base64`, then the client's base64 line ("*" cancels)."""
        self.conn.send(b"334 " + base64.b64encode(data) + b"\r\n")
        try:
            line = await self.conn.read_line()
        except LineTooLong:
            # RFC 4954 section 6: 500 5.5.6; the rest of the line is dropped and the session goes on.
            if not await self.conn.skip_line(MAX_SKIPPED_LINE):
                self.send(500, "5.5.6", "Authentication exchange line is too long, closing connection")
                self.conn.close_lingering()
                raise CloseSession() from None
            raise Refused(500, "5.5.6", "Authentication exchange line is too long", bad=True) from None
        if line.strip() == b"*":
            raise Refused(501, "5.0.0", "Authentication cancelled")
        return b64decode_strict(line)

    # -- the mail transaction ----------------------------------------------------------------

    @command(MailFrom, states=frozenset({State.READY}))
    async def mail(self, cmd: MailFrom) -> None:
        """MAIL FROM, RFC 5321 section 4.1.1.2, with SIZE, BODY, SMTPUTF8, DSN and FUTURERELEASE."""
        params = cmd.params
        if self.mode.submission and not self.authenticated:
            raise Refused(530, "5.7.0", "Authentication required")
        if params.size is not None and params.size > self.limits.message_size:
            raise Refused(552, "5.3.4", "Message size exceeds fixed maximum message size")
        if cmd.address:
            try:
                parse_address(cmd.address)
            except BadAddress as exc:
                raise Refused(553, "5.1.7", f"Bad sender address syntax: {exc}") from None
        if self.authenticated and not sender_allowed(cmd.address, self.allowed_senders):
            raise Refused(
                553, "5.7.1", f"<{cmd.address}>: sender address not owned by {self.account.address}"
            )
        release_at = self.release_time(params)
        self.tx = Transaction(cmd.address, params, release_at)
        self.state = State.MAIL
        self.conn.send(SENDER_OK)

    def release_time(self, params: MailParams) -> float | None:
        """RFC 4865 section 4: HOLDFOR / HOLDUNTIL, for authenticated senders only."""
        if params.hold_for is None and params.hold_until is None:
            return None
        if not self.authenticated:
            raise Refused(554, "5.7.1", "FUTURERELEASE is available to authenticated senders only")
        now = time.time()
        delay = params.hold_for if params.hold_for is not None else params.hold_until.timestamp() - now
        if delay > MAX_HOLD_SECONDS:
            raise Refused(501, "5.5.4", f"Release time too far in the future (max {MAX_HOLD_SECONDS}s)")
        return now + delay if delay > 0 else None

    @command(RcptTo, states=frozenset({State.MAIL, State.RCPT}))
    async def rcpt(self, cmd: RcptTo) -> None:
        """RCPT TO, RFC 5321 section 4.1.1.3, with DSN NOTIFY/ORCPT (RFC 3461 section 4)."""
        tx = self.tx
        if len(tx.recipients) >= self.limits.recipients:
            raise Refused(452, "4.5.3", "Too many recipients")
        try:
            route = await self.router.route(
                cmd.address, authenticated=self.authenticated, declared_size=tx.params.size
            )
        except PolicyRefusal as exc:
            raise Refused(exc.code, exc.status, exc.text, bad=exc.code in (550, 554)) from None
        tx.recipients.append((route, cmd.params))
        self.state = State.RCPT
        self.conn.send(RECIPIENT_OK)

    @command(Data, states=frozenset({State.RCPT}))
    async def data(self, cmd: Data) -> None:
        """DATA, RFC 5321 section 4.1.1.4; the reply waits for the durable store."""
        self.conn.send(START_DATA)
        body = await self.conn.read_data(self.limits.message_size)
        tx, self.tx = self.tx, None
        self.state = State.READY
        if body is TOO_BIG:
            raise Refused(552, "5.3.4", "Message size exceeds fixed maximum message size")
        await self.deliver(tx, body)

    @command(Bdat, states=ANY_STATE)
    async def bdat(self, cmd: Bdat) -> None:
        """BDAT, RFC 3030 section 2: the chunk is always read, even when the command is refused."""
        if self.state not in (State.RCPT, State.CHUNKING):
            await self.conn.read_chunk(cmd.size, keep=False)
            raise self.out_of_sequence(cmd)
        tx = self.tx
        tx.chunk_total += cmd.size
        if tx.chunk_total > self.limits.message_size:
            tx.chunk_too_big = True
            tx.chunks.clear()
        chunk = await self.conn.read_chunk(cmd.size, keep=not tx.chunk_too_big)
        if not tx.chunk_too_big:
            tx.chunks.append(chunk)
        if not cmd.last:
            self.state = State.CHUNKING
            self.send(250, "2.0.0", f"{cmd.size} octets received")
            return
        self.tx = None
        self.state = State.READY
        if tx.chunk_too_big:
            raise Refused(552, "5.3.4", "Message size exceeds fixed maximum message size")
        await self.deliver(tx, canonical_line_endings(b"".join(tx.chunks)))

    @command(Burl, states=ANY_STATE)
    async def burl(self, cmd: Burl) -> None:
        """BURL, RFC 4468 section 3: the content of an IMAP URL of this server is the next chunk
        of the message, as if sent with BDAT.  The URL is a URLAUTH one whose access identifier
        admits the submitting user (``submit+user``, ``user+user``, ``authuser``, ``anonymous``),
        or a plain one naming the user's own message.  A URL that resolves to nothing aborts the
        transaction (554 5.6.6)."""
        if self.state not in (State.RCPT, State.CHUNKING):
            raise self.out_of_sequence(cmd)
        if not self.authenticated:
            raise Refused(554, "5.7.0", "BURL needs an authenticated session")
        data = await self.resolve_url(cmd.url)
        tx = self.tx
        if data is None:
            self.reset_transaction()
            raise Refused(554, "5.6.6", f"{cmd.url}: message content not available; transaction aborted")
        tx.chunk_total += len(data)
        if tx.chunk_total > self.limits.message_size:
            tx.chunk_too_big = True
            tx.chunks.clear()
        if not tx.chunk_too_big:
            tx.chunks.append(data)
        if not cmd.last:
            self.state = State.CHUNKING
            self.send(250, "2.5.0", f"{len(data)} octets added")
            return
        self.tx = None
        self.state = State.READY
        if tx.chunk_too_big:
            raise Refused(552, "5.3.4", "Message size exceeds fixed maximum message size")
        await self.deliver(tx, canonical_line_endings(b"".join(tx.chunks)))

    async def resolve_url(self, text: str) -> bytes | None:
        """The bytes of a BURL URL for the authenticated user (store/urlauth.py decides)."""
        try:
            url = parse_imap_url(text)
        except BadUrl:
            return None
        urls = self.app.store.urls
        if url.authorized:
            return await urls.fetch_authorized(url, self.account.address, submit=True)
        if url.user is None or url.user.lower() != self.account.address.lower():
            return None
        return await urls.fetch(self.account.id, url)

    async def deliver(self, tx: Transaction, body: bytes) -> None:
        """Check and complete the headers, hand the message to the store, and say 250 only once it is
        durable."""
        release_at = tx.release_at
        limits = self.limits
        block = parse_header_block(body, 0, len(body), max_fields=limits.header_fields + 1)
        problem = header_problem(block, limits.header_fields, limits.header_bytes)
        if problem is not None:
            # RFC 3463 5.3.4: "message too big for system"; the header part of it is what is too big.
            raise Refused(552, "5.3.4", f"Message header too large: {problem}")
        if hops_in(block) >= MAX_HOPS:
            # RFC 5321 section 6.3: this many relays means a mail loop; refuse rather than add a hop.
            raise Refused(554, "5.4.6", "Too many hops")
        if self.authenticated:
            body, release_at = self.complete_submission(body, block, release_at)
        routes = [route for route, _ in tx.recipients]
        single = routes[0].address if len(routes) == 1 else None
        transaction_id = hdr.transaction_id()
        received = hdr.received_header(
            helo=self.helo or "unknown",
            ip=self.conn.peer_ip,
            hostname=self.hostname,
            protocol=hdr.protocol_name(
                self.extended, self.conn.tls_active, self.authenticated, tx.params.smtputf8
            ),
            id=transaction_id,
            recipient=single,
            tls_info=self.conn.tls_info,
        )
        envelope = self.envelope(tx, release_at)
        # Joining the trace field to 50 MB is a copy the loop should not wait for.
        raw = await run_sized(len(body), bytes.__add__, received, body)
        try:
            result = await self.app.store.delivery.accept(envelope, raw)
        except Exception:
            log.exception("smtp %s: storing message %s failed", self.conn.peer_ip, transaction_id)
            raise Refused(451, "4.3.0", "Temporary local problem, please try again later") from None
        self.messages += 1
        if result.over_quota:
            # Nobody got it (a recipient with room, or one waiting in the queue, would have): refuse
            # now, so the sending MTA keeps the message or reports to its own user, and no bounce of
            # ours goes to a possibly forged reverse-path.
            code, status, text = await quota_refusal(self.app.store, result.over_quota, len(raw))
            raise Refused(code, status, text)
        self.send(250, "2.0.0", f"OK queued as {transaction_id}")

    def complete_submission(
        self, body: bytes, block: HeaderBlock, release_at: float | None
    ) -> tuple[bytes, float | None]:
        """RFC 6409 rules for authenticated senders: every From: and Sender: address must be theirs
        (RFC 6409 section 8.1 lets us refuse; we do, as Postfix's reject_sender_login_mismatch);
        Date/Message-ID added; X-Tidings-Send-At read (when FUTURERELEASE was not used) and stripped."""
        if block.fields and not block.complete:
            # Another reader (a DKIM library, the recipient's client) may read on past such a line
            # and find a From: we never checked.
            raise Refused(554, "5.6.0", "Malformed header: a line is neither a field nor a continuation")
        found = hdr.read_submitted_headers(body, block)
        authors = found.authors
        if authors.unreadable:
            raise Refused(550, "5.7.1", f"{authors.unreadable[0]}: cannot be read as a mail address")
        for label, addresses in (("From", authors.from_addresses), ("Sender", authors.sender_addresses)):
            for address in addresses:
                if not sender_allowed(address, self.allowed_senders):
                    raise Refused(
                        550, "5.7.1", f"{label}: <{address}> is not an address of {self.account.address}"
                    )
        if found.send_at is not None and release_at is None:
            send_at = hdr.parse_send_at(found.send_at)
            if send_at is None:
                raise Refused(554, "5.6.0", f"{hdr.SEND_AT_HEADER}: cannot read the date")
            if send_at - time.time() > MAX_HOLD_SECONDS:
                raise Refused(554, "5.6.0", f"{hdr.SEND_AT_HEADER}: more than {MAX_HOLD_SECONDS}s ahead")
            release_at = send_at if send_at > time.time() else None
        return hdr.complete_submission(body, found, self.hostname), release_at

    def envelope(self, tx: Transaction, release_at: float | None) -> Envelope:
        local: dict[str, tuple[str | None, str | None]] = {}
        remote: dict[str, tuple[str | None, str | None]] = {}
        for route, params in tx.recipients:
            dsn = (params.notify, params.orcpt)
            for address in route.local:
                local.setdefault(address, dsn)
            for address in route.remote:
                remote.setdefault(address, dsn)
        return Envelope(
            sender=tx.sender,
            local=list(local),
            remote=[(address, notify, orcpt) for address, (notify, orcpt) in remote.items()],
            release_at=release_at,
            envid=tx.params.envid,
            ret=tx.params.ret,
            smtputf8=tx.params.smtputf8,
            body_8bit=tx.params.body == "8BITMIME",
            account_id=self.account.id if self.account else None,
            local_params={a: p for a, p in local.items() if p != (None, None)},
        )

    # -- the rest ----------------------------------------------------------------------------

    @command(Rset)
    async def rset(self, cmd: Rset) -> None:
        """RSET, RFC 5321 section 4.1.1.5."""
        self.reset_transaction()
        self.conn.send(OK)

    @command(Noop)
    async def noop(self, cmd: Noop) -> None:
        """NOOP, RFC 5321 section 4.1.1.9."""
        self.conn.send(OK)

    @command(Vrfy)
    async def vrfy(self, cmd: Vrfy) -> None:
        """VRFY, RFC 5321 section 3.5.3: we do not disclose users."""
        self.send(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery")

    @command(Expn)
    async def expn(self, cmd: Expn) -> None:
        """EXPN, RFC 5321 section 3.5.2: not offered (lists are not disclosed)."""
        self.send(502, "5.5.1", "EXPN not available")

    @command(Help)
    async def help(self, cmd: Help) -> None:
        """HELP, RFC 5321 section 4.1.1.8."""
        self.send(
            214,
            "2.0.0",
            "Commands: EHLO HELO MAIL RCPT DATA BDAT BURL RSET NOOP QUIT VRFY STARTTLS AUTH HELP",
        )

    @command(Quit)
    async def quit(self, cmd: Quit) -> None:
        """QUIT, RFC 5321 section 4.1.1.10."""
        self.conn.send(BYE)
        raise CloseSession()
