"""The workloads of the IMAP benchmark: simulated clients, the named mixes, and what a run counts.

Two mixes, both over plaintext and the same for both servers:

* `current` - the benchmark's original mail-client mix: UID FETCH of header windows and single
  bodies, STORE of system flags, SEARCH, APPEND, STORE \\Deleted + EXPUNGE of its own appends,
  re-SELECT and IDLE/DONE. One operation per step, each of one or two commands.
* `stress` - what stress tools such as Dovecot's imaptest do: sequence-number FETCH of flags,
  headers and bodies anywhere in the client's view, STORE +FLAGS/-FLAGS with system flags and
  `$Keyword` atoms, APPEND with flags and keywords, EXPUNGE, re-SELECT, and LOGOUT followed by a
  new connection and LOGIN (churn). Several clients share each mailbox, so EXPUNGEs of one reach
  the others' views while they work by sequence number.

Every command is timed (`ImapClient.observer`), per command name; tagged NO/BAD, untagged BAD,
unexpected BYE and untagged responses that contradict the session's view (an EXISTS that shrinks, a
FETCH or EXPUNGE beyond the message count) count as protocol errors of the operation that sent
them. One response is not an error: NO [EXPUNGEISSUED] (RFC 5530) to a FETCH/STORE of a message
another session has just expunged is what RFC 9051 section 7.4.1 allows a server to say; it is
counted apart as a race.

Clients whose index is a multiple of BIG_EVERY work in the big mailbox (imap_big), the others in
bench1..benchN round-robin. This module never starts servers: see imap_servers.
"""

from __future__ import annotations

import asyncio
import math
import random
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import imap_big
import imap_corpus
from imap_client import CommandFailed, ImapClient, ImapError, Response
from imap_servers import HOST

COMMAND_TIMEOUT = 60.0
SLICE = 10.0  # seconds per throughput slice
BIG_EVERY = 10  # client 0, 10, 20, ... works in the big mailbox (when there is one)

# The current mix: operation -> weight. Reading dominates, as with real clients; APPEND and
# EXPUNGE are balanced so the mailboxes keep their size over a run.
CURRENT = {
    "select": 5,
    "fetch_headers": 25,
    "fetch_body": 20,
    "store": 15,
    "search": 10,
    "append": 9,
    "expunge": 8,
    "idle": 8,
}
# Close to imaptest's default state weights (LOGIN/SELECT/FETCH/FETCH2/STORE/DELETE/EXPUNGE/
# APPEND/LOGOUT), with FETCH split into flags, headers and bodies and STORE into system flags and
# keywords. APPEND and EXPUNGE balance; churn is LOGOUT + connect + LOGIN + SELECT.
STRESS = {
    "select": 6,
    "fetch_flags": 15,
    "fetch_headers": 12,
    "fetch_body": 12,
    "store_flags": 12,
    "store_keywords": 12,
    "append": 10,
    "expunge": 10,
    "churn": 5,
}
# The light load of the isolation scenario: a reader that marks messages now and then.
LIGHT = {"fetch_headers": 40, "fetch_body": 30, "store": 20, "select": 10}
MIXES = {"current": CURRENT, "stress": STRESS, "light": LIGHT}
# Seconds a client waits between operations: none in the throughput mixes (every client as fast
# as it is answered); the light mix pauses like a person reading, so its latencies show what the
# server's other work does to it rather than the queue its own clients build.
THINK = {"light": (0.02, 0.08)}

