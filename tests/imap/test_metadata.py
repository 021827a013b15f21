"""METADATA (RFC 5464): server and mailbox entries over a real IMAP connection, with the RFC's
section 4 examples."""

from __future__ import annotations

import pytest

from tests.imap.session_support import ALICE, BOB, ImapTestServer
from tidings.store.metadata import MAX_ENTRIES, MAX_VALUE_BYTES


@pytest.fixture
def imap(server) -> ImapTestServer:
    return ImapTestServer(server)


def ok(lines: list[bytes]) -> list[bytes]:
    assert lines[-1].split()[1] == b"OK", lines[-1]
    return lines[:-1]


def test_metadata_is_advertised(imap):
    raw = imap.raw(login=ALICE)
    assert b"METADATA" in raw.command("CAPABILITY")[0].split()


def test_server_and_mailbox_entries_rfc_examples(imap):
    """RFC 5464 4.2.1 and 4.3.1."""
    raw = imap.raw(login=ALICE)
    ok(raw.command('SETMETADATA "" (/shared/comment "Shared comment")'))
    assert ok(raw.command('GETMETADATA "" /shared/comment')) == [
        b'* METADATA "" (/shared/comment "Shared comment")'
    ]
    ok(raw.command('SETMETADATA INBOX (/shared/comment "Shared comment" /private/comment "My own comment")'))
    assert ok(raw.command('GETMETADATA "INBOX" /private/comment')) == [
        b'* METADATA INBOX (/private/comment "My own comment")'
    ]
    assert ok(raw.command('GETMETADATA "INBOX" (/shared/comment /private/comment)')) == [
        b'* METADATA INBOX (/private/comment "My own comment" /shared/comment "Shared comment")'
    ]
    # entries that do not exist are left out; none at all means no METADATA response
    assert ok(raw.command("GETMETADATA INBOX (/private/nothing /shared/comment)")) == [
        b'* METADATA INBOX (/shared/comment "Shared comment")'
    ]
    assert ok(raw.command("GETMETADATA INBOX /private/nothing")) == []
    # NIL removes (4.3.1)
    ok(raw.command("SETMETADATA INBOX (/private/comment NIL)"))
    assert ok(raw.command("GETMETADATA INBOX /private/comment")) == []


def test_values_with_line_breaks_travel_as_literals(imap):
    """RFC 5464 4.3.1: a value sent as a literal comes back as one."""
    raw = imap.raw(login=ALICE)
    tag = raw.next_tag()
    raw.send(f"{tag} SETMETADATA INBOX (/private/comment {{33}}\r\n".encode())
    assert raw.line().startswith(b"+")
    raw.send(b"My new comment across\r\ntwo lines.)\r\n")
    assert raw.until_tagged(tag)[-1].startswith(tag.encode() + b" OK")
    assert ok(raw.command("GETMETADATA INBOX /private/comment")) == [
        b"* METADATA INBOX (/private/comment {33}\r\nMy new comment across\r\ntwo lines.)"
    ]
    ok(raw.command(b"SETMETADATA INBOX (/private/bin ~{3+}\r\na\x00b)"))
    assert ok(raw.command("GETMETADATA INBOX /private/bin")) == [
        b"* METADATA INBOX (/private/bin ~{3}\r\na\x00b)"
    ]


def test_maxsize_leaves_long_values_out_and_says_so(imap):
    """RFC 5464 4.2.1 (MAXSIZE) -> [METADATA LONGENTRIES n], n the largest value left out."""
    raw = imap.raw(login=ALICE)
    ok(raw.command(f'SETMETADATA INBOX (/shared/comment "{"x" * 2199}" /private/comment "My own comment")'))
    lines = raw.command('GETMETADATA (MAXSIZE 1024) "INBOX" ("/shared/comment" "/private/comment")')
    assert lines[0] == b'* METADATA INBOX (/private/comment "My own comment")'
    assert lines[1].startswith(b"T3 OK [METADATA LONGENTRIES 2199]")
    # the options may also follow the mailbox name, as the RFC's examples write them
    lines = raw.command('GETMETADATA "INBOX" (MAXSIZE 10) ("/shared/comment" "/private/comment")')
    assert lines == [b"T4 OK [METADATA LONGENTRIES 2199] GETMETADATA completed"]


