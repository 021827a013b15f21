"""IMAP benchmark: Tidings against Dovecot, same messages, same mixed workload, one run.

    .venv/bin/python bench/imap.py                 # 10 and 100 clients, 20 s each, both servers
    .venv/bin/python bench/imap.py --quick         # smoke run: a few seconds, small mailboxes
    .venv/bin/python bench/imap.py --only dovecot  # one server (e.g. while Tidings is broken)

For each server in turn: start it from a temp directory on a free port of 127.0.0.1 (Dovecot from
Debian's dovecot-imapd with a config written here, Tidings with `tidings serve`), load the same
deterministic messages into bench1..benchN by IMAP APPEND through the server itself, check both
hold the same bytes, then let N concurrent clients loop over a fixed weighted mix (SELECT, FETCH
headers, FETCH bodies, STORE flags, APPEND, SEARCH, STORE \\Deleted + EXPUNGE, IDLE/DONE) for a
fixed time and count completed operations. Afterwards K extra connections log in, SELECT and sit in
IDLE, and the server's memory before/after gives the cost of one idle connection (RSS of the
Tidings process; for Dovecot the sum over its processes, RSS and PSS).

The load generator is this process (asyncio, uvloop when installed, raw sockets, no pipelining),
apart from the server processes. On a 2-core machine the client competes with the server for
CPU, equally for both servers; the ratio is what to read, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import re
import statistics
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import imap_corpus
from imap_client import ImapClient, ImapError, close_all, open_idlers
from imap_servers import (
    HOST,
    DovecotServer,
    TidingsServer,
    raise_nofile,
    server_memory,
    stop_on_signals,
)

# The mix: operation -> weight. Reading dominates, as with real clients; APPEND and EXPUNGE are
# balanced so the mailboxes keep their size over a run.
MIX = {
    "select": 5,
    "fetch_headers": 25,
    "fetch_body": 20,
    "store": 15,
    "search": 10,
    "append": 9,
    "expunge": 8,
    "idle": 8,
}
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
COMMAND_TIMEOUT = 60.0


@dataclass
class Stats:
    """What one run of the mix produced, summed over its clients."""

    ops: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    error_samples: dict[str, str] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    received: int = 0
    elapsed: float = 0.0
    clients_lost: int = 0
    client_cpu: float = 0.0  # seconds of CPU this load generator used during the run
    view_mismatches: int = 0  # clients whose EXISTS/EXPUNGE count disagreed with SEARCH ALL

    @property
    def total(self) -> int:
        return sum(self.ops.values())

    @property
    def rate(self) -> float:
        return self.total / self.elapsed if self.elapsed else 0.0

    def merge(self, other: Stats) -> None:
        """Add another run's figures (a repeat of the same client count)."""
        self.ops.update(other.ops)
        self.errors.update(other.errors)
        for op, text in other.error_samples.items():
            self.error_samples.setdefault(op, text)
        for op, values in other.latencies.items():
            self.latencies[op].extend(values)
        self.received += other.received
        self.elapsed += other.elapsed
        self.clients_lost += other.clients_lost
        self.client_cpu += other.client_cpu
        self.view_mismatches += other.view_mismatches

    def error(self, op: str, text: str) -> None:
        self.errors[op] += 1
        self.error_samples.setdefault(op, text[:200])


def users(count: int) -> dict[str, str]:
    return {f"bench{i}": f"bench-pass-{i}-x" for i in range(1, count + 1)}


# -- loading ------------------------------------------------------------------------------------


