"""`tidings user remove|disable|enable` against a running server: a removed or disabled account's
open sessions end at once on IMAP, POP3 and SMTP, it cannot log in, and nothing it left open can
read another account's mail.

The command runs as an administrator runs it (`tidings.cli.main`, its own store, its own change
hub), so the running server learns of it only through the database: on SQLite by reading
`account_events`, on PostgreSQL also through NOTIFY.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time

import pytest

from tests.imap.session_support import ALICE, BOB, PASSWORD, ImapTestServer, RawImap, message, quote
from tests.support.clients import client_tls
from tests.support.running import fresh_database_url
from tidings.cli import main

ENDS_WITHIN = 2.0  # seconds from the command's return until the server has closed the session


def admin(server, *args: str, node_id: str = "") -> None:
    """Run `tidings ARGS` on the server's data directory and database, as an admin would (with
    the node's own configuration file, `node_id` included, when given)."""
    config = server.config.data_dir.parent / f"admin-{server.config.node_id}.toml"
    lines = [f'data_dir = "{server.config.data_dir}"', f'default_domain = "{server.config.default_domain}"']
    if server.config.database:
        lines.append(f'database = "{server.config.database}"')
    if node_id:
        lines.append(f'node_id = "{node_id}"')
    config.write_text("\n".join(lines) + "\n")
    assert main(["--config", str(config), *args]) == 0


def closes_within(raw, seconds: float = ENDS_WITHIN) -> float:
    """Seconds until the server closed `raw`'s connection (asserting it does within `seconds`)."""
    started = time.monotonic()
    assert raw.closed_by_server(seconds + 3)
    elapsed = time.monotonic() - started
    assert elapsed < seconds, f"closed only after {elapsed:.1f}s"
    return elapsed


class RawLines:
    """POP3 or SMTP over TLS, line by line."""

    def __init__(self, port: int) -> None:
        self.sock = client_tls().wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10))
        self.buffer = b""
        self.greeting = self.line()

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def command(self, text: str) -> bytes:
        self.sock.sendall(text.encode() + b"\r\n")
        return self.line()

    def closed_by_server(self, wait: float) -> bool:
        deadline = time.monotonic() + wait
        self.sock.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return True
            if not chunk:
                return True
            self.buffer += chunk
        return False

    def close(self) -> None:
        self.sock.close()


def pop3_login(server, user: str = ALICE) -> RawLines:
    pop = RawLines(server.ports["pop3s"])
    assert pop.command(f"USER {user}").startswith(b"+OK")
    assert pop.command(f"PASS {PASSWORD}").startswith(b"+OK")
    return pop


def plain(user: str) -> str:
    return base64.b64encode(f"\0{user}\0{PASSWORD}".encode()).decode()


def submission_login(server, user: str = ALICE) -> RawLines:
    smtp = RawLines(server.ports["submissions"])
    smtp.sock.sendall(b"EHLO client.example\r\n")
    while not smtp.line().startswith(b"250 "):
        pass
    assert smtp.command(f"AUTH PLAIN {plain(user)}").startswith(b"235")
    return smtp


@pytest.fixture
def imap(server):
    imap = ImapTestServer(server)
    imap.deliver(message("for alice only"), to=ALICE)
    return imap


def test_removing_a_user_ends_their_imap_and_pop3_sessions_within_two_seconds(server, imap):
    selected = imap.raw(login=ALICE)
    selected.command("SELECT INBOX")
    idling = imap.raw(login=ALICE)
    idling.command("SELECT INBOX")
    idling.send(b"I1 IDLE\r\n")
    assert idling.line().startswith(b"+")
    pop = pop3_login(server)
    bob = imap.raw(login=BOB)
    alice = server.call(server.store.accounts.get_user(ALICE))
    assert server.app.logins.count(alice.id) == 3

    admin(server, "user", "remove", ALICE)

    closes_within(selected)
    closes_within(idling)
    closes_within(pop)
    assert b"* BYE This account is no longer available" in selected.buffer
    assert b"* BYE This account is no longer available" in idling.buffer
    assert b" OK " in bob.command("NOOP")[-1]  # another account's session goes on
    assert server.app.logins.count(alice.id) == 0


def test_the_bye_to_a_compressed_imap_session_is_compressed_too(server, imap):
    raw = imap.raw(login=ALICE)
    assert raw.command("COMPRESS DEFLATE")[-1].endswith(b"OK DEFLATE active")
    raw.start_compression()
    raw.command("SELECT INBOX")
    admin(server, "user", "remove", ALICE)
    closes_within(raw)
    assert b"* BYE This account is no longer available\r\n" in raw._inflate.decompress(raw.buffer)


