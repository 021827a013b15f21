"""The two IMAP servers the benchmarks compare, each run from a throwaway directory.

`DovecotServer` writes a self-contained dovecot.conf (IMAP only, plaintext LOGIN allowed, a
passwd-file with {PLAIN} passwords, Maildir under the temp dir, high port on 127.0.0.1) and runs
`dovecot -F` as a child process. `TidingsServer` writes a TOML config (only the imap listener,
[auth] allow_plaintext) and runs `python -m tidings.cli serve`; users are added with the CLI.
Both are context managers that stop the server and remove the directory on every exit path.
Nothing here ever listens anywhere but 127.0.0.1.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from managed import HOST, ManagedServer, free_port, pid_alive

REPO = Path(__file__).resolve().parent.parent
DOVECOT = "/usr/sbin/dovecot"
DOMAIN = "bench.test"


def stop_on_signals() -> None:
    """Turn SIGTERM (and SIGINT, even when started in the background) into KeyboardInterrupt.

    The servers are stopped and their directories removed by context managers, which only run
    if the signal becomes an exception instead of ending the process on the spot.
    """

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def raise_nofile(target: int) -> int:
    """Raise this process's open-file soft limit towards `target` (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(max(soft, target), hard) if hard != resource.RLIM_INFINITY else max(soft, target)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float, log: Path | None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"server exited with status {proc.returncode}\n{tail}")
        try:
            with socket.create_connection((HOST, port), timeout=1) as sock:
                sock.settimeout(5)
                if sock.recv(200).startswith(b"* OK"):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server did not answer on {HOST}:{port} within {timeout:.0f}s")


