"""IDLE capacity: thousands of idle IMAP sessions on one Tidings process, and how fast new mail reaches them.

    .venv/bin/python bench/imap_idle.py                    # 5,000 IDLE sessions on Tidings
    .venv/bin/python bench/imap_idle.py --quick            # 200 sessions, smoke run
    .venv/bin/python bench/imap_idle.py --dovecot          # the same K against Dovecot too (K processes!)

Steps: start the server from a temp dir on 127.0.0.1, load a few messages per user by APPEND, note the
server's memory, open K connections (LOGIN, SELECT INBOX, IDLE; users bench1..benchN round-robin,
source addresses 127.0.0.1..127.0.0.S round-robin so ephemeral ports never run out), check every
one got the continuation request, note memory again, then APPEND one message to every user's INBOX
at once from separate connections and time how long until each idle session sees `* n EXISTS`
(RFC 9051 section 7.4.1 / RFC 2177). Finally every session ends IDLE with DONE and must get a
tagged OK. Reports bytes per idle connection and delivery latency p50/p99/max.

The latencies include this client's own event loop draining K sockets on a 2-core machine, so they
are an upper bound on the server's part.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
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

_EXISTS = re.compile(rb"^\* \d+ EXISTS", re.IGNORECASE)


@dataclass
class IdleResult:
    name: str
    requested: int
    idling: int = 0
    failures: list[str] = field(default_factory=list)
    setup_seconds: float = 0.0
    rss_before: int = 0
    rss_idle: int = 0
    rss_after_delivery: int = 0
    pss_before: int = 0
    pss_idle: int = 0
    processes: int = 1
    saw_exists: int = 0
    latencies: list[float] = field(default_factory=list)
    done_ok: int = 0
    failure: str = ""

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def load(server, messages_per_user: int) -> None:
    async def one(user: str) -> None:
        client = await ImapClient.connect(HOST, server.port)
        try:
            await client.login(server.login_name(user), server.users[user])
            for message in imap_corpus.mailbox(f"{user}@example.test", messages_per_user):
                await client.check("APPEND INBOX (\\Seen)", message)
        finally:
            await client.logout()

    await asyncio.gather(*(one(u) for u in server.users))


async def measure(server, args) -> IdleResult:
    result = IdleResult(server.name, args.connections)
    await load(server, args.messages)
    logins = [(server.login_name(u), p) for u, p in server.users.items()]
    sources = [f"127.0.0.{i}" for i in range(1, args.sources + 1)]
    # Warm up: concurrent logins grow the server's allocator arenas (argon2 needs ~19 MiB per
    # hash in worker threads); that one-off growth must not be counted against the sessions.
    warm, _ = await open_idlers(HOST, server.port, logins, 2 * args.concurrency, concurrency=args.concurrency)
    await close_all(warm)
    await asyncio.sleep(2.0)
    result.rss_before, result.pss_before, _ = server_memory(server)
    started = time.monotonic()
    clients, result.failures = await open_idlers(
        HOST, server.port, logins, args.connections, concurrency=args.concurrency, source_addresses=sources
    )
    result.setup_seconds = time.monotonic() - started
    result.idling = len(clients)  # open_idlers keeps only those that got the continuation request
    print(f"  {server.name}: {len(clients)} sessions idling after {result.setup_seconds:.1f}s", flush=True)
    await asyncio.sleep(2.0)
    result.rss_idle, result.pss_idle, result.processes = server_memory(server)

    # Deliver: one APPEND per user, all at once, from connections opened beforehand.
    senders = {}
    for user, password in server.users.items():
        sender = await ImapClient.connect(HOST, server.port)
        await sender.login(server.login_name(user), password)
        senders[server.login_name(user)] = sender
    sent_at: dict[str, float] = {}
    arrivals: list[float] = []

    async def watch(client: ImapClient) -> None:
        try:
            await asyncio.wait_for(client.idle_wait(_EXISTS), args.timeout)
            arrivals.append(time.monotonic())
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ImapError):
            pass

    watchers = [asyncio.create_task(watch(c)) for c in clients]
    await asyncio.sleep(0.5)
    message = imap_corpus.mailbox("delivery@example.test", 1)[0]

    async def deliver(login: str, sender: ImapClient) -> None:
        sent_at[login] = time.monotonic()
        await sender.check("APPEND INBOX", message)

    await asyncio.gather(*(deliver(login, s) for login, s in senders.items()))
    await asyncio.gather(*watchers)
    for sender in senders.values():
        await sender.logout()
    # All APPENDs start within a few milliseconds; time every arrival from the first one.
    first_send = min(sent_at.values())
    result.saw_exists = len(arrivals)
    result.latencies = [t - first_send for t in arrivals]
    result.rss_after_delivery, _, _ = server_memory(server)

    async def finish(client: ImapClient) -> bool:
        try:
            response = await asyncio.wait_for(client.idle_done(), args.timeout)
            return response.ok
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ImapError):
            return False
        finally:
            client.close()

    oks = []
    for start in range(0, len(clients), 500):
        oks.extend(await asyncio.gather(*(finish(c) for c in clients[start : start + 500])))
    result.done_ok = sum(oks)
    return result


def run(factory, args) -> IdleResult:
    try:
        with factory() as server, asyncio.Runner(loop_factory=_loop_factory()) as runner:
            print(f"{server.describe()}: {args.connections} IDLE sessions", flush=True)
            return runner.run(measure(server, args))
    except Exception as exc:  # noqa: BLE001 - report and carry on with the other server
        print(f"{factory.name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return IdleResult(factory.name, args.connections, failure=f"{type(exc).__name__}: {exc}"[:500])


def _loop_factory():
    try:
        import uvloop

        return uvloop.new_event_loop
    except ImportError:
        return None


def report(results: list[IdleResult], args) -> None:
    print()
    print(
        f"IDLE capacity: {args.connections} sessions over {args.users} users, "
        f"{args.sources} source address(es), one APPEND per user"
    )
    for r in results:
        if r.failure:
            print(f"{r.name}: FAILED: {r.failure}")
            continue
        per = (r.rss_idle - r.rss_before) / max(1, r.idling)
        line = (
            f"{r.name}: {r.idling}/{r.requested} got the IDLE continuation "
            f"(set up in {r.setup_seconds:.1f}s); RSS {r.rss_before / 2**20:.1f} -> "
            f"{r.rss_idle / 2**20:.1f} MiB = {per / 1024:.1f} KiB per session"
        )
        if r.processes > 1:
            pss = (r.pss_idle - r.pss_before) / max(1, r.idling)
            line += f" (sum over {r.processes} processes; PSS {pss / 1024:.1f} KiB per session)"
        print(line)
        print(
            f"  new mail: {r.saw_exists}/{r.idling} sessions saw EXISTS; latency from first APPEND "
            f"p50 {r.percentile(0.5) * 1000:.0f} ms, p99 {r.percentile(0.99) * 1000:.0f} ms, "
            f"max {r.percentile(1.0) * 1000:.0f} ms; RSS after {r.rss_after_delivery / 2**20:.1f} MiB"
        )
        print(f"  DONE answered OK: {r.done_ok}/{r.idling}")
        if r.failures:
            print(f"  {len(r.failures)} session(s) failed to start, e.g. {r.failures[0]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=5000, help="idle sessions (default 5000)")
    parser.add_argument("--users", type=int, default=10, help="users bench1..benchN (default 10)")
    parser.add_argument("--messages", type=int, default=20, help="messages per user before (default 20)")
    parser.add_argument("--sources", type=int, default=4, help="use source addresses 127.0.0.1..127.0.0.S")
    parser.add_argument("--concurrency", type=int, default=50, help="sessions being set up at once")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for EXISTS")
    parser.add_argument("--dovecot", action="store_true", help="also run the same K against Dovecot")
    parser.add_argument("--only-dovecot", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 sessions, 3 users")
    parser.add_argument("--keep", action="store_true", help="keep the temp dirs (logs)")
    parser.add_argument("--tmp", help="where to make the temp dirs")
    args = parser.parse_args(argv)
    stop_on_signals()
    if args.quick:
        args.connections, args.users, args.messages = min(args.connections, 200), 3, 5
    if not 1 <= args.connections <= 10000 or not 1 <= args.sources <= 250:
        parser.error("keep it bounded: 1..10000 connections, 1..250 source addresses")
    limit = raise_nofile(args.connections + 1000)
    if limit < args.connections + 100:
        parser.error(f"open-file limit {limit} is too low for {args.connections} connections")

    passwords = {f"bench{i}": f"bench-pass-{i}-x" for i in range(1, args.users + 1)}
    factories = []
    if not args.only_dovecot:
        factories.append(_named(TidingsServer, passwords, args))
    if args.dovecot or args.only_dovecot:
        factories.append(_named(DovecotServer, passwords, args))
    results = [run(f, args) for f in factories]
    report(results, args)
    return 0 if all(not r.failure for r in results) else 1


def _named(cls, passwords, args):
    def factory():
        return cls(passwords, keep=args.keep, tmp=args.tmp)

    factory.name = cls.name
    return factory


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; servers stopped and temp dirs removed", file=sys.stderr)
        sys.exit(130)
