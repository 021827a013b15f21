"""`tidings serve --workers 2`: a supervisor and two worker processes are one server to clients.

Real processes (tests.support.process), real sockets, stdlib clients. Which worker a connection
lands on is the kernel's choice, so the tests open enough of them that both workers hold some, and
check that with `tidings status`, which lists each worker's open sessions. With
TIDINGS_TEST_DATABASE set the server runs on PostgreSQL (changes then cross between workers through
LISTEN/NOTIFY instead of the supervisor).
"""

from __future__ import annotations

import contextlib
import imaplib
import json
import os
import poplib
import re
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support.process import ROOT, ServerProcess

USER, PASSWORD = "alice@example.test", "correct horse 1"
WORKER_LINE = re.compile(r"worker (\d+)\s+(primary|worker)\s+pid (\d+) .*sessions: (.*?)(?:  loop lag|$)")


@pytest.fixture
def served(tmp_path):
    server = ServerProcess(tmp_path, listeners=("smtp", "imap", "pop3"), extra="workers = 2").start()
    server.add_user(USER, PASSWORD)
    yield server
    server.stop()


def wait_for(predicate, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return value


def tidings_status(server: ServerProcess) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tidings.cli", "--config", str(server.config), "status"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=server._env(),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def workers_in_status(server: ServerProcess) -> dict[int, dict]:
    """`tidings status`'s worker lines: index -> pid, primary, open sessions per listener."""
    found = {}
    for line in tidings_status(server).splitlines():
        match = WORKER_LINE.search(line)
        if match:
            sessions = {}
            if match[4] != "none":
                for part in match[4].split(", "):
                    name, count = part.split()
                    sessions[name] = int(count)
            found[int(match[1])] = {
                "pid": int(match[3]),
                "primary": match[2] == "primary",
                "sessions": sessions,
            }
    return found


def sessions_seen(server: ServerProcess, listener: str, total: int) -> dict[int, int] | None:
    """Each worker's open `listener` sessions, once `tidings status` accounts for all `total`."""
    workers = workers_in_status(server)
    counts = {index: w["sessions"].get(listener, 0) for index, w in workers.items()}
    return counts if len(counts) == 2 and sum(counts.values()) == total else None


def worker_pids(server: ServerProcess) -> dict[int, int]:
    status = json.loads((server.data / "status.json").read_text())
    return {w["index"]: w["pid"] for w in status["workers"]}


def gone(pid: int) -> bool:
    """Every thread of `pid` has exited. The thread-group leader's own state is not enough: after
    SIGKILL it turns zombie at once while a thread still inside a system call (an fsync, say) runs
    to its end, and the process's file descriptors, listening sockets too, stay open until that
    last thread is gone."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return True
    for task in tasks:
        try:
            state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            continue
        if state not in ("Z", "X"):  # dead, waiting to be reaped by init
            return False
    return True


def port_holders(port: int) -> list[str]:
    """Which processes hold a socket listening on `port` (for a failure message)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    holders = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    holders.append(f"pid {proc.name}: {(proc / 'cmdline').read_bytes()[:120]!r}")
                    break
    return holders


def serving_pid(client: socket.socket, pids) -> int | None:
    """Which of `pids` holds the server side of `client`'s connection (from /proc/net/tcp)."""
    host, port = client.getsockname()[:2]
    peer = f"{socket.inet_aton(host)[::-1].hex().upper()}:{port:04X}"
    inodes = {
        fields[9]
        for fields in (line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:])
        if fields[2] == peer
    }
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd).removeprefix("socket:[").removesuffix("]") in inodes:
                    return pid
    return None