def rss_bytes(pid: int) -> int:
    """Resident set size of one process (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def pss_bytes(pid: int) -> int:
    """Proportional set size: shared pages divided among the processes that map them."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def children(pid: int) -> list[int]:
    """All descendants of `pid`, from /proc (no psutil on purpose)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""


class _Server(ManagedServer):
    name = "?"

    def __init__(
        self,
        users: dict[str, str],
        *,
        keep: bool = False,
        tmp: str | None = None,
        directory: str | None = None,
    ) -> None:
        self.users = users  # login name -> password
        # A directory given is the caller's (filled once, used by several runs): always kept.
        self.keep = keep or directory is not None
        if directory is not None:
            self.dir = Path(directory)
            self.dir.mkdir(parents=True, exist_ok=True)
        else:
            self.dir = Path(tempfile.mkdtemp(prefix=f"bench-{self.name.lower()}-", dir=tmp))
        # Dovecot's unprivileged helpers must be able to traverse the directory.
        self.dir.chmod(0o755)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log = self.dir / "server.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def login_name(self, user: str) -> str:
        return user

    def stop(self) -> None:
        self.stop_process(15)
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def describe(self) -> str:
        return f"{self.name} on {HOST}:{self.port} (dir {self.dir})"


class DovecotServer(_Server):
    """Debian's dovecot-imapd with a config of our own; one `imap` process per connection."""

    name = "Dovecot"

    def start(self) -> None:
        if not os.path.exists(DOVECOT):
            raise RuntimeError(f"{DOVECOT} not found (apt-get install dovecot-imapd)")
        d = self.dir
        for sub in ("run", "state", "mail"):
            (d / sub).mkdir()
        mail_user, mail_group = _unprivileged_user()
        os.chown(d / "mail", pwd.getpwnam(mail_user).pw_uid, grp.getgrnam(mail_group).gr_gid)
        (d / "passwd").write_text("".join(f"{u}:{{PLAIN}}{p}\n" for u, p in self.users.items()))
        # Client counts of thousands need the per-service and per-user limits raised; the
        # defaults (100 processes, 10 connections per user and IP) would refuse the load.
        conf = f"""
base_dir = {d}/run
state_dir = {d}/state
log_path = {self.log}
instance_name = bench-{self.port}
protocols = imap
listen = {HOST}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = dovecot
default_login_user = dovenull
default_vsz_limit = 0
mail_location = maildir:{d}/mail/%u
mail_max_userip_connections = 100000
# Thousands of imap processes under one uid exhaust inotify instances (128 by default), after
# which Dovecot notices new mail in IDLE only by polling, every 30 s by default.
mailbox_idle_check_interval = 1 secs
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = static
  args = uid={mail_user} gid={mail_group} home={d}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = {HOST}
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  # Dovecot's "high-performance mode": a few long-lived login processes each take many
  # connections, instead of a new process per connection; the per-session `imap` processes
  # after login are the same either way. Without it, 10,000 logins took over 20 minutes.
  service_count = 0
  process_min_avail = 2
  client_limit = 20000
  process_limit = 20000
}}
service imap {{
  process_limit = 20000
}}
service auth {{
  client_limit = 50000
}}
service anvil {{
  client_limit = 50000
}}
"""
        config = d / "dovecot.conf"
        config.write_text(conf)
        check = subprocess.run([DOVECOT, "-n", "-c", str(config)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"dovecot rejected the config:\n{check.stderr}")
        with open(d / "stdout.log", "wb") as out:
            self.proc = subprocess.Popen([DOVECOT, "-F", "-c", str(config)], stdout=out, stderr=out)
        wait_for_port(self.port, self.proc, 30, self.log)

    def session_pids(self) -> list[int]:
        """The per-connection `imap` processes (what an idle connection costs)."""
        return [p for p in children(self.pid) if process_name(p) == "imap"]

    def all_pids(self) -> list[int]:
        return [self.pid, *children(self.pid)]


def _unprivileged_user() -> tuple[str, str]:
    """The user and group Dovecot stores mail as when we run as root; ourselves otherwise."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid()).pw_name, grp.getgrgid(os.getegid()).gr_name
    for user, group in (("nobody", "nogroup"), ("nobody", "nobody")):
        try:
            pwd.getpwnam(user)
            grp.getgrnam(group)
            return user, group
        except KeyError:
            continue
    raise RuntimeError("no unprivileged user (nobody) to store Dovecot's mail as")


class TidingsServer(_Server):
    """`tidings serve` from this checkout, SQLite under the temp dir, IMAP listener only."""

    name = "Tidings"

    # Where `tidings` is imported from: this checkout unless TIDINGS_SRC names another (e.g. a
    # `git archive` snapshot, when the shared working tree is in the middle of someone's edit).
    source = Path(os.environ.get("TIDINGS_SRC", REPO))

    def __init__(self, *args, python: str | None = None, workers: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.python = python or sys.executable
        self.workers = workers  # `workers = N` in the config; left out (the server's default) if None
        self.config = self.dir / "tidings.toml"
        self.env = dict(os.environ, PYTHONPATH=str(self.source))

    def login_name(self, user: str) -> str:
        return f"{user}@{DOMAIN}"

    def _cli(self, *args: str, stdin: str | None = None) -> None:
        command = [self.python, "-m", "tidings.cli", "--config", str(self.config), *args]
        result = subprocess.run(
            command, input=stdin, capture_output=True, text=True, cwd=self.source, env=self.env
        )
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines()
            raise RuntimeError(f"tidings {' '.join(args[:3])} failed: {lines[-1] if lines else '?'}")

    # More [listen] lines for the config (bench/web.py adds the web client's http listener).
    extra_listen = ""

    def write_config(self) -> None:
        """The config, with this run's ports (a kept directory keeps its data, not its ports)."""
        workers = f"workers = {self.workers}\n" if self.workers is not None else ""
        self.config.write_text(
            f"""data_dir = "{self.dir}/data"
hostname = "{DOMAIN}"
default_domain = "{DOMAIN}"
allow_root = true
{workers}
[listen]
imap = ["{HOST}:{self.port}"]
{self.extra_listen}
[auth]
allow_plaintext = true
# The benchmark logs in thousands of times from one address.
max_failures_per_ip = 1000000

[limits]
# Thousands of sessions from a few loopback addresses, many being set up at once.
connections = 1000000
connections_per_ip = 1000000
unauthenticated = 1000000
"""
        )

    def add_users(self) -> None:
        """The domain and the users (before `start`, or by it when the store is new)."""
        self._cli("domain", "add", DOMAIN)
        for user, password in self.users.items():
            self._cli("user", "add", self.login_name(user), "--password-stdin", stdin=password + "\n")

    def start(self) -> None:
        self.write_config()
        if not (self.dir / "data" / "tidings.db").exists():
            self.add_users()
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [self.python, "-m", "tidings.cli", "--config", str(self.config), "serve"],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.source,
                env=self.env,
            )
        wait_for_port(self.port, self.proc, 60, self.log)

    def all_pids(self) -> list[int]:
        """`tidings serve` and any worker processes it started."""
        return [self.pid, *children(self.pid)]

    def loop_lag(self) -> dict[str, tuple[float, float]]:
        """{status file: (when it was written, its recent_max_ms)} of the running processes.

        The server rewrites status.json every few seconds with the worst lag its loop meter saw
        since the previous write; with several worker processes each writes its own status-N.json
        (files of processes no longer running are skipped)."""
        out: dict[str, tuple[float, float]] = {}
        for path in sorted((self.dir / "data").glob("status*.json")):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            lag = data.get("loop_lag")
            if isinstance(lag, dict) and "recent_max_ms" in lag and pid_alive(data.get("pid")):
                out[path.name] = (float(data.get("updated_at", 0.0)), float(lag["recent_max_ms"]))
        return out

    def describe(self) -> str:
        revision = subprocess.run(
            ["git", "-C", str(self.source), "log", "-1", "--format=%h"], capture_output=True, text=True
        ).stdout.strip()
        where = f"{self.source}" + (f" at {revision}" if revision else "")
        workers = f", workers = {self.workers}" if self.workers is not None else ""
        return f"{super().describe()}, code from {where}{workers}"


def server_memory(server) -> tuple[int, int, int]:
    """(RSS sum, PSS sum, processes) over the server's process tree: all Dovecot processes (the
    master, its helpers and one `imap` per session), or `tidings serve` and its workers."""
    pids = server.all_pids()
    rss = pss = 0
    for pid in pids:
        try:
            rss += rss_bytes(pid)
            pss += pss_bytes(pid)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return rss, pss, len(pids)