async def load_mailboxes(server, corpora: dict[str, list[bytes]]) -> float:
    """APPEND every user's messages through the server itself; seconds taken."""
    started = time.monotonic()

    async def one(user: str, messages: list[bytes]) -> None:
        client = await ImapClient.connect(HOST, server.port)
        try:
            await client.login(server.login_name(user), server.users[user])
            rng = random.Random(f"flags:{user}")
            for i, message in enumerate(messages):
                flags = []
                if rng.random() < 0.6:
                    flags.append("\\Seen")
                if rng.random() < 0.1:
                    flags.append("\\Flagged")
                # A fixed INTERNALDATE keeps SINCE searches identical on both servers.
                date = f"{1 + i % 28:02d}-{('Jan', 'Mar', 'Jul', 'Oct')[i % 4]}-2024 10:00:00 +0000"
                await client.check(f'APPEND INBOX ({" ".join(flags)}) "{date}"', message)
        finally:
            await client.logout()

    await asyncio.gather(*(one(u, m) for u, m in corpora.items()))
    return time.monotonic() - started


async def initial_sync(server, corpora: dict[str, list[bytes]]) -> float:
    """What a mail client does first: fetch every message's summary; seconds taken.

    This also warms both servers the same way (Dovecot fills its index cache, Tidings analyses
    messages it stored unparsed), so the timed runs compare steady states.
    """
    started = time.monotonic()

    async def one(user: str) -> None:
        client = await ImapClient.connect(HOST, server.port)
        try:
            await client.login(server.login_name(user), server.users[user])
            await client.select("INBOX")
            await client.check(f"UID FETCH 1:* {HEADER_FETCHES[0][:-1]} ENVELOPE BODYSTRUCTURE)")
        finally:
            await client.logout()

    await asyncio.gather(*(one(u) for u in corpora))
    return time.monotonic() - started


async def mailbox_fingerprint(server, user: str) -> tuple[int, int]:
    """(messages, total RFC822.SIZE) of a user's INBOX, to check both servers hold the same."""
    client = await ImapClient.connect(HOST, server.port)
    try:
        await client.login(server.login_name(user), server.users[user])
        await client.select("INBOX")
        if client.exists == 0:
            return 0, 0
        response = await client.check("FETCH 1:* (RFC822.SIZE)")
        sizes = [int(m.group(1)) for m in re.finditer(rb"RFC822\.SIZE (\d+)", b"\n".join(response.untagged))]
        return len(sizes), sum(sizes)
    finally:
        await client.logout()


# Run on the freshly loaded first mailbox; both servers must give the same answers.
PROBE_SEARCHES = [
    "SEARCH UNSEEN",
    "SEARCH FLAGGED SINCE 1-Jun-2024",
    'SEARCH FROM "alice"',
    'SEARCH SUBJECT "budget"',
    f'SEARCH BODY "{imap_corpus.RARE_WORDS[0]}"',
    f'SEARCH TEXT "{imap_corpus.RARE_WORDS[1]}"',
    f'SEARCH OR BODY "{imap_corpus.RARE_WORDS[2]}" HEADER Subject "report"',
    "SEARCH LARGER 15000 NOT SEEN",
]


async def probe_answers(server, user: str, messages: list[bytes]) -> dict[str, str]:
    """Answers to fixed SEARCHes (as sequence numbers) and whether FETCH BODY[] gives back the bytes."""
    client = await ImapClient.connect(HOST, server.port)
    answers: dict[str, str] = {}
    try:
        await client.login(server.login_name(user), server.users[user])
        await client.select("INBOX")
        for command in PROBE_SEARCHES:
            response = await client.command(command)
            answers[command] = (
                " ".join(map(str, sorted(response.search_uids())))
                if response.ok
                else f"{response.status} {response.text[:80]!r}"
            )
        count = min(10, len(messages))
        response = await client.command(f"FETCH 1:{count} (BODY.PEEK[])")
        bodies = [line.split(b"}", 1)[1][:-1] for line in response.untagged if b"BODY[]" in line]
        same = sum(1 for got, sent in zip(bodies, messages, strict=False) if got == sent)
        answers[f"FETCH 1:{count} BODY[] = APPENDed bytes"] = f"{same} of {count}"
    finally:
        await client.logout()
    return answers


# -- the mixed workload --------------------------------------------------------------------------


