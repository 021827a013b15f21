"""The fsyncs behind "250 OK", observed: `tidings serve` runs under strace, and every fsync the kernel
saw between the end of a message's DATA and its 250 is read back from the trace.

`kill -9` (test_durability.py) keeps the OS page cache, so it would pass without a single fsync;
this test fails if one goes missing: the body file of a large message, its directory after the
rename, or (SQLite) the WAL at commit, which SQLite only syncs at commit with synchronous=FULL.
On PostgreSQL the commit's fsync happens in the database server, whose setting is checked at start
(test_commit_durability.py); the body file and directory fsyncs are ours on both.
"""

from __future__ import annotations

import os
import re
import shutil
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.process import stop_traced
from tests.support.running import fresh_database_url
from tests.support.unprivileged import free_port, wait_serving

USER = "rcpt@fsync.test"
LARGE = 600 * 1024  # above the 512 KiB inline limit: the body becomes a file under blobs/

# 1234 1796173166.877547 fsync(3</tmp/x1>) = 0
# or, when another thread makes a call meanwhile, split in two:
# 1234 1796173166.877547 fsync(3</tmp/x1> <unfinished ...>
# 1234 1796173166.879012 <... fsync resumed>) = 0
# (strace pads the thread id: "7605  1796…" with two spaces when it has four digits)
TRACE_LINE = re.compile(
    r"^(?P<pid>\d+) +(?P<at>\d+\.\d+) (?:(?P<call>fsync|fdatasync)\(\d+<(?P<path>[^>]*)>"
    r"(?P<unfinished> <unfinished \.\.\.>$|\) = 0$)"
    r"|<\.\.\. (?:fsync|fdatasync) resumed>\) = (?P<result>-?\d+))"
)


def tidings(config: Path, *args: str, stdin: str | None = None) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tidings.cli", "--config", str(config), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture
def traced_server(tmp_path):
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed (scripts/install-deps.sh installs it)")
    probe = subprocess.run([strace, "-o", "/dev/null", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"strace cannot trace here: {probe.stderr.decode().strip()}")
    port = free_port()
    database = fresh_database_url()
    config = tmp_path / "tidings.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\nhostname = "mx.fsync.test"\ndefault_domain = "fsync.test"\n'
        + (f'database = "{database}"\n' if database else "")
        + 'allow_root = true\n[listen]\nsmtp = ["127.0.0.1:'
        + str(port)
        + '"]\n'
    )
    tidings(config, "domain", "add", "fsync.test")
    tidings(config, "user", "add", USER, "--password-stdin", stdin="correct horse 1\n")
    trace = tmp_path / "strace.log"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    process = subprocess.Popen(
        [
            strace,
            "-f",
            "-qq",
            "-ttt",
            "-y",
            "-e",
            "trace=fsync,fdatasync",
            "-e",
            "signal=none",
            "-o",
            str(trace),
        ]
        + [sys.executable, "-m", "tidings.cli", "--config", str(config), "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_serving(process, [port], timeout=90)
        yield port, trace, tmp_path / "data", bool(database)
    finally:
        stop_traced(process)


def fsyncs(trace: Path) -> list[tuple[float, str]]:
    """(time the call began, path) of every successful fsync/fdatasync in the trace."""
    found = []
    started: dict[str, tuple[float, str]] = {}  # thread id -> its unfinished call
    for line in trace.read_text().splitlines():
        match = TRACE_LINE.match(line)
        if not match:
            continue
        if match["result"] is not None:  # the end of a call begun on an earlier line
            begun = started.pop(match["pid"], None)
            if begun is not None and match["result"] == "0":
                found.append(begun)
        elif match["unfinished"].startswith(" <unfinished"):
            started[match["pid"]] = (float(match["at"]), match["path"])
        else:
            found.append((float(match["at"]), match["path"]))
    return found


def send(port: int, subject: str, size: int) -> tuple[float, float]:
    """Deliver one message; returns (time the end of DATA was sent, time the 250 was read)."""
    body = f"Subject: {subject}\r\n\r\n".encode() + b"x" * 76 + b"\r\n"
    body = body + (b"y" * 998 + b"\r\n") * (size // 1000)
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo()
        client.mail("s@remote.test")
        client.rcpt(USER)
        code, _ = client.putcmd("data") or client.getreply()
        assert code == 354
        client.send(body + b"\r\n")
        sent = time.time()
        client.send(b".\r\n")
        code, reply = client.getreply()
        acknowledged = time.time()
        assert code == 250, reply
    return sent, acknowledged


def test_every_250_comes_after_the_fsyncs_that_make_the_message_durable(traced_server):
    port, trace, data, on_postgres = traced_server
    small = send(port, "small", 2000)
    large = send(port, "large", LARGE)
    time.sleep(0.5)  # strace writes its log as the calls return
    seen = fsyncs(trace)

    def between(window: tuple[float, float]) -> list[tuple[float, str]]:
        return [(at, path) for at, path in seen if window[0] <= at <= window[1]]

    wal = str(data / "tidings.db-wal")
    if not on_postgres:
        # synchronous=FULL in WAL mode: the commit covering the message syncs the WAL before 250.
        assert any(path == wal for _, path in between(small)), between(small)

    in_window = between(large)
    blob_tmp = [at for at, path in in_window if path.startswith(str(data / "blobs" / "tmp") + "/")]
    blob_dirs = [
        at for at, path in in_window if re.fullmatch(re.escape(str(data / "blobs")) + r"/[0-9a-f]{2}", path)
    ]
    assert blob_tmp, f"the large body's file was not fsynced before 250: {in_window}"
    assert blob_dirs, f"its directory was not fsynced after the rename, before 250: {in_window}"
    assert min(blob_tmp) <= max(blob_dirs)
    if not on_postgres:
        commits = [at for at, path in in_window if path == wal]
        assert commits and max(commits) >= max(blob_dirs), "the commit must follow the body's fsyncs"
