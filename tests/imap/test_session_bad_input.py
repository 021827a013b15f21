"""IMAP session: malformed commands, literals (synchronising, LITERAL+, oversized, unbalanced)
and floods get clear tagged replies, leave the store untouched and do not hurt other sessions."""

from __future__ import annotations

import contextlib
import os
import time

import pytest

from tests.imap.session_support import ALICE, PASSWORD, ImapTestServer, RawImap, message
from tidings.config import Limits


@pytest.fixture
def imap(server) -> ImapTestServer:
    running = ImapTestServer(server)
    running.deliver(message("only"))
    return running


def store_snapshot(imap):
    _, refs = imap.mailbox_refs()
    store = imap.running.store

    async def names():
        account = await store.accounts.get_user(ALICE)
        return sorted(box.name for box in await store.mailboxes.list(account.id))

    return [(ref.uid, ref.flags) for ref in refs], imap.running.call(names())


def test_malformed_commands_get_bad_with_tag_and_change_nothing(imap):
    before = store_snapshot(imap)
    raw = imap.raw(login=ALICE)
    raw.command("SELECT INBOX")
    for text, tag in (
        (b"X1 FETCH 1 (FLAGS", b"X1 BAD"),
        (b"X2 STORE 1 +FLAGS", b"X2 BAD"),
        (b"X3 STORE 1 BOGUS (\\Seen)", b"X3 BAD"),
        (b"X4 UID FETCH x FLAGS", b"X4 BAD"),
        (b"X5 CREATE", b"X5 BAD"),
        (b"X6 SELECT \xff\xfe", b"X6 BAD"),
        (b"X7 COPY 1", b"X7 BAD"),
        (b'X8 APPEND INBOX (\\Seen) "not-a-date" {3+}\r\nabc', b"X8 BAD"),
    ):
        raw.send(text + b"\r\n")
        reply = raw.until_tagged(text.split(b" ")[0].decode())[-1]
        assert reply.startswith(tag), (text, reply)
    assert raw.command("NOOP")[-1].endswith(b"OK NOOP completed")
    assert store_snapshot(imap) == before


def test_line_without_a_tag_gets_untagged_bad(imap):
    raw = imap.raw()
    raw.send(b"\x00\x01garbage\r\n")
    assert raw.line().startswith(b"* BAD")
    raw.send(b"+ also garbage\r\n")
    assert raw.line().startswith(b"* BAD")
    assert raw.command("CAPABILITY")[-1].endswith(b"OK CAPABILITY completed")


def test_unknown_mailbox_is_nonexistent(imap):
    raw = imap.raw(login=ALICE)
    assert b"NO [NONEXISTENT]" in raw.command("SELECT Nowhere")[-1]
    assert b"NO [NONEXISTENT]" in raw.command("STATUS Nowhere (MESSAGES)")[-1]
    assert b"NO [NONEXISTENT]" in raw.command("DELETE Nowhere")[-1]


def test_synchronising_literal_waits_for_continuation(imap):
    raw = imap.raw()
    raw.send(b"L1 LOGIN {%d}\r\n" % len(ALICE))
    assert raw.line().startswith(b"+ ")
    raw.send(ALICE.encode() + b" {%d}\r\n" % len(PASSWORD))
    assert raw.line().startswith(b"+ ")
    raw.send(PASSWORD.encode() + b"\r\n")
    assert raw.line().startswith(b"L1 OK")


def test_literal_plus_append_in_one_write(imap):
    raw = imap.raw(login=ALICE)
    body = message("literal plus")
    raw.send(b"A1 APPEND INBOX {%d+}\r\n%s\r\nA2 NOOP\r\n" % (len(body), body))
    lines = raw.until_tagged("A2")
    assert any(line.startswith(b"A1 OK [APPENDUID") for line in lines)
    assert len(imap.mailbox_refs()[1]) == 2


def test_oversized_synchronising_literal_is_refused_without_continuation(make_server):
    running = make_server(limits=Limits(imap_literal=1000), listeners=("imaps",))
    running.add_user(ALICE, PASSWORD)
    raw = RawImap("127.0.0.1", running.ports["imaps"])
    raw.command(f'LOGIN {ALICE} "{PASSWORD}"')
    raw.send(b"A1 APPEND INBOX {5000}\r\n")
    assert raw.line().startswith(b"A1 NO [TOOBIG]")
    assert raw.command("NOOP")[-1].endswith(b"OK NOOP completed")


def test_oversized_non_synchronising_literal_closes_the_connection(make_server):
    running = make_server(limits=Limits(imap_literal=1000), listeners=("imaps",))
    running.add_user(ALICE, PASSWORD)
    raw = RawImap("127.0.0.1", running.ports["imaps"])
    raw.command(f'LOGIN {ALICE} "{PASSWORD}"')
    raw.send(b"A1 APPEND INBOX {5000+}\r\n" + b"x" * 2000)
    assert raw.closed_by_server()
    assert b"TOOBIG" in raw.buffer and b"* BYE" in raw.buffer


