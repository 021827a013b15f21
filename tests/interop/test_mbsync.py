"""mbsync (isync 1.4) against our IMAP server: a two-way sync of a whole account to a local Maildir.

mbsync is a strict client: it relies on UIDPLUS, stable UIDs and UIDVALIDITY, and on flags and
expunges round-tripping exactly.  Each test starts from a first full sync, changes one side, syncs
again and checks both sides.  Tool quirk: mbsync 1.4 checks the certificate's host name even when
the certificate is pinned with CertificateFile, and matches only DNS names (not the 127.0.0.1 IP
address entry), so the config connects to "localhost", which our self-signed certificate names.
"""

from __future__ import annotations

import imaplib
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

IMAP_WRITES = ("APPEND", "STORE", "EXPUNGE", "CREATE", "DELETE", "MOVE", "COPY")


class Mbsync:
    """One mbsync configuration: the account on our server, synced to `maildir`."""

    def __init__(self, mail, tmp_path: Path, listener: str = "imaps") -> None:
        require_tool("mbsync")
        self.mail = mail
        self.maildir = tmp_path / "Mail"
        self.maildir.mkdir()
        self.rc = tmp_path / "mbsyncrc"
        self.rc.write_text(
            "IMAPAccount tidings\n"
            "Host localhost\n"
            f"Port {mail.ports[listener]}\n"
            f"User {ALICE}\n"
            f'Pass "{PASSWORD}"\n'
            f"SSLType {'IMAPS' if listener == 'imaps' else 'STARTTLS'}\n"
            f"CertificateFile {mail.cert_path}\n"
            "\n"
            "IMAPStore remote\n"
            "Account tidings\n"
            "\n"
            "MaildirStore local\n"
            f"Path {self.maildir}/\n"
            f"Inbox {self.maildir}/INBOX\n"
            "SubFolders Verbatim\n"
            "\n"
            "Channel account\n"
            "Far :remote:\n"
            "Near :local:\n"
            "Patterns *\n"
            "Create Both\n"
            "Expunge Both\n"
            "SyncState *\n"
        )

    def sync(self) -> list[str]:
        """Run one sync; the IMAP commands mbsync sent (from its debug output)."""
        result = subprocess.run(
            ["mbsync", "-c", str(self.rc), "-D", "-a"], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr[-4000:] + "\n...\n" + result.stdout[-2000:]
        return [line[len("F: >>> ") :] for line in result.stdout.splitlines() if line.startswith("F: >>> ")]

    def files(self, box: str = "INBOX") -> dict[str, Path]:
        """Message files of one local folder by their mbsync UID (the ",U=n" part of the name)."""
        out = {}
        for sub in ("new", "cur"):
            for path in (self.maildir / box / sub).iterdir():
                uid = path.name.split(",U=")[1].split(":")[0]
                out[uid] = path
        return out

    def tree(self) -> list[str]:
        return maildir_tree(self.maildir)


@pytest.fixture
def mbsync(mail, tmp_path) -> Mbsync:
    for n in range(3):
        mail.deliver(message(f"before sync {n}"))
    return Mbsync(mail, tmp_path)


def test_first_sync_copies_every_mailbox_and_message(mail, mbsync):
    mbsync.sync()
    for box in ("INBOX", "Drafts", "Sent", "Trash", "Junk", "Archive"):
        assert (mbsync.maildir / box / "cur").is_dir()
    files = mbsync.files()
    assert sorted(files) == [str(ref.uid) for ref in mail.refs()]
    for ref in mail.refs():
        stored = mail.running.call(mail.running.store.mailboxes.read_blob(ref.blob_hash))
        # mbsync stores LF line ends and may add its X-TUID: tracking header
        local = files[str(ref.uid)].read_bytes()
        local = b"\n".join(line for line in local.split(b"\n") if not line.startswith(b"X-TUID: "))
        assert local == stored.replace(b"\r\n", b"\n")


def test_sync_over_starttls_on_the_plain_port(mail, tmp_path):
    mail.deliver(message("over starttls"))
    mbsync = Mbsync(mail, tmp_path, listener="imap")
    commands = mbsync.sync()
    assert commands[0].endswith("STARTTLS")
    assert [path.read_text().count("Subject: over starttls") for path in mbsync.files().values()] == [1]


def test_local_flags_reach_the_server(mail, mbsync):
    mbsync.sync()
    first, second = sorted(mbsync.files().items())[:2]
    set_local_flags(first[1], "FS")
    set_local_flags(second[1], "RS")
    mbsync.sync()
    flags = {str(ref.uid): ref.flags for ref in mail.refs()}
    assert flags[first[0]] == {"\\Flagged", "\\Seen"}
    assert flags[second[0]] == {"\\Answered", "\\Seen"}


def test_server_side_changes_reach_the_maildir(mail, mbsync):
    mbsync.sync()
    mail.deliver(message("after first sync"))
    with imaplib.IMAP4_SSL("127.0.0.1", mail.ports["imaps"], ssl_context=client_tls(), timeout=10) as client:
        client.login(ALICE, PASSWORD)
        client.select("INBOX")
        client.uid("STORE", "1", "+FLAGS.SILENT", r"(\Seen \Flagged)")
    mbsync.sync()
    files = mbsync.files()
    assert len(files) == 4
    assert b"Subject: after first sync" in files["4"].read_bytes()
    assert files["1"].name.endswith(":2,FS")


def test_a_new_local_message_is_appended_on_the_server(mail, mbsync):
    mbsync.sync()
    (mbsync.maildir / "Archive" / "new" / "1700000000.local.host").write_bytes(
        message("written locally").replace(b"\r\n", b"\n")
    )
    mbsync.sync()
    assert mail.subjects("Archive") == ["written locally"]
    assert "written locally" in mbsync.files("Archive")["1"].read_text()  # renamed with its new UID


def test_a_local_deletion_expunges_the_message_on_the_server(mail, mbsync):
    mbsync.sync()
    uid, path = sorted(mbsync.files().items())[1]
    path.unlink()
    mbsync.sync()
    assert uid not in {str(ref.uid) for ref in mail.refs()}
    assert len(mail.refs()) == 2


def test_a_server_expunge_deletes_the_local_file(mail, mbsync):
    mbsync.sync()
    with imaplib.IMAP4_SSL("127.0.0.1", mail.ports["imaps"], ssl_context=client_tls(), timeout=10) as client:
        client.login(ALICE, PASSWORD)
        client.select("INBOX")
        client.uid("STORE", "2", "+FLAGS.SILENT", r"(\Deleted)")
        client.expunge()
    mbsync.sync()
    assert sorted(mbsync.files()) == ["1", "3"]


def test_a_second_sync_with_no_changes_changes_nothing(mail, mbsync):
    mbsync.sync()
    set_local_flags(sorted(mbsync.files().values())[0], "S")
    mbsync.sync()
    tree = mbsync.tree()
    before = mail.status()
    commands = mbsync.sync()
    writes = [cmd for cmd in commands if any(word in cmd.upper().split() for word in IMAP_WRITES)]
    assert writes == []
    assert mbsync.tree() == tree
    assert mail.status().highestmodseq == before.highestmodseq


def test_folders_created_on_either_side_are_created_on_the_other(mail, mbsync):
    # ASCII names only: mbsync 1.4 sends local names as raw UTF-8 without enabling UTF8=ACCEPT
    # (CREATE "Projects/B\xc3\xbcro"), which our server refuses as not modified UTF-7 (RFC 3501
    # 5.1.3): a limitation of the tool, not ours.
    mbsync.sync()
    for sub in ("cur", "new", "tmp"):
        (mbsync.maildir / "Projects" / "Office" / sub).mkdir(parents=True)
    client = imaplib.IMAP4_SSL("127.0.0.1", mail.ports["imaps"], ssl_context=client_tls(), timeout=10)
    client.login(ALICE, PASSWORD)
    client.create("Reports/2024")
    client.logout()
    mbsync.sync()
    assert {"Projects", "Projects/Office", "Reports/2024"} <= set(mail.mailbox_names())
    assert (mbsync.maildir / "Reports" / "2024" / "cur").is_dir()
