"""The SMTP servers bench/smtp.py measures, each run from a throwaway directory on 127.0.0.1.

- `SmtpSink`: Postfix's `smtp-sink`, which answers every command and throws the message away: the
  wire ceiling (what smtp-source and the loopback can do at all).
- `PostfixServer`: a private Postfix that really queues (cleanup, qmgr, fsync) and delivers with its
  `virtual` agent to a Maildir for one virtual domain: the server users would otherwise pick. Its
  main.cf and master.cf are written here (`postfix_config`), with its own config, queue and data
  directories and one smtpd on a high loopback port, and it runs with `postfix -c DIR start-fg` as
  a child process. The system's Postfix (/etc/postfix, /var/spool/postfix, port 25) is never read,
  started or stopped: every command gets `-c` with our directory.
- `TidingsSmtpServer`: `tidings serve` from this checkout with only the smtp (MX) listener, SQLite
  under the temp dir, one user; it can be filled with messages before it starts (`prefill`).

All are context managers that stop the server and remove the directory on every exit path.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import smtp_prefill
from managed import HOST, ManagedServer, free_port, pid_alive

REPO = Path(__file__).resolve().parent.parent
DOMAIN = "bench.test"
RECIPIENT = f"rcpt@{DOMAIN}"
SMTP_SINK = "/usr/sbin/smtp-sink"
POSTFIX = "/usr/sbin/postfix"
POSTCONF = "/usr/sbin/postconf"


def wait_for_banner(
    port: int, proc: subprocess.Popen | None, timeout: float, log: Path | None = None
) -> None:
    """Until something on `port` greets with 220 (smtpd is spawned on the first connection)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"server exited with status {proc.returncode}\n{tail}")
        try:
            with socket.create_connection((HOST, port), timeout=2) as sock:
                sock.settimeout(10)
                if sock.recv(200).startswith(b"220"):
                    sock.sendall(b"QUIT\r\n")
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"no SMTP greeting on {HOST}:{port} within {timeout:.0f}s")


def _unprivileged_user() -> tuple[int, int]:
    """uid and gid that Maildir deliveries are made as when we run as root; ourselves otherwise."""
    if os.geteuid() != 0:
        return os.geteuid(), os.getegid()
    return pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid


