"""Reading what running servers say about themselves: the status files `tidings serve` rewrites.

`tidings.server` writes data_dir/status.json (a single process, or the supervisor) and
status-N.json (worker N) every STATUS_INTERVAL seconds: pid, start time, the ports each listener
is bound to, open sessions per listener, event-loop lag. `tidings status` and the admin console
both read them through `read_status`, so they cannot disagree about what is running.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from dataclasses import dataclass, field

from tidings.config import Config


@dataclass(frozen=True)
class WorkerStatus:
    index: int
    primary: bool
    pid: int  # 0 while the supervisor restarts it
    started_at: float
    restarts: int
    sessions: dict[str, int]
    loop_lag: dict | None


@dataclass(frozen=True)
class ServerStatus:
    pid: int
    started_at: float
    listeners: dict[str, list[tuple[str, int]]]
    sessions: dict[str, int]  # open sessions per listener name, all workers together
    loop_lags: list[dict]  # LoopLagMeter.take_recent() of each process
    workers: list[WorkerStatus] = field(default_factory=list)

    @property
    def stalls(self) -> int:
        return sum(lag["stalls"] for lag in self.loop_lags)


def read_status(config: Config) -> ServerStatus | None:
    """The running server's status, or None when none runs on this data directory."""
    from tidings.server import status_path

    try:
        data = json.loads(status_path(config).read_text())
    except (OSError, ValueError):
        return None
    if not pid_alive(data.get("pid", 0)):
        return None
    sessions: dict[str, int] = dict(data.get("sessions", {}))
    lags = [data["loop_lag"]] if data.get("loop_lag") else []
    workers = []
    for worker, own in _worker_files(config, data):
        for name, count in own.get("sessions", {}).items():
            sessions[name] = sessions.get(name, 0) + count
        if own.get("loop_lag"):
            lags.append(own["loop_lag"])
        workers.append(
            WorkerStatus(
                worker["index"],
                worker["primary"],
                worker["pid"],
                worker.get("started_at", 0.0),
                worker.get("restarts", 0),
                own.get("sessions", {}),
                own.get("loop_lag"),
            )
        )
    listeners = {name: [tuple(a) for a in addresses] for name, addresses in data["listeners"].items()}
    return ServerStatus(data["pid"], data["started_at"], listeners, sessions, lags, workers)


def _worker_files(config: Config, running: dict) -> list[tuple[dict, dict]]:
    """(the supervisor's entry, the worker's own status file) for each worker of a running server."""
    from tidings.server import worker_status_path

    out = []
    for worker in running.get("workers", []):
        own: dict = {}
        with contextlib.suppress(OSError, ValueError):
            own = json.loads(worker_status_path(config, worker["index"]).read_text())
        if own.get("pid") != worker["pid"]:
            own = {}  # a file left by the worker's predecessor, or none yet
        out.append((worker, own))
    return out


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except (ProcessLookupError, PermissionError, OSError):
        return False


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts a connection there (blocking: call it from a thread)."""
    target = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
    try:
        with socket.create_connection((target, port), timeout=timeout):
            return True
    except OSError:
        return False
