"""What every server a benchmark starts has in common: a free port, a `with` block that stops it
even when starting fails half-way, and a stop that asks first and kills only if it must.

bench/smtp_servers.py (smtp-sink, Postfix, Tidings) and bench/imap_servers.py (Dovecot, Tidings)
build on it, so both stop their references the same way.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """A port the kernel says is free now (a tiny race with other programs is acceptable here)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def pid_alive(pid) -> bool:
    """Whether a process `pid` still runs (a stale status file names one that does not)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ManagedServer:
    """A server process of the benchmark's own: `start()` in subclasses, `stop()` in `__exit__`."""

    proc: subprocess.Popen | None = None

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.stop_process()

    def stop_process(self, timeout: float = 30, sig: int = signal.SIGTERM) -> None:
        """`sig`, then SIGKILL if the process has not ended within `timeout` seconds."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
