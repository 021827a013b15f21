"""A real `tidings serve` in a child process, for tests that measure what a client costs the server.

The in-process `RunningServer` shares its interpreter (memory, GIL) with the test's clients, so its
resident size and latencies mix both. A child process is measured alone: `rss_kib()` reads its
/proc/<pid>/status, and clients in the test thread do not compete with it for the GIL. It runs as
`tidings serve` does in production (uvloop when installed), with a config file and listeners on
port 0 read back from status.json. With TIDINGS_TEST_DATABASE set it uses a fresh PostgreSQL
database, like every other test server.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.support.running import fresh_database_url

ROOT = Path(__file__).resolve().parents[2]


def wait_ports_closed(ports, timeout: float = 30) -> None:
    """After `kill -9` of `tidings serve` (the supervisor): its worker processes die with it
    (PR_SET_PDEATHSIG) but a few milliseconds later, and until the last one is gone the ports still
    take connections into a backlog nobody will serve. A test that restarts the server at once
    waits for that first."""
    deadline = time.monotonic() + timeout
    for port in ports:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                break
            assert time.monotonic() < deadline, f"port {port} still answers after the server was killed"
            time.sleep(0.05)


def stop_traced(tracer: subprocess.Popen) -> None:
    """Stop a `tidings serve` run under strace: SIGTERM to the server itself (strace would only
    detach from it), and strace ends with it."""
    for child in Path(f"/proc/{tracer.pid}/task/{tracer.pid}/children").read_text().split():
        os.kill(int(child), signal.SIGTERM)
    try:
        tracer.wait(30)
    except subprocess.TimeoutExpired:
        tracer.kill()
        tracer.wait()


class ServerProcess:
    """``ServerProcess(tmp_path, listeners=("imap",)).start()``; ``ports``, ``rss_kib()``, ``stop()``."""

    def __init__(
        self, directory: Path, *, listeners=("imap",), domain: str = "example.test", extra: str = ""
    ):
        self.directory = directory
        self.data = directory / "data"
        self.config = directory / "tidings.toml"
        listen = "".join(f'{name} = ["127.0.0.1:0"]\n' for name in listeners)
        directory.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            f'data_dir = "{self.data}"\nhostname = "mail.{domain}"\ndatabase = "{fresh_database_url()}"\n'
            f'default_domain = "{domain}"\nnode_id = "proc-{os.getpid()}-{id(self):x}"\n'
            # as root the server would run as `tidings`, which cannot enter pytest's 0700 tmp root
            "allow_root = true\n"
            f"{extra}\n[auth]\nallow_plaintext = true\n[listen]\n{listen}"
        )
        self.proc: subprocess.Popen | None = None
        self.ports: dict[str, int] = {}

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
        return env

    def start(self, timeout: float = 30) -> ServerProcess:
        status = self.data / "status.json"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tidings.cli", "--config", str(self.config), "serve"],
            cwd=ROOT,
            env=self._env(),
            stdout=subprocess.DEVNULL,
            stderr=(self.directory / "server.log").open("wb"),
        )
        deadline = time.monotonic() + timeout
        while not status.exists():
            assert self.proc.poll() is None, (self.directory / "server.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        listeners = json.loads(status.read_text())["listeners"]
        self.ports = {name: addrs[0][1] for name, addrs in listeners.items()}
        return self

    def add_user(self, address: str, password: str) -> None:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "tidings.cli",
                "--config",
                str(self.config),
                "user",
                "add",
                address,
                "--password-stdin",
            ],
            input=password + "\n",
            text=True,
            check=True,
            capture_output=True,
            cwd=ROOT,
            env=self._env(),
        )

    def rss_kib(self, field: str = "VmRSS") -> int:
        """VmRSS (resident now) or VmHWM (peak resident) of the server process, in KiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
