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
