"""Web client speed: opening a folder of 100,000 messages, and 50 users clicking about at once.

    .venv/bin/python bench/web.py                      # 100,000 messages, 50 users, 60 s
    .venv/bin/python bench/web.py --seconds 20 --keep /tmp/webbench   # fill once, reuse after
    .venv/bin/python bench/web.py --quick              # smoke run: 5,000 messages, 10 users, 10 s

There is no reference server for webmail on this machine (no Roundcube/SOGo and no PHP stack to
run one): this benchmark prints absolute figures, the latencies issue 8 asks for, not a ratio.

It starts a `tidings serve` of its own (bench/imap_servers.py TidingsServer: temp directory,
SQLite, high ports on 127.0.0.1 only, the server's default workers) with the web client's http
listener. Before the server starts, the store is filled the way bench/smtp.py fills it
(bench/smtp_prefill.py: store.delivery.accept as SMTP calls it, then every indexer to the end):
the account `big` gets `--messages` messages in its INBOX, and every other account `--small`.
70 % of the mail is marked read and 1 in 23 flagged, as old mail is.

1. Opening the big folder: one logged-in session loads the INBOX's first page in every sort order
   (and a deep page) `--repeat` times. The first request of a worker process builds its snapshot
   of the mailbox (cold); the rest are warm. Printed per page: the server's own time (the
   `Server-Timing` header the app sets: from the request reaching the app to the response
   starting) and the client's (request written to body read). Goal: first page < 300 ms.
2. `--users` concurrent users for `--seconds`, each an asyncio client with its own logged-in
   session, keep-alive connection and open WebSocket (/live): `--big-users` of them read the big
   INBOX (sessions of the same account, like several devices), the others each their own account.
   Each user repeats, after a think time (`--think` s on average, 0 for flat out): open the folder,
   page or re-sort the list, open a message (which marks it read), mark read/unread, flag, view
   conversations, the folder list; when its WebSocket says the folder changed it fetches the list
   fragment, as tidings.js does. Printed: p50/p99 per page, req/s, 10-second slices, and the
   event-loop lag the server's status files report.

Bounded: sizes and duration are capped, every request has a timeout, and the server and its
directory are removed on every exit path (unless --keep names a directory to reuse).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))

import smtp_prefill  # noqa: E402
from imap_servers import DOMAIN, HOST, TidingsServer, raise_nofile, stop_on_signals  # noqa: E402
from managed import free_port  # noqa: E402

PASSWORD = "bench-web-pass-1"
BIG = "big"
MAX_MESSAGES = 1_000_000
MAX_USERS = 1000
MAX_SECONDS = 3600
REQUEST_TIMEOUT = 60.0
SLICE = 10.0
SORTS = ["-date", "date", "-from", "from", "-subject", "subject", "-size", "size"]
GOAL_MS = 300.0


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# -- a small HTTP/1.1 client: keep-alive, cookies, Server-Timing ----------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    client_ms: float
    server_ms: float | None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


SERVER_TIMING = re.compile(r"app;dur=([0-9.]+)")


class Http:
    """One keep-alive connection with a cookie jar (shared between a user's connections)."""

    def __init__(self, port: int, cookies: dict[str, str] | None = None) -> None:
        self.port = port
        self.cookies = cookies if cookies is not None else {}
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(
        self, method: str, path: str, form: dict | None = None, accept: str = "text/html"
    ) -> Reply:
        for attempt in (0, 1):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
                fresh = True
            else:
                fresh = False
            try:
                return await asyncio.wait_for(self._exchange(method, path, form, accept), REQUEST_TIMEOUT)
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt or fresh:  # a kept connection may have been closed by the server: once more
                    raise
        raise AssertionError("unreachable")

    async def _exchange(self, method: str, path: str, form: dict | None, accept: str) -> Reply:
        assert self.reader is not None and self.writer is not None
        head = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{self.port}", f"Accept: {accept}"]
        body = b""
        if form is not None:
            body = urlencode(form, doseq=True).encode()
            head += ["Content-Type: application/x-www-form-urlencoded", f"Content-Length: {len(body)}"]
        if self.cookies:
            head.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        started = time.perf_counter()
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        status_line = await self.reader.readuntil(b"\r\n")
        if not status_line:
            raise ConnectionError("closed")
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        cookies: list[str] = []
        while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "set-cookie":
                cookies.append(value)
            headers[name] = value
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                parts.append(await self.reader.readexactly(size))
                await self.reader.readuntil(b"\r\n")
            await self.reader.readuntil(b"\r\n")
            data = b"".join(parts)
        else:
            data = await self.reader.readexactly(int(headers.get("content-length", "0")))
        client_ms = (time.perf_counter() - started) * 1000
        if headers.get("connection", "").lower() == "close":
            self.close()
        for value in cookies:
            pair = value.split(";")[0]
            name, _, content = pair.partition("=")
            if "max-age=0" in value.lower() or not content or content == '""':
                self.cookies.pop(name.strip(), None)
            else:
                self.cookies[name.strip()] = content.strip()
        timing = SERVER_TIMING.search(headers.get("server-timing", ""))
        return Reply(status, headers, data, client_ms, float(timing.group(1)) if timing else None)


async def log_in(http: Http, address: str) -> tuple[int, str]:
    """Log in through the form; returns (INBOX id, the session's CSRF token)."""
    page = await http.request("GET", "/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token, "no login form"
    reply = await http.request(
        "POST", "/login", {"csrf": token.group(1), "username": address, "password": PASSWORD, "next": "/mail"}
    )
    if reply.status != 303 or "tidings_session" not in http.cookies:
        raise RuntimeError(f"login of {address} failed: {reply.status}")
    reply = await http.request("GET", "/mail")
    inbox = int(reply.headers["location"].rstrip("/").rsplit("/", 1)[1])
    page = await http.request("GET", f"/mail/{inbox}")
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert csrf, "no CSRF token on the mailbox page"
    return inbox, csrf.group(1)


# -- statistics --------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


@dataclass
class Sample:
    at: float  # monotonic, when it finished
    label: str
    client_ms: float
    server_ms: float | None
    status: int


@dataclass
class Recorder:
    samples: list[Sample] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    lag: list[tuple[float, float]] = field(default_factory=list)  # (monotonic, ms)
    live_messages: int = 0

    def add(self, label: str, reply: Reply) -> None:
        self.samples.append(Sample(time.monotonic(), label, reply.client_ms, reply.server_ms, reply.status))
        if reply.status >= 400:
            self.errors[f"{label}: HTTP {reply.status}"] += 1


def ms(value: float) -> str:
    return "-" if value != value else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


# -- 1. opening the big folder -----------------------------------------------------------------


async def folder_open(port: int, repeat: int) -> dict[str, list[Reply]]:
    http = Http(port)
    inbox, _ = await log_in(http, f"{BIG}@{DOMAIN}")
    http.close()
    pages = [(f"first page, sort {sort}", f"/mail/{inbox}?sort={sort}") for sort in SORTS]
    pages.append(("page 1000, sort -date", f"/mail/{inbox}?sort=-date&page=1000"))
    pages.append(("conversations, first page", f"/mail/{inbox}?view=threads"))
    out: dict[str, list[Reply]] = defaultdict(list)
    # Two connections: with several workers each lands (probably) on another process, and the
    # first request on each builds that process's snapshot.
    conns = [Http(port, http.cookies), Http(port, http.cookies)]
    for round_number in range(repeat):
        for label, path in pages:
            for conn in conns:
                reply = await conn.request("GET", path)
                if reply.status != 200:
                    raise RuntimeError(f"{path}: HTTP {reply.status}")
                out[label].append(reply)
        if round_number == 0:
            progress("folder open: first round done (cold)")
    for conn in conns:
        conn.close()
    return out


def print_folder_open(results: dict[str, list[Reply]]) -> list[tuple[str, float]]:
    print(f"\n1. Opening the big INBOX: server (Server-Timing) and client time, ms; goal < {GOAL_MS:.0f} ms")
    print(f"{'page':28} {'cold srv':>9} {'warm srv p50':>13} {'p99':>7} {'max':>7} {'cli p50':>8} {'p99':>7}")
    summary = []
    for label, replies in results.items():
        cold = max(r.server_ms or 0 for r in replies[:2])
        warm = [r.server_ms or 0 for r in replies[2:]] or [cold]
        client = [r.client_ms for r in replies[2:]] or [replies[0].client_ms]
        print(
            f"{label:28} {ms(cold):>9} {ms(statistics.median(warm)):>13} {ms(percentile(warm, 99)):>7} "
            f"{ms(max(warm)):>7} {ms(statistics.median(client)):>8} {ms(percentile(client, 99)):>7}"
        )
        summary.append((label, statistics.median(warm)))
    return summary


# -- 2. many users ------------------------------------------------------------------------------


class User:
    def __init__(self, index: int, address: str, port: int, rec: Recorder, think: float, seed: int) -> None:
        self.index = index
        self.address = address
        self.port = port
        self.rec = rec
        self.think = think
        self.rng = random.Random(seed)
        self.http = Http(port)
        self.live_http = Http(port, self.http.cookies)
        self.inbox = 0
        self.csrf = ""
        self.uids: list[int] = []
        self.pages = 1
        self.list_path = ""
        self.fragment_busy = False
        self.fragment_again = False

    async def get(self, label: str, path: str, http: Http | None = None) -> Reply:
        reply = await (http or self.http).request("GET", path)
        self.rec.add(label, reply)
        return reply

    def remember_list(self, reply: Reply, path: str) -> None:
        uids = [int(u) for u in re.findall(r'data-uid="(\d+)"', reply.text)]
        if uids:
            self.uids = uids
        self.list_path = path
        found = re.search(r"–\d+ of (\d+)", reply.text)
        if found:
            self.pages = max(1, (int(found.group(1)) + 49) // 50)

    async def act(self, label: str, op: str) -> None:
        if not self.uids:
            return
        form = {
            "csrf": self.csrf,
            "op": op,
            "uid": [self.rng.choice(self.uids)],
            "back": f"/mail/{self.inbox}",
        }
        reply = await self.http.request("POST", f"/mail/{self.inbox}/act", form, accept="application/json")
        self.rec.add(label, reply)

    async def step(self) -> None:
        r = self.rng.random()
        box = self.inbox
        if r < 0.18:
            path = f"/mail/{box}"
            self.remember_list(await self.get("message list, first page", path), path)
        elif r < 0.28:
            page = self.rng.randint(2, max(2, min(self.pages, 40)))
            path = f"/mail/{box}?sort=-date&page={page}"
            self.remember_list(await self.get("message list, later page", path), path)
        elif r < 0.34:
            path = f"/mail/{box}?sort={self.rng.choice(SORTS[1:])}"
            self.remember_list(await self.get("message list, other sort", path), path)
        elif r < 0.38:
            path = f"/mail/{box}?view=threads"
            self.remember_list(await self.get("conversations", path), path)
        elif r < 0.42:
            await self.get("folder list", "/mail/folders")
        elif r < 0.72:
            if self.uids:
                await self.get("open message", f"/mail/{box}/{self.rng.choice(self.uids)}")
        elif r < 0.87:
            await self.act("mark read/unread", self.rng.choice(["read", "unread"]))
        else:
            await self.act("flag/unflag", self.rng.choice(["flag", "unflag"]))

    async def fragment(self) -> None:
        """What tidings.js does when the WebSocket says the folder changed."""
        if self.fragment_busy:
            self.fragment_again = True
            return
        self.fragment_busy = True
        try:
            while True:
                self.fragment_again = False
                path = self.list_path or f"/mail/{self.inbox}"
                query = path.partition("?")[2]
                try:
                    await self.get(
                        "list fragment (live)", f"/mail/{self.inbox}/fragment?{query}", self.live_http
                    )
                except (OSError, asyncio.IncompleteReadError, TimeoutError) as failed:
                    self.rec.errors[f"list fragment: {type(failed).__name__}"] += 1
                    self.live_http.close()
                    break
                if not self.fragment_again:
                    break
        finally:
            self.fragment_busy = False

    async def live(self, stop: asyncio.Event) -> None:
        from websockets.asyncio.client import connect

        cookie = "; ".join(f"{k}={v}" for k, v in self.http.cookies.items())
        async with connect(
            f"ws://{HOST}:{self.port}/live",
            additional_headers={"Cookie": cookie},
            origin=f"http://{HOST}:{self.port}",
            open_timeout=REQUEST_TIMEOUT,
        ) as ws:
            tasks: set[asyncio.Task] = set()
            while not stop.is_set():
                try:
                    text = await asyncio.wait_for(ws.recv(), 1.0)
                except TimeoutError:
                    continue
                message = json.loads(text)
                self.rec.live_messages += 1
                if message.get("type") == "changes" and self.inbox in message.get("mailboxes", []):
                    task = asyncio.create_task(self.fragment())
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            for task in tasks:
                task.cancel()

    async def run(self, start: asyncio.Event, stop: asyncio.Event) -> None:
        self.inbox, self.csrf = await log_in(self.http, self.address)
        live = asyncio.create_task(self.live(stop))
        await start.wait()
        await asyncio.sleep(self.rng.random() * max(self.think, 0.5))  # not all at once
        try:
            while not stop.is_set():
                try:
                    await self.step()
                except (OSError, asyncio.IncompleteReadError, TimeoutError) as failed:
                    self.rec.errors[f"{type(failed).__name__}"] += 1
                    self.http.close()
                if self.think:
                    await asyncio.sleep(self.rng.uniform(0.5, 1.5) * self.think)
        finally:
            self.http.close()
            self.live_http.close()
            try:
                await asyncio.wait_for(live, 5)
            except Exception as failed:  # the socket's end is not what is measured
                self.rec.errors[f"websocket: {type(failed).__name__}"] += 1


async def watch_lag(server: TidingsServer, rec: Recorder, stop: asyncio.Event) -> None:
    """Collect the loop lag the status files report (each worker writes its own every few s)."""
    seen: dict[str, float] = {}
    offset = time.time() - time.monotonic()
    while not stop.is_set():
        for name, (written, lag_ms) in server.loop_lag().items():
            if seen.get(name) != written:
                seen[name] = written
                rec.lag.append((written - offset, lag_ms))
        await asyncio.sleep(1.0)


async def many_users(server, port: int, args) -> tuple[Recorder, float, float]:
    rec = Recorder()
    start, stop = asyncio.Event(), asyncio.Event()
    users = []
    for i in range(args.users):
        account = BIG if i < args.big_users else small_account(i - args.big_users)
        users.append(User(i, f"{account}@{DOMAIN}", port, rec, args.think, seed=i))
    progress(f"{args.users} users logging in")
    tasks = [asyncio.create_task(u.run(start, stop)) for u in users]
    while sum(1 for u in users if u.csrf) < len(users):
        failed = [t for t in tasks if t.done()]
        if failed:
            failed[0].result()
        await asyncio.sleep(0.2)
    rec.samples.clear()
    rec.errors.clear()
    watcher = asyncio.create_task(watch_lag(server, rec, stop))
    progress(f"all logged in; measuring for {args.seconds} s")
    began = time.monotonic()
    start.set()
    next_report = began + SLICE
    while time.monotonic() - began < args.seconds:
        await asyncio.sleep(min(1.0, max(0.0, next_report - time.monotonic())))
        if time.monotonic() >= next_report:
            done = [s for s in rec.samples if s.at >= next_report - SLICE]
            progress(
                f"{next_report - began:4.0f} s: {len(done) / SLICE:.1f} req/s, "
                f"p50 {ms(percentile([s.client_ms for s in done], 50))} ms"
            )
            next_report += SLICE
    ended = time.monotonic()
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    watcher.cancel()
    return rec, began, ended


def print_many_users(rec: Recorder, began: float, ended: float, args) -> None:
    samples = [s for s in rec.samples if began <= s.at <= ended]
    took = ended - began
    print(
        f"\n2. {args.users} users ({args.big_users} on the big INBOX), think time {args.think:g} s, "
        f"{took:.0f} s: {len(samples):,} requests, {len(samples) / took:.1f} req/s"
    )
    print(
        f"{'page / API':26} {'count':>6} {'srv p50':>8} {'srv p99':>8} "
        f"{'cli p50':>8} {'cli p99':>8} {'max':>6}"
    )
    by_label: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_label[s.label].append(s)
    for label in sorted(by_label):
        group = by_label[label]
        server = [s.server_ms for s in group if s.server_ms is not None]
        client = [s.client_ms for s in group]
        print(
            f"{label:26} {len(group):>6} {ms(percentile(server, 50)):>8} {ms(percentile(server, 99)):>8} "
            f"{ms(percentile(client, 50)):>8} {ms(percentile(client, 99)):>8} {ms(max(client)):>6}"
        )
    server = [s.server_ms for s in samples if s.server_ms is not None]
    client = [s.client_ms for s in samples]
    print(
        f"{'all':26} {len(samples):>6} {ms(percentile(server, 50)):>8} {ms(percentile(server, 99)):>8} "
        f"{ms(percentile(client, 50)):>8} {ms(percentile(client, 99)):>8} {ms(max(client, default=0)):>6}"
    )
    print(f"\n{'slice':>9} {'req/s':>7} {'cli p50':>8} {'cli p99':>8} {'loop lag max':>13}")
    t = began
    while t < ended - 1:
        inside = [s for s in samples if t <= s.at < t + SLICE]
        length = min(t + SLICE, ended) - t  # the last slice may be shorter
        lags = [lag for at, lag in rec.lag if t <= at < t + SLICE]
        client = [s.client_ms for s in inside]
        print(
            f"{t - began:4.0f}-{min(t + SLICE, ended) - began:<4.0f} {len(inside) / length:7.1f} "
            f"{ms(percentile(client, 50)):>8} {ms(percentile(client, 99)):>8} "
            f"{(ms(max(lags)) + ' ms') if lags else '-':>13}"
        )
        t += SLICE
    print(f"WebSocket messages received: {rec.live_messages:,}")
    if rec.errors:
        print("errors: " + ", ".join(f"{k} x{v}" for k, v in sorted(rec.errors.items())))


# -- setting up --------------------------------------------------------------------------------


def small_account(i: int) -> str:
    return f"user{i + 1:02d}"


class WebServer(TidingsServer):
    """TidingsServer with the web client's http listener as well (on its own high port)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.http_port = free_port()
        self.extra_listen = f'http = ["{HOST}:{self.http_port}"]\n'

    def filled(self) -> dict | None:
        marker = self.dir / "filled.json"
        return json.loads(marker.read_text()) if marker.exists() else None

    def fill(self, big: int, small: int, small_accounts: int, size: int) -> None:
        """The users, their mail (bench/smtp_prefill.py), then flags as old mail has them."""
        self.write_config()
        self.add_users()
        env = dict(self.env)
        say = lambda line: progress(f"  {line}")  # noqa: E731
        took = smtp_prefill.run(self.config, [self.login_name(BIG)], big, size, say, env)
        progress(f"big INBOX: {big:,} messages in {took:.0f} s")
        if small and small_accounts:
            addresses = [self.login_name(small_account(i)) for i in range(small_accounts)]
            took = smtp_prefill.run(self.config, addresses, small * small_accounts, size, say, env)
            progress(f"{small_accounts} small INBOXes: {small:,} messages each in {took:.0f} s")
        asyncio.run(mark_old_mail(self.config))
        (self.dir / "filled.json").write_text(
            json.dumps({"big": big, "small": small, "accounts": small_accounts, "size": size})
        )


async def mark_old_mail(config_path: Path) -> None:
    """70 % read, 1 in 23 flagged, through the store (as clients would have left them)."""
    sys.path.insert(0, str(TidingsServer.source))
    from tidings.config import load_config
    from tidings.store import Store

    store = Store.open(load_config(config_path))
    try:
        for account in await store.accounts.list_users():
            inbox = await store.mailboxes.get(account.id, "INBOX")
            _, refs = await store.mailboxes.messages(account.id, inbox.id)
            uids = [r.uid for r in refs]
            seen = [u for i, u in enumerate(uids) if i % 10 < 7]
            flagged = [u for i, u in enumerate(uids) if i % 23 == 0]
            for chunk in range(0, len(uids), 10_000):
                await store.mailboxes.store_flags(
                    account.id, inbox.id, seen[chunk : chunk + 10_000], "add", ["\\Seen"]
                )
                await store.mailboxes.store_flags(
                    account.id, inbox.id, flagged[chunk : chunk + 10_000], "add", ["\\Flagged"]
                )
        progress("flags set (70 % read, 1 in 23 flagged)")
    finally:
        store.close()


def machine_load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (5 min {five:.1f}) on {os.cpu_count()} cores"


async def measure(server: WebServer, args) -> None:
    port = server.http_port
    progress(f"server up: {server.describe()}, web client on http://{HOST}:{port}; {machine_load()}")
    results = await folder_open(port, args.repeat)
    print_folder_open(results)
    print(f"({machine_load()})")
    if args.users:
        rec, began, ended = await many_users(server, port, args)
        print_many_users(rec, began, ended, args)
    print(f"\n{machine_load()} at the end (other programs running disturb the figures)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000, help="messages in the big INBOX")
    parser.add_argument("--small", type=int, default=500, help="messages in each other account's INBOX")
    parser.add_argument("--size", type=int, default=3000, help="bytes per prefilled message")
    parser.add_argument("--users", type=int, default=50, help="concurrent users (0: folder opening only)")
    parser.add_argument("--big-users", type=int, default=10, help="of them, sessions of the big account")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--think", type=float, default=1.0, help="mean pause between a user's clicks (s)")
    parser.add_argument("--repeat", type=int, default=10, help="folder-open rounds")
    parser.add_argument("--workers", type=int, help="server processes (default: the server's default)")
    parser.add_argument("--keep", help="directory to fill and keep, or to reuse when filled already")
    parser.add_argument("--quick", action="store_true", help="smoke run: 5,000 messages, 10 users, 10 s")
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.small, args.users, args.big_users = 5000, 100, 10, 3
        args.seconds, args.repeat = 10, 3
    if not (
        1 <= args.messages <= MAX_MESSAGES and 0 <= args.small <= 100_000 and 200 <= args.size <= 1_000_000
    ):
        parser.error("--messages, --small or --size out of bounds")
    if not (0 <= args.users <= MAX_USERS and 0 < args.seconds <= MAX_SECONDS and 1 <= args.repeat <= 1000):
        parser.error("--users, --seconds or --repeat out of bounds")
    args.big_users = min(args.big_users, args.users)
    small_accounts = args.users - args.big_users
    stop_on_signals()
    raise_nofile(4 * args.users + 256)
    users = {BIG: PASSWORD, **{small_account(i): PASSWORD for i in range(max(small_accounts, 1))}}
    print(__doc__.split("\n\n")[2].replace("\n", " "))
    server = WebServer(users, workers=args.workers, directory=args.keep)
    try:  # not `with`: that would start the server before it is filled
        wanted = {
            "big": args.messages,
            "small": args.small,
            "accounts": max(small_accounts, 1),
            "size": args.size,
        }
        filled = server.filled()
        if filled is None:
            progress(f"filling: {args.messages:,} messages for {BIG}, {args.small:,} for each other account")
            server.fill(args.messages, args.small, max(small_accounts, 1), args.size)
        elif filled != wanted:
            raise SystemExit(f"{server.dir} was filled with {filled}, not {wanted}: use another --keep")
        else:
            progress(f"reusing the store in {server.dir}")
        server.start()
        asyncio.run(measure(server, args))
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