class _Server(ManagedServer):
    name = "?"

    def __init__(self, *, keep: bool = False) -> None:
        self.keep = keep
        self.dir = Path(tempfile.mkdtemp(prefix=f"bench-{self.name.lower()}-"))
        self.dir.chmod(0o755)  # Postfix's and Tidings' unprivileged processes traverse it
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log = self.dir / "server.log"

    def stop(self) -> None:
        self.stop_process()
        if self.keep:
            print(f"{self.name}: directory kept in {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


class SmtpSink(_Server):
    """smtp-sink with a backlog of 1000; as root it needs `-u` (it refuses to run as root)."""

    name = "smtp-sink"

    def start(self) -> None:
        command = [SMTP_SINK]
        if os.geteuid() == 0:
            command += ["-u", "nobody"]
        command += [f"{HOST}:{self.port}", "1000"]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        wait_for_banner(self.port, self.proc, 30, self.log)


def postfix_config(base: Path, port: int, mail_uid: int, mail_gid: int) -> tuple[str, str]:
    """(main.cf, master.cf) for a private Postfix under `base` that accepts mail for DOMAIN on
    HOST:`port` and delivers it to Maildir `base`/mail/DOMAIN/rcpt/ as `mail_uid`:`mail_gid`.

    Tuned only so that the load is not throttled (what an admin expecting this load would do):
    no in-flow delay, no client rate limits, enough processes for the sessions. Everything else is
    Postfix's default, fsync included; no DNS (loopback client, local delivery, native lookups).
    """
    main = f"""# Private benchmark instance: never the system's /etc/postfix.
compatibility_level = 3.6
config_directory = {base}/etc
queue_directory = {base}/spool
data_directory = {base}/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = {base}/postfix.log
maillog_file_prefixes = {base}
syslog_name = postfix-bench-{port}
myhostname = postfix.{DOMAIN}
mydomain = {DOMAIN}
myorigin = $myhostname
mydestination =
relay_domains =
inet_interfaces = {HOST}
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtp_host_lookup = native
smtpd_peername_lookup = no
smtpd_client_restrictions =
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
virtual_mailbox_domains = {DOMAIN}
virtual_mailbox_maps = texthash:{base}/etc/vmailbox
virtual_mailbox_base = {base}/mail
virtual_uid_maps = static:{mail_uid}
virtual_gid_maps = static:{mail_gid}
virtual_minimum_uid = 1
alias_maps =
alias_database =
biff = no
smtputf8_enable = no
in_flow_delay = 0
default_process_limit = 200
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
smtpd_client_recipient_rate_limit = 0
smtpd_client_new_tls_session_rate_limit = 0
smtpd_tls_security_level = none
smtp_tls_security_level = none
"""
    # One smtpd on the loopback high port instead of `smtp inet`; nothing chrooted (the chroot
    # would need copies of /etc files under the spool). The rest is Debian's master.cf minus the
    # services this instance has no use for (pickup stays: the `postfix` command expects it).
    services = [
        (f"{HOST}:{port}", "inet", "n", "-", "n", "-", "-", "smtpd"),
        ("pickup", "unix", "n", "-", "n", "60", "1", "pickup"),
        ("cleanup", "unix", "n", "-", "n", "-", "0", "cleanup"),
        ("qmgr", "unix", "n", "-", "n", "300", "1", "qmgr"),
        ("rewrite", "unix", "-", "-", "n", "-", "-", "trivial-rewrite"),
        ("bounce", "unix", "-", "-", "n", "-", "0", "bounce"),
        ("defer", "unix", "-", "-", "n", "-", "0", "bounce"),
        ("trace", "unix", "-", "-", "n", "-", "0", "bounce"),
        ("verify", "unix", "-", "-", "n", "-", "1", "verify"),
        ("flush", "unix", "n", "-", "n", "1000?", "0", "flush"),
        ("proxymap", "unix", "-", "-", "n", "-", "-", "proxymap"),
        ("proxywrite", "unix", "-", "-", "n", "-", "1", "proxymap"),
        ("smtp", "unix", "-", "-", "n", "-", "-", "smtp"),
        ("relay", "unix", "-", "-", "n", "-", "-", "smtp"),
        ("showq", "unix", "n", "-", "n", "-", "-", "showq"),
        ("error", "unix", "-", "-", "n", "-", "-", "error"),
        ("retry", "unix", "-", "-", "n", "-", "-", "error"),
        ("discard", "unix", "-", "-", "n", "-", "-", "discard"),
        ("local", "unix", "-", "n", "n", "-", "-", "local"),
        ("virtual", "unix", "-", "n", "n", "-", "-", "virtual"),
        ("anvil", "unix", "-", "-", "n", "-", "1", "anvil"),
        ("scache", "unix", "-", "-", "n", "-", "1", "scache"),
        ("postlog", "unix-dgram", "n", "-", "n", "-", "1", "postlogd"),
    ]
    master = "".join(" ".join(f"{field:<10}" for field in row).rstrip() + "\n" for row in services)
    return main, master


class PostfixServer(_Server):
    """A really delivering Postfix (see `postfix_config`); `delivered()` counts Maildir new/."""

    name = "Postfix"

    def __init__(self, *, keep: bool = False) -> None:
        super().__init__(keep=keep)
        self.etc = self.dir / "etc"
        self.maildir = self.dir / "mail" / DOMAIN / "rcpt"
        self.log = self.dir / "postfix.log"

    def postfix(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([POSTFIX, "-c", str(self.etc), *args], capture_output=True, text=True)
        if check and result.returncode != 0:
            raise RuntimeError(f"postfix {' '.join(args)} failed: {(result.stderr or result.stdout).strip()}")
        return result

    def write_config(self) -> None:
        uid, gid = _unprivileged_user()
        main, master = postfix_config(self.dir, self.port, uid, gid)
        self.etc.mkdir()
        (self.etc / "main.cf").write_text(main)
        (self.etc / "master.cf").write_text(master)
        (self.etc / "vmailbox").write_text(f"{RECIPIENT} {DOMAIN}/rcpt/\n")
        for sub in ("spool", "data"):
            (self.dir / sub).mkdir()
        postfix_user = pwd.getpwnam("postfix")
        os.chown(self.dir / "data", postfix_user.pw_uid, postfix_user.pw_gid)
        mail = self.dir / "mail" / DOMAIN
        mail.mkdir(parents=True)
        for path in (self.dir / "mail", mail):
            os.chown(path, uid, gid)

    def start(self) -> None:
        if not os.access(POSTFIX, os.X_OK):
            raise RuntimeError(f"{POSTFIX} not found (scripts/install-deps.sh installs postfix)")
        self.write_config()
        # `check` creates the queue directories with their owners and refuses a broken config.
        self.postfix("check")
        with open(self.dir / "master.out", "wb") as out:
            self.proc = subprocess.Popen(
                [POSTFIX, "-c", str(self.etc), "start-fg"], stdout=out, stderr=subprocess.STDOUT
            )
        wait_for_banner(self.port, self.proc, 60, self.log)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.postfix("stop", check=False)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.postfix("abort", check=False)
        super().stop()

    def delivered(self) -> int:
        """Messages in the Maildir's new/ (the virtual agent renames them there from tmp/ when done)."""
        try:
            with os.scandir(self.maildir / "new") as entries:
                return sum(1 for _ in entries)
        except FileNotFoundError:
            return 0

    def queued(self) -> int:
        """Messages still in the queue (incoming, active, deferred), from the spool directories."""
        total = 0
        for sub in ("incoming", "active", "deferred", "hold"):
            for _root, _dirs, files in os.walk(self.dir / "spool" / sub):
                total += len(files)
        return total

    def clear_delivered(self) -> None:
        """Empty new/ between phases (disk space; new/ also stays small for counting)."""
        with os.scandir(self.maildir / "new") as entries:
            for entry in entries:
                os.unlink(entry.path)


class TidingsSmtpServer(_Server):
    """`tidings serve` from this checkout: SQLite under the temp dir, the smtp listener only."""

    name = "Tidings"

    def __init__(self, *, workers: int | None = None, keep: bool = False) -> None:
        super().__init__(keep=keep)
        self.workers = workers
        self.config = self.dir / "tidings.toml"
        self.data = self.dir / "data"
        self.env = dict(os.environ, PYTHONPATH=str(REPO))
        self._db: sqlite3.Connection | None = None
        self._inbox_id: int | None = None

    def cli(self, *args: str, stdin: str | None = None) -> str:
        command = [sys.executable, "-m", "tidings.cli", "--config", str(self.config), *args]
        result = subprocess.run(command, input=stdin, capture_output=True, text=True, cwd=REPO, env=self.env)
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines()
            raise RuntimeError(f"tidings {' '.join(args[:2])} failed: {lines[-1] if lines else '?'}")
        return result.stdout

    def write_config(self) -> None:
        # `workers` is written only when asked for: a server without the key refuses unknown keys.
        workers = f"workers = {self.workers}\n" if self.workers else ""
        self.config.write_text(
            f"""data_dir = "{self.data}"
hostname = "mx.{DOMAIN}"
default_domain = "{DOMAIN}"
allow_root = true  # measured as the reference servers run: no privilege switch
{workers}
[listen]
smtp = ["{HOST}:{self.port}"]

[limits]
connections_per_ip = 10000
unauthenticated = 10000
"""
        )
        self.cli("domain", "add", DOMAIN)
        self.cli("user", "add", RECIPIENT, "--password-stdin", stdin="correct horse 1\n")

    def start(self) -> None:
        if not self.config.exists():
            self.write_config()
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tidings.cli", "--config", str(self.config), "serve"],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env=self.env,
            )
        wait_for_banner(self.port, self.proc, 120, self.log)

    def stop(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        super().stop()

    def prefill(self, count: int, size: int, progress) -> float:
        """Put `count` messages of about `size` bytes into the INBOX before the server starts; returns
        the seconds it took. How: see bench/smtp_prefill.py."""
        if not self.config.exists():
            self.write_config()
        return smtp_prefill.run(self.config, [RECIPIENT], count, size, progress, self.env)

    def compact_in_background(self) -> subprocess.Popen:
        """`tidings compact` against the running server's store: the periodic maintenance job."""
        command = [sys.executable, "-m", "tidings.cli", "--config", str(self.config), "compact"]
        return subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO, env=self.env
        )

    def inbox_count(self) -> int:
        """Messages in the INBOX, read from the SQLite file directly (read-only, WAL: it never waits
        for the server's writer and costs the server nothing but the page cache)."""
        if self._db is None:
            self._db = sqlite3.connect(f"file:{self.data / 'tidings.db'}?mode=ro", uri=True, timeout=30)
            row = self._db.execute(
                "SELECT m.id FROM mailboxes m JOIN accounts a ON a.id = m.account_id "
                "WHERE a.address = ? AND m.name = 'INBOX'",
                (RECIPIENT,),
            ).fetchone()
            self._inbox_id = row[0]
        (count,) = self._db.execute(
            "SELECT count(*) FROM mailbox_messages WHERE mailbox_id = ?", (self._inbox_id,)
        ).fetchone()
        return count

    def unindexed(self) -> int:
        """Messages the background indexer has not analysed yet (no summary)."""
        self.inbox_count()  # opens the connection
        (count,) = self._db.execute("SELECT count(*) FROM messages WHERE summary IS NULL").fetchone()
        return count

    def loop_lag(self) -> list[dict]:
        """The event-loop lag entries of the status files: status.json and, with several worker
        processes, each worker's status-N.json (files of processes no longer running are skipped)."""
        entries = []
        for path in sorted(self.data.glob("status*.json")):
            try:
                status = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(status.get("loop_lag"), dict) and pid_alive(status.get("pid")):
                entries.append(status["loop_lag"])
        return entries
