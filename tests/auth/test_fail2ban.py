"""The authentication log line and the shipped fail2ban filter: real logins over every protocol
produce lines that the filter (docs/fail2ban/filter.d/tidings.conf) matches exactly when a login
failed, always with the client's address, never with an address a client wrote into its user name."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.auth.wire import PASSWORD, imap_login, pop3_auth_plain, pop3_user_pass, smtp_auth
from tidings.cli import LOG_FORMAT
from tidings.config import AuthSettings

ROOT = Path(__file__).resolve().parents[2]
FILTER = ROOT / "docs" / "fail2ban" / "filter.d" / "tidings.conf"
ALICE = "alice@example.test"
# What fail2ban puts in place of <HOST> is an address pattern; any non-space run is stricter here.
HOST = r"(?P<host>\S+)"


def failregex() -> str:
    for line in FILTER.read_text().splitlines():
        if line.startswith("failregex"):
            return line.split("=", 1)[1].strip()
    raise AssertionError("no failregex in the filter")


@pytest.fixture
def auth_log(make_server):
    """A server, and the lines its logins write, formatted as `tidings serve` writes them."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(logging.INFO)
    logger = logging.getLogger("tidings.auth")
    old_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    running = make_server(auth=AuthSettings(max_failures_per_ip=1000, max_failures_per_account=3))
    running.add_user(ALICE, PASSWORD)
    formatter = logging.Formatter(LOG_FORMAT)
    try:
        yield running, lambda: [formatter.format(r) for r in records]
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def make_logins(ports) -> int:
    """Failed and successful logins on every protocol; returns how many failed."""
    outcomes = [
        imap_login(ports, "alice", PASSWORD),
        imap_login(ports, "alice", "wrong password"),
        imap_login(ports, 'x ip=10.9.9.9 account=y mechanism=z reason=password\x7f"', "wrong"),
        pop3_user_pass(ports, "nobody@example.test", "wrong password"),
        pop3_auth_plain(ports, "Alice", "wrong password"),
        pop3_user_pass(ports, ALICE, PASSWORD),
        smtp_auth(ports, "ALICE@example.test", "wrong password"),  # the third for alice
        smtp_auth(ports, ALICE, PASSWORD, "LOGIN"),  # throttled
        smtp_auth(ports, "bob", "wrong password", "LOGIN"),
    ]
    assert outcomes == ["ok", "failed", "failed", "failed", "failed", "ok", "failed", "throttled", "failed"]
    return 7


def test_every_login_writes_one_line_and_the_filter_matches_the_failed_ones(auth_log):
    running, lines = auth_log
    failed = make_logins(running.ports)
    log = lines()
    assert len(log) == failed + 2
    assert "auth ok protocol=imap ip=127.0.0.1 account=alice@example.test mechanism=LOGIN" in log[0]
    assert (
        "auth failed protocol=smtp ip=127.0.0.1 account=alice@example.test mechanism=LOGIN reason=throttled"
        in (log[7])
    )
    # fail2ban takes the date off the front of a line before it applies the failregex.
    pattern = re.compile(failregex().replace("<HOST>", HOST))
    for form in (log, [f"Dec  2 00:00:00 mail tidings[4242]: {line}" for line in log]):
        undated = [
            re.sub(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+|[A-Z][a-z]{2} [ \d]\d \S+)", "", x) for x in form
        ]
        matched = [pattern.search(line) for line in undated]
        assert [m is not None for m in matched] == ["auth failed" in line for line in log]
        assert {m.group("host") for m in matched if m} == {"127.0.0.1"}


@pytest.mark.skipif(shutil.which("fail2ban-regex") is None, reason="needs fail2ban (scripts/install-deps.sh)")
def test_fail2ban_regex_finds_exactly_the_failed_logins(auth_log, tmp_path):
    running, lines = auth_log
    failed = make_logins(running.ports)
    log = tmp_path / "tidings.log"
    log.write_text("\n".join(lines()) + "\n")
    relayed = tmp_path / "syslog"
    relayed.write_text("".join(f"Dec  2 00:00:00 mail tidings[4242]: {line}\n" for line in lines()))
    for path in (log, relayed):
        result = subprocess.run(
            ["fail2ban-regex", "--print-all-matched", str(path), str(FILTER)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert re.search(rf"^Lines: {failed + 2} lines, 0 ignored, {failed} matched", result.stdout, re.M), (
            result.stdout
        )


def test_the_filter_in_admin_md_is_the_shipped_one():
    admin = (ROOT / "docs" / "admin.md").read_text()
    assert f"failregex = {failregex()}\n" in admin