def refuses(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return True
    return False


class IdleClient:
    """An IMAP session in IDLE on INBOX, over a raw socket (imaplib has no IDLE before 3.14)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buffer = b""
        self.read_until(b"* OK")
        self.command(b"a LOGIN " + USER.encode() + b' "' + PASSWORD.encode() + b'"', b"a OK")
        self.command(b"b SELECT INBOX", b"b OK")
        self.sock.sendall(b"c IDLE\r\n")
        self.read_until(b"+ ")

    def command(self, line: bytes, done: bytes) -> bytes:
        self.sock.sendall(line + b"\r\n")
        return self.read_until(done)

    def read_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            data = self.sock.recv(65536)
            assert data, f"connection closed before {marker!r}: {self.buffer[-300:]!r}"
            self.buffer += data
        before, _, self.buffer = self.buffer.partition(marker)
        return before

    def close(self) -> None:
        self.sock.close()


def test_idle_sessions_in_every_worker_hear_of_a_delivered_message(served):
    pids = list(worker_pids(served).values())
    clients = [IdleClient(served.ports["imap"]) for _ in range(40)]
    try:
        held = [serving_pid(client.sock, pids) for client in clients]
        while min(held.count(pid) for pid in pids) < 5:  # the kernel's choice: open more if needed
            assert len(clients) < 300, "the connections do not reach both workers"
            clients.append(IdleClient(served.ports["imap"]))
            held.append(serving_pid(clients[-1].sock, pids))
        counts = wait_for(lambda: sessions_seen(served, "imap", len(clients)), "status of the IMAP sessions")
        assert all(count > 0 for count in counts.values()), counts
        with smtplib.SMTP("127.0.0.1", served.ports["smtp"], timeout=30) as mx:
            mx.sendmail("bob@remote.test", [USER], "Subject: to all\r\n\r\nhello\r\n")
        for client in clients:
            client.read_until(b"* 1 EXISTS")
    finally:
        for client in clients:
            client.close()


class Senders:
    """SMTP clients sending numbered messages until stopped; a subject is recorded only after 250.
    A connection the server drops is opened again: a message it was carrying is simply not
    acknowledged."""

    def __init__(self, port: int, count: int = 4) -> None:
        self.port = port
        self.acknowledged: list[str] = []
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._send, args=(n,)) for n in range(count)]
        for thread in self.threads:
            thread.start()

    def _send(self, sender: int) -> None:
        number = 0
        while not self.stopping.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as client:
                    while not self.stopping.is_set():
                        number += 1
                        subject = f"s{sender}-{number}"
                        client.sendmail("bob@remote.test", [USER], f"Subject: {subject}\r\n\r\nx\r\n")
                        self.acknowledged.append(subject)
            except (smtplib.SMTPException, OSError):
                time.sleep(0.05)  # refused while a worker restarts: do not spin

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(60)


def stored_subjects(port: int) -> set[str]:
    imap = imaplib.IMAP4("127.0.0.1", port, timeout=60)
    try:
        imap.login(USER, PASSWORD)
        imap.select("INBOX", readonly=True)
        _, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        return {part[1].decode().split(":", 1)[1].strip() for part in data if isinstance(part, tuple)}
    finally:
        imap.logout()


def test_a_killed_worker_is_restarted_and_no_accepted_message_is_lost(served):
    before = worker_pids(served)
    senders = Senders(served.ports["smtp"])
    try:
        wait_for(lambda: len(senders.acknowledged) >= 50, "50 messages accepted")
        os.kill(before[0], signal.SIGKILL)  # the primary: the queue and indexer come back with it
        wait_for(lambda: gone(before[0]), "the killed worker to die")
        restarted = wait_for(
            lambda: (pid := worker_pids(served)[0]) not in (0, before[0]) and pid,
            "the supervisor to start worker 0 again",
        )
        wait_for(
            lambda: workers_in_status(served).get(0, {}).get("pid") == restarted, "the new worker's status"
        )
        assert worker_pids(served)[1] == before[1]  # the other worker served on meanwhile
        count = len(senders.acknowledged)
        wait_for(lambda: len(senders.acknowledged) >= count + 50, "50 more messages accepted")
    finally:
        senders.stop()
    status = json.loads((served.data / "status.json").read_text())
    assert [w["restarts"] for w in status["workers"]] == [1, 0]
    missing = set(senders.acknowledged) - stored_subjects(served.ports["imap"])
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {sorted(missing)[:5]}"


def test_sigterm_to_the_supervisor_stops_every_worker_and_frees_the_ports(served):
    pids = worker_pids(served)
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(60) == 0
    assert all(gone(pid) for pid in pids.values())
    assert all(refuses(port) for port in served.ports.values())
    assert not list(served.data.glob("status*.json"))
    for port in served.ports.values():  # free to bind again
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen()


def test_a_burst_of_connections_opened_at_once_reaches_both_workers(served):
    """Each worker accepts on its own SO_REUSEPORT sockets: with one shared socket, the worker that
    woke first took a whole burst (20 at once: 20/0 in two bursts of eight), so a client pool that
    connects all at once left the other core idle. By hash, all 20 on one worker has odds of 2 in
    a million."""
    pids = worker_pids(served).values()
    clients = [socket.create_connection(("127.0.0.1", served.ports["smtp"]), timeout=30) for _ in range(20)]
    try:
        for client in clients:
            assert client.recv(200).startswith(b"220")
        holders = {serving_pid(client, pids) for client in clients}
        assert holders == set(pids)
    finally:
        for client in clients:
            client.close()


def test_kill_9_of_the_supervisor_leaves_no_worker_behind(served):
    pids = worker_pids(served)
    served.proc.kill()
    served.proc.wait(60)
    wait_for(lambda: all(gone(pid) for pid in pids.values()), "the workers to die with the supervisor")
    # A worker the supervisor started again after `pids` was read dies the same way, a moment later.
    deadline = time.monotonic() + 30
    for port in served.ports.values():
        while not refuses(port):
            assert time.monotonic() < deadline, f"port {port} still listened on by {port_holders(port)}"
            time.sleep(0.2)


def test_the_pop3_maildrop_lock_holds_across_workers(served):
    port = served.ports["pop3"]
    pids = worker_pids(served).values()
    holder = poplib.POP3("127.0.0.1", port, timeout=60)
    holder.user(USER)
    holder.pass_(PASSWORD)
    holder_pid = serving_pid(holder.sock, pids)
    # Connect until some sessions run in the worker that does not hold the lock.
    others = []
    while sum(serving_pid(other.sock, pids) != holder_pid for other in others) < 2:
        assert len(others) < 100, "every connection went to the same worker"
        others.append(poplib.POP3("127.0.0.1", port, timeout=60))
    try:
        counts = wait_for(
            lambda: sessions_seen(served, "pop3", 1 + len(others)), "status of the POP3 sessions"
        )
        assert all(count > 0 for count in counts.values()), counts
        for other in others:
            other.user(USER)
            with pytest.raises(poplib.error_proto, match=r"IN-USE"):
                other.pass_(PASSWORD)
        holder.quit()
        for other in others:  # a lock held by no session any more is free on every worker
            other.user(USER)
            other.pass_(PASSWORD)
            other.quit()
    finally:
        for client in (holder, *others):
            client.close()


@pytest.mark.sqlite_only
def test_sqlite_writers_of_every_worker_wait_for_the_write_lock(served):
    """Every write transaction holds `tidings.db-writelock`: while another process holds it, no
    delivery commits, so none is acknowledged; released, they all are."""
    import fcntl

    with (served.data / "tidings.db-writelock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        senders = Senders(served.ports["smtp"], count=4)
        try:
            try:
                time.sleep(2)  # long enough for deliveries to reach the commit on both workers
                assert senders.acknowledged == []
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
            wait_for(lambda: len(senders.acknowledged) >= 20, "deliveries after the lock was released")
        finally:
            senders.stop()