def test_depth_reaches_children_or_all_descendants(imap):
    """RFC 5464 4.2.2 (DEPTH 1 on /private/filters/values)."""
    raw = imap.raw(login=ALICE)
    ok(
        raw.command(
            'SETMETADATA INBOX (/private/filters/values/small "SMALLER 5000" '
            '/private/filters/values/boss "FROM \\"boss@example.com\\"" '
            '/private/filters/values/deep/er "x" /private/filters "top")'
        )
    )
    assert ok(raw.command('GETMETADATA (DEPTH 1) "INBOX" "/private/filters/values"')) == [
        b'* METADATA INBOX (/private/filters/values/boss "FROM \\"boss@example.com\\"" '
        b'/private/filters/values/small "SMALLER 5000")'
    ]
    assert ok(raw.command("GETMETADATA (DEPTH infinity) INBOX /private/filters/values")) == [
        b'* METADATA INBOX (/private/filters/values/boss "FROM \\"boss@example.com\\"" '
        b'/private/filters/values/deep/er "x" /private/filters/values/small "SMALLER 5000")'
    ]
    assert ok(raw.command("GETMETADATA (DEPTH 0) INBOX /private/filters")) == [
        b'* METADATA INBOX (/private/filters "top")'
    ]
    lines = ok(raw.command("GETMETADATA (DEPTH infinity) INBOX /"))
    assert len(lines) == 1 and lines[0].count(b"/private/filters") == 4
    # entry names are case-insensitive
    assert ok(raw.command("GETMETADATA INBOX /PRIVATE/Filters")) == [
        b'* METADATA INBOX (/private/filters "top")'
    ]


def test_limits_refuse_the_whole_command(imap):
    """RFC 5464 4.3: NO [METADATA MAXSIZE n] and NO [METADATA TOOMANY]; nothing is set."""
    raw = imap.raw(login=ALICE)
    big = "x" * (MAX_VALUE_BYTES + 1)
    tag = raw.next_tag()
    raw.send(f'{tag} SETMETADATA INBOX (/private/a "a" /private/big {{{len(big)}+}}\r\n{big})\r\n'.encode())
    assert raw.until_tagged(tag)[-1].startswith(f"{tag} NO [METADATA MAXSIZE {MAX_VALUE_BYTES}]".encode())
    assert ok(raw.command("GETMETADATA INBOX /private/a")) == []
    many = " ".join(f'/private/e{n} "v"' for n in range(MAX_ENTRIES + 1))
    assert raw.command(f"SETMETADATA INBOX ({many})")[-1].startswith(b"T4 NO [METADATA TOOMANY]")
    assert ok(raw.command("GETMETADATA INBOX /private/e1")) == []


def test_bad_entry_names_and_unknown_mailboxes(imap):
    raw = imap.raw(login=ALICE)
    for bad in ("/private//x", "/private/x/", "/private/x*", "comment", "/other/x", "/private/vendor/acme"):
        assert raw.command(f'SETMETADATA INBOX ({bad} "v")')[-1].split()[1] == b"BAD", bad
    assert raw.command("GETMETADATA (DEPTH 2) INBOX /private")[-1].split()[1] == b"BAD"
    assert raw.command("GETMETADATA (COLOUR 1) INBOX /private")[-1].split()[1] == b"BAD"
    assert b"NO [NONEXISTENT]" in raw.command('SETMETADATA Nowhere (/private/x "v")')[-1]
    assert b"NO [NONEXISTENT]" in raw.command("GETMETADATA Nowhere /private/x")[-1]
    ok(raw.command('SETMETADATA INBOX (/shared/vendor/acme/colour "blue")'))


def test_entries_are_the_accounts_own_and_follow_their_mailbox(imap):
    alice = imap.raw(login=ALICE)
    ok(alice.command('SETMETADATA "" (/shared/comment "Alice was here" /private/comment "mine")'))
    ok(alice.command("CREATE Projects"))
    ok(alice.command('SETMETADATA Projects (/private/comment "plans")'))
    bob = imap.raw(login=BOB)
    ok(bob.command("CREATE Projects"))
    assert ok(bob.command('GETMETADATA (DEPTH infinity) "" /')) == []
    assert ok(bob.command("GETMETADATA Projects /private/comment")) == []
    ok(alice.command("RENAME Projects Work"))
    assert ok(alice.command("GETMETADATA Work /private/comment")) == [
        b'* METADATA Work (/private/comment "plans")'
    ]
    ok(alice.command("DELETE Work"))
    ok(alice.command("CREATE Work"))
    assert ok(alice.command("GETMETADATA Work /private/comment")) == []
