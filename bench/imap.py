"""IMAP benchmark: Tidings against Dovecot, same messages, same workloads, one run.

    .venv/bin/python bench/imap.py                   # mixes current+stress, 10 and 100 clients, 60 s each
    .venv/bin/python bench/imap.py --quick           # smoke run: 5 s, small mailboxes, big mailbox 2,000
    .venv/bin/python bench/imap.py --mixes stress --clients 10 --big 0
    .venv/bin/python bench/imap.py --only dovecot    # one server (e.g. while Tidings is broken)
    .venv/bin/python bench/imap.py --workers 2       # `workers = 2` in the Tidings config

For each server: start it from a temp directory on a free port of 127.0.0.1 (Dovecot from Debian's
dovecot-imapd with a config written here, Tidings with `tidings serve`), load the same deterministic
messages into bench1..benchN by IMAP APPEND through the server itself, and the big mailbox (N
messages, 100,000 by default, by MULTIAPPEND: see imap_big), check both hold the same bytes and
give the same SEARCH answers, and measure the memory of K idle connections. Then:

1. Isolation (imap_isolation): ten light clients; one session APPENDs a 50 MB message while
   another does the first SELECT of the big mailbox; the light clients' p99 in that window.
2. Each named mix (imap_mix: `current`, `stress`) at each client count, servers alternating:
   every 10th client works in the big mailbox, so SELECTs of it, the server's background work
   (indexing, checkpoints) and flag changes in it fall inside the measured window. Printed: ops/s
   per 10-second slice and the mean, p50/p99 per IMAP command, Tidings' own event-loop lag (from
   its status.json), and every NO/BAD/unexpected response per operation.

The exit status is non-zero if a server could not be measured or either server gave a single
protocol error (NO [EXPUNGEISSUED] races excepted, see imap_mix), lost a client, or told a client
a message count that SEARCH ALL then contradicted.

The load generator is this process (asyncio, uvloop when installed, raw sockets, no pipelining),
apart from the server processes. On a 2-core machine the client competes with the server for
CPU, equally for both servers; the ratio is what to read, not the absolute numbers. Dovecot checks
plaintext {PLAIN} passwords; Tidings argon2id ones, with its cache of verified passwords.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import re
import sys
import time
from dataclasses import dataclass, field

import imap_big
import imap_corpus
from imap_client import ImapClient, ImapError, close_all, open_idlers
from imap_isolation import (
    ISOLATION_PASSWORD,
    ISOLATION_USER,
    LIGHT_CLIENTS,
    IsolationResult,
    huge_message,
    run_isolation,
)
from imap_mix import HEADER_FETCHES, MIXES, SLICE, Stats, run_mix
from imap_report import report
from imap_servers import (
    HOST,
    DovecotServer,
    TidingsServer,
    raise_nofile,
    server_memory,
    stop_on_signals,
)


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


async def measure_idle(server, users: list[str], count: int) -> IdleMemory:
    """Server memory before and after `count` authenticated, selected connections in IDLE."""
    logins = [(server.login_name(u), server.users[u]) for u in users]
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
    big_seconds: float = 0.0
    big_count: int = 0
    fingerprint: dict[str, tuple[int, int]] = field(default_factory=dict)
    probes: dict[str, str] = field(default_factory=dict)
    runs: dict[tuple[str, int], Stats] = field(default_factory=dict)  # (mix, clients) -> figures
    isolation: IsolationResult | None = None
    idle: IdleMemory | None = None
    failure: str = ""


def mix_users(server, corpora: dict[str, list[bytes]], big: int) -> list[tuple[str, str, list[bytes]]]:
    """(user, password, corpus to APPEND from) for the mixes; the big user first if there is one."""
    out = [(u, server.users[u], m) for u, m in corpora.items()]
    if big:
        out.insert(0, (imap_big.BIG_USER, imap_big.BIG_PASSWORD, next(iter(corpora.values()))))
    return out


async def prepare(server, corpora, args) -> ServerResult:
    """Load the mailboxes, check what the server holds, and measure idle connections' memory."""
    result = ServerResult(server.name)
    print(f"{server.describe()}: loading {sum(map(len, corpora.values()))} messages", flush=True)
    result.load_seconds = await load_mailboxes(server, corpora)
    if args.big:
        shown = [0.0]
        started = time.monotonic()

        def progress(done: int) -> None:
            if time.monotonic() - shown[0] >= 10 or done == args.big:
                shown[0] = time.monotonic()
                rate = done / max(0.001, shown[0] - started)
                print(f"  {server.name}: big mailbox {done:,}/{args.big:,} ({rate:,.0f}/s)", flush=True)

        result.big_seconds = await imap_big.load_big(server, args.big, progress)
        result.big_count = await imap_big.big_count(server)
        if result.big_count != args.big:
            raise ImapError(f"big mailbox holds {result.big_count} messages, not {args.big}")
    result.sync_seconds = await initial_sync(server, corpora)
    for user in corpora:
        result.fingerprint[user] = await mailbox_fingerprint(server, user)
    first = next(iter(corpora))
    result.probes = await probe_answers(server, first, corpora[first])
    if args.idle_connections:
        # Before the mix runs: afterwards freed memory would be reused and hide the real cost.
        print(f"  {server.name}: {args.idle_connections} idle connections", flush=True)
        result.idle = await measure_idle(server, list(corpora), args.idle_connections)
    return result