class MixClient:
    """One simulated mail client working on one user's INBOX."""

    def __init__(self, server, user: str, corpus: list[bytes], mix: dict[str, int], seed: int) -> None:
        self.server = server
        self.user = user
        self.corpus = corpus
        self.rng = random.Random(seed)
        self.client: ImapClient | None = None
        self.base_uids: list[int] = []  # the loaded messages; nobody expunges these
        self.own_uids: list[int] = []  # messages this client appended and may expunge
        self.ops = [op for op in mix if mix[op] > 0]
        self.weights = [mix[op] for op in self.ops]

    async def setup(self) -> None:
        self.client = await ImapClient.connect(HOST, self.server.port, timeout=COMMAND_TIMEOUT)
        await self.client.login(self.server.login_name(self.user), self.server.users[self.user])
        await self.client.select("INBOX")
        found = await self.client.check("UID SEARCH ALL")
        self.base_uids = sorted(found.search_uids())[: len(self.corpus)]
        if not self.base_uids:
            raise ImapError(f"{self.user}: empty INBOX after loading")

    async def run(self, start_at: float, stop_at: float, stats: Stats) -> None:
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        while time.monotonic() < stop_at:
            op = self.rng.choices(self.ops, self.weights)[0]
            began = time.monotonic()
            try:
                done_op, received = await asyncio.wait_for(getattr(self, "op_" + op)(), COMMAND_TIMEOUT)
            except ImapError as exc:
                stats.error(op, str(exc))
                continue
            except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
                stats.error(op, f"{type(exc).__name__}: {exc}")
                stats.clients_lost += 1
                return
            finished = time.monotonic()
            if finished <= stop_at:
                stats.ops[done_op] += 1
                stats.received += received
                stats.latencies[done_op].append(finished - began)

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
            # Without UIDPLUS (RFC 4315) find it the way a client would: the newest message.
            found = await self.client.check("UID SEARCH ALL")
            uid = max(found.search_uids())
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


async def run_mix(
    server, corpora: dict[str, list[bytes]], clients: int, duration: float, mix: dict[str, int]
) -> Stats:
    """`clients` connections (users round-robin) running the mix for `duration` seconds."""
    names = list(corpora)
    simulated = [
        MixClient(server, names[i % len(names)], corpora[names[i % len(names)]], mix, seed=i)
        for i in range(clients)
    ]
    # Connect and log in ten at a time: logins are not what we measure.
    gate = asyncio.Semaphore(10)

    async def setup(c: MixClient) -> None:
        async with gate:
            await c.setup()

    await asyncio.gather(*(setup(c) for c in simulated))
    stats = Stats()
    start_at = time.monotonic() + 0.5
    stop_at = start_at + duration
    cpu_before = time.process_time()
    await asyncio.gather(*(c.run(start_at, stop_at, stats) for c in simulated))
    stats.client_cpu = time.process_time() - cpu_before
    stats.elapsed = duration
    # Nothing changes any more: after a NOOP every client's count, kept from the EXISTS and
    # EXPUNGE responses it saw (RFC 9051 section 7.4.1), must equal the messages SEARCH ALL finds.
    for c in simulated:
        if await c.view_is_consistent() is False:
            stats.view_mismatches += 1
    await asyncio.gather(*(c.client.logout() for c in simulated if c.client))
    return stats


# -- idle memory ---------------------------------------------------------------------------------


@dataclass
class IdleMemory:
    connections: int
    failed: int
    rss_before: int
    rss_after: int
    pss_before: int = 0
    pss_after: int = 0
    processes: int = 1

    @property
    def rss_per_connection(self) -> float:
        return (self.rss_after - self.rss_before) / max(1, self.connections)

    @property
    def pss_per_connection(self) -> float:
        return (self.pss_after - self.pss_before) / max(1, self.connections)


