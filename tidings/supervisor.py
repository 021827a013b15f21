"""`tidings serve` with several worker processes: one supervisor, N forked workers, one set of ports.

One Python process runs one event loop on one core (the GIL), so a server on a machine with more
cores runs `workers` processes (default: one per core). The supervisor, the process started as
`tidings serve`:

1. has bound every listening socket and made the TLS context (as root, before tidings.privileges
   gave root up: tidings.cli), and listens on them, so a connection made while a worker restarts
   waits in the kernel's backlog instead of being refused;
2. prepares the store once in a short-lived forked child (migrations, the default domain, the
   durability check, the SRS secret), so workers never race to migrate;
3. forks the workers. Each listens on its own set of sockets bound to the same ports with
   SO_REUSEPORT (the kernel spreads connections over the sets by the client's address and port;
   with one shared set the first worker to wake took most of a burst), opens its own
   store and runs a `tidings.server.Server` with its `Worker` place. Worker 0 is the primary: only
   it runs the outbound queue, the indexer, maintenance and SQLite's WAL checkpoints. A worker asks
   the kernel for SIGKILL when the supervisor dies (PR_SET_PDEATHSIG), so `kill -9` of the
   supervisor never leaves a worker holding the ports;
4. then runs a plain blocking loop (selectors and signals, no asyncio, no threads, no store: so
   forking a replacement later is safe) that
   - restarts a worker that died (at once the first time, then with a doubling delay while it
     keeps dying young), the primary too, which brings the singletons back with it;
   - relays change events between workers on SQLite: each worker writes the changes it publishes
     as lines on its socket pair (tidings.notify.workers) and the supervisor copies each line to
     every other worker. It never blocks on a worker: what a worker has not read waits in a buffer
     of at most BUS_BUFFER bytes; lines that do not fit are dropped for that worker and counted (a
     worker that far behind has a stalled loop; its sessions see the changes at their next command,
     IDLE ones at the next change that reaches them). On PostgreSQL each worker is its own node
     and LISTEN/NOTIFY carries the changes;
   - on SIGTERM or SIGINT sends SIGTERM to every worker, waits for them (STOP_TIMEOUT, then
     SIGKILL) and exits.

It writes status.json (its pid, the listeners, each worker's pid, role, start and restarts); each
worker writes status-<index>.json with its open sessions and loop lag (`tidings status` reads both).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import ctypes
import json
import logging
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from dataclasses import dataclass, field

from tidings.config import Config
from tidings.net.tls import ServerTls
from tidings.server import (
    Server,
    Worker,
    prepare_store,
    run_server,
    serving_line,
    status_path,
    worker_status_path,
)
from tidings.store import StoreError

log = logging.getLogger(__name__)

BUS_BUFFER = 8 * 1024 * 1024  # bytes of change lines kept for one worker that is slow to read them
STOP_TIMEOUT = 20.0  # seconds the workers get to stop after SIGTERM, then SIGKILL
STABLE_AFTER = 30.0  # a worker that ran this long before dying is restarted at once
RESTART_DELAY_MAX = 30.0
LISTEN_BACKLOG = 1024
PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass
class Slot:
    """One worker place: the process in it now and what the supervisor knows about it."""

    index: int
    pid: int = 0
    bus: socket.socket | None = None  # the supervisor's end of the worker's socket pair
    started_at: float = 0.0
    ready: bool = False
    restarts: int = 0
    failures_in_a_row: int = 0
    restart_at: float | None = None
    inbox: bytearray = field(default_factory=bytearray)
    outbox: bytearray = field(default_factory=bytearray)
    dropped: int = 0  # change lines this worker missed because its buffer was full
    dropping: bool = False

    @property
    def primary(self) -> bool:
        return self.index == 0


class Supervisor:
    def __init__(
        self,
        config: Config,
        sockets: list[dict[tuple[str, str, int], list[socket.socket]]],
        tls: ServerTls,
        count: int,
    ) -> None:
        self.config = config
        # One set of listening sockets per worker (SO_REUSEPORT; tidings.net.listener.bind_copies).
        self.sockets = sockets
        self.tls = tls
        self.slots = [Slot(index) for index in range(count)]
        self.pid = os.getpid()
        self.started_at = time.time()
        self.selector: selectors.BaseSelector | None = None
        self._wakeup: tuple[int, int] | None = None
        self._signalled: int | None = None
        self._serving = False

    # -- the supervisor's life -------------------------------------------------------------------

    def run(self) -> int:
        """Prepare the store, start the workers, serve until SIGTERM/SIGINT; the exit status."""
        for sock in self._all_sockets():
            sock.listen(LISTEN_BACKLOG)
        # First: a SIGTERM that comes as soon as the ports answer still ends in a clean stop.
        self.selector = selectors.DefaultSelector()
        self._install_signals()
        try:
            prepare_store_in_child(self.config)
            if self._signalled is not None:
                return 0
            for slot in self.slots:
                self._spawn(slot)
            if not self._wait_until_ready():
                return 0 if self._signalled is not None else 1
            self._serving = True
            self._write_status()
            print(serving_line(self.config, self.ports()), flush=True)
            log.info("serving with %d worker processes", len(self.slots))
            self._loop()
            return 0
        finally:
            self._stop_workers()
            self._clean_up()

    def _install_signals(self) -> None:
        read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wakeup = (read_end, write_end)
        signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        self.selector.register(read_end, selectors.EVENT_READ, None)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_stop_signal)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake the selector (wakeup fd)

    def _on_stop_signal(self, signum, _frame) -> None:
        if self._signalled is None:
            self._signalled = signum

    def _wait_until_ready(self) -> bool:
        """Until every first worker said ready; False (and a message) if one died first."""
        while not all(slot.ready for slot in self.slots):
            if self._signalled is not None:
                return False
            self._step(timeout=1.0)
            for slot in self.slots:
                if slot.pid == 0:
                    print(
                        f"tidings: worker {slot.index} exited while starting; see the log above",
                        file=sys.stderr,
                    )
                    return False
        return True

    def _loop(self) -> None:
        while self._signalled is None:
            now = time.monotonic()
            due = [slot.restart_at for slot in self.slots if slot.restart_at is not None]
            timeout = max(0.0, min(due) - now) if due else None
            self._step(timeout)
            now = time.monotonic()
            for slot in self.slots:
                if slot.restart_at is not None and slot.restart_at <= now and self._signalled is None:
                    slot.restart_at = None
                    slot.restarts += 1
                    self._spawn(slot)
        log.info("stopping (signal %d): ending the workers", self._signalled)

    def _step(self, timeout: float | None) -> None:
        for key, mask in self.selector.select(timeout):
            slot = key.data
            if slot is None:
                with contextlib.suppress(BlockingIOError):
                    while os.read(key.fd, 512):
                        pass
                continue
            if mask & selectors.EVENT_READ:
                self._read_bus(slot)
            if mask & selectors.EVENT_WRITE and slot.bus is not None:
                self._flush_bus(slot)
        self._reap()

    # -- workers ---------------------------------------------------------------------------------

    def _spawn(self, slot: Slot) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                ours.close()
                code = self._become_worker(slot.index, theirs)
            except BaseException:
                traceback.print_exc()
            finally:
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
        theirs.close()
        ours.setblocking(False)
        slot.pid, slot.bus, slot.ready = pid, ours, False
        slot.started_at = time.time()
        slot.inbox.clear()
        slot.outbox.clear()
        slot.dropping = False
        self.selector.register(ours, selectors.EVENT_READ, slot)
        log.info("started worker %d (pid %d)%s", slot.index, pid, " (primary)" if slot.primary else "")

    def _become_worker(self, index: int, bus: socket.socket) -> int:
        """In the forked child: shed the supervisor's state, then serve until SIGTERM."""
        die_with_parent(self.pid)
        default_signals()
        self.selector.close()
        for fd in self._wakeup:
            os.close(fd)
        for slot in self.slots:
            if slot.bus is not None:
                slot.bus.close()
        config = copy.copy(self.config)
        # Each worker is its own node for change events (PostgreSQL NOTIFY drops only our echoes).
        config.node_id = f"{self.config.node_id}/w{index}"
        for other, sockets in enumerate(self.sockets):
            if other != index:
                for socks in sockets.values():
                    for sock in socks:
                        sock.close()
        run_server(Server(config, self.sockets[index], self.tls, Worker(index, bus)))
        return 0

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for slot in self.slots:
                if slot.pid == pid:
                    self._worker_exited(slot, status)

    def _worker_exited(self, slot: Slot, status: int) -> None:
        lived = time.time() - slot.started_at
        slot.pid = 0
        if slot.bus is not None:
            self.selector.unregister(slot.bus)
            slot.bus.close()
            slot.bus = None
        with contextlib.suppress(FileNotFoundError):
            worker_status_path(self.config, slot.index).unlink()
        how = describe_exit(status)
        if not self._serving or self._signalled is not None:
            log.info("worker %d %s", slot.index, how)
            return
        slot.failures_in_a_row = 0 if lived >= STABLE_AFTER else slot.failures_in_a_row + 1
        delay = (
            min(RESTART_DELAY_MAX, 0.5 * 2 ** (slot.failures_in_a_row - 1)) if slot.failures_in_a_row else 0
        )
        slot.restart_at = time.monotonic() + delay
        log.warning("worker %d %s after %.0f s; restarting it in %.1f s", slot.index, how, lived, delay)
        self._write_status()

    def _stop_workers(self) -> None:
        """SIGTERM to every worker, wait up to STOP_TIMEOUT, then SIGKILL the rest."""
        self._signalled = self._signalled or signal.SIGTERM
        for slot in self.slots:
            slot.restart_at = None
            if slot.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while any(slot.pid for slot in self.slots) and time.monotonic() < deadline:
            if self.selector is None:
                break
            self._step(timeout=min(0.5, max(0.0, deadline - time.monotonic())))
        for slot in self.slots:
            if slot.pid:
                log.warning(
                    "worker %d (pid %d) did not stop in %g s: killing it", slot.index, slot.pid, STOP_TIMEOUT
                )
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(slot.pid, 0)
                slot.pid = 0

    def _clean_up(self) -> None:
        for sock in self._all_sockets():
            sock.close()
        for slot in self.slots:
            if slot.bus is not None:
                slot.bus.close()
            with contextlib.suppress(FileNotFoundError):
                worker_status_path(self.config, slot.index).unlink()
        with contextlib.suppress(FileNotFoundError):
            status_path(self.config).unlink()
        if self.selector is not None:
            signal.set_wakeup_fd(-1)
            self.selector.close()
            for fd in self._wakeup or ():
                os.close(fd)

    # -- the change bus --------------------------------------------------------------------------

    def _read_bus(self, slot: Slot) -> None:
        try:
            data = slot.bus.recv(256 * 1024)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the worker is ending; _reap restarts it once it has exited
            self.selector.unregister(slot.bus)
            slot.bus.close()
            slot.bus = None
            return
        slot.inbox += data
        end = slot.inbox.rfind(b"\n")
        if end < 0:
            if len(slot.inbox) > BUS_BUFFER:
                log.warning("worker %d sent an over-long line; dropped", slot.index)
                slot.inbox.clear()
            return
        lines = bytes(slot.inbox[: end + 1])
        del slot.inbox[: end + 1]
        changes = []
        for line in lines.splitlines(keepends=True):
            if line.startswith(b'{"control"'):
                self._control(slot, line)
            else:
                changes.append(line)
        if changes:
            payload = b"".join(changes)
            for other in self.slots:
                if other is not slot and other.bus is not None:
                    self._send_bus(other, payload, len(changes))

    def _control(self, slot: Slot, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            return
        if message.get("control") == "ready":
            slot.ready = True
            if self._serving:
                self._write_status()
                log.info("worker %d (pid %d) is serving again", slot.index, slot.pid)

    def _send_bus(self, slot: Slot, payload: bytes, lines: int) -> None:
        if len(slot.outbox) + len(payload) > BUS_BUFFER:
            slot.dropped += lines
            if not slot.dropping:
                slot.dropping = True
                log.warning(
                    "worker %d is not reading its changes: dropping them until it catches up", slot.index
                )
            return
        was_empty = not slot.outbox
        slot.outbox += payload
        if was_empty:
            self._flush_bus(slot)

    def _flush_bus(self, slot: Slot) -> None:
        try:
            sent = slot.bus.send(slot.outbox)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            return  # the worker is gone; reading its end reports that
        del slot.outbox[:sent]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if slot.outbox else 0)
        self.selector.modify(slot.bus, events, slot)
        if not slot.outbox and slot.dropping:
            slot.dropping = False
            log.warning("worker %d caught up; %d change(s) dropped so far", slot.index, slot.dropped)

    # -- status ----------------------------------------------------------------------------------

    def _all_sockets(self) -> list[socket.socket]:
        return [sock for sockets in self.sockets for socks in sockets.values() for sock in socks]

    def ports(self) -> dict[str, list[tuple[str, int]]]:
        out: dict[str, list[tuple[str, int]]] = {}
        for (name, _, _), socks in self.sockets[0].items():
            for sock in socks:
                host, port = sock.getsockname()[:2]
                out.setdefault(name, []).append((host, port))
        return out

    def _write_status(self) -> None:
        data = {
            "pid": self.pid,
            "started_at": self.started_at,
            "updated_at": time.time(),
            "listeners": self.ports(),
            "workers": [
                {
                    "index": slot.index,
                    "pid": slot.pid,
                    "primary": slot.primary,
                    "started_at": slot.started_at,
                    "restarts": slot.restarts,
                    "changes_dropped": slot.dropped,
                }
                for slot in self.slots
            ],
        }
        path = status_path(self.config)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with contextlib.suppress(OSError):
            tmp.write_text(json.dumps(data))
            tmp.replace(path)


def die_with_parent(parent: int) -> None:
    """Ask the kernel for SIGKILL when the supervisor dies, and go at once if it already has."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    if os.getppid() != parent:
        os._exit(1)


def default_signals() -> None:
    """In a forked child: the supervisor's signal handling is not the child's."""
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)


def prepare_store_in_child(config: Config) -> None:
    """Run tidings.server.prepare_store in a forked child, so the supervisor never holds a database
    connection or a thread; its error, if any, is raised here as StoreError."""
    read_end, write_end = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(read_end)
            die_with_parent(parent)
            default_signals()
            asyncio.run(prepare_store(config))
        except StoreError as exc:
            os.write(write_end, str(exc).encode("utf-8", "replace"))
            code = 1
        except BaseException:
            os.write(write_end, traceback.format_exc().encode("utf-8", "replace"))
            code = 2
        finally:
            os._exit(code)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        text = b"".join(chunks).decode("utf-8", "replace").strip()
        raise StoreError(text or f"preparing the store failed ({describe_exit(status)})")


def describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.WEXITSTATUS(status)}"