SEARCHES = [
    "UID SEARCH UNSEEN",
    "UID SEARCH FLAGGED SINCE 1-Jun-2024",
    'UID SEARCH FROM "alice"',
    'UID SEARCH SUBJECT "budget"',
    f'UID SEARCH BODY "{imap_corpus.RARE_WORDS[0]}"',
]
HEADER_FETCHES = [
    "(UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE MESSAGE-ID)])",
    "(UID FLAGS RFC822.SIZE ENVELOPE)",
]
BODY_FETCHES = ["(BODY.PEEK[])", "(BODYSTRUCTURE BODY.PEEK[1])", "(FLAGS BODY.PEEK[TEXT])"]
STORES = ["+FLAGS (\\Seen)", "-FLAGS (\\Seen)", "+FLAGS (\\Flagged)", "-FLAGS (\\Flagged)"]
SYSTEM_FLAGS = ["\\Seen", "\\Flagged", "\\Answered", "\\Draft"]
# Nine keywords: Dovecot's Maildir keeps at most 26 per mailbox (one letter each).
KEYWORDS = [
    "$Label1",
    "$Label2",
    "$Label3",
    "$Label4",
    "$Label5",
    "$Forwarded",
    "$MDNSent",
    "$Junk",
    "$NotJunk",
]
# Commands whose latency the report prints, in this order.
COMMANDS = ["FETCH", "STORE", "APPEND", "SELECT", "SELECT-big", "EXPUNGE", "LOGIN", "SEARCH"]


@dataclass
class Stats:
    """What one run of a mix produced, summed over its clients."""

    started: float = 0.0  # monotonic start and end of the measured window
    stopped: float = 0.0
    ops: Counter = field(default_factory=Counter)
    commands: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)  # op -> NO/BAD/unexpected responses
    error_samples: dict[str, str] = field(default_factory=dict)
    races: Counter = field(default_factory=Counter)  # op -> NO [EXPUNGEISSUED]
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))  # per command
    op_latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    slices: Counter = field(default_factory=Counter)  # slice index -> completed operations
    received: int = 0
    clients_lost: int = 0
    client_cpu: float = 0.0  # seconds of CPU this load generator used during the run
    view_mismatches: int = 0  # clients whose EXISTS/EXPUNGE count disagreed with SEARCH ALL
    loop_lag_ms: list[float] = field(default_factory=list)  # Tidings' own meter, per status window
    timeline: list[tuple[float, float]] = field(default_factory=list)  # (finished, seconds) per op

    earlier: float = 0.0  # seconds of earlier runs merged into this one (--repeat)

    @property
    def elapsed(self) -> float:
        return self.stopped - self.started + self.earlier

    @property
    def total(self) -> int:
        return sum(self.ops.values())

    @property
    def rate(self) -> float:
        return self.total / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def command_rate(self) -> float:
        return sum(self.commands.values()) / self.elapsed if self.elapsed > 0 else 0.0

    def slice_rates(self) -> list[float]:
        """Operations per second in each whole SLICE of the window (a last partial one too)."""
        count = max(1, math.ceil(round(self.elapsed, 3) / SLICE))  # 60.0000001 s is 6 slices
        out = []
        for i in range(count):
            width = min(SLICE, self.elapsed - i * SLICE)
            out.append(self.slices[i] / width if width > 0 else 0.0)
        return out

    def merge(self, other: Stats) -> None:
        """Add a repeat of the same mix and client count: its slices follow this one's."""
        offset = len(self.slice_rates())
        self.earlier += other.elapsed
        self.ops.update(other.ops)
        self.commands.update(other.commands)
        self.errors.update(other.errors)
        self.races.update(other.races)
        for op, text in other.error_samples.items():
            self.error_samples.setdefault(op, text)
        for name, values in other.latencies.items():
            self.latencies[name].extend(values)
        for name, values in other.op_latencies.items():
            self.op_latencies[name].extend(values)
        for index, count in other.slices.items():
            self.slices[offset + index] += count
        self.received += other.received
        self.clients_lost += other.clients_lost
        self.client_cpu += other.client_cpu
        self.view_mismatches += other.view_mismatches
        self.loop_lag_ms.extend(other.loop_lag_ms)

    def in_window(self, moment: float) -> bool:
        return self.started <= moment <= self.stopped

    def error(self, op: str, text: str) -> None:
        self.errors[op] += 1
        self.error_samples.setdefault(op, text[:300])

    def observe(self, op: str, name: str, seconds: float, response: Response) -> None:
        """One command's outcome (called by ImapClient after each command)."""
        now = time.monotonic()
        counted = self.in_window(now)
        if counted:
            self.commands[name] += 1
            self.latencies[name].append(seconds)
        for complaint in response.violations:
            self.error(op, f"{name}: {complaint}")
        for line in response.untagged:
            head = line[:6].upper()
            if head.startswith(b"* BAD") or (head.startswith(b"* BYE") and name != "LOGOUT"):
                self.error(op, f"{name}: untagged {line[:200]!r}")
        if response.status == "OK":
            return
        if response.status == "NO" and b"[EXPUNGEISSUED]" in response.text.upper():
            self.races[op] += 1
            return
        self.error(op, f"{name} -> {response.status} {response.text[:200]!r}")