async def measure_idle(server, count: int) -> IdleMemory:
    """Server memory before and after `count` authenticated, selected connections in IDLE."""
    logins = [(server.login_name(u), p) for u, p in server.users.items()]
    # Warm up with a few concurrent logins first: they grow the server's allocator arenas once
    # (argon2 takes ~19 MiB per hash in Tidings' worker threads), which is not per-connection cost.
    warm, _ = await open_idlers(HOST, server.port, logins, min(count, 100))
    await close_all(warm, graceful=False)
    await asyncio.sleep(1.0)
    rss_before, pss_before, _ = server_memory(server)
    clients, errors = await open_idlers(HOST, server.port, logins, count)
    await asyncio.sleep(2.0)  # let the server settle (Dovecot forks, our buffers fill)
    rss_after, pss_after, processes = server_memory(server)
    await close_all(clients, graceful=False)
    if errors:
        print(f"  {server.name}: {len(errors)} idle connection(s) failed, e.g. {errors[0]}", file=sys.stderr)
    return IdleMemory(len(clients), len(errors), rss_before, rss_after, pss_before, pss_after, processes)


# -- one server, start to end ---------------------------------------------------------------------


@dataclass
class ServerResult:
    name: str
    load_seconds: float = 0.0
    sync_seconds: float = 0.0
    fingerprint: dict[str, tuple[int, int]] = field(default_factory=dict)
    probes: dict[str, str] = field(default_factory=dict)
    runs: dict[int, Stats] = field(default_factory=dict)
    idle: IdleMemory | None = None
    failure: str = ""


async def prepare(server, corpora, idle_count: int) -> ServerResult:
    """Load the mailboxes, check what the server holds, and measure idle connections' memory."""
    result = ServerResult(server.name)
    print(f"{server.describe()}: loading {sum(map(len, corpora.values()))} messages", flush=True)
    result.load_seconds = await load_mailboxes(server, corpora)
    result.sync_seconds = await initial_sync(server, corpora)
    for user in corpora:
        result.fingerprint[user] = await mailbox_fingerprint(server, user)
    first = next(iter(corpora))
    result.probes = await probe_answers(server, first, corpora[first])
    if idle_count:
        # Before the mix runs: afterwards freed memory would be reused and hide the real cost.
        print(f"  {server.name}: {idle_count} idle connections", flush=True)
        result.idle = await measure_idle(server, idle_count)
    return result


async def bench_all(servers: list, corpora, args) -> list[ServerResult]:
    """Prepare every server, then run each client count on them in turn (repeats alternate)."""
    results: dict[str, ServerResult] = {}
    for server in servers:
        try:
            results[server.name] = await prepare(server, corpora, args.idle_connections)
        except Exception as exc:  # noqa: BLE001 - one broken server must not hide the other's figures
            results[server.name] = _failed(server.name, exc)
    for clients in args.clients:
        for _ in range(args.repeat):
            for server in servers:
                result = results[server.name]
                if result.failure:
                    continue
                print(f"  {server.name}: {clients} clients for {args.duration:.0f}s", flush=True)
                try:
                    stats = await run_mix(server, corpora, clients, args.duration, args.mix)
                except Exception as exc:  # noqa: BLE001
                    results[server.name] = _failed(server.name, exc, result)
                    continue
                print(f"  {server.name}: {clients} clients: {stats.rate:.0f} ops/s", flush=True)
                if clients in result.runs:
                    result.runs[clients].merge(stats)
                else:
                    result.runs[clients] = stats
    return list(results.values())


def _failed(name: str, exc: BaseException, result: ServerResult | None = None) -> ServerResult:
    print(f"{name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    result = result or ServerResult(name)
    result.failure = f"{type(exc).__name__}: {exc}"[:500]
    return result


def run_servers(classes: list, passwords: dict[str, str], corpora, args) -> list[ServerResult]:
    """Start the servers side by side, measure, and stop them (also on errors and Ctrl-C)."""
    results: list[ServerResult] = []
    with contextlib.ExitStack() as stack:
        servers = []
        for cls in classes:
            try:
                servers.append(stack.enter_context(cls(passwords, keep=args.keep, tmp=args.tmp)))
            except Exception as exc:  # noqa: BLE001
                results.append(_failed(cls.name, exc))
        with asyncio.Runner(loop_factory=_loop_factory(args)) as runner:
            results.extend(runner.run(bench_all(servers, corpora, args)))
    order = [cls.name for cls in classes]
    return sorted(results, key=lambda r: order.index(r.name))


def _loop_factory(args):
    if args.no_uvloop:
        return None
    try:
        import uvloop

        return uvloop.new_event_loop
    except ImportError:
        return None


# -- report ----------------------------------------------------------------------------------------


def _kib(value: float) -> str:
    return f"{value / 1024:,.0f} KiB"


def _ms(values: list[float], q: float) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000:.1f}"