def test_unbalanced_literal_is_consumed_as_data_then_rejected(imap):
    raw = imap.raw(login=ALICE)
    # The literal announces 10 bytes but the client sends a short line: the next command's
    # bytes complete the literal, and the damaged command is rejected as a whole.
    raw.send(b"U1 SELECT {10+}\r\nINBOX\r\nU2 NOOP\r\nU3 NOOP\r\n")
    lines = raw.until_tagged("U3")
    assert any(line.startswith(b"U1 BAD") for line in lines)
    assert lines[-1] == b"U3 OK NOOP completed"


def test_overlong_line_is_bad_and_the_session_continues(imap):
    raw = imap.raw(login=ALICE)
    raw.send(b"L1 NOOP " + b"x" * 200_000 + b"\r\n")
    assert raw.line().startswith(b"L1 BAD")
    assert raw.command("NOOP")[-1].endswith(b"OK NOOP completed")


def test_garbage_flood_is_disconnected_and_others_are_unharmed(imap):
    bystander = imap.raw(login=ALICE)
    bystander.command("SELECT INBOX")
    flooder = imap.raw()
    junk = b"".join(os.urandom(40).replace(b"\n", b"") + b"\r\n" for _ in range(5000))
    started = time.monotonic()
    with contextlib.suppress(OSError):  # the server may hang up while we are still sending
        flooder.send(junk)
    assert flooder.closed_by_server(wait=10)
    assert b"BYE Too many invalid commands" in flooder.buffer
    assert bystander.command("FETCH 1 UID")[0] == b"* 1 FETCH (UID 1)"
    assert time.monotonic() - started < 10


def test_login_name_tricks_fail_cleanly(imap):
    raw = imap.raw()
    assert b"NO [AUTHENTICATIONFAILED]" in raw.command('LOGIN "alice@example.test\\"" x')[-1]
    assert b"NO [AUTHENTICATIONFAILED]" in raw.command(f'LOGIN "{"a" * 400}" x')[-1]
    assert raw.command("AUTHENTICATE PLAIN !!!!")[-1].startswith(b"T3 BAD")
    assert b"NO" in raw.command("AUTHENTICATE CRAM-MD5")[-1]


# --------------------------------------------------------------------------- literals before login


def test_before_login_literal_minus_is_advertised_and_literal_plus_after(imap):
    raw = imap.raw()
    assert b"LITERAL-" in raw.greeting and b"LITERAL+" not in raw.greeting
    caps = raw.command("CAPABILITY")[0]
    assert b"LITERAL-" in caps and b"LITERAL+" not in caps
    raw.command(f'LOGIN {ALICE} "{PASSWORD}"')
    caps = raw.command("CAPABILITY")[0]
    assert b"LITERAL+" in caps and b"LITERAL-" not in caps


def test_before_login_a_large_synchronising_literal_is_refused_and_the_session_goes_on(imap):
    raw = imap.raw()
    raw.send(b"A1 LOGIN {100000}\r\n")
    assert raw.line().startswith(b"A1 NO [TOOBIG]")
    assert raw.command(f'LOGIN {ALICE} "{PASSWORD}"')[-1].startswith(b"T1 OK")


def test_before_login_a_large_non_synchronising_literal_is_bad_and_closes_at_once(imap):
    raw = imap.raw()
    # RFC 7888 section 4: BAD [TOOBIG], then the bytes are not read as commands (we close).
    raw.send(b"A1 LOGIN {100000+}\r\n" + b"x" * 9000)
    assert raw.closed_by_server()
    assert b"A1 BAD [TOOBIG]" in raw.buffer and b"* BYE" in raw.buffer


def test_before_login_literals_of_one_command_are_bounded_in_total(imap):
    raw = imap.raw()
    raw.send(b"A1 LOGIN {5000+}\r\n" + b"u" * 5000 + b" {5000+}\r\n" + b"p" * 5000 + b"\r\n")
    # The second literal passes 8 KiB: refused, its bytes skipped (RFC 7888 section 4).
    assert raw.line().startswith(b"A1 BAD [TOOBIG]")
    assert raw.command("NOOP")[-1].endswith(b"OK NOOP completed")


def test_commands_pipelined_behind_login_get_the_post_login_literal_limit(imap):
    raw = imap.raw()
    body = message("pipelined") + b"x" * 20_000 + b"\r\n"
    raw.send(
        f'L1 LOGIN {ALICE} "{PASSWORD}"\r\n'.encode() + b"A1 APPEND INBOX {%d+}\r\n%s\r\n" % (len(body), body)
    )
    raw.until_tagged("L1")
    assert raw.until_tagged("A1")[-1].startswith(b"A1 OK [APPENDUID")
