"""A server stopped and started again on the same data directory (and database) serves the same
mail: messages, flags, UIDVALIDITY, UIDNEXT and HIGHESTMODSEQ are unchanged, so a client's cached
state (RFC 9051 2.3.1.1, RFC 7162 CONDSTORE/QRESYNC) stays valid across restarts."""

from __future__ import annotations

import pytest
from imapclient import IMAPClient

from tests.interop.conftest import ALICE, PASSWORD, MailServer, client_tls, message
from tests.support.running import RunningServer

pytestmark = pytest.mark.interop


def imaps(mail) -> IMAPClient:
    client = IMAPClient("127.0.0.1", port=mail.ports["imaps"], ssl=True, ssl_context=client_tls(), timeout=10)
    client.login(ALICE, PASSWORD)
    return client


def observed(mail) -> dict:
    """What a client sees of the account: per mailbox the SELECT state and every message."""
    client = imaps(mail)
    client.enable("CONDSTORE")
    out = {}
    for _, _, name in client.list_folders():
        # EXAMINE: looking must not take \Recent away (it too survives the restart).
        selected = client.select_folder(name, readonly=True)
        uids = client.search("ALL") if selected[b"EXISTS"] else []
        messages = client.fetch(uids, ["FLAGS", "MODSEQ", "BODY.PEEK[]", "INTERNALDATE"]) if uids else {}
        out[name] = {
            "uidvalidity": selected[b"UIDVALIDITY"],
            "uidnext": selected[b"UIDNEXT"],
            "highestmodseq": selected[b"HIGHESTMODSEQ"],
            "messages": sorted(
                (uid, sorted(d[b"FLAGS"]), d[b"MODSEQ"], d[b"BODY[]"], d[b"INTERNALDATE"])
                for uid, d in messages.items()
            ),
        }
    client.logout()
    return out


def test_messages_flags_and_uid_state_survive_a_restart(tmp_path):
    first = RunningServer(tmp_path / "data").start()
    try:
        mail = MailServer(first)
        for n in range(4):
            mail.deliver(message(f"m{n}"))
        client = imaps(mail)
        client.create_folder("Projects")
        client.select_folder("INBOX")
        client.add_flags([1], [b"\\Flagged", b"$Label1"])
        client.add_flags([2], [b"\\Deleted"])
        client.expunge()
        client.copy([3], "Projects")
        client.logout()
        before = observed(mail)
    finally:
        first.stop()

    second = RunningServer(tmp_path / "data", database=first.config.database).start()
    try:
        mail = MailServer(second, create_user=False)
        assert observed(mail) == before
        assert before["INBOX"]["uidnext"] == 5 and before["Projects"]["messages"]

        # New mail continues the same sequences: no UID or modseq is reused.
        client = imaps(mail)
        client.enable("CONDSTORE")
        result = client.append("INBOX", message("after restart"))
        assert b"APPENDUID" in result
        selected = client.select_folder("INBOX")
        assert selected[b"UIDNEXT"] == 6
        assert selected[b"HIGHESTMODSEQ"] > before["INBOX"]["highestmodseq"]
        # QRESYNC-style resync from the pre-restart state reports only the new message.
        since = before["INBOX"]["highestmodseq"]
        changed = client.fetch(client.search("ALL"), ["FLAGS"], modifiers=[f"CHANGEDSINCE {since}"])
        assert list(changed) == [5]
        client.logout()
    finally:
        second.stop()