def report(results: list[ServerResult], args, corpora) -> None:
    by_name = {r.name: r for r in results}
    dovecot, tidings = by_name.get("Dovecot"), by_name.get("Tidings")
    count = sum(map(len, corpora.values()))
    mean = statistics.mean(len(m) for msgs in corpora.values() for m in msgs)
    print()
    print(
        f"IMAP benchmark: {len(corpora)} users x {args.messages} messages (mean {mean / 1024:.1f} KiB), "
        f"{args.duration:.0f} s per run, load generator {'asyncio' if args.no_uvloop else 'uvloop'}"
    )
    print("mix: " + ", ".join(f"{op} {w}" for op, w in args.mix.items() if w))
    for r in results:
        if r.failure:
            print(f"{r.name}: FAILED: {r.failure}")
        else:
            rate = count / r.load_seconds
            print(
                f"{r.name}: loaded {count} messages by APPEND in {r.load_seconds:.1f}s ({rate:.0f}/s), "
                f"first full summary FETCH in {r.sync_seconds:.1f}s"
            )
    if dovecot and tidings and dovecot.fingerprint and tidings.fingerprint:
        same = dovecot.fingerprint == tidings.fingerprint
        print(f"mailboxes identical (count and RFC822.SIZE per user): {'yes' if same else 'NO'}")
        if not same:
            for user in corpora:
                d, t = dovecot.fingerprint.get(user), tidings.fingerprint.get(user)
                if d != t:
                    print(f"  {user}: Dovecot {d}, Tidings {t}")
    if dovecot and tidings and dovecot.probes and tidings.probes:
        differ = [k for k in dovecot.probes if dovecot.probes[k] != tidings.probes.get(k)]
        print(f"probe answers (SEARCH, FETCH BODY[]) identical: {'yes' if not differ else 'NO'}")
        for key in differ:
            print(f"  {key}: Dovecot {dovecot.probes[key][:100]!r}, Tidings {tidings.probes.get(key)!r:.100}")
    print()
    header = (
        f"{'clients':>7}  {'Dovecot ops/s':>13}  {'Tidings ops/s':>13}  {'Tidings/Dovecot':>15}"
        f"  {'errors D/T':>10}  {'load-gen CPU D/T':>16}"
    )
    print(header)
    print("-" * len(header))
    for clients in args.clients:
        d = dovecot.runs.get(clients) if dovecot else None
        t = tidings.runs.get(clients) if tidings else None
        ratio = f"{t.rate / d.rate:.2f}" if d and t and d.rate else "-"
        errors = f"{sum(d.errors.values()) if d else '-'}/{sum(t.errors.values()) if t else '-'}"
        cpu = "/".join(f"{s.client_cpu / s.elapsed:.0%}" if s else "-" for s in (d, t))
        print(
            f"{clients:>7}  {f'{d.rate:,.0f}' if d else '-':>13}  {f'{t.rate:,.0f}' if t else '-':>13}"
            f"  {ratio:>15}  {errors:>10}  {cpu:>16}"
        )
    print()
    print("latency p50 / p99 in ms per operation")
    for clients in args.clients:
        ops = [
            op for op in MIX if any(r.runs.get(clients) and r.runs[clients].latencies[op] for r in results)
        ]
        print(f"  {clients} clients{'':<8}" + "".join(f"{op:>17}" for op in ops))
        for r in results:
            stats = r.runs.get(clients)
            if not stats:
                continue
            cells = "".join(
                f"{_ms(stats.latencies[op], 0.5) + ' / ' + _ms(stats.latencies[op], 0.99):>17}" for op in ops
            )
            print(f"  {r.name:<17}{cells}")
    for r in results:
        for clients, stats in r.runs.items():
            for op, n in stats.errors.items():
                print(f"  {r.name} {clients} clients: {n} {op} errors, e.g. {stats.error_samples[op]}")
            if stats.view_mismatches:
                print(
                    f"  {r.name} {clients} clients: {stats.view_mismatches} client(s) counted a different "
                    "number of messages (EXISTS/EXPUNGE) than SEARCH ALL finds"
                )
            if stats.clients_lost:
                print(f"  {r.name} {clients} clients: {stats.clients_lost} client(s) lost their connection")
    print()
    for r in results:
        idle = r.idle
        if not idle:
            continue
        line = (
            f"{r.name}: {idle.connections} idle connections (IDLE, INBOX selected): "
            f"RSS {idle.rss_before / 2**20:.1f} -> {idle.rss_after / 2**20:.1f} MiB, "
            f"{_kib(idle.rss_per_connection)} per connection"
        )
        if isinstance(idle, IdleMemory) and r.name == "Dovecot":
            line += (
                f" (sum over {idle.processes} processes; PSS {_kib(idle.pss_per_connection)} per connection)"
            )
        if idle.failed:
            line += f"; {idle.failed} failed to open"
        print(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="10,100", help="comma-separated client counts (default 10,100)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per run (default 20)")
    parser.add_argument("--users", type=int, default=10, help="users bench1..benchN (default 10)")
    parser.add_argument("--messages", type=int, default=200, help="messages per user (default 200)")
    parser.add_argument("--idle-connections", type=int, default=500, help="K for memory per idle connection")
    parser.add_argument("--only", choices=["dovecot", "tidings"], help="benchmark one server")
    parser.add_argument("--repeat", type=int, default=1, help="runs per client count, alternating servers")
    parser.add_argument(
        "--mix", help="operation weights, e.g. fetch_body=1 or search=1,store=2 (default: the fixed mix)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 s, 3 users x 30 messages")
    parser.add_argument("--no-uvloop", action="store_true", help="plain asyncio loop for the load generator")
    parser.add_argument(
        "--keep", action="store_true", help="keep the servers' temp dirs (logs) for debugging"
    )
    parser.add_argument("--tmp", help="where to make the temp dirs (default: system temp dir)")
    args = parser.parse_args(argv)
    stop_on_signals()
    args.clients = [int(c) for c in args.clients.split(",") if c.strip()]
    args.mix = _parse_mix(parser, args.mix)
    if args.quick:
        args.duration, args.users, args.messages = 3.0, 3, 30
        args.clients = [c for c in args.clients if c <= 10] or [10]
        args.idle_connections = min(args.idle_connections, 50)
    if max(args.clients) > 2000 or args.idle_connections > 5000 or args.duration > 600:
        parser.error("keep it bounded: at most 2000 clients, 5000 idle connections, 600 s")
    raise_nofile(max(args.clients) + args.idle_connections + 1000)

    corpora = {u: imap_corpus.mailbox(f"{u}@example.test", args.messages) for u in users(args.users)}
    classes = []
    if args.only in (None, "dovecot"):
        classes.append(DovecotServer)
    if args.only in (None, "tidings"):
        classes.append(TidingsServer)
    results = run_servers(classes, users(args.users), corpora, args)
    report(results, args, corpora)
    return 0 if all(not r.failure for r in results) else 1


def _parse_mix(parser: argparse.ArgumentParser, text: str | None) -> dict[str, int]:
    if not text:
        return dict(MIX)
    mix = dict.fromkeys(MIX, 0)
    for item in text.split(","):
        op, _, weight = item.partition("=")
        if op.strip() not in MIX or not weight.strip().isdigit():
            parser.error(f"--mix: use op=weight with op one of {', '.join(MIX)}")
        mix[op.strip()] = int(weight)
    if not any(mix.values()):
        parser.error("--mix: all weights are zero")
    return mix


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; servers stopped and temp dirs removed", file=sys.stderr)
        sys.exit(130)
