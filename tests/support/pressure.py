"""Measuring what a hostile client costs the server: event-loop lag and process memory.

`LoopLag` runs a probe coroutine on the test server's own loop that sleeps a few milliseconds at a
time and records how late it wakes: while another client does something heavy, the largest delay
is how long every other session on that loop was stalled. `memory_kib` reads this process's
/proc/self/status (the test server runs in a thread of the test process).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

PROBE_INTERVAL = 0.005


def memory_kib(field: str = "VmRSS") -> int:
    """VmRSS (resident now) or VmHWM (peak resident) of this process, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class LoopLag:
    """``with LoopLag(running) as lag: ...`` then ``lag.max`` (seconds) and ``lag.samples``."""

    def __init__(self, running) -> None:
        self.running = running
        self.max = 0.0
        self.samples = 0
        self._stop = False
        self._future = None

    async def _probe(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop:
            before = loop.time()
            await asyncio.sleep(PROBE_INTERVAL)
            self.max = max(self.max, loop.time() - before - PROBE_INTERVAL)
            self.samples += 1

    def __enter__(self) -> LoopLag:
        self._future = asyncio.run_coroutine_threadsafe(self._probe(), self.running.loop)
        deadline = time.monotonic() + 5
        while self.samples == 0 and time.monotonic() < deadline:
            time.sleep(PROBE_INTERVAL)
        return self

    def __exit__(self, *exc) -> None:
        self._stop = True
        self._future.result(10)


class NoopRoundTrips:
    """The same question asked from outside: a second IMAP client sends NOOP every
    `interval` seconds from its own thread and times each reply. Before the heavy work starts it
    takes a baseline (the median of `baseline_samples` round trips); `lag` is the slowest round trip
    seen since `start_load()` minus that baseline, i.e. how long an innocent client waited for the
    loop. NOOP is legal before login (RFC 9051 6.1.2), so the probe needs no account and touches no
    mailbox: all it measures is the loop (and the socket).

    ``with NoopRoundTrips(port) as probe: probe.start_load(); <heavy work>`` then ``probe.lag``.
    """

    def __init__(
        self, port: int, host: str = "127.0.0.1", interval: float = 0.01, baseline_samples: int = 30
    ):
        import socket
        import threading

        self.interval = interval
        self.baseline_samples = baseline_samples
        self.sock = socket.create_connection((host, port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""
        self._line()  # greeting
        self.baseline_rtts: list[float] = []
        self.load_rtts: list[float] = []
        self._loaded = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="noop-probe", daemon=True)
        self._error: BaseException | None = None

    def _line(self) -> bytes:
        while b"\r\n" not in self._buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("server closed the probe connection")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\r\n", 1)
        return line

    def _run(self) -> None:
        try:
            n = 0
            while not self._stop.is_set():
                n += 1
                tag = b"p%d" % n
                started = time.perf_counter()
                self.sock.sendall(tag + b" NOOP\r\n")
                while not self._line().startswith(tag + b" "):
                    pass
                rtt = time.perf_counter() - started
                (self.load_rtts if self._loaded else self.baseline_rtts).append(rtt)
                self._stop.wait(self.interval)
        except BaseException as exc:  # reported by __exit__
            self._error = exc

    def __enter__(self) -> NoopRoundTrips:
        self._thread.start()
        deadline = time.monotonic() + 10
        while len(self.baseline_rtts) < self.baseline_samples and time.monotonic() < deadline:
            time.sleep(self.interval)
        return self

    def start_load(self) -> None:
        self._loaded = True

    @property
    def baseline(self) -> float:
        ordered = sorted(self.baseline_rtts)
        return ordered[len(ordered) // 2] if ordered else 0.0

    @property
    def lag(self) -> float:
        return max(self.load_rtts, default=0.0) - self.baseline

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(30)
        self.sock.close()
        if self._error is not None and exc[0] is None:
            raise self._error

    def __repr__(self) -> str:
        return (
            f"NoopRoundTrips(lag={self.lag * 1000:.1f} ms, baseline={self.baseline * 1000:.2f} ms, "
            f"samples={len(self.load_rtts)})"
        )
