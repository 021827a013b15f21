"""OfflineIMAP (8, Python 3) against our IMAP server: one-shot two-way syncs to a local Maildir.

Runs are `offlineimap -c rc -o -u basic`: one pass, and the "basic" UI, whose lines ("Copy message
UID 3 ...", "Adding flag S to 1 messages ...", "Deleting 1 messages ...") tell what a run changed.
Tool quirk: offlineimap checks the certificate's host name against `remotehost` even with
`sslcacertfile` pinned, and matches only DNS names, so the config connects to "localhost".
"""

from __future__ import annotations

import imaplib
import re
import subprocess
from pathlib import Path

import pytest

from tests.interop.conftest import (
    ALICE,
    PASSWORD,
    client_tls,
    maildir_tree,
    message,
    require_tool,
    set_local_flags,
)

pytestmark = pytest.mark.interop

CHANGE_LINES = re.compile(r"^(Copy message|Adding flag|Deleting flag|Deleting \d+ messages|Creating)", re.M)


class OfflineImap:
    def __init__(self, mail, tmp_path: Path) -> None:
        require_tool("offlineimap")
        self.mail = mail
        self.maildir = tmp_path / "Mail"
        self.maildir.mkdir()
        self.rc = tmp_path / "offlineimaprc"
        self.rc.write_text(
            "[general]\n"
            "accounts = tidings\n"
            f"metadata = {tmp_path / 'offlineimap-state'}\n"
            "\n"
            "[Account tidings]\n"
            "localrepository = local\n"
            "remoterepository = remote\n"
            "\n"
            "[Repository local]\n"
            "type = Maildir\n"
            f"localfolders = {self.maildir}\n"
            "\n"
            "[Repository remote]\n"
            "type = IMAP\n"
            "remotehost = localhost\n"
            f"remoteport = {mail.ports['imaps']}\n"
            f"remoteuser = {ALICE}\n"
            f"remotepass = {PASSWORD}\n"
            "ssl = yes\n"
            f"sslcacertfile = {mail.cert_path}\n"
        )

    def sync(self) -> str:
        """One pass; the UI output, whose change lines say what it did."""
        result = subprocess.run(
            ["offlineimap", "-c", str(self.rc), "-o", "-u", "basic"],
            capture_output=True,
            text=True,
            timeout=90,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0 and "ERROR" not in output, output
        return output

    def files(self, box: str = "INBOX") -> dict[str, Path]:
        """Message files of one local folder by server UID (",U=n," in the name)."""
        out = {}
        for sub in ("new", "cur"):
            for path in (self.maildir / box / sub).iterdir():
                match = re.search(r",U=(\d+),", path.name)
                assert match, path.name
                out[match.group(1)] = path
        return out

    def tree(self) -> list[str]:
        return maildir_tree(self.maildir)


def imaps(mail) -> imaplib.IMAP4_SSL:
    client = imaplib.IMAP4_SSL("127.0.0.1", mail.ports["imaps"], ssl_context=client_tls(), timeout=10)
    client.login(ALICE, PASSWORD)
    return client


@pytest.fixture
def offlineimap(mail, tmp_path) -> OfflineImap:
    for n in range(3):
        mail.deliver(message(f"before sync {n}"))
    return OfflineImap(mail, tmp_path)


def test_first_run_copies_every_mailbox_and_message(mail, offlineimap):
    output = offlineimap.sync()
    assert len(re.findall(r"^Copy message UID", output, re.M)) == 3
    for box in ("INBOX", "Drafts", "Sent", "Trash", "Junk", "Archive"):
        assert (offlineimap.maildir / box / "cur").is_dir()
    files = offlineimap.files()
    assert sorted(files) == [str(ref.uid) for ref in mail.refs()]
    for ref in mail.refs():
        stored = mail.running.call(mail.running.store.mailboxes.read_blob(ref.blob_hash))
        assert files[str(ref.uid)].read_bytes().replace(b"\r\n", b"\n") == stored.replace(b"\r\n", b"\n")


def test_local_changes_reach_the_server(mail, offlineimap):
    offlineimap.sync()
    files = offlineimap.files()
    set_local_flags(files["1"], "FS")
    files["2"].unlink()
    (offlineimap.maildir / "Archive" / "new" / "1700000000_0.local.host:2,S").write_bytes(
        message("written locally").replace(b"\r\n", b"\n")
    )
    offlineimap.sync()
    flags = {ref.uid: ref.flags for ref in mail.refs()}
    assert flags == {1: {"\\Flagged", "\\Seen"}, 3: frozenset()}
    archived = mail.refs("Archive")
    assert mail.subjects("Archive") == ["written locally"] and archived[0].flags == {"\\Seen"}
    # the uploaded message's local file now carries its server UID (found through APPENDUID)
    assert list(offlineimap.files("Archive")) == [str(archived[0].uid)]


def test_server_changes_reach_the_maildir(mail, offlineimap):
    offlineimap.sync()
    mail.deliver(message("after first sync"))
    client = imaps(mail)
    client.select("INBOX")
    client.uid("STORE", "1", "+FLAGS.SILENT", r"(\Seen \Answered)")
    client.uid("STORE", "2", "+FLAGS.SILENT", r"(\Deleted)")
    client.expunge()
    client.logout()
    offlineimap.sync()
    files = offlineimap.files()
    assert sorted(files) == ["1", "3", "4"]
    assert files["1"].name.endswith(":2,RS")
    assert b"Subject: after first sync" in files["4"].read_bytes()


def test_a_second_run_with_no_changes_changes_nothing(mail, offlineimap):
    offlineimap.sync()
    set_local_flags(offlineimap.files()["1"], "S")
    assert CHANGE_LINES.search(offlineimap.sync())  # the flag is pushed: the pattern does see changes
    tree = offlineimap.tree()
    before = mail.status()
    output = offlineimap.sync()
    assert CHANGE_LINES.findall(output) == [], output
    assert offlineimap.tree() == tree
    assert mail.status().highestmodseq == before.highestmodseq
