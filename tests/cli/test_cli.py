"""The `tidings` command as an admin uses it: clear errors, exit status, nothing half-written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.running import fresh_database_url

TIDINGS = [sys.executable, "-m", "tidings.cli"]


@pytest.fixture
def tidings(tmp_path):
    config = tmp_path / "tidings.toml"
    database = fresh_database_url()
    # allow_root: as root the server would run as `tidings`, which cannot enter pytest's tmp root.
    lines = [f'data_dir = "{tmp_path / "data"}"', 'hostname = "mail.example.test"', "allow_root = true"]
    if database:
        lines.append(f'database = "{database}"')
    lines += ["[listen]"] + [
        f'{name} = ["127.0.0.1:0"]'
        for name in ("smtp", "submission", "submissions", "pop3", "pop3s", "imap", "imaps")
    ]
    config.write_text("\n".join(lines) + "\n")

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*TIDINGS, "--config", str(config), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    run.config = config
    return run


def test_domain_user_alias_lifecycle(tidings):
    assert tidings("domain", "add", "example.org").returncode == 0
    assert "example.org" in tidings("domain", "list").stdout
    added = tidings(
        "user", "add", "alice@example.org", "--password-stdin", "--quota", "10M", stdin="long secret 1\n"
    )
    assert added.returncode == 0, added.stderr
    listing = tidings("user", "list").stdout
    assert "alice@example.org" in listing and "10.0 MiB" in listing
    assert tidings("alias", "add", "info@example.org", "alice@example.org").returncode == 0
    assert tidings("alias", "add", "@example.org", "alice@example.org").returncode == 0
    assert "info@example.org -> alice@example.org" in tidings("alias", "list").stdout
    assert (
        tidings(
            "user", "passwd", "alice@example.org", "--password-stdin", stdin="other secret 2\n"
        ).returncode
        == 0
    )
    assert tidings("user", "remove", "alice@example.org").returncode == 0
    assert "alice@example.org" not in tidings("user", "list").stdout


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("user", "add", "bob@unknown.org", "--password-stdin"), "long secret 1\n", "unknown domain"),
        (("user", "add", "not-an-address", "--password-stdin"), "long secret 1\n", "no @domain"),
        (("user", "add", "bob@example.org", "--password-stdin"), "\n", "empty"),
        (("user", "add", "bob@example.org", "--password-stdin"), "short\n", "shorter than"),
        (
            ("user", "add", "bob@example.org", "--password-stdin", "--quota", "lots"),
            "long secret 1\n",
            "not a size",
        ),
        (("domain", "add", "bad_domain!"), None, "invalid domain"),
        (("domain", "remove", "nowhere.org"), None, "unknown domain"),
        (("alias", "add", "x@nowhere.org", "bob@example.org"), None, "unknown domain"),
        (("queue", "delete", "12345"), None, "no queue entry"),
    ],
)
def test_bad_input_gives_one_clear_error_and_changes_nothing(tidings, args, stdin, message):
    tidings("domain", "add", "example.org")
    result = tidings(*args, stdin=stdin)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert tidings("user", "list").stdout.strip() == ""


def test_duplicate_user_is_refused(tidings):
    tidings("domain", "add", "example.org")
    assert (
        tidings("user", "add", "bob@example.org", "--password-stdin", stdin="long secret 1\n").returncode == 0
    )
    again = tidings("user", "add", "bob@example.org", "--password-stdin", stdin="long secret 1\n")
    assert again.returncode == 1 and "already exists" in again.stderr


def test_admin_users_are_made_with_a_flag_and_granted_or_revoked_later(tidings):
    tidings("domain", "add", "example.org")
    added = tidings("user", "add", "root@example.org", "--admin", "--password-stdin", stdin="long secret 1\n")
    assert added.returncode == 0 and "added admin user root@example.org" in added.stdout
    tidings("user", "add", "bob@example.org", "--password-stdin", stdin="long secret 1\n")
    listing = tidings("user", "list").stdout.splitlines()
    assert [line.endswith("(admin)") for line in listing] == [False, True]
    assert tidings("user", "admin", "bob@example.org").returncode == 0
    assert tidings("user", "admin", "root@example.org", "--revoke").returncode == 0
    listing = tidings("user", "list").stdout.splitlines()
    assert [line.endswith("(admin)") for line in listing] == [True, False]
    missing = tidings("user", "admin", "nobody@example.org")
    assert missing.returncode == 1 and "unknown user" in missing.stderr


def test_dkim_prints_a_dns_record(tidings):
    tidings("domain", "add", "example.org")
    result = tidings("domain", "dkim", "example.org", "--selector", "s1")
    assert result.returncode == 0
    assert result.stdout.startswith('s1._domainkey.example.org. IN TXT "v=DKIM1; k=rsa; p=')
    assert "DKIM selector s1" in tidings("domain", "list").stdout


def test_status_shows_a_running_servers_listeners(tidings):
    proc = subprocess.Popen(
        [*TIDINGS, "--config", str(tidings.config), "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        status_file = Path(tidings.config).parent / "data" / "status.json"
        deadline = time.time() + 30
        while not status_file.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert status_file.exists(), proc.stdout.read() if proc.poll() is not None else "no status file"
        listeners = json.loads(status_file.read_text())["listeners"]
        assert set(listeners) == {"smtp", "submission", "submissions", "pop3", "pop3s", "imap", "imaps"}
        status = tidings("status")
        assert status.returncode == 0
        assert "server: running" in status.stdout
        assert status.stdout.count(" open") == 7
        assert "queue: 0 message(s)" in status.stdout
        assert "event loop lag: " in status.stdout and " stall(s) of 100 ms or more" in status.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert proc.returncode == 0
    assert "server: not running" in tidings("status").stdout


def test_serve_creates_the_default_domain_and_a_certificate(tidings, tmp_path):
    proc = subprocess.Popen(
        [*TIDINGS, "--config", str(tidings.config), "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ},
    )
    try:
        status_file = tmp_path / "data" / "status.json"
        deadline = time.time() + 30
        while not status_file.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert (tmp_path / "data" / "tls" / "cert.pem").exists()
        assert "localhost" in tidings("domain", "list").stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