def test_a_session_left_from_a_removed_user_reads_nothing_of_the_user_added_next(server, imap):
    """Remove alice and add her again at once, before the server can have noticed: the old
    connection still holds the old account's id, and every store call checks it."""
    old = imap.raw(login=ALICE)
    old.command("SELECT INBOX")
    admin(server, "user", "remove", ALICE)
    server.add_user(ALICE, PASSWORD)
    imap.deliver(message("new alice secret", body="The new account's mail.\r\n"), to=ALICE)

    seen = b""
    commands = ("FETCH 1:* (BODY.PEEK[] ENVELOPE)", "SELECT INBOX", "FETCH 1:* BODY.PEEK[]", 'LIST "" *')
    for command in commands:
        try:
            seen += b"\n".join(old.command(command))
        except (ConnectionError, OSError):
            break
    assert b"new alice secret" not in seen + old.buffer
    closes_within(old, ENDS_WITHIN + 1)
    fresh = imap.raw(login=ALICE)
    fresh.command("SELECT INBOX")
    assert b"new alice secret" in b"".join(fresh.command("FETCH 1:* ENVELOPE"))


def test_a_disabled_user_cannot_log_in_anywhere_until_enabled_again(server, imap):
    admin(server, "user", "disable", ALICE)

    refused = imap.raw()
    assert b"NO [AUTHENTICATIONFAILED]" in refused.command(f"LOGIN {ALICE} {quote(PASSWORD)}")[-1]
    pop = RawLines(server.ports["pop3s"])
    pop.command(f"USER {ALICE}")
    assert pop.command(f"PASS {PASSWORD}").startswith(b"-ERR [AUTH]")
    smtp = RawLines(server.ports["submissions"])
    smtp.sock.sendall(b"EHLO client.example\r\n")
    while not smtp.line().startswith(b"250 "):
        pass
    assert smtp.command(f"AUTH PLAIN {plain(ALICE)}").startswith(b"535 5.7.8")
    for client in (refused, pop, smtp):
        client.close()

    admin(server, "user", "enable", ALICE)

    imap.raw(login=ALICE).close()
    pop3_login(server).close()
    submission_login(server).close()


def test_disabling_ends_imap_pop3_and_submission_sessions(server, imap):
    session = imap.raw(login=ALICE)
    session.command("SELECT INBOX")
    pop = pop3_login(server)
    smtp = submission_login(server)
    bob = submission_login(server, BOB)

    admin(server, "user", "disable", ALICE)

    closes_within(session)
    closes_within(pop)
    closes_within(smtp)
    assert b"* BYE This account is no longer available" in session.buffer
    assert smtp.buffer.startswith(b"421 4.7.0 ")
    assert bob.command("NOOP").startswith(b"250")


def test_a_message_being_submitted_when_the_sender_is_disabled_is_not_accepted(server, imap):
    smtp = submission_login(server)
    assert smtp.command(f"MAIL FROM:<{ALICE}>").startswith(b"250")
    assert smtp.command(f"RCPT TO:<{BOB}>").startswith(b"250")
    assert smtp.command("DATA").startswith(b"354")
    smtp.sock.sendall(f"From: {ALICE}\r\nTo: {BOB}\r\nSubject: half sent\r\n\r\nThe first".encode())
    admin(server, "user", "disable", ALICE)
    closes_within(smtp)
    assert smtp.buffer.startswith(b"421 4.7.0 ")
    assert len(imap.mailbox_refs(address=BOB)[1]) == 0
    assert server.call(server.store.queue.count()) == 0


def test_a_pop3_session_ended_by_disabling_applies_no_deletions(server, imap):
    pop = pop3_login(server)
    assert pop.command("DELE 1").startswith(b"+OK")
    admin(server, "user", "disable", ALICE)
    closes_within(pop)
    admin(server, "user", "enable", ALICE)
    assert len(imap.mailbox_refs()[1]) == 1


def test_a_login_checked_before_disabling_and_registered_after_is_refused(server, imap):
    """The password was checked, then the account was disabled and the server learnt of it, and
    only then does the session register its login: it must not start."""
    before = server.call(server.store.accounts.get_user(ALICE))
    admin(server, "user", "disable", ALICE)
    admin(server, "user", "enable", ALICE)
    deadline = time.monotonic() + ENDS_WITHIN
    while server.app.logins.begin(before, lambda: None) is not None:
        assert time.monotonic() < deadline, "the server never learnt of the disabling"
        time.sleep(0.05)
    now = server.call(server.store.accounts.get_user(ALICE))
    assert now.session_generation > before.session_generation
    assert server.app.logins.begin(now, lambda: None) is not None


