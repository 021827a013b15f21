"""The running server: opens the store, starts every configured listener and the background workers.

Each protocol package provides `listener.start(app, name, host, port) -> asyncio.Server`; this module
only knows which package serves which listener name. `App` is the context every session receives:
configuration, store, TLS context, the authenticator (auth.login: login rule, throttle, SASL) and
open logins — nothing protocol-specific.

One `Server` is one process's worth of serving. `tidings serve` with `workers = 1` runs one; with
more, tidings.supervisor forks that many processes and each runs a `Server` given its `Worker`
place: every worker serves every listener (on the sockets the supervisor bound), and only the
primary (worker 0) runs the singletons — the outbound queue, the indexer, maintenance and the SQLite
WAL checkpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import os
import secrets
import signal
import socket
import ssl
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tidings.auth.login import Authenticator
from tidings.auth.logins import Logins
from tidings.auth.throttle import LoginThrottle
from tidings.config import Config
from tidings.mail.srs import SenderRewriter
from tidings.net.tls import ServerTls
from tidings.offload import LoopLagMeter, settle_the_heap, share_the_gil_promptly
from tidings.queue.worker import QueueWorker
from tidings.store import AlreadyExists, Store, StoreError
from tidings.store.account_events import watch_account_events
from tidings.store.indexer import run_indexer

log = logging.getLogger(__name__)

STATUS_INTERVAL = 5.0
MAINTENANCE_FIRST_RUN = 600.0
MAINTENANCE_INTERVAL = 6 * 3600.0

# listener name -> module with `async def start(app, name, host, port)`
LISTENER_MODULES = {
    "smtp": "tidings.smtp.listener",
    "submission": "tidings.smtp.listener",
    "submissions": "tidings.smtp.listener",
    "pop3": "tidings.pop3.listener",
    "pop3s": "tidings.pop3.listener",
    "imap": "tidings.imap.listener",
    "imaps": "tidings.imap.listener",
    "http": "tidings.web.listener",
    "https": "tidings.web.listener",
}


@dataclass
class App:
    config: Config
    store: Store
    tls: ssl.SSLContext
    # Every login goes through it: the login rule, the throttle, SASL, the log line.
    authenticator: Authenticator
    srs: SenderRewriter
    # Open logins by account: ends an account's sessions when it is removed or disabled.
    logins: Logins
    started_at: float = field(default_factory=time.time)
    # Live counters for `tidings status` and the admin pages: name -> open sessions.
    sessions: dict[str, int] = field(default_factory=dict)
    # Admission counts per listener name (tidings.net.listener.Gate), shared by all its addresses.
    gates: dict = field(default_factory=dict)
    # How late the event loop runs (for `tidings status`): every session waits that long too.
    loop_lag: LoopLagMeter = field(default_factory=LoopLagMeter)
    # The ports each listener is bound to once started (port 0 in the configuration resolved):
    # what client autoconfiguration tells clients (tidings/web/autoconfig.py).
    listening: dict[str, list[tuple[str, int]]] = field(default_factory=dict)

    @property
    def hostname(self) -> str:
        return self.config.hostname


def status_path(config: Config) -> Path:
    return Path(config.data_dir) / "status.json"


def worker_status_path(config: Config, index: int) -> Path:
    return Path(config.data_dir) / f"status-{index}.json"


@dataclass(frozen=True)
class Worker:
    """This process's place among the worker processes of `tidings serve` (tidings.supervisor)."""

    index: int
    # To the supervisor: control lines, and this worker's changes on SQLite (tidings.notify.workers).
    bus: socket.socket

    @property
    def primary(self) -> bool:
        """Worker 0 runs what must run once per node: queue, indexer, maintenance, checkpoints."""
        return self.index == 0


