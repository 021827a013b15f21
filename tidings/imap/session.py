"""The IMAP server session: one per connection, a state machine over parsed commands.

RFC 9051 (IMAP4rev2) and RFC 3501 (IMAP4rev1).  Bytes come in through
:class:`~tidings.imap.connection.Connection`, are framed and parsed by
:class:`~tidings.imap.parser.ImapParser`, and each command is dispatched through the registry in
:mod:`tidings.imap.states` to a handler in one of the ``*_cmds`` modules.  Handlers write
untagged responses with :meth:`ImapSession.untagged` and end by returning (``OK``) or raising
:class:`No` / :class:`Bad`; this module writes the tagged reply after any pending mailbox updates
and flushes once per batch of pipelined commands.

Rules kept here, in one place:

* state checks (a command in the wrong state gets ``BAD``), and the autologout timers: a short
  one before login, 30 minutes after (RFC 9051 5.4); before login also the listener's absolute
  login deadline (:class:`~tidings.net.listener.Slot`), which no amount of trickled bytes extends;
* mailbox updates from other sessions (:class:`~tidings.imap.selected.SelectedMailbox`) are
  picked up only when the change hub woke our :class:`~tidings.notify.Waiter` — never polled;
* a client that sends nothing but errors is disconnected, so garbage at full speed cannot keep a
  worker busy;
* a session acts only for a live account: when the account is removed or disabled,
  :class:`~tidings.auth.logins.Logins` ends the session at once (``* BYE``, connection closed),
  and every command first checks that its login has not ended;
* mailbox names: UTF-8 inside, modified UTF-7 on the wire unless UTF8=ACCEPT or IMAP4rev2 was
  enabled (RFC 6855, RFC 9051 5.1.3).  No other user's mailbox is reachable by any name.

Never touches SQL or files: everything goes through ``app.store``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import deque

from tidings.auth.login import tls_binding
from tidings.imap import commands as c
from tidings.imap import mutf7, wire
from tidings.imap.connection import FLUSH_THRESHOLD, Connection
from tidings.imap.message_cmds import refresh_search_contexts
from tidings.imap.notify_cmds import NotifySettings, deliver_mailbox_events, fetch_new_messages
from tidings.imap.parser import ContinuationNeeded, ImapParser, ParseError, RawLine
from tidings.imap.selected import SelectedMailbox
from tidings.imap.states import ANSWERED, COMMANDS, Bad, CommandFailed, No, State
from tidings.net.listener import Slot
from tidings.net.tls import server_end_point
from tidings.notify import Waiter
from tidings.store import NotFound, OverQuota, StoreError

log = logging.getLogger(__name__)

PRELOGIN_TIMEOUT = 60.0
"""Seconds a client may stay silent before logging in."""
AUTHENTICATED_TIMEOUT = 30 * 60.0
"""RFC 9051 5.4: the inactivity autologout timer must be at least 30 minutes after login."""
PRELOGIN_LITERAL_BYTES = 8 * 1024
"""Size of a command with literals before login, literals included (a LOGIN or AUTHENTICATE needs
a few hundred bytes): an unauthenticated client must not make us hold the post-login limit
(4 x ``imap_literal``)."""
MAX_CONSECUTIVE_ERRORS = 30
"""Bad commands in a row after which the client is disconnected."""
SERVER_NAME = "Tidings"
ACCOUNT_ENDED = "BYE This account is no longer available"
"""Said when the logged-in account is removed or disabled (the session then closes)."""

PAUSING = (c.Authenticate, c.Idle, c.StartTls, c.Login)

_BASE_CAPABILITIES = ("IMAP4rev1", "IMAP4rev2", "SASL-IR", "ID", "ENABLE", "IDLE")
_AUTHENTICATED_CAPABILITIES = (
    "NAMESPACE",
    "UNSELECT",
    "UIDPLUS",
    "MOVE",
    "CHILDREN",
    "LIST-EXTENDED",
    "LIST-STATUS",
    "SPECIAL-USE",
    "CREATE-SPECIAL-USE",
    "STATUS=SIZE",
    "SAVEDATE",
    "OBJECTID",
    "CONDSTORE",
    "QRESYNC",
    "ESEARCH",
    "SEARCHRES",
    "SORT",
    "SORT=DISPLAY",
    "ESORT",
    "PARTIAL",
    "METADATA",
    "THREAD=REFERENCES",
    "THREAD=ORDEREDSUBJECT",
    "QUOTA",
    "QUOTA=RES-STORAGE",
    "MULTIAPPEND",
    "CATENATE",
    "URLAUTH",
    "BINARY",
    "UTF8=ACCEPT",
    "NOTIFY",
    "CONTEXT=SEARCH",
    "CONTEXT=SORT",
)


# (store, account id, mailbox id, modseq) -> (hub publish count when the query started, its future).
_CHANGES_IN_FLIGHT: dict[tuple[int, int, int, int], tuple[int, asyncio.Future]] = {}


async def shared_changes_since(store, account_id: int, mailbox_id: int, modseq: int):
    """``changes_since`` shared by every session that asks the same question at the same time.

    One delivery wakes every session idling on that mailbox; they all ask for the changes since
    the same modseq, so one query serves them.  A session may only join a query that started
    after the change that woke it was published (the hub publishes after commit), otherwise the
    query's snapshot could predate that change.
    """
    published = store.hub.published
    key = (id(store), account_id, mailbox_id, modseq)
    entry = _CHANGES_IN_FLIGHT.get(key)
    if entry is None or entry[0] < published:
        future = asyncio.ensure_future(store.mailboxes.changes_since(account_id, mailbox_id, modseq))
        entry = (published, future)
        _CHANGES_IN_FLIGHT[key] = entry

        def forget(_: asyncio.Future, key=key, entry=entry) -> None:
            if _CHANGES_IN_FLIGHT.get(key) is entry:
                del _CHANGES_IN_FLIGHT[key]

        future.add_done_callback(forget)
    return await asyncio.shield(entry[1])


class ConnectionDone(Exception):
    """The connection is over (client went away, fatal error, BYE sent)."""


class ImapSession:
    """One client connection; see the module docstring."""

    def __init__(self, app, listener: str, conn: Connection, slot: Slot) -> None:
        self.app = app
        self.listener = listener
        self.conn = conn
        self.slot = slot
        limits = app.config.limits
        max_line = max(limits.line_length, 64 * 1024)
        prelogin = min(PRELOGIN_LITERAL_BYTES, limits.imap_literal)
        self.parser = ImapParser(max_literal=prelogin, max_line=max_line, max_command=prelogin)
        self.state = State.NOT_AUTHENTICATED
        self.account = None
        self.login = None  # tidings.auth.logins.Login once logged in
        self.waiter: Waiter | None = None
        self.selected: SelectedMailbox | None = None
        self.enabled: set[str] = set()
        self.errors_in_row = 0
        self.client_id: dict[str, str | None] | None = None
        self.loader = None  # message summary/blob loader, made by the first FETCH/SEARCH
        self.notify: NotifySettings | None = None  # NOTIFY SET in force (RFC 5465)

    # ------------------------------------------------------------------ properties

    @property
    def store(self):
        return self.app.store

    @property
    def config(self):
        return self.app.config

    @property
    def utf8(self) -> bool:
        """Whether the client takes UTF-8 mailbox names and quoted strings."""
        return "UTF8=ACCEPT" in self.enabled or "IMAP4REV2" in self.enabled

    @property
    def rev2(self) -> bool:
        return "IMAP4REV2" in self.enabled

    @property
    def condstore(self) -> bool:
        return "CONDSTORE" in self.enabled or "QRESYNC" in self.enabled

    @property
    def qresync(self) -> bool:
        return "QRESYNC" in self.enabled

    @property
    def login_disabled(self) -> bool:
        """LOGINDISABLED before TLS on the plain port (RFC 9051 6.2.3, RFC 8314)."""
        return not self.conn.tls and not self.config.auth.allow_plaintext

    def raise_literal_limits(self) -> None:
        """After login, literals up to ``limits.imap_literal`` (APPEND); before it, see
        PRELOGIN_LITERAL_BYTES."""
        limit = self.config.limits.imap_literal
        if self.parser.max_literal != limit:
            self.parser.set_literal_limits(limit)

    @property
    def append_limit(self) -> int:
        return min(self.config.limits.imap_literal, self.config.limits.message_size)

    def channel_binding(self):
        """This connection's TLS channel binding for SCRAM-SHA-256-PLUS (None without TLS)."""
        if not self.conn.tls:
            return None
        return tls_binding(server_end_point(self.conn.writer.get_extra_info("ssl_object")))

    def capabilities(self) -> list[str]:
        caps = list(_BASE_CAPABILITIES)
        if self.state is State.NOT_AUTHENTICATED:
            # RFC 7888 section 5: {n+} only up to 4096 bytes before login (see PRELOGIN_LITERAL_BYTES).
            caps.insert(2, "LITERAL-")
            if not self.conn.tls and self.listener == "imap":
                caps.append("STARTTLS")
            if self.login_disabled:
                caps.append("LOGINDISABLED")
            else:
                mechanisms = self.app.authenticator.mechanisms(self.channel_binding() is not None)
                caps.extend(f"AUTH={mechanism}" for mechanism in mechanisms)
        else:
            caps.insert(2, "LITERAL+")
            caps.extend(_AUTHENTICATED_CAPABILITIES)
            caps.append(f"APPENDLIMIT={self.append_limit}")
            if not self.conn.compressed:
                caps.append("COMPRESS=DEFLATE")
        return caps

    # ------------------------------------------------------------------ output

    def untagged(self, line: bytes | str) -> None:
        """Queue ``* <line>``."""
        if isinstance(line, str):
            line = line.encode("utf-8")
        self.conn.write(b"* " + line + b"\r\n")

    def write(self, data: bytes | memoryview) -> None:
        self.conn.write(data)

    async def pace(self) -> None:
        """Call between the pieces of a long answer (each FETCH literal, each LIST line): large
        output goes out and waits for a client that is not reading; other sessions get to run
        (see :meth:`Connection.pace`)."""
        await self.conn.pace()
        if self.conn.closed:
            raise ConnectionDone()

    async def flush(self) -> None:
        await self.conn.flush()
        if self.conn.closed:
            raise ConnectionDone()

    def tagged(self, tag: str, status: str, text: str, code: str | None = None) -> None:
        line = f"{tag} {status} " + (f"[{code}] " if code else "") + text
        self.conn.write(line.encode("utf-8", "replace") + b"\r\n")

    # ------------------------------------------------------------------ mailbox names

    def decode_name(self, wire_name: str, invalid_code: str = "CANNOT") -> str:
        """A mailbox name from the client, in our UTF-8 form, INBOX normalised.

        Names that would step outside the user's own namespace (other users, shared folders,
        path tricks) are refused here, before the store sees them.  A name that is not valid
        modified UTF-7 (say a bare ``&``) is a well-formed astring, so it gets ``NO`` with
        ``invalid_code`` (no such mailbox can exist), never ``BAD``.
        """
        name = wire_name
        if not self.utf8:
            try:
                name = mutf7.decode(wire_name)
            except mutf7.ModifiedUtf7Error as exc:
                raise No(
                    f"Mailbox name is not valid modified UTF-7 (write & as &-): {exc}", invalid_code
                ) from None
        name = c.normalise_mailbox_name(name)
        if name.startswith(("#", "~", "/")) or any(part in (".", "..") for part in name.split("/")):
            raise No("No such mailbox: other users' and shared mailboxes are not available", "NONEXISTENT")
        return name

    def encode_name(self, name: str) -> bytes:
        """A mailbox name as the client expects it on the wire (astring)."""
        if self.utf8:
            return wire.astring(name, utf8=True)
        return wire.astring(mutf7.encode(name))

    async def mailbox(self, wire_name: str):
        """The store's mailbox for a name the client sent, or NO [NONEXISTENT]."""
        name = self.decode_name(wire_name, "NONEXISTENT")
        try:
            return await self.store.mailboxes.get(self.account.id, name)
        except NotFound:
            raise No(f"Mailbox does not exist: {wire_name}", "NONEXISTENT") from None
        except StoreError as exc:
            raise No(f"Invalid mailbox name: {exc}", "CANNOT") from None

    # ------------------------------------------------------------------ main loop

    async def run(self) -> None:
        """Serve the connection until LOGOUT, autologout, a fatal error or the client leaving."""
        try:
            caps = " ".join(self.capabilities())
            self.untagged(f"OK [CAPABILITY {caps}] {SERVER_NAME} IMAP server ready")
            await self.flush()
            while self.state is not State.LOGOUT:
                data = await self.next_input()
                await self.process(self.parser.feed(data))
                await self.flush()
                # A client streaming at full speed must not starve the other sessions.
                await asyncio.sleep(0)
        except ConnectionDone:
            pass
        except (ConnectionError, ssl.SSLError, OSError):
            pass
        except Exception:
            log.exception("IMAP session failed")
            with contextlib.suppress(Exception):
                self.untagged("BYE Internal server error")
        finally:
            if self.login is not None:
                self.login.close()
            if self.waiter is not None:
                self.waiter.close()
                self.waiter = None
            self.selected = None
            with contextlib.suppress(Exception):
                await self.conn.close()

    @property
    def timeout(self) -> float:
        if self.state is State.NOT_AUTHENTICATED:
            return self.slot.read_timeout(PRELOGIN_TIMEOUT)
        return AUTHENTICATED_TIMEOUT

    async def read(self, timeout: float) -> bytes:
        """The client's next bytes; autologout when it stays silent for ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                data = await self.conn.read()
        except TimeoutError:
            if self.slot.expired:
                self.untagged("BYE Autologout: time to log in is over")
            else:
                self.untagged("BYE Autologout: idle for too long")
            await self.conn.flush()
            raise ConnectionDone() from None
        if not data:
            raise ConnectionDone()
        return data

    async def next_input(self) -> bytes:
        """The client's next bytes.  While NOTIFY is in force, notifications are pushed as the
        change hub reports them in the meantime (RFC 5465 section 3: at any time, not only
        during IDLE); the autologout timer keeps counting from the client's last input."""
        if self.notify is None or self.waiter is None:
            return await self.read(self.timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        read_task = asyncio.ensure_future(self.conn.read())
        wake: asyncio.Future | None = None
        try:
            while True:
                wake = None
                if self.notify is not None:
                    wake = asyncio.ensure_future(self.waiter.wait())
                waiting = {read_task} if wake is None else {read_task, wake}
                done, _ = await asyncio.wait(
                    waiting, timeout=max(0.0, deadline - loop.time()), return_when=asyncio.FIRST_COMPLETED
                )
                if wake is not None and not wake.done():
                    wake.cancel()
                if read_task in done:
                    data = read_task.result()
                    if not data:
                        raise ConnectionDone()
                    return data
                if not done:
                    self.untagged("BYE Autologout: idle for too long")
                    await self.conn.flush()
                    raise ConnectionDone()
                await self.push_notifications()
                await self.flush()
                if self.state is State.LOGOUT:  # the selected mailbox was deleted: BYE sent
                    raise ConnectionDone()
        finally:
            if wake is not None and not wake.done():
                wake.cancel()
            if not read_task.done():
                read_task.cancel()
                with contextlib.suppress(BaseException):
                    await read_task

    async def push_notifications(self) -> None:
        """Write what NOTIFY asks to hear about, outside any command (or inside IDLE): STATUS and
        LIST for other mailboxes (via :meth:`refresh`) and the selected mailbox's updates when a
        SELECTED / SELECTED-DELAYED group asks for them (RFC 5465 sections 5 and 6.1)."""
        await self.refresh()
        settings = self.notify
        selected = self.selected
        if settings is None or settings.selected is None or selected is None or not selected.has_pending:
            return
        events = settings.selected.events
        if not events:
            return
        out = bytearray()
        arrived = selected.drain(
            out,
            expunge_allowed=settings.selected.filter == "SELECTED",
            condstore=self.condstore,
            qresync=self.qresync,
            flags="FlagChange" in events,
            recent=not self.rev2,
        )
        self.write(bytes(out))
        with contextlib.suppress(No):  # a message expunged meanwhile is simply not fetched
            await fetch_new_messages(self, arrived)
        await refresh_search_contexts(self)

    async def process(self, events: list) -> None:
        queue = deque(events)
        while queue:
            event = queue.popleft()
            if isinstance(event, c.Command):
                await self.execute(event)
                if self.state is State.LOGOUT:
                    return
                if self.state is not State.NOT_AUTHENTICATED:
                    self.raise_literal_limits()
                if isinstance(event, PAUSING):
                    self.parser.resume()
                    queue.extend(self.parser.feed(b""))
            elif isinstance(event, ContinuationNeeded):
                self.write(f"+ {event.text}\r\n".encode())
                await self.flush()
            elif isinstance(event, ParseError):
                self.parse_error(event)
            elif isinstance(event, RawLine):
                pass  # only expected inside AUTHENTICATE / IDLE, which read their own lines
            if self.conn.pending_output > FLUSH_THRESHOLD:
                await self.flush()

    def parse_error(self, error: ParseError) -> None:
        if error.tag is None:
            self.untagged(f"BAD {error.text}")
        else:
            self.tagged(error.tag, error.reply_status, error.text, error.code)
        if error.fatal:
            self.untagged("BYE Cannot continue after this error")
            self.state = State.LOGOUT
            return
        self.count_error()

    def count_error(self) -> None:
        self.errors_in_row += 1
        if self.errors_in_row >= MAX_CONSECUTIVE_ERRORS:
            self.untagged("BYE Too many invalid commands")
            self.state = State.LOGOUT

    def account_ended(self) -> None:
        """The account was removed or disabled (called by Logins, outside this task): BYE and
        close now, whatever the session is doing; nothing it has not sent yet goes out."""
        self.state = State.LOGOUT
        self.conn.abort(f"* {ACCOUNT_ENDED}\r\n".encode())

    async def execute(self, cmd: c.Command) -> None:
        if self.login is not None and self.login.ended:
            self.untagged(ACCOUNT_ENDED)
            self.state = State.LOGOUT
            return
        registration = COMMANDS.get(cmd.name)
        if registration is None:
            self.tagged(cmd.tag, "BAD", f"{cmd.name} is not supported")
            self.count_error()
            return
        if self.state not in registration.states:
            self.tagged(cmd.tag, "BAD", f"{cmd.name} is not allowed in the {self.state.value} state")
            self.count_error()
            return
        uid = bool(getattr(cmd, "uid", False))
        label = ("UID " if uid else "") + cmd.name
        # RFC 3501 7.4.1: the UID forms may report expunges; FETCH, STORE, SEARCH may not.
        expunge_allowed = registration.expunge_allowed or uid
        try:
            result = await registration.handler(self, cmd)
        except CommandFailed as failure:
            await self.send_updates(expunge_allowed)
            self.tagged(cmd.tag, failure.status, failure.text, failure.code)
            if failure.status == "BAD":
                self.count_error()
            return
        except OverQuota as exc:
            await self.send_updates(expunge_allowed)
            self.tagged(cmd.tag, "NO", f"Over quota: {exc}", "OVERQUOTA")
            return
        except NotFound as exc:
            await self.send_updates(expunge_allowed)
            self.tagged(cmd.tag, "NO", str(exc) or "No such mailbox", "NONEXISTENT")
            return
        except StoreError as exc:
            await self.send_updates(expunge_allowed)
            self.tagged(cmd.tag, "NO", str(exc) or "Operation failed", "CANNOT")
            return
        except (ConnectionDone, ConnectionError, ssl.SSLError, asyncio.CancelledError):
            raise
        except Exception:
            # A bug must cost this command, not the connection or the other sessions.
            log.exception("IMAP %s failed", cmd.name)
            self.tagged(cmd.tag, "NO", "Internal server error", "SERVERBUG")
            return
        self.errors_in_row = 0
        if self.state is State.LOGOUT or result is ANSWERED:
            return
        await self.send_updates(expunge_allowed)
        code, text = result if isinstance(result, tuple) else (None, result)
        self.tagged(cmd.tag, "OK", text or f"{label} completed", code)

    # ------------------------------------------------------------------ CONDSTORE / QRESYNC

    def enable_condstore(self) -> None:
        """A CONDSTORE enabling command (RFC 7162 3.1: ENABLE, SELECT (CONDSTORE), STATUS
        HIGHESTMODSEQ, FETCH MODSEQ or CHANGEDSINCE, SEARCH MODSEQ, STORE UNCHANGEDSINCE).

        From now on untagged FETCH carries MODSEQ.  The first one issued while a mailbox is
        selected also reports that mailbox's HIGHESTMODSEQ (RFC 7162 3.1), as an untagged OK
        before the command's own responses, as Dovecot does: the value is the snapshot's, so it
        never claims a change the client has not been told about.
        """
        if self.condstore:
            return
        self.enabled.add("CONDSTORE")
        if self.selected is not None:
            self.untagged(f"OK [HIGHESTMODSEQ {self.selected.modseq}] Highest")

    async def highestmodseq_after_change(self) -> str:
        """``HIGHESTMODSEQ n`` for the tagged OK of a command that expunged messages while QRESYNC
        is enabled (RFC 7162 3.2.10).

        The snapshot first catches up with the store (our own change included, whatever the
        change hub has delivered so far), and the updates it picks up go out before the tagged
        OK, so the client has seen every change up to the mod-sequence it is given.
        """
        selected = self.selected
        changes = await self.store.mailboxes.changes_since(
            self.account.id, selected.mailbox_id, selected.modseq
        )
        await self.apply_changes(selected, changes)
        return f"HIGHESTMODSEQ {selected.modseq}"

    # ------------------------------------------------------------------ mailbox updates

    async def refresh(self) -> None:
        """Fold other sessions' changes into the selected snapshot, if the hub says there are any."""
        waiter = self.waiter
        if waiter is None or not waiter.pending:
            return
        touched = set(waiter.mailboxes)
        kinds = waiter.kinds
        announced = waiter.modseqs.get(self.selected.mailbox_id, 0) if self.selected is not None else 0
        waiter.clear()
        if self.notify is not None:
            await deliver_mailbox_events(self, kinds)
        selected = self.selected
        if selected is None or (selected.mailbox_id not in touched and None not in touched):
            return
        if None not in touched and announced <= selected.modseq:
            return  # only changes the snapshot already holds (this session's own STORE)
        try:
            changes = await shared_changes_since(
                self.store, self.account.id, selected.mailbox_id, selected.modseq
            )
        except NotFound:
            self.untagged("BYE The selected mailbox was deleted")
            self.state = State.LOGOUT
            self.selected = None
            return
        await self.apply_changes(selected, changes)

    async def apply_changes(self, selected: SelectedMailbox, changes) -> None:
        """Fold ``changes`` into the snapshot and decide which new messages are \\Recent here."""
        selected.apply(changes)
        await self.note_recent(selected, changes.recent_uid)

    async def note_recent(self, selected: SelectedMailbox, cut: int) -> None:
        """Decide \\Recent for the messages of ``selected`` not yet decided (RFC 3501 2.3.2).

        ``cut`` is the mailbox's recent cut as last read.  A read-write IMAP4rev1 session claims
        the messages above it (one store write, and only when there is something to claim); a
        read-only one (EXAMINE) sees them as \\Recent without taking that from anyone (RFC 3501
        6.3.2).  IMAP4rev2 has no \\Recent (RFC 9051 appendix E), so it neither sees nor claims.
        """
        high = selected.last_uid
        if self.rev2 or high <= selected.recent_checked:
            return
        if not selected.read_only and cut < high:
            cut = await self.store.mailboxes.claim_recent(self.account.id, selected.mailbox_id, high)
        selected.mark_recent(max(cut, selected.recent_checked), high)
        selected.recent_checked = high

    async def send_updates(self, expunge_allowed: bool = True) -> None:
        """Write the untagged EXISTS / EXPUNGE / VANISHED / FETCH the client may see now."""
        await self.refresh()
        selected = self.selected
        if selected is not None and selected.has_pending:
            out = bytearray()
            selected.drain(
                out,
                expunge_allowed=expunge_allowed,
                condstore=self.condstore,
                qresync=self.qresync,
                recent=not self.rev2,
            )
            self.write(bytes(out))
        await refresh_search_contexts(self)  # ADDTO / REMOVEFROM after the EXISTS (RFC 5267)

    # ------------------------------------------------------------------ raw lines (SASL, IDLE)

    async def read_raw_line(self) -> bytes | None:
        """One line verbatim (SASL response); ``None`` if it was too long."""
        self.parser.expect_raw_line()
        events = self.parser.feed(b"")
        while not events:
            events = self.parser.feed(await self.read(self.timeout))
        return self._raw_result(events)

    def _raw_result(self, events: list) -> bytes | None:
        event = events[0]
        if isinstance(event, RawLine):
            return event.data
        if isinstance(event, ParseError) and event.fatal:
            self.untagged(f"BYE {event.text}")
            raise ConnectionDone()
        return None

    async def idle(self, tag: str) -> None:
        """RFC 2177: report changes as they happen until the client sends DONE."""
        self.loader = None  # an idling session keeps no message caches
        self.write(b"+ idling\r\n")
        await self.send_updates(expunge_allowed=True)
        await self.flush()
        self.parser.expect_raw_line()
        events = self.parser.feed(b"")
        read_task: asyncio.Future | None = None
        wake: asyncio.Future | None = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + AUTHENTICATED_TIMEOUT
        try:
            while not events:
                if read_task is None:
                    read_task = asyncio.ensure_future(self.conn.read())
                waiters: set[asyncio.Future] = {read_task}
                if self.waiter is not None:
                    wake = asyncio.ensure_future(self.waiter.wait())
                    waiters.add(wake)
                done, _ = await asyncio.wait(
                    waiters, timeout=max(0.0, deadline - loop.time()), return_when=asyncio.FIRST_COMPLETED
                )
                if wake is not None and not wake.done():
                    wake.cancel()
                if not done:
                    self.untagged("BYE Autologout: idle for too long")
                    raise ConnectionDone()
                if wake is not None and wake in done:
                    if self.notify is not None:
                        await self.push_notifications()  # exactly what NOTIFY asked for (RFC 5465 4)
                    else:
                        await self.send_updates(expunge_allowed=True)
                    await self.flush()
                if read_task in done:
                    data = read_task.result()
                    read_task = None
                    if not data:
                        raise ConnectionDone()
                    events = self.parser.feed(data)
        finally:
            if wake is not None and not wake.done():
                wake.cancel()
            if read_task is not None:
                read_task.cancel()
                with contextlib.suppress(BaseException):
                    await read_task
        line = self._raw_result(events)
        if line is None or line.strip().upper() != b"DONE":
            raise Bad("Expected DONE to end IDLE")


# Handler modules register their commands on import.
from tidings.imap import (  # noqa: E402,F401
    general_cmds,
    login_cmds,
    mailbox_cmds,
    message_cmds,
    metadata_cmds,
    notify_cmds,
    select_cmds,
    urlauth_cmds,
)
