"""One account never sees another's data through IMAP: not through a reused row id, not through a
session left open when its account was removed, and not by naming another account's ids."""

from __future__ import annotations

from tests.imap.session_support import ALICE, BOB, ImapTestServer, message
from tidings.store.compaction import compact


def test_a_message_reusing_a_compacted_message_id_shows_its_own_envelope(server):
    """A summary cached for a message must not be served for a later message of another account,
    even after the first one was expunged and compaction removed its row."""
    imap = ImapTestServer(server)
    imap.deliver(message("alice private matter"), to=ALICE)
    alice = imap.raw(login=ALICE)
    alice.command("SELECT INBOX")
    assert b"alice private matter" in b"".join(alice.command("FETCH 1 (ENVELOPE BODYSTRUCTURE)"))
    alice.command("STORE 1 +FLAGS (\\Deleted)")
    alice.command("EXPUNGE")
    report = server.call(compact(server.store.db, server.store.blobs))
    assert report.messages == 1

    imap.deliver(message("bob own subject", body="Different body.\r\n"), to=BOB)
    bob = imap.raw(login=BOB)
    bob.command("SELECT INBOX")
    fetched = b"".join(bob.command("FETCH 1 (ENVELOPE BODYSTRUCTURE)"))
    assert b"bob own subject" in fetched
    assert b"alice private matter" not in fetched
    searched = bob.command('SEARCH SUBJECT "alice private"')
    assert b"* SEARCH" in searched and searched[0].strip() == b"* SEARCH"
    alice.close()
    bob.close()
