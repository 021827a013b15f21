"""Real POP3 clients from Debian against our server: fetchmail (STLS and POP3S) and getmail6."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.pop3.conftest import ALICE, PASSWORD, message

pytestmark = pytest.mark.interop

BODY = "First line.\r\n.a line starting with a dot\r\nFrom the start\r\n"


def deliver_three(pop) -> None:
    for n in range(3):
        pop.deliver(message(f"interop{n}", BODY))


def run_fetchmail(pop, tmp_path, *, listener: str, keep: bool = False) -> subprocess.CompletedProcess:
    if shutil.which("fetchmail") is None:
        pytest.skip("fetchmail is not installed")
    out = tmp_path / "fetched"
    out.mkdir(exist_ok=True)
    rc = tmp_path / "fetchmailrc"
    ssl = "ssl" if listener == "pop3s" else ""  # without "ssl", fetchmail upgrades with STLS
    rc.write_text(
        "set no syslog\n"
        f"poll 127.0.0.1 with proto POP3 port {pop.ports[listener]} uidl\n"
        f'  user "{ALICE}" there with password "{PASSWORD}" is root here\n'
        f"  no sslcertck {ssl}\n"
        f"  options {'keep' if keep else 'nokeep'} {'' if keep else 'fetchall'}\n"
        f"  mda \"/bin/sh -c 'cat > {out}/msg.$$'\"\n"
    )
    rc.chmod(0o600)  # fetchmail refuses a readable rc file holding a password
    env = dict(os.environ, FETCHMAILHOME=str(tmp_path), HOME=str(tmp_path))
    return subprocess.run(
        ["fetchmail", "-f", str(rc), "-v", "--nodetach", "--pidfile", str(tmp_path / "pid")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def fetched(tmp_path) -> list[bytes]:
    return [path.read_bytes() for path in sorted((tmp_path / "fetched").iterdir())]


@pytest.mark.parametrize("listener", ["pop3", "pop3s"])
def test_fetchmail_nokeep_fetches_everything_and_empties_the_inbox(pop, tmp_path, listener):
    deliver_three(pop)
    result = run_fetchmail(pop, tmp_path, listener=listener)
    assert result.returncode == 0, result.stdout + result.stderr
    if listener == "pop3":
        assert "upgrade to TLS succeeded" in result.stdout + result.stderr
    messages = fetched(tmp_path)
    assert len(messages) == 3
    assert sorted(m.split(b"Subject: ")[1].split(b"\n")[0] for m in messages) == [
        b"interop0",
        b"interop1",
        b"interop2",
    ]
    assert all(b"\n.a line starting with a dot\n" in m for m in messages)
    assert pop.inbox()[1] == []


def test_fetchmail_keep_with_uidl_does_not_fetch_the_same_messages_twice(pop, tmp_path):
    deliver_three(pop)
    first = run_fetchmail(pop, tmp_path, listener="pop3s", keep=True)
    assert first.returncode == 0, first.stdout + first.stderr
    assert len(fetched(tmp_path)) == 3
    pop.deliver(message("newer"))
    second = run_fetchmail(pop, tmp_path, listener="pop3s", keep=True)
    assert second.returncode == 0, second.stdout + second.stderr
    assert len(fetched(tmp_path)) == 4  # only the new one
    assert len(pop.inbox()[1]) == 4  # keep: nothing deleted


def test_getmail_pop3s_with_delete_delivers_to_an_mda_and_empties_the_inbox(pop, tmp_path):
    if shutil.which("getmail") is None:
        pytest.skip("getmail6 is not installed")
    deliver_three(pop)
    mbox = tmp_path / "mbox"
    mbox.write_text("")
    getmaildir = tmp_path / "getmail"
    getmaildir.mkdir()
    rc = getmaildir / "getmailrc"
    rc.write_text(
        "[retriever]\n"
        "type = SimplePOP3SSLRetriever\n"
        "server = 127.0.0.1\n"
        f"port = {pop.ports['pop3s']}\n"
        f"username = {ALICE}\n"
        f"password = {PASSWORD}\n"
        "\n[destination]\n"
        "type = MDA_external\n"
        "path = /bin/sh\n"
        f'arguments = ("-c", "cat >> {mbox}")\n'
        "allow_root_commands = true\n"  # the test may run as root; the MDA is our own shell line
        "\n[options]\n"
        "delete = true\n"
        "read_all = true\n"
    )
    result = subprocess.run(
        ["getmail", "--rcfile", str(rc), "--getmaildir", str(getmaildir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    content = mbox.read_bytes()
    assert content.count(b"Subject: interop") == 3
    assert content.count(b"\n.a line starting with a dot\n") == 3
    assert pop.inbox()[1] == []