def test_mail_to_a_disabled_user_is_still_accepted(server, imap):
    admin(server, "user", "disable", ALICE)
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=10) as smtp:
        smtp.sendmail("carol@example.net", [ALICE], message("while disabled"))
    assert len(imap.mailbox_refs()[1]) == 2


def test_user_list_shows_disabled_users(server, imap, capsys):
    admin(server, "user", "disable", ALICE)
    capsys.readouterr()
    admin(server, "user", "list")
    listing = capsys.readouterr().out
    assert f"{ALICE}  used" in listing and "(disabled)" in listing.split(ALICE, 1)[1].splitlines()[0]
    assert "(disabled)" not in listing.split(BOB, 1)[1].splitlines()[0]


def test_a_serve_process_ends_the_sessions_of_a_user_another_process_removes(tmp_path):
    """As deployed: `tidings serve` and the admin's `tidings user remove` are two processes."""
    config = tmp_path / "tidings.toml"
    lines = [f'data_dir = "{tmp_path / "data"}"', 'hostname = "mail.example.test"']
    lines += ['default_domain = "example.test"', "allow_root = true"]  # pytest's tmp root is 0700
    if database := fresh_database_url():
        lines.append(f'database = "{database}"')
    lines += ["[listen]", 'imaps = ["127.0.0.1:0"]', 'pop3s = ["127.0.0.1:0"]']
    config.write_text("\n".join(lines) + "\n")

    def tidings(*args: str, stdin: str | None = None) -> None:
        command = [sys.executable, "-m", "tidings.cli", "--config", str(config), *args]
        done = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr

    serve = subprocess.Popen(
        [sys.executable, "-m", "tidings.cli", "--config", str(config), "serve"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        status = tmp_path / "data" / "status.json"
        deadline = time.monotonic() + 30
        while not status.exists():
            assert serve.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        listeners = json.loads(status.read_text())["listeners"]
        ports = {name: addresses[0][1] for name, addresses in listeners.items()}
        tidings("user", "add", ALICE, "--password-stdin", stdin=PASSWORD + "\n")
        imap = RawImap("127.0.0.1", ports["imaps"])
        assert b" OK " in imap.command(f"LOGIN {ALICE} {quote(PASSWORD)}")[-1]
        pop = RawLines(ports["pop3s"])
        pop.command(f"USER {ALICE}")
        assert pop.command(f"PASS {PASSWORD}").startswith(b"+OK")

        tidings("user", "remove", ALICE)

        closes_within(imap)
        closes_within(pop)
        assert b"* BYE This account is no longer available" in imap.buffer
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(20)


postgres_only = pytest.mark.skipif(
    not os.environ.get("TIDINGS_TEST_DATABASE"), reason="two nodes need TIDINGS_TEST_DATABASE"
)


@pytest.fixture
def two_nodes(make_server, tmp_path):
    shared = {"database": fresh_database_url(), "blob_dir": tmp_path / "shared-blobs"}
    first = make_server("n1", node_id="node-1", **shared)
    second = make_server("n2", node_id="node-2", **shared)
    ImapTestServer(first).deliver(message("for alice only"), to=ALICE)
    return first, second


def imap_login(node, user: str = ALICE) -> RawImap:
    raw = RawImap("127.0.0.1", node.ports["imaps"])
    assert b" OK " in raw.command(f"LOGIN {user} {quote(PASSWORD)}")[-1]
    raw.command("SELECT INBOX")
    return raw


@postgres_only
def test_removing_a_user_ends_their_sessions_on_every_node(two_nodes):
    first, second = two_nodes
    sessions = [imap_login(first), imap_login(second), pop3_login(second), submission_login(first)]
    admin(first, "user", "remove", ALICE)
    for session in sessions:
        closes_within(session)
    assert b"* BYE This account is no longer available" in sessions[1].buffer


@postgres_only
def test_notify_alone_ends_sessions_on_every_node_even_from_a_node_s_own_configuration(two_nodes):
    """Without the backstop reading of account_events, NOTIFY carries the command to both nodes,
    also when the command runs with node 1's configuration file (same node_id: not an echo)."""
    first, second = two_nodes
    for node in (first, second):  # stop the servers' readers of account_events
        reader = next(t for t in node.server.workers if t.get_name() == "account-events")
        node.loop.call_soon_threadsafe(reader.cancel)
    sessions = [imap_login(first), imap_login(second)]
    admin(first, "user", "disable", ALICE, node_id="node-1")
    for session in sessions:
        closes_within(session)
