"""Isolation under heavy requests: does one big job in one session slow every other session?

About ten clients run the `light` mix (header windows, single bodies, flag changes, re-SELECT of
their small INBOX). After a few seconds of baseline, two heavy jobs start at once in sessions of
their own: an APPEND of a 50 MB message (to a user nobody else reads) and the first SELECT of the
big mailbox (imap_big: nothing has opened it before). The window lasts from their start until both
have answered; the light clients' operations that finished inside it give the p50/p99/max shown
next to the baseline's. The goal (issue 7) is p99 under 100 ms in the window.

Must run before the mixes: any SELECT of the big mailbox would make the next one not the first.
"""

from __future__ import annotations

import asyncio
import base64
import random
import time
from dataclasses import dataclass, field

import imap_big
from imap_client import ImapClient
from imap_mix import COMMAND_TIMEOUT, Stats, make_clients, percentile, set_up, wind_up
from imap_servers import HOST

ISOLATION_USER = "isolation"
ISOLATION_PASSWORD = "bench-pass-iso-x"
LIGHT_CLIENTS = 10
BASELINE = 3.0  # seconds of light load before the heavy jobs
TAIL = 1.0  # seconds after them


def huge_message(size: int) -> bytes:
    """At most `size` octets: a long quoted-printable text part and a base64 attachment (what MIME
    analysis must step over), like tests/load's message at the size limit."""
    rng = random.Random(50)
    line = b"The quick brown fox jumps over the lazy dog, caf=C3=A9 au lait.=\r\n"
    text = line * (size // 2 // len(line))
    head = (
        b"From: carol@remote.test\r\nTo: isolation@bench.test\r\nSubject: big one\r\n"
        b"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <huge@remote.test>\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + text + b"\r\n--b1\r\n"
        b'Content-Type: application/octet-stream; name="data.bin"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n"
    )
    tail = b"--b1--\r\n"
    # base64 in 76-column lines: 3 bytes become 4 characters, and every 76 a CRLF more.
    room = max(0, size - len(head) - len(tail) - 80)
    attachment = base64.encodebytes(rng.randbytes(room * 3 // 4 * 76 // 78)).replace(b"\n", b"\r\n")
    return head + attachment + tail


@dataclass
class IsolationResult:
    message_bytes: int = 0
    append_seconds: float = 0.0
    select_seconds: float = 0.0
    select_exists: int = 0
    baseline: list[float] = field(default_factory=list)  # light ops' latencies before
    window: list[float] = field(default_factory=list)  # light ops' latencies that ended in the window
    window_seconds: float = 0.0
    loop_lag_ms: list[float] = field(default_factory=list)
    stats: Stats | None = None
    failure: str = ""

    def p(self, which: str, q: float) -> str:
        value = percentile(getattr(self, which), q)
        return "-" if value is None else f"{value * 1000:.1f}"


async def run_isolation(server, small_users, message: bytes, watchers=()) -> IsolationResult:
    result = IsolationResult(message_bytes=len(message))
    light = make_clients(server, small_users, LIGHT_CLIENTS, "light")
    await set_up(light)
    appender = await ImapClient.connect(HOST, server.port, timeout=600)
    await appender.login(server.login_name(ISOLATION_USER), ISOLATION_PASSWORD)
    selector = await ImapClient.connect(HOST, server.port, timeout=600)
    await selector.login(server.login_name(imap_big.BIG_USER), imap_big.BIG_PASSWORD)

    stats = Stats()
    stats.started = time.monotonic() + 0.5
    stats.stopped = stats.started + BASELINE + 600  # moved to the real end below
    tasks = [asyncio.create_task(watch(stats)) for watch in watchers]
    runs = asyncio.gather(*(c.run(stats) for c in light))
    try:
        await asyncio.sleep(stats.started + BASELINE - time.monotonic())
        heavy_started = time.monotonic()

        async def append() -> None:
            began = time.monotonic()
            await appender.check("APPEND INBOX", message)
            result.append_seconds = time.monotonic() - began

        async def select() -> None:
            began = time.monotonic()
            await selector.select("INBOX")
            result.select_seconds = time.monotonic() - began
            result.select_exists = selector.exists

        await asyncio.wait_for(asyncio.gather(append(), select()), 600)
        heavy_ended = time.monotonic()
        stats.stopped = heavy_ended + TAIL
        await asyncio.wait_for(runs, COMMAND_TIMEOUT + TAIL)
    finally:
        for task in tasks:
            task.cancel()
        stats.stopped = min(stats.stopped, time.monotonic())
        runs.cancel()
        await appender.logout()
        await selector.logout()
    await wind_up(light, stats)
    result.stats = stats
    result.window_seconds = heavy_ended - heavy_started
    result.baseline = [s for t, s in stats.timeline if t < heavy_started]
    # An operation counts for the window if any of it overlapped the heavy jobs.
    result.window = [s for t, s in stats.timeline if t >= heavy_started and t - s <= heavy_ended]
    result.loop_lag_ms = list(stats.loop_lag_ms)
    return result
