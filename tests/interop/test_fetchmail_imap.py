"""fetchmail (6.4) over IMAP against our server: it fetches unseen mail, marks it \\Seen, and with
`nokeep` deletes it with STORE +FLAGS (\\Deleted) and EXPUNGE.  (fetchmail over POP3 is covered in
tests/pop3/test_interop.py.)"""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.interop.conftest import ALICE, PASSWORD, message, require_tool

pytestmark = pytest.mark.interop


def run_fetchmail(mail, tmp_path, *, listener: str, keep: bool, folder: str = "INBOX"):
    require_tool("fetchmail")
    out = tmp_path / "fetched"
    out.mkdir(exist_ok=True)
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        "set no syslog\n"
        f"poll 127.0.0.1 with proto IMAP port {mail.ports[listener]}\n"
        f'  user "{ALICE}" there with password "{PASSWORD}" is root here\n'
        f'  no sslcertck {"ssl" if listener == "imaps" else "sslproto tls1.2+"} folder "{folder}"\n'
        f"  options {'keep' if keep else 'nokeep'}\n"
        f"  mda \"/bin/sh -c 'cat > {out}/msg.$$'\"\n"
    )
    rc.chmod(0o600)  # fetchmail refuses a readable rc file holding a password
    env = dict(os.environ, FETCHMAILHOME=str(tmp_path), HOME=str(tmp_path))
    result = subprocess.run(
        ["fetchmail", "-f", str(rc), "-v", "--nodetach", "--pidfile", str(tmp_path / "pid")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # 0: mail fetched, 1: no mail (fetchmail's documented exit codes)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return result, sorted(path.read_bytes() for path in out.iterdir())


@pytest.mark.parametrize("listener", ["imaps", "imap"])
def test_fetchmail_nokeep_fetches_the_inbox_and_expunges_it(mail, tmp_path, listener):
    for n in range(3):
        mail.deliver(message(f"fetch me {n}", "Line one.\r\n.Line starting with a dot\r\n"))
    result, fetched = run_fetchmail(mail, tmp_path, listener=listener, keep=False)
    if listener == "imap":
        assert "STARTTLS" in result.stdout + result.stderr  # upgraded before LOGIN
    assert len(fetched) == 3
    assert all(b"\n.Line starting with a dot\n" in raw for raw in fetched)
    assert sorted(raw.split(b"Subject: ")[1].split(b"\n")[0] for raw in fetched) == [
        b"fetch me 0",
        b"fetch me 1",
        b"fetch me 2",
    ]
    assert mail.refs() == []


def test_fetchmail_keep_marks_seen_and_fetches_only_new_mail_next_time(mail, tmp_path):
    mail.deliver(message("old one"))
    mail.deliver(message("other folder"), mailbox="Archive")
    _, fetched = run_fetchmail(mail, tmp_path, listener="imaps", keep=True)
    assert len(fetched) == 1
    assert [ref.flags for ref in mail.refs()] == [{"\\Seen"}]
    mail.deliver(message("new one"))
    _, fetched = run_fetchmail(mail, tmp_path, listener="imaps", keep=True)
    assert len(fetched) == 2  # only "new one" was added
    assert mail.subjects() == ["old one", "new one"]
    assert all(ref.flags == {"\\Seen"} for ref in mail.refs())