class MixClient:
    """One simulated mail client working on one user's INBOX with the `current` (or light) mix."""

    def __init__(self, server, user: str, password: str, corpus: list[bytes], mix: dict[str, int], seed: int):
        self.server = server
        self.user = user
        self.password = password
        self.corpus = corpus
        self.rng = random.Random(seed)
        self.client: ImapClient | None = None
        self.base_uids: list[int] = []  # messages that were there before; nobody expunges these
        self.own_uids: list[int] = []  # messages this client appended and may expunge
        self.big = user == imap_big.BIG_USER
        # BODY search over the big mailbox reads every body on both servers; it is not what a
        # client in a 100,000-message folder does every few seconds.
        ops = {op: w for op, w in mix.items() if w > 0 and not (self.big and op == "search")}
        self.ops = list(ops)
        self.weights = list(ops.values())
        self.op = "setup"
        self.stats: Stats | None = None
        self.think: tuple[float, float] | None = None

    async def connect(self) -> None:
        self.client = await ImapClient.connect(HOST, self.server.port, timeout=COMMAND_TIMEOUT)
        self.client.observer = self._observe
        await self.client.login(self.server.login_name(self.user), self.password)
        await self.client.select("INBOX")

    def _observe(self, name: str, seconds: float, response: Response) -> None:
        if self.stats is not None:
            # SELECT of 100,000 messages is another job than of 200: its own line in the tables.
            if self.big and name == "SELECT":
                name = "SELECT-big"
            self.stats.observe(self.op, name, seconds, response)

    async def setup(self) -> None:
        await self.connect()
        found = await self.client.check("UID SEARCH ALL")
        uids = sorted(found.search_uids())
        self.base_uids = uids if self.big else uids[: len(self.corpus)]
        if not self.base_uids:
            raise ImapError(f"{self.user}: empty INBOX after loading")

    async def run(self, stats: Stats) -> None:
        """Operations until `stats.stopped` (read each time round: the isolation scenario moves it)."""
        await asyncio.sleep(max(0.0, stats.started - time.monotonic()))
        self.stats = stats
        while time.monotonic() < stats.stopped:
            self.op = op = self.rng.choices(self.ops, self.weights)[0]
            began = time.monotonic()
            try:
                done_op, received = await asyncio.wait_for(getattr(self, "op_" + op)(), COMMAND_TIMEOUT)
            except CommandFailed:
                continue  # counted by Stats.observe (an error, or an EXPUNGEISSUED race)
            except ImapError as exc:
                stats.error(op, str(exc))
                continue
            except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
                stats.error(op, f"{type(exc).__name__}: {exc}")
                stats.clients_lost += 1
                return
            finished = time.monotonic()
            if finished <= stats.stopped:
                stats.ops[done_op] += 1
                stats.received += received
                stats.op_latencies[done_op].append(finished - began)
                stats.timeline.append((finished, finished - began))
                stats.slices[int((finished - stats.started) // SLICE)] += 1
            if self.think:
                await asyncio.sleep(self.rng.uniform(*self.think))
        self.op = "after"

    async def view_is_consistent(self) -> bool | None:
        """None if the connection is gone; else whether the tracked count matches the mailbox."""
        try:
            await asyncio.wait_for(self.client.check("NOOP"), COMMAND_TIMEOUT)
            found = await asyncio.wait_for(self.client.check("SEARCH ALL"), COMMAND_TIMEOUT)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ImapError):
            return None
        if len(found.search_uids()) != self.client.exists:
            print(
                f"  {self.server.name} {self.user}: client counted {self.client.exists} messages, "
                f"SEARCH ALL found {len(found.search_uids())}",
                file=sys.stderr,
            )
            return False
        return True

    def _uid(self) -> int:
        return self.rng.choice(self.base_uids)

    async def op_select(self) -> tuple[str, int]:
        response = await self.client.select("INBOX")
        return "select", response.received

    async def op_fetch_headers(self) -> tuple[str, int]:
        first = self.rng.randrange(max(1, len(self.base_uids) - 20))
        window = self.base_uids[first : first + 20]
        items = self.rng.choice(HEADER_FETCHES)
        response = await self.client.check(f"UID FETCH {window[0]}:{window[-1]} {items}")
        return "fetch_headers", response.received

    async def op_fetch_body(self) -> tuple[str, int]:
        response = await self.client.check(f"UID FETCH {self._uid()} {self.rng.choice(BODY_FETCHES)}")
        return "fetch_body", response.received

    async def op_store(self) -> tuple[str, int]:
        response = await self.client.check(f"UID STORE {self._uid()} {self.rng.choice(STORES)}")
        return "store", response.received

    async def op_search(self) -> tuple[str, int]:
        response = await self.client.check(self.rng.choice(SEARCHES))
        return "search", response.received

    async def op_append(self) -> tuple[str, int]:
        message = self.rng.choice(self.corpus)
        response = await self.client.check("APPEND INBOX (\\Seen)", message)
        uid = response.append_uid()
        if uid is None:
            raise ImapError("APPEND: no APPENDUID in the tagged OK (UIDPLUS, RFC 4315)")
        self.own_uids.append(uid)
        return "append", response.received

    async def op_expunge(self) -> tuple[str, int]:
        if not self.own_uids:
            return await self.op_append()
        uid = self.own_uids.pop(0)
        await self.client.check(f"UID STORE {uid} +FLAGS.SILENT (\\Deleted)")
        response = await self.client.check("EXPUNGE")
        return "expunge", response.received

    async def op_idle(self) -> tuple[str, int]:
        await self.client.idle_start()
        response = await self.client.idle_done()
        if not response.ok:
            raise ImapError(f"IDLE ended with {response.status} {response.text[:100]!r}")
        return "idle", response.received


class StressClient(MixClient):
    """The `stress` mix: sequence numbers, keywords, churn; mailboxes shared with other clients."""

    def _range(self, most: int) -> str:
        """A sequence range inside this session's view (EXISTS/EXPUNGE kept by ImapClient)."""
        exists = self.client.exists
        if exists <= 0:
            raise ImapError(f"{self.user}: the selected INBOX is empty")
        first = self.rng.randint(1, exists)
        last = min(exists, first + self.rng.randrange(most))
        return f"{first}:{last}" if last > first else str(first)

    async def op_fetch_flags(self) -> tuple[str, int]:
        response = await self.client.check(f"FETCH {self._range(50)} (UID FLAGS)")
        return "fetch_flags", response.received

    async def op_fetch_headers(self) -> tuple[str, int]:
        response = await self.client.check(f"FETCH {self._range(20)} {self.rng.choice(HEADER_FETCHES)}")
        return "fetch_headers", response.received

    async def op_fetch_body(self) -> tuple[str, int]:
        response = await self.client.check(f"FETCH {self._range(1)} {self.rng.choice(BODY_FETCHES)}")
        return "fetch_body", response.received

    async def op_store_flags(self) -> tuple[str, int]:
        sign = self.rng.choice("+-")
        flags = " ".join(self.rng.sample(SYSTEM_FLAGS, self.rng.randint(1, 2)))
        silent = self.rng.choice(["", ".SILENT"])
        response = await self.client.check(f"STORE {self._range(10)} {sign}FLAGS{silent} ({flags})")
        return "store_flags", response.received

    async def op_store_keywords(self) -> tuple[str, int]:
        sign = self.rng.choice("+-")
        flags = " ".join(self.rng.sample(KEYWORDS, self.rng.randint(1, 3)))
        response = await self.client.check(f"STORE {self._range(10)} {sign}FLAGS ({flags})")
        return "store_keywords", response.received

    async def op_append(self) -> tuple[str, int]:
        message = self.rng.choice(self.corpus)
        flags = self.rng.sample(SYSTEM_FLAGS[:3], self.rng.randint(0, 1)) + self.rng.sample(
            KEYWORDS, self.rng.randint(0, 2)
        )
        response = await self.client.check(f"APPEND INBOX ({' '.join(flags)})", message)
        uid = response.append_uid()
        if uid is None:
            raise ImapError("APPEND: no APPENDUID in the tagged OK (UIDPLUS, RFC 4315)")
        self.own_uids.append(uid)
        return "append", response.received

    async def op_expunge(self) -> tuple[str, int]:
        if not self.own_uids:
            return await self.op_append()
        # Only its own appends, so the loaded messages stay and APPEND/EXPUNGE keep the size.
        take = self.own_uids[: self.rng.randint(1, 2)]
        del self.own_uids[: len(take)]
        await self.client.check(f"UID STORE {','.join(map(str, take))} +FLAGS.SILENT (\\Deleted)")
        response = await self.client.check("EXPUNGE")
        return "expunge", response.received

    async def op_churn(self) -> tuple[str, int]:
        """LOGOUT, a new connection, LOGIN and SELECT: what short-lived clients do all day."""
        await self.client.check("LOGOUT")
        self.client.close()
        await self.connect()
        return "churn", 0


def make_clients(
    server, users: list[tuple[str, str, list[bytes]]], count: int, mix_name: str
) -> list[MixClient]:
    """`count` simulated clients of the named mix. `users` is [(user, password, corpus)]: the
    small users round-robin, and the big user (if in the list) for every BIG_EVERY-th client."""
    mix = MIXES[mix_name]
    cls = StressClient if mix_name == "stress" else MixClient
    big = [u for u in users if u[0] == imap_big.BIG_USER]
    small = [u for u in users if u[0] != imap_big.BIG_USER]
    out = []
    for i in range(count):
        user, password, corpus = big[0] if big and i % BIG_EVERY == 0 else small[i % len(small)]
        out.append(cls(server, user, password, corpus, mix, seed=i))
        out[-1].think = THINK.get(mix_name)
    return out


async def set_up(simulated: list[MixClient]) -> None:
    """Connect and log in ten at a time: logins are not what we measure here."""
    gate = asyncio.Semaphore(10)

    async def one(c: MixClient) -> None:
        async with gate:
            await c.setup()

    await asyncio.gather(*(one(c) for c in simulated))


async def wind_up(simulated: list[MixClient], stats: Stats) -> None:
    """Check every client's view of its mailbox, then log out."""
    for c in simulated:
        c.stats = None
    # Nothing changes any more: after a NOOP every client's count, kept from the EXISTS and
    # EXPUNGE responses it saw (RFC 9051 section 7.4.1), must equal the messages SEARCH ALL finds.
    for c in simulated:
        if c.client and await c.view_is_consistent() is False:
            stats.view_mismatches += 1
    await asyncio.gather(*(c.client.logout() for c in simulated if c.client))


async def run_mix(server, users, clients: int, duration: float, mix_name: str, watchers=()) -> Stats:
    """`clients` connections running the named mix for `duration` seconds; each of `watchers`
    (coroutine functions taking the Stats, e.g. progress and loop-lag sampling) runs alongside."""
    simulated = make_clients(server, users, clients, mix_name)
    await set_up(simulated)
    stats = Stats()
    stats.started = time.monotonic() + 0.5
    stats.stopped = stats.started + duration
    cpu_before = time.process_time()
    tasks = [asyncio.create_task(watch(stats)) for watch in watchers]
    try:
        await asyncio.gather(*(c.run(stats) for c in simulated))
    finally:
        for task in tasks:
            task.cancel()
    stats.client_cpu = time.process_time() - cpu_before
    await wind_up(simulated, stats)
    return stats


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
