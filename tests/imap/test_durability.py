"""The two durability classes (`durability.flags`), observed on a real server process.

A flag change or an expunge answered `OK` under the default "lazy" class is committed before the
reply, only not fsynced: `kill -9` right after the `OK` must not lose it. New mail (APPEND) is
fsynced before its `OK` whatever the class, and "strict" fsyncs flag changes too; strace shows
which commands waited for an fsync of the SQLite WAL (tests/smtp/test_fsync.py does the same for
SMTP; on PostgreSQL the fsync happens in the database server, so those tests are SQLite only).
"""

from __future__ import annotations

import imaplib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.smtp.test_fsync import fsyncs
from tests.support.process import stop_traced, wait_ports_closed
from tests.support.running import fresh_database_url
from tests.support.unprivileged import free_port, wait_serving

USER = "keeper@durable.test"
PASSWORD = "correct horse 1"


def tidings(config: Path, *args: str, stdin: str | None = None) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tidings.cli", "--config", str(config), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def configure(tmp_path: Path, flags: str, database: str = "") -> tuple[Path, int]:
    port = free_port()
    config = tmp_path / "tidings.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\nhostname = "mx.durable.test"\ndefault_domain = "durable.test"\n'
        + (f'database = "{database}"\n' if database else "")
        + "allow_root = true\n"  # the data is under pytest's tmp root, closed to other users
        + f'[listen]\nimap = ["127.0.0.1:{port}"]\n[auth]\nallow_plaintext = true\n'
        + f'[durability]\nflags = "{flags}"\n'
    )
    tidings(config, "domain", "add", "durable.test")
    tidings(config, "user", "add", USER, "--password-stdin", stdin=PASSWORD + "\n")
    return config, port


def start(config: Path, port: int, trace: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    command = [sys.executable, "-m", "tidings.cli", "--config", str(config), "serve"]
    if trace is not None:
        strace = ["strace", "-f", "-qq", "-ttt", "-y", "-e", "trace=fsync,fdatasync", "-e", "signal=none"]
        command = [*strace, "-o", str(trace), *command]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_serving(process, [port], timeout=90)
    return process


def login(port: int) -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    client.login(USER, PASSWORD)
    return client


def message(n: int) -> bytes:
    return f"From: a@remote.test\r\nSubject: m{n}\r\n\r\nbody {n}\r\n".encode()


def flags_by_uid(client: imaplib.IMAP4) -> dict[int, str]:
    typ, data = client.uid("FETCH", "1:*", "(FLAGS)")
    assert typ == "OK", data
    found = {}
    for line in data:
        match = re.search(rb"UID (\d+) FLAGS \(([^)]*)\)|FLAGS \(([^)]*)\) UID (\d+)", line)
        assert match, line
        uid = int(match[1] or match[4])
        found[uid] = (match[2] if match[2] is not None else match[3]).decode()
    return found


def test_flag_changes_and_expunges_answered_ok_survive_kill_9_of_the_server(tmp_path):
    config, port = configure(tmp_path, "lazy", fresh_database_url())
    server = start(config, port)
    try:
        client = login(port)
        for n in range(40):
            assert client.append("INBOX", None, None, message(n))[0] == "OK"
        client.select("INBOX")
        for uid in range(1, 31):
            typ, data = client.uid("STORE", str(uid), "+FLAGS", "(\\Flagged $Keep)")
            assert typ == "OK", data
        typ, data = client.uid("STORE", "31:40", "+FLAGS", "(\\Deleted)")
        assert typ == "OK", data
        typ, data = client.expunge()
        assert typ == "OK", data
        typ, data = client.uid("STORE", "1", "+FLAGS", "(\\Seen)")
        assert typ == "OK", data
        server.send_signal(signal.SIGKILL)  # at once after the last OK: nothing had time to settle
        server.wait(10)
        wait_ports_closed([port])  # its worker processes die a few milliseconds after it
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    server = start(config, port)
    try:
        client = login(port)
        client.select("INBOX", readonly=True)
        after = flags_by_uid(client)
        client.logout()
    finally:
        server.terminate()
        server.wait(15)
    assert sorted(after) == list(range(1, 31)), "the expunged messages came back"
    assert all({"\\Flagged", "$Keep"} <= set(flags.split()) for flags in after.values()), after
    assert "\\Seen" in after[1].split()


@pytest.fixture
def strace_available():
    if fresh_database_url():
        pytest.skip("PostgreSQL fsyncs its commits in the database server, not in our process")
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed (scripts/install-deps.sh installs it)")
    probe = subprocess.run(["strace", "-o", "/dev/null", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"strace cannot trace here: {probe.stderr.decode().strip()}")


def windows_with_wal_fsync(tmp_path: Path, flags: str) -> tuple[int, int, int, int]:
    """(APPENDs, APPEND replies preceded by a WAL fsync, STOREs, STORE replies preceded by one)."""
    config, port = configure(tmp_path, flags)
    trace = tmp_path / "strace.log"
    server = start(config, port, trace)
    appends: list[tuple[float, float]] = []
    stores: list[tuple[float, float]] = []
    try:
        client = login(port)
        client.select("INBOX")
        for n in range(10):
            began = time.time()
            assert client.append("INBOX", None, None, message(n))[0] == "OK"
            appends.append((began, time.time()))
        for n in range(20):
            began = time.time()
            typ, data = client.uid("STORE", str(n % 10 + 1), "+FLAGS" if n < 10 else "-FLAGS", "(\\Seen)")
            assert typ == "OK", data
            stores.append((began, time.time()))
        client.logout()
        time.sleep(0.5)  # strace writes its log as the calls return
    finally:
        stop_traced(server)
    wal = str(tmp_path / "data" / "tidings.db-wal")
    synced = [at for at, path in fsyncs(trace) if path == wal]

    def covered(windows: list[tuple[float, float]]) -> int:
        return sum(any(began <= at <= ended for at in synced) for began, ended in windows)

    return len(appends), covered(appends), len(stores), covered(stores)


def test_lazy_flag_changes_do_not_wait_for_fsync_but_new_mail_does(tmp_path, strace_available):
    appends, synced_appends, stores, synced_stores = windows_with_wal_fsync(tmp_path, "lazy")
    assert synced_appends == appends, "an APPEND was answered before its commit was fsynced"
    # The checkpointer (once a second) may fsync the WAL while a STORE is under way; not each time.
    assert synced_stores <= 2, f"{synced_stores} of {stores} lazy STOREs waited for an fsync"


def test_strict_flag_changes_are_fsynced_before_the_reply(tmp_path, strace_available):
    appends, synced_appends, stores, synced_stores = windows_with_wal_fsync(tmp_path, "strict")
    assert synced_appends == appends
    assert synced_stores == stores, f"only {synced_stores} of {stores} strict STOREs were fsynced"
