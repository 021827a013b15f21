"""Running CPU-heavy work off the event loop — and only heavy work.

One event loop serves every session of every protocol, so a single step that runs for half a second
(analysing a 50 MB message, decoding and searching its text, hashing it, turning 100,000 rows into
a mailbox snapshot) stalls every other client for that long. Work that grows with a message's or a
mailbox's size goes to a small pool of threads when it is big (`is_heavy`); small work stays on the
loop, where it is cheaper than the thread hop (tens of microseconds, which the benchmarks measure).

Threads are enough, with one rule for callers. The work either releases the GIL (hashlib, file
reads, SQLite stepping rows) or is Python code, which the interpreter interrupts every
`sys.getswitchinterval()` (5 ms) so the loop's thread gets its turn. A single C call over a whole
big body (`str.casefold` of 20 MB, one regular-expression scan, one decode) holds the GIL from start
to end, though, so heavy functions cut such calls into pieces of a megabyte or so
(mail/search_text.py searches a megabyte at a time). Nothing that touches the loop's objects may
run in the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

# Above this many bytes (or items, for row lists), work is worth a thread hop.
HEAVY_BYTES = 256 * 1024
HEAVY_ROWS = 5_000
WORKERS = 2  # the machines we run on have few cores; more threads would only queue on the GIL

# How long a thread may keep the GIL while another waits for it (CPython's default is 5 ms). A
# request and its reply need the GIL several times on the loop's thread, and with heavy work in a
# thread each of those waits up to this long: measured on a SEARCH over big messages, 90-170 ms of
# loop lag at 5 ms, 20-35 ms at 1 ms. With no heavy thread running nobody waits, so it costs nothing.
SWITCH_INTERVAL = 0.001

_pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="heavy")


def share_the_gil_promptly() -> None:
    """Called once by the server at start (the setting is the whole process's)."""
    sys.setswitchinterval(SWITCH_INTERVAL)


def is_heavy(size: int) -> bool:
    return size >= HEAVY_BYTES


async def offload(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in the heavy-work pool; the caller waits, the loop does not."""
    return await asyncio.get_running_loop().run_in_executor(_pool, fn, *args)


async def run_sized(size: int, fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` on the loop when `size` (bytes) is small, in the pool when it is heavy."""
    if is_heavy(size):
        return await offload(fn, *args)
    return fn(*args)


class Pacer:
    """For long loops that must stay on the loop (each step small, but 100,000 of them): `await
    pacer.tick()` after each step yields to the other tasks once `budget` seconds have passed
    since the last yield, and costs a clock read otherwise."""

    __slots__ = ("budget", "_since")

    def __init__(self, budget: float = 0.005) -> None:
        self.budget = budget
        self._since = time.perf_counter()

    async def tick(self) -> None:
        now = time.perf_counter()
        if now - self._since >= self.budget:
            await asyncio.sleep(0)
            self._since = time.perf_counter()


class LoopLagMeter:
    """How late the event loop runs a timer: the admin's view of the same thing tests/load
    measures from outside. `run()` sleeps `interval` seconds at a time and records how much later
    than asked it woke up; every session waited that long too. `recent_max` is the worst since the
    last `take_recent()` (the status file is rewritten every few seconds), `max` the worst since
    start, `stalls` how many wake-ups were `STALL` or more late."""

    STALL = 0.1

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.recent_max = 0.0
        self.max = 0.0
        self.stalls = 0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.interval)
            self.record(loop.time() - before - self.interval)

    def record(self, late: float) -> None:
        late = max(0.0, late)
        self.recent_max = max(self.recent_max, late)
        self.max = max(self.max, late)
        if late >= self.STALL:
            self.stalls += 1

    def take_recent(self) -> dict:
        """For the status file, in milliseconds; starts a new `recent` window."""
        report = {
            "recent_max_ms": round(self.recent_max * 1000, 1),
            "max_ms": round(self.max * 1000, 1),
            "stalls": self.stalls,
        }
        self.recent_max = 0.0
        return report


# CPython's cyclic collector looks at its youngest generation after this many more allocations than
# deallocations of container objects (CPython's default: 700). See `settle_the_heap`.
YOUNG_COLLECTION_THRESHOLD = 100_000


def settle_the_heap() -> None:
    """Once the server has started: collect, then freeze what exists (modules, SQLAlchemy's tables
    and compiled statements, the configuration). Those live as long as the process, and every
    full collection of CPython's cyclic garbage collector would walk them all again with the GIL
    held: about 100,000 objects, 100-450 ms here, during which no session is served. Frozen, they
    are left out (gc.freeze); nothing is leaked, as nothing freed later was garbage yet.

    Then the youngest generation is collected after `YOUNG_COLLECTION_THRESHOLD` allocations
    instead of 700. Waking 5,000 IDLE sessions of a worker at once allocates some 80,000 objects
    that live for a few milliseconds (handles, futures, the reply being written); every young
    collection in that burst promoted whatever was alive at that moment to the old generation,
    and once that grew by a quarter of the ~110 objects each idle session holds, a full
    collection walked them all: in bench/imap_idle.py with 10,000 sessions, 220-234 young, 21-22 middle
    and 1-2 full collections fell inside the 2-8 s fan-out, 40-60 % of the workers' time on a
    loaded machine. With the larger threshold the burst's short-lived objects are freed by their
    reference counts before any collection looks at them; cyclic garbage waits a little longer
    (at most that many objects)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)


_collector_pause_lock = threading.Lock()
_collector_pauses = 0
_collector_was_enabled = True


@contextlib.contextmanager
def without_cycle_collection() -> Iterator[None]:
    """Build a large acyclic structure (a mailbox snapshot of 100,000 refs) without CPython's cyclic
    collector starting a full collection every few ten thousand new objects: each walks the whole
    heap with the GIL held, and together they stalled the loop 300-450 ms on the first SELECT of
    100,000 messages. Nothing built here can form a cycle, so collection simply waits until the
    end; the next full collection walks the finished snapshot once. Safe from several threads at
    once (the collector is the whole process's: it is switched back on when the last one leaves)."""
    global _collector_pauses, _collector_was_enabled
    with _collector_pause_lock:
        if _collector_pauses == 0:
            _collector_was_enabled = gc.isenabled()
            gc.disable()
        _collector_pauses += 1
    try:
        yield
    finally:
        with _collector_pause_lock:
            _collector_pauses -= 1
            if _collector_pauses == 0 and _collector_was_enabled:
                gc.enable()