class Server:
    def __init__(
        self,
        config: Config,
        sockets: dict[tuple[str, str, int], list[socket.socket]] | None = None,
        tls: ServerTls | None = None,
        worker: Worker | None = None,
    ) -> None:
        """`sockets` (listener name, host, port) -> bound sockets and `tls` are given when they were
        made before root was given up (tidings.privileges) or by the supervisor; otherwise `start`
        makes them. `worker` is None for the only process of a server."""
        self.config = config
        self.worker = worker
        self.primary = worker is None or worker.primary
        self.bus = None
        self.app: App | None = None
        self.tls: ServerTls | None = tls
        self.sockets = sockets or {}
        self.servers: list[tuple[str, asyncio.base_events.Server]] = []
        self.workers: list[asyncio.Task] = []
        self._stopped = asyncio.Event()

    async def start(self) -> App:
        config = self.config
        share_the_gil_promptly()
        store = Store.open(config, checkpoints=self.primary)
        try:
            check_durable_commits(store, config)
        except StoreError:
            store.close()
            raise
        store.start_listening()
        if self.worker is not None:
            from tidings.notify.workers import WorkerBus

            self.bus = WorkerBus(
                self.worker.bus, store.hub, config.node_id, carry_changes=not store.db.is_postgres
            )
            await self.bus.start()
        await create_default_domain(store, config)
        if self.tls is None:
            self.tls = ServerTls(config)
        throttle = LoginThrottle(
            store.login_attempts,
            config.auth.max_failures_per_ip,
            config.auth.max_failures_per_account,
            config.auth.failure_window,
        )
        authenticator = Authenticator(store.accounts, throttle, config.default_domain, config.auth.scram_plus)
        srs = SenderRewriter(
            load_srs_secret(config), config.srs.domain or config.default_domain, config.srs.max_age
        )
        logins = Logins(store.hub, store.accounts.session_generation)
        self.app = App(config, store, self.tls.context, authenticator, srs, logins)
        for name, addresses in config.listen.items():
            if not addresses:
                continue
            module = importlib.import_module(LISTENER_MODULES[name])
            for host, port in addresses:
                for sock in self.sockets.get((name, host, port), [None]):
                    server = await module.start(self.app, name, host, port, sock=sock)
                    self.servers.append((name, server))
                    log.info("%s listening on %s", name, _bound(server))
        self.app.listening.update(self.bound_ports())
        self._start_workers()
        self._write_status()
        settle_the_heap()
        if self.bus is not None:
            self.bus.send_control("ready", pid=os.getpid())
        return self.app

    @staticmethod
    def bind(config: Config, copies: int = 1) -> list[dict[tuple[str, str, int], list[socket.socket]]]:
        """Bind every configured listener now (as root, before tidings.privileges drops it): one
        set of sockets per worker process (`tidings.net.listener.bind_copies`)."""
        from tidings.net.listener import bind_copies

        sets: list[dict] = [{} for _ in range(copies)]
        for name, addresses in config.listen.items():
            for host, port in addresses:
                for index, socks in enumerate(bind_copies(host, port, copies)):
                    sets[index][(name, host, port)] = socks
        return sets

    def _start_workers(self) -> None:
        """The outbound queue (first: tests find it as workers[0]) and the message indexer, in the
        primary process only; status, loop lag and account events in every process."""
        if self.primary:
            worker = QueueWorker(self.app)
            self.workers.append(asyncio.create_task(worker.run(), name="queue-worker"))
            self.workers.append(asyncio.create_task(run_indexer(self.app.store), name="indexer"))
            self.workers.append(asyncio.create_task(self._maintain(), name="maintenance"))
            self.workers.append(asyncio.create_task(self._sample_traffic(), name="traffic-samples"))
        self.workers.append(asyncio.create_task(self._keep_status(), name="status"))
        self.workers.append(asyncio.create_task(self.app.loop_lag.run(), name="loop-lag"))
        # `tidings user remove|disable` run by another process: its sessions here end too.
        self.workers.append(asyncio.create_task(watch_account_events(self.app.store), name="account-events"))

    def bound_ports(self) -> dict[str, list[tuple[str, int]]]:
        out: dict[str, list[tuple[str, int]]] = {}
        for name, server in self.servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                out.setdefault(name, []).append((host, port))
        return out

    async def _maintain(self) -> None:
        """Scheduled maintenance with nobody at the keyboard: compaction a while after start, then
        every MAINTENANCE_INTERVAL."""
        from tidings.store.compaction import compact

        await asyncio.sleep(MAINTENANCE_FIRST_RUN)
        while True:
            try:
                report = await compact(self.app.store.db, self.app.store.blobs)
                log.info("compaction: %s", report)
            except Exception:
                log.exception("compaction failed; will retry at the next interval")
            await asyncio.sleep(MAINTENANCE_INTERVAL)

    async def _sample_traffic(self) -> None:
        """The queue's length every few minutes, for the admin console's chart (store/traffic.py)."""
        from tidings.store.traffic import SAMPLE_INTERVAL

        while True:
            try:
                await self.app.store.traffic.sample_queue()
            except Exception:
                log.exception("sampling the queue length failed")
            await asyncio.sleep(SAMPLE_INTERVAL)

    async def _keep_status(self) -> None:
        """Rewrite the status file every few seconds so `tidings status` shows open sessions."""
        while True:
            await asyncio.sleep(STATUS_INTERVAL)
            with contextlib.suppress(OSError):
                self._write_status()

    def _status_path(self) -> Path:
        if self.worker is None:
            return status_path(self.config)
        return worker_status_path(self.config, self.worker.index)

    def _write_status(self) -> None:
        path = self._status_path()
        data = {
            "pid": os.getpid(),
            "started_at": self.app.started_at,
            "updated_at": time.time(),
            "listeners": self.bound_ports(),
            "sessions": dict(self.app.sessions),
            "loop_lag": self.app.loop_lag.take_recent(),
        }
        if self.worker is not None:
            data["worker"] = self.worker.index
            data["primary"] = self.primary
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(path)

    async def stop(self) -> None:
        for _, server in self.servers:
            server.close()
        for task in self.workers:
            task.cancel()
        for task in self.workers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for _, server in self.servers:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await server.wait_closed()
        if self.bus is not None:
            await self.bus.close()
        if self.app is not None:
            self.app.logins.close()
            self.app.store.close()
        with contextlib.suppress(FileNotFoundError):
            self._status_path().unlink()
        self._stopped.set()

    async def run_until_signalled(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        # Before start: a SIGTERM that comes as soon as the ports answer still shuts down cleanly.
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        if self.worker is None:  # the supervisor says it for its workers
            print(serving_line(self.config, self.bound_ports()), flush=True)
        await stop.wait()
        await self.stop()


def run_server(server: Server) -> None:
    """Run `server` until SIGTERM/SIGINT on a new event loop (uvloop when installed)."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if os.environ.get("TIDINGS_SWITCH_INTERVAL"):
        sys.setswitchinterval(float(os.environ["TIDINGS_SWITCH_INTERVAL"]))
    asyncio.run(server.run_until_signalled())


def serving_line(config: Config, ports: dict[str, list[tuple[str, int]]]) -> str:
    listening = ", ".join(f"{n} {h}:{p}" for n, lst in ports.items() for h, p in lst)
    return f"tidings serving {config.hostname}: {listening}"


async def create_default_domain(store: Store, config: Config) -> None:
    """The first start of a new store creates `default_domain`, so the server is usable at once."""
    if not await store.accounts.list_domains() and config.default_domain:
        with contextlib.suppress(AlreadyExists):
            await store.accounts.add_domain(config.default_domain)
            log.info("created default domain %s", config.default_domain)


async def prepare_store(config: Config) -> None:
    """What must happen once before worker processes open the store (tidings.supervisor runs it in
    a short-lived child): migrations, the durability check, the default domain, the SRS secret."""
    store = Store.open(config, checkpoints=False)
    try:
        check_durable_commits(store, config)
        await create_default_domain(store, config)
    finally:
        store.close()
    load_srs_secret(config)


def check_durable_commits(store: Store, config: Config) -> None:
    """Refuse to serve when a committed write is not durable (PostgreSQL synchronous_commit or fsync
    off): "250 OK" would be a promise the database does not keep. `allow_asynchronous_commit`
    turns the refusal into a warning at every start."""
    problems = store.db.commit_durability_problems()
    if not problems:
        return
    text = (
        f"the database commits without waiting for the disk ({', '.join(problems)}): an accepted "
        "message could be lost in a crash"
    )
    if not config.allow_asynchronous_commit:
        raise StoreError(
            f"{text}. Set synchronous_commit = on (and fsync = on) for the database, or "
            "allow_asynchronous_commit = true to serve anyway"
        )
    log.warning("%s; serving anyway because allow_asynchronous_commit = true", text)


def load_srs_secret(config: Config) -> bytes:
    """The SRS HMAC key: `srs.secret` from the configuration, else data_dir/srs-secret, created with
    32 random bytes (mode 0600) on first start. It must outlive restarts: bounces to addresses made
    with a lost secret are refused as forged."""
    if config.srs.secret:
        return config.srs.secret.encode("utf-8")
    path = config.srs_secret_path
    try:
        secret = path.read_bytes().strip()
    except FileNotFoundError:
        secret = b""
    if secret:
        return secret
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(32).encode("ascii")
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(secret + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(tmp, path)  # never replaces a secret another process wrote meanwhile
    except FileExistsError:
        secret = path.read_bytes().strip()
    finally:
        tmp.unlink()
    log.info("created the SRS secret at %s", path)
    return secret


def _bound(server: asyncio.base_events.Server) -> str:
    return ", ".join("{}:{}".format(*sock.getsockname()[:2]) for sock in server.sockets)