def watchers(server, label: str):
    """Progress every SLICE seconds, and Tidings' own loop-lag meter (status.json) for the report."""

    async def progress(stats: Stats) -> None:
        await asyncio.sleep(max(0.0, stats.started - time.monotonic()))
        shown = 0
        while True:
            await asyncio.sleep(SLICE)
            done = stats.total - shown
            shown = stats.total
            errors = sum(stats.errors.values())
            print(
                f"  {label}: {time.monotonic() - stats.started:4.0f}s  {done / SLICE:7,.0f} ops/s"
                f"  errors {errors}",
                flush=True,
            )

    async def lag(stats: Stats) -> None:
        # One value per status-file write (per worker): the worst lag since that file's last write.
        seen = server.loop_lag()
        while True:
            await asyncio.sleep(1.0)
            for name, (written, worst) in server.loop_lag().items():
                if seen.get(name, (None,))[0] != written:
                    stats.loop_lag_ms.append(worst)
                    seen[name] = (written, worst)

    return [progress, lag] if isinstance(server, TidingsServer) else [progress]


async def bench_all(servers: list, corpora, args) -> list[ServerResult]:
    """Prepare every server, run the isolation scenario, then each mix and client count in turn."""
    results: dict[str, ServerResult] = {}
    for server in servers:
        try:
            # Bounded even if a server stops answering: 600 s plus 20 messages/s for the big mailbox.
            results[server.name] = await asyncio.wait_for(prepare(server, corpora, args), 600 + args.big / 20)
        except Exception as exc:  # noqa: BLE001 - one broken server must not hide the other's figures
            results[server.name] = _failed(server.name, exc)
    if args.big and args.isolation:
        message = huge_message(args.isolation)
        for server in servers:
            result = results[server.name]
            if result.failure:
                continue
            print(
                f"  {server.name}: isolation: {LIGHT_CLIENTS} light clients, APPEND of "
                f"{len(message) / 1e6:.0f} MB and first SELECT of {args.big:,} messages",
                flush=True,
            )
            users = mix_users(server, corpora, 0)
            try:
                result.isolation = await run_isolation(
                    server, users, message, watchers(server, f"{server.name} isolation")
                )
            except Exception as exc:  # noqa: BLE001
                results[server.name] = _failed(server.name, exc, result)
        del message
    for clients in args.clients:
        for mix in args.mixes:
            for _ in range(args.repeat):
                for server in servers:
                    result = results[server.name]
                    if result.failure:
                        continue
                    label = f"{server.name} {mix} {clients} clients"
                    print(f"  {label}: {args.duration:.0f}s", flush=True)
                    try:
                        stats = await run_mix(
                            server,
                            mix_users(server, corpora, args.big),
                            clients,
                            args.duration,
                            mix,
                            watchers(server, label),
                        )
                    except Exception as exc:  # noqa: BLE001
                        results[server.name] = _failed(server.name, exc, result)
                        continue
                    print(
                        f"  {label}: {stats.rate:,.0f} ops/s, {sum(stats.errors.values())} errors",
                        flush=True,
                    )
                    if (mix, clients) in result.runs:
                        result.runs[mix, clients].merge(stats)
                    else:
                        result.runs[mix, clients] = stats
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
            options = {"workers": args.workers} if cls is TidingsServer and args.workers is not None else {}
            try:
                servers.append(stack.enter_context(cls(passwords, keep=args.keep, tmp=args.tmp, **options)))
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="10,100", help="comma-separated client counts (default 10,100)")
    parser.add_argument(
        "--mixes", "--mix", default="current,stress", help=f"named mixes to run, of {', '.join(MIXES)}"
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per run (default 60)")
    parser.add_argument("--users", type=int, default=10, help="users bench1..benchN (default 10)")
    parser.add_argument("--messages", type=int, default=200, help="messages per user (default 200)")
    parser.add_argument(
        "--big", type=int, default=100_000, help="messages in the big mailbox (default 100,000; 0: none)"
    )
    parser.add_argument(
        "--isolation",
        type=int,
        default=50_000_000,
        help="size of the message APPENDed in the isolation scenario (default 50 MB; 0: skip it)",
    )
    parser.add_argument("--idle-connections", type=int, default=500, help="K for memory per idle connection")
    parser.add_argument(
        "--workers",
        type=int,
        help="write `workers = N` into the Tidings config (0: one per core); left out if not given",
    )
    parser.add_argument("--only", choices=["dovecot", "tidings"], help="benchmark one server")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per mix and client count, alternating servers"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 5 s, 3 users x 30 messages, big 2,000"
    )
    parser.add_argument("--no-uvloop", action="store_true", help="plain asyncio loop for the load generator")
    parser.add_argument(
        "--keep", action="store_true", help="keep the servers' temp dirs (logs) for debugging"
    )
    parser.add_argument("--tmp", help="where to make the temp dirs (default: system temp dir)")
    args = parser.parse_args(argv)
    stop_on_signals()
    args.clients = [int(c) for c in args.clients.split(",") if c.strip()]
    args.mixes = [m.strip() for m in args.mixes.split(",") if m.strip()]
    unknown = [m for m in args.mixes if m not in MIXES]
    if unknown or not args.mixes:
        parser.error(f"--mixes: choose from {', '.join(MIXES)}")
    if args.quick:
        args.duration, args.users, args.messages = 5.0, 3, 30
        args.clients = [c for c in args.clients if c <= 10] or [10]
        args.idle_connections = min(args.idle_connections, 50)
        args.big = min(args.big, 2_000)
        args.isolation = min(args.isolation, 5_000_000)
    if (
        not args.clients
        or min(args.clients) < 1
        or max(args.clients) > 2000
        or not 0 <= args.idle_connections <= 5000
        or not 1 <= args.duration <= 600
        or not 0 <= args.big <= imap_big.MAX_BIG
        or not 0 <= args.isolation <= 50_000_000
        or not 1 <= args.users <= 1000
        or not 1 <= args.messages <= 10_000
        or not 1 <= args.repeat <= 10
        or (args.workers is not None and not 0 <= args.workers <= 64)
    ):
        parser.error(
            "keep it bounded: 1-2000 clients, 0-5000 idle connections, 1-600 s, big mailbox up to "
            f"{imap_big.MAX_BIG:,}, isolation message up to 50 MB, 1-1000 users, 1-10,000 messages "
            "per user, 1-10 repeats, 0-64 workers"
        )
    raise_nofile(max(args.clients) + args.idle_connections + 1000)

    corpora = {u: imap_corpus.mailbox(f"{u}@example.test", args.messages) for u in users(args.users)}
    passwords = users(args.users)
    passwords[imap_big.BIG_USER] = imap_big.BIG_PASSWORD
    passwords[ISOLATION_USER] = ISOLATION_PASSWORD
    classes = []
    if args.only in (None, "dovecot"):
        classes.append(DovecotServer)
    if args.only in (None, "tidings"):
        classes.append(TidingsServer)
    results = run_servers(classes, passwords, corpora, args)
    failed = report(results, args, corpora)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; servers stopped and temp dirs removed", file=sys.stderr)
        sys.exit(130)
