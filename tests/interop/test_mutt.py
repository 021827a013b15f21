"""mutt (2.2, GnuTLS build) against our IMAP and submission servers, driven through tmux.

mutt is interactive, so each test runs it in a detached tmux session of its own (a private tmux
socket per test), types keys with `send-keys` and reads the screen with `capture-pane`; every wait
has a timeout and a failure shows the last screen.  The IMAPS certificate is trusted through
`certificate_file` (mutt then asks nothing) and checked against the host name, so the folder URL
names "localhost", which our self-signed certificate lists.  Sending uses mutt's batch mode (no
terminal needed) through implicit-TLS submission, with a copy saved to the IMAP Sent folder.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.interop.conftest import ALICE, PASSWORD, message, require_tool, wait_until

pytestmark = pytest.mark.interop


class Mutt:
    """mutt on the account's IMAPS folders inside a private tmux server."""

    def __init__(self, mail, tmp_path: Path) -> None:
        require_tool("mutt")
        require_tool("tmux")
        self.mail = mail
        self.home = tmp_path / "mutt-home"
        self.home.mkdir()
        self.socket = tmp_path / "tmux.sock"
        self.rc = self.home / "muttrc"
        user = ALICE.replace("@", "%40")
        self.rc.write_text(
            f'set folder="imaps://{user}@localhost:{mail.ports["imaps"]}/"\n'
            'set spoolfile="+INBOX"\n'
            f'set imap_pass="{PASSWORD}"\n'
            f'set certificate_file="{mail.cert_path}"\n'
            "set ssl_force_tls=yes\n"
            f'set smtp_url="smtps://{user}@localhost:{mail.ports["submissions"]}/"\n'
            f'set smtp_pass="{PASSWORD}"\n'
            f'set from="{ALICE}"\n'
            'set realname="Alice"\n'
            "set use_from=yes\n"
            'set record="+Sent"\n'
            # no caches, no questions: every action goes to the server at once
            'set header_cache=""\n'
            'set message_cachedir=""\n'
            "set confirmappend=no\n"
            "set confirmcreate=no\n"
            "set delete=yes\n"
            "set move=no\n"
            "set wait_key=no\n"
            # poll for new mail every second while idle at the index
            "set mail_check=1\n"
            "set timeout=1\n"
            "set sort=date-sent\n"
            'set index_format="%4C %Z %s"\n'
        )
        self.started = False

    def env(self) -> dict[str, str]:
        return {"HOME": str(self.home), "TERM": "xterm", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}

    def tmux(self, *args: str) -> str:
        result = subprocess.run(
            ["tmux", "-S", str(self.socket), *args],
            capture_output=True,
            text=True,
            timeout=10,
            env=self.env(),
        )
        return result.stdout

    def start(self) -> None:
        # The pane stays open after mutt exits so that its last words can be read.
        command = f"mutt -n -F {self.rc}; echo MUTT-EXITED $?; sleep 60"
        self.tmux("new-session", "-d", "-s", "mutt", "-x", "160", "-y", "40", command)
        self.started = True

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "mutt")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "mutt", *keys)

    def wait_for(self, text: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not on mutt's screen after {timeout}s:\n{screen}")
            time.sleep(0.1)

    def send_batch(self, to: str, subject: str, body: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["mutt", "-n", "-F", str(self.rc), "-s", subject, to],
            input=body,
            capture_output=True,
            text=True,
            timeout=30,
            env=self.env(),
        )

    def close(self) -> None:
        if self.started:
            self.tmux("kill-server")


@pytest.fixture
def mutt(mail, tmp_path):
    client = Mutt(mail, tmp_path)
    yield client
    client.close()


def test_the_index_lists_messages_delivered_over_smtp(mail, mutt):
    mail.send_smtp(message("Quarterly numbers"))
    mail.send_smtp(message("Lunch on Friday"))
    mutt.start()
    screen = mutt.wait_for("Lunch on Friday")
    assert "Quarterly numbers" in screen
    assert "=INBOX [Msgs:2" in screen


def test_new_mail_appears_in_the_open_index(mail, mutt):
    mail.send_smtp(message("first"))
    mutt.start()
    mutt.wait_for("first")
    mail.send_smtp(message("arrived while open"))
    mutt.wait_for("arrived while open", timeout=15)


def test_saving_a_message_to_another_folder_moves_it_on_the_server(mail, mutt):
    for subject in ("keep me", "file me", "keep me too"):
        mail.send_smtp(message(subject))
    mutt.start()
    mutt.wait_for("keep me too")
    # Find the message by subject (a mutt pattern), save it to =Archive, then sync the mailbox.
    mutt.keys("/", "~s 'file me'", "Enter")
    mutt.keys("s")
    mutt.wait_for("Save to mailbox")
    mutt.keys("C-u", "=Archive", "Enter")
    mutt.wait_for("Del:1")
    mutt.keys("$")
    wait_until(lambda: mail.subjects() == ["keep me", "keep me too"], timeout=10)
    assert mail.subjects("Archive") == ["file me"]
    screen = mutt.wait_for("Msgs:2")
    assert "file me" not in screen


def test_flagging_and_reading_set_flags_on_the_server(mail, mutt):
    mail.send_smtp(message("to be flagged"))
    mail.send_smtp(message("to be read"))
    mutt.start()
    mutt.wait_for("to be read")
    mutt.keys("/", "~s 'to be flagged'", "Enter", "F")
    mutt.keys("/", "~s 'to be read'", "Enter", "Enter")  # open the message in the pager
    mutt.wait_for("Hello.")
    mutt.keys("i")  # back to the index
    mutt.keys("$")

    def flags_once_synced():
        flags = {subject: ref.flags for subject, ref in zip(mail.subjects(), mail.refs(), strict=True)}
        synced = "\\Flagged" in flags["to be flagged"] and "\\Seen" in flags["to be read"]
        return flags if synced else None

    flags = wait_until(flags_once_synced, timeout=10)
    assert "\\Seen" not in flags["to be flagged"]


def test_batch_send_goes_through_submission_and_is_filed_in_sent(mail, mutt):
    result = mutt.send_batch(ALICE, "sent by mutt", "Hello from mutt.\n")
    assert result.returncode == 0, result.stdout + result.stderr
    wait_until(lambda: "sent by mutt" in mail.subjects(), timeout=10)  # delivered back to ALICE
    assert mail.subjects("Sent") == ["sent by mutt"]  # mutt's own copy, APPENDed over IMAP
    [sent] = mail.refs("Sent")
    raw = mail.running.call(mail.running.store.mailboxes.read_blob(sent.blob_hash))
    assert b"Hello from mutt." in raw and f"From: Alice <{ALICE}>".encode() in raw
