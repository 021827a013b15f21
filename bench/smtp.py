"""SMTP ingest benchmark: Tidings MX (durable delivery) against smtp-sink and a really delivering
Postfix, measured in the same run, under sustained load, with latency under load.

Postfix's `smtp-source` sends N messages of S bytes over C parallel sessions (default 20) to three
servers (bench/smtp_servers.py), one after the other, for each message size and client mode:

- `smtp-sink`: throws everything away; the wire ceiling of smtp-source and the loopback.
- a private Postfix that queues (fsync) and delivers with its `virtual` agent to a Maildir: measured
  both as "accepted" (smtp-source done) and "delivered" (every message in the Maildir's new/).
- `tidings serve` (SQLite): 250 comes after the blob and the delivery are committed to disk, so
  accepted is delivered; the INBOX count is checked against what was sent after every phase.

Modes: one connection per message (smtp-source's default) and reused connections (`-d`). Before it
starts, Tidings' INBOX is filled with `--prefill` messages (default 100,000; bench/smtp_prefill.py:
through the store's delivery call and then the indexer, so the store is what SMTP would have left),
so the phases run against a big mailbox, and they are long enough (default 50,000 messages of 5 KB,
30,000 of 100 KB) that the indexer (which runs at least every 30 s under load) and the SQLite
checkpoints fall inside the measured window; `tidings compact` (the periodic maintenance job, first
run 10 minutes after start in the server) is run once during each Tidings phase, 20 s in, so that
compaction is inside it too. Before each Tidings phase the indexer is given time (at most 5
minutes) to finish the mail of the phase before, so each window holds its own background work.
Rates are printed per 10-second slice and as the mean.

While smtp-source loads a server, bench/smtp_probe.py sends one message every 50 ms over its own
connection and times the end of DATA to the 250: its p50/p99 are printed per server, with the
Tidings event loop's lag as its status files report it. Rates count smtp-source's messages only;
the probe's (at most 20/s) are extra load that every server gets alike, and are counted in what
must be delivered. smtp-sink advertises STARTTLS but cannot do it, so everything is plaintext.
Only 127.0.0.1 and high ports are used; the system's Postfix is never touched.

    .venv/bin/python bench/smtp.py                        # everything (30-40 minutes on 2 cores)
    .venv/bin/python bench/smtp.py --quick                 # smoke run, about a minute
    .venv/bin/python bench/smtp.py --sizes 5000 --modes reuse --messages 20000 --prefill 0
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from imap_servers import stop_on_signals
from smtp_servers import RECIPIENT, PostfixServer, SmtpSink, TidingsSmtpServer

SMTP_SOURCE = "/usr/sbin/smtp-source"
PROBE = Path(__file__).with_name("smtp_probe.py")
SLICE = 10.0
SAMPLE = 1.0
MODES = {"connect": "one connection per message", "reuse": "reused connections (-d)"}
GOAL_SINK = 0.5
GOAL_POSTFIX = 1.0
# Bounds: a typo must not fill the disk or run all night.
MAX_MESSAGES = 1_000_000
MAX_SIZE = 10_000_000
MAX_PHASE_BYTES = 20 * 10**9
MAX_SESSIONS = 1000
SLOWEST_RATE = 5.0  # msg/s: below this a phase is given up as hung


@dataclass
class Phase:
    """One server under one (size, mode) load."""

    server: str
    mode: str
    size: int
    messages: int
    accept_seconds: float = 0.0
    deliver_seconds: float | None = None  # None: delivery is not observable (smtp-sink)
    delivered: int | None = None
    samples: list[tuple[float, int, int | None]] = field(default_factory=list)  # (t, accepted, delivered)
    latencies: list[float] = field(default_factory=list)
    probe_errors: int = 0
    probe_accepted: int = 0
    lag_max_ms: float | None = None
    lag_stalls: int | None = None
    compact_seconds: float | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def accepted_rate(self) -> float:
        return self.messages / self.accept_seconds

    @property
    def delivered_rate(self) -> float | None:
        """smtp-source's messages over the time until they and the probe's were all delivered."""
        if self.deliver_seconds is None or not self.delivered:
            return None
        return min(self.delivered, self.messages) / self.deliver_seconds

    def slice_rates(self, column: int) -> list[float]:
        """msg/s in each SLICE-second slice of the samples' column (1 accepted, 2 delivered)."""
        rates = []
        boundary, last_t, last_n = SLICE, 0.0, 0
        for sample in self.samples:
            t, n = sample[0], sample[column]
            if n is None:
                return []
            if t >= boundary:
                rates.append((n - last_n) / (t - last_t))
                boundary, last_t, last_n = boundary + SLICE, t, n
        tail = self.samples[-1] if self.samples else None
        if tail is not None and tail[0] - last_t >= SLICE / 3:  # a last, shorter slice
            rates.append((tail[column] - last_n) / (tail[0] - last_t))
        return rates


class SourceCounter:
    """smtp-source -c: its stdout gets the running count of completed DATA commands; read on a thread."""

    def __init__(self, command: list[str]) -> None:
        self.count = 0
        # Errors go to a file: a pipe nobody reads during the run would block smtp-source once full.
        self.errors = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed by stop())
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self.errors, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def error_text(self) -> str:
        self.errors.seek(0)
        return self.errors.read().strip()[-500:]

    def _read(self) -> None:
        for line in self.proc.stdout:
            line = line.strip()
            if line.isdigit():
                self.count = int(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.errors.close()


class LatencyProbe:
    """bench/smtp_probe.py in its own process, stopped with SIGTERM; it answers with JSON."""

    def __init__(self, port: int, size: int) -> None:
        # One line per failed attempt could fill a pipe; closed by kill().
        self.errors = tempfile.TemporaryFile("w+")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, str(PROBE), str(port), RECIPIENT, str(size)],
            stdout=subprocess.PIPE,
            stderr=self.errors,
            text=True,
        )

    def finish(self) -> dict:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            return {"latencies": [], "errors": 1, "accepted": 0, "stderr": "probe did not stop"}
        self.errors.seek(0)
        err = self.errors.read()
        try:
            result = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return {"latencies": [], "errors": 1, "accepted": 0, "stderr": err[-500:]}
        result["stderr"] = err[-500:]
        return result

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.errors.close()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run_phase(
    phase: Phase,
    port: int,
    sessions: int,
    delivered_count=None,
    tidings: TidingsSmtpServer | None = None,
    compact_after: float | None = None,
) -> Phase:
    """Load `port` with smtp-source and the probe; sample progress every SAMPLE s; print a line per
    SLICE. `delivered_count()` (Postfix, Tidings) is followed until everything sent is there."""
    label = f"{phase.server} {MODES[phase.mode]}, {phase.size:,} bytes"
    command = [SMTP_SOURCE, "-c", "-s", str(sessions), "-m", str(phase.messages), "-l", str(phase.size)]
    command += ["-t", RECIPIENT] + (["-d"] if phase.mode == "reuse" else []) + [f"127.0.0.1:{port}"]
    baseline = delivered_count() if delivered_count else 0
    stalls_before = _lag_stalls(tidings)
    limit = 60 + phase.messages / SLOWEST_RATE
    compaction: subprocess.Popen | None = None
    compact_started = 0.0
    print(f"  {label}: {phase.messages:,} messages", flush=True)
    probe = LatencyProbe(port, phase.size)
    source = None
    try:
        time.sleep(0.3)  # the probe's first connection is up before the load starts
        started = time.monotonic()
        source = SourceCounter(command)
        next_report = SLICE
        lag_slice = 0.0
        next_sample = SAMPLE
        while True:
            # Woken by smtp-source's exit as well: the accept time is not rounded to a sample.
            with contextlib.suppress(subprocess.TimeoutExpired):
                source.proc.wait(max(0.0, next_sample - (time.monotonic() - started)))
            next_sample += SAMPLE
            now = time.monotonic() - started
            done = source.proc.poll() is not None
            delivered = delivered_count() - baseline if delivered_count else None
            accepted = phase.messages if done and source.proc.returncode == 0 else source.count
            phase.samples.append((now, accepted, delivered))
            lag = _lag_recent(tidings)
            if lag is not None:
                lag_slice = max(lag_slice, lag)
                phase.lag_max_ms = max(phase.lag_max_ms or 0.0, lag)
            if tidings and compact_after is not None and compaction is None and now >= compact_after:
                compact_started = now
                compaction = tidings.compact_in_background()
            if compaction is not None and phase.compact_seconds is None and compaction.poll() is not None:
                phase.compact_seconds = now - compact_started
                if compaction.returncode != 0:
                    phase.problems.append(f"tidings compact failed: {compaction.stderr.read()[-300:]}")
            if now >= next_report or done:
                _report_slice(phase, now, lag_slice if tidings else None)
                next_report += SLICE
                lag_slice = 0.0
            if done:
                phase.accept_seconds = now
                break
            if now > limit:
                phase.problems.append(f"smtp-source still running after {limit:.0f} s: stopped")
                source.stop()
                phase.accept_seconds = now
                break
        if source.proc.returncode not in (0, None) and not phase.problems:
            phase.problems.append(f"smtp-source failed: {source.error_text()}")
        result = probe.finish()
        phase.latencies = result["latencies"]
        phase.probe_errors = result["errors"]
        phase.probe_accepted = result["accepted"]
        if result["errors"]:
            phase.problems.append(f"probe: {result['errors']} error(s) {result.get('stderr', '')[-200:]}")
        if delivered_count:
            _wait_for_delivery(phase, delivered_count, baseline, started, limit)
        if compaction is not None:
            compaction.wait(300)
            if phase.compact_seconds is None:
                phase.compact_seconds = time.monotonic() - started - compact_started
        stalls_after = _lag_stalls(tidings)
        if stalls_before is not None and stalls_after is not None:
            phase.lag_stalls = stalls_after - stalls_before
    finally:
        probe.kill()
        if source is not None:
            source.stop()
        if compaction is not None and compaction.poll() is None:
            compaction.terminate()
            compaction.wait(30)
    return phase


def settle(tidings: TidingsSmtpServer, limit: float = 300.0) -> None:
    """Let the indexer finish the mail of earlier phases (bounded), so that each phase's window
    holds the background work its own mail causes and not a backlog from before."""
    started = time.monotonic()
    backlog = tidings.unindexed()
    while backlog and time.monotonic() - started < limit:
        time.sleep(2)
        backlog = tidings.unindexed()
    lag = _lag_recent(tidings)
    print(
        f"  Tidings before the phase: {backlog:,} message(s) not yet indexed after waiting "
        f"{time.monotonic() - started:.0f} s; loop lag {lag if lag is not None else '?'} ms",
        flush=True,
    )


def _wait_for_delivery(phase: Phase, delivered_count, baseline: int, started: float, limit: float) -> None:
    """Follow the delivered count until everything sent (load and probe) is there, or give up."""
    expected = phase.messages + phase.probe_accepted
    # Tidings says 250 only once the message is in the INBOX: what is missing then stays missing.
    patience = 10.0 if phase.server == "Tidings" else max(60.0, limit - (time.monotonic() - started))
    deadline = time.monotonic() + patience
    next_report = (phase.samples[-1][0] // SLICE + 1) * SLICE
    while True:
        delivered = delivered_count() - baseline
        now = time.monotonic() - started
        if delivered >= expected:
            phase.delivered = delivered
            phase.deliver_seconds = now
            phase.samples.append((now, phase.messages, delivered))
            if phase.server == "Tidings" and delivered != expected:
                phase.problems.append(f"INBOX holds {delivered} new messages, {expected} were accepted")
            return
        if time.monotonic() > deadline:
            phase.delivered = delivered
            phase.deliver_seconds = now
            phase.problems.append(f"only {delivered} of {expected} delivered when given up")
            return
        phase.samples.append((now, phase.messages, delivered))
        if now >= next_report:
            _report_slice(phase, now, None)
            next_report += SLICE
        time.sleep(SAMPLE / 4 if phase.server == "Tidings" else SAMPLE)


def _report_slice(phase: Phase, now: float, lag_ms: float | None) -> None:
    """One progress line: counts so far and the rates since the previous line."""
    samples = phase.samples
    previous = next((s for s in reversed(samples[:-1]) if s[0] <= now - SLICE + SAMPLE / 2), (0.0, 0, 0))
    t, accepted, delivered = samples[-1]
    span = max(t - previous[0], 1e-6)
    line = f"    {t:6.1f} s  accepted {accepted:>8,} ({(accepted - previous[1]) / span:7.0f}/s)"
    if delivered is not None:
        line += f"  delivered {delivered:>8,} ({(delivered - (previous[2] or 0)) / span:7.0f}/s)"
    if lag_ms is not None:
        line += f"  loop lag {lag_ms:5.0f} ms"
    print(line, flush=True)


def _lag_recent(tidings: TidingsSmtpServer | None) -> float | None:
    if tidings is None:
        return None
    entries = tidings.loop_lag()
    return max((e.get("recent_max_ms", 0.0) for e in entries), default=None)


def _lag_stalls(tidings: TidingsSmtpServer | None) -> int | None:
    if tidings is None:
        return None
    entries = tidings.loop_lag()
    return sum(e.get("stalls", 0) for e in entries) if entries else None


def summary(phases: list[Phase]) -> int:
    """The table, the ratios against the goals, the slices; returns the number of problems."""
    problems = 0
    print("\n=== results (msg/s; DATA-end -> 250 latency of the probe under load) ===")
    header = (
        f"{'size':>9} {'mode':8} {'server':10} {'accepted':>9} {'delivered':>10} {'p50 ms':>8} {'p99 ms':>8}"
    )
    print(header + "  notes")
    by_key: dict[tuple[int, str], dict[str, Phase]] = {}
    for phase in phases:
        by_key.setdefault((phase.size, phase.mode), {})[phase.server] = phase
    for (size, mode), servers in by_key.items():
        for name, phase in servers.items():
            delivered = phase.delivered_rate
            p50 = p99 = "-"
            if phase.latencies:
                p50 = f"{percentile(phase.latencies, 0.5) * 1000:.1f}"
                p99 = f"{percentile(phase.latencies, 0.99) * 1000:.1f}"
            notes = []
            if name == "Tidings":
                if phase.lag_max_ms is not None:
                    notes.append(
                        f"loop lag max {phase.lag_max_ms:.0f} ms, {phase.lag_stalls} stall(s) >= 100 ms"
                    )
                if phase.compact_seconds is not None:
                    notes.append(f"compact ran {phase.compact_seconds:.1f} s")
            notes.append(f"probe n={len(phase.latencies)}")
            notes += phase.problems
            problems += len(phase.problems)
            shown = f"{delivered:.0f}" if delivered is not None else "-"
            print(
                f"{size:>9,} {mode:8} {name:10} {phase.accepted_rate:9.0f} {shown:>10} "
                f"{p50:>8} {p99:>8}  {'; '.join(notes)}"
            )
        tidings, sink, postfix = servers.get("Tidings"), servers.get("smtp-sink"), servers.get("Postfix")
        if tidings:
            rate = tidings.accepted_rate  # its 250 is the durable delivery (the INBOX count is checked)
            if sink:
                ratio = rate / sink.accepted_rate
                verdict = "met" if ratio >= GOAL_SINK else "not met"
                print(f"{'':30}Tidings / smtp-sink          {ratio:6.3f}  (goal >= {GOAL_SINK}: {verdict})")
            if postfix and postfix.delivered_rate:
                ratio = rate / postfix.delivered_rate
                verdict = "met" if ratio >= GOAL_POSTFIX else "not met"
                print(
                    f"{'':30}Tidings / Postfix delivered  {ratio:6.3f}  (goal >= {GOAL_POSTFIX}: {verdict})"
                )
    print("\n=== msg/s per 10-second slice (accepted; delivered for Postfix; the last may be shorter) ===")
    for phase in phases:
        column = 2 if phase.server == "Postfix" else 1
        rates = phase.slice_rates(column)
        what = "delivered" if column == 2 else "accepted"
        shown = " ".join(f"{r:.0f}" for r in rates) if rates else "(shorter than one slice)"
        spread = f"  min {min(rates):.0f} max {max(rates):.0f}" if len(rates) > 1 else ""
        print(f"  {phase.size:>9,} {phase.mode:8} {phase.server:10} {what:9}: {shown}{spread}")
    return problems


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--messages",
        type=int,
        help="messages per phase (default: 50,000, at most 3 GB per phase: 30,000 of 100 KB)",
    )
    parser.add_argument("--sizes", default="5000,100000", help="message sizes in bytes, comma-separated")
    parser.add_argument("--modes", default="connect,reuse", help="connect, reuse or both (comma-separated)")
    parser.add_argument("--sessions", type=int, default=20, help="parallel smtp-source sessions")
    parser.add_argument("--prefill", type=int, default=100_000, help="messages in Tidings' INBOX beforehand")
    parser.add_argument("--prefill-size", type=int, default=5000, help="size of the prefilled messages")
    parser.add_argument("--workers", type=int, help="write `workers = N` into the Tidings config")
    parser.add_argument("--servers", default="sink,postfix,tidings", help="which of sink,postfix,tidings")
    parser.add_argument("--no-compact", action="store_true", help="do not run `tidings compact` in phases")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 x 5 KB, prefill 2,000")
    parser.add_argument("--keep", action="store_true", help="keep the servers' directories")
    args = parser.parse_args()
    if args.quick:
        args.messages = args.messages or 2000
        args.sizes = "5000"
        args.prefill = min(args.prefill, 2000)
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.modes = ["connect", "reuse"] if args.modes == "both" else args.modes.split(",")
    args.servers = args.servers.split(",")
    for mode in args.modes:
        if mode not in MODES:
            parser.error(f"unknown mode {mode!r}")
    for name in args.servers:
        if name not in ("sink", "postfix", "tidings"):
            parser.error(f"unknown server {name!r}")
    for size in args.sizes:
        if not 100 <= size <= MAX_SIZE:
            parser.error(f"sizes must be between 100 and {MAX_SIZE:,} bytes")
        if messages_for(args, size) * size > MAX_PHASE_BYTES:
            parser.error(f"more than {MAX_PHASE_BYTES / 1e9:.0f} GB in one phase")
    if args.messages is not None and not 1 <= args.messages <= MAX_MESSAGES:
        parser.error(f"--messages must be between 1 and {MAX_MESSAGES:,}")
    if not 0 <= args.prefill <= MAX_MESSAGES or not 100 <= args.prefill_size <= MAX_SIZE:
        parser.error("--prefill or --prefill-size out of bounds")
    if not 1 <= args.sessions <= MAX_SESSIONS:
        parser.error(f"--sessions must be between 1 and {MAX_SESSIONS}")
    if args.workers is not None and not 1 <= args.workers <= 64:
        parser.error("--workers must be between 1 and 64")
    needed = args.prefill * args.prefill_size + sum(
        messages_for(args, size) * size * 2 * len(args.modes) for size in args.sizes
    )
    free = shutil.disk_usage(tempfile.gettempdir()).free
    if needed * 2 > free:
        parser.error(
            f"needs about {needed * 2 / 1e9:.1f} GB in {tempfile.gettempdir()}, {free / 1e9:.1f} free"
        )
    return args


def messages_for(args: argparse.Namespace, size: int) -> int:
    """--messages, or 50,000 capped at 3 GB per phase (100 KB: 30,000): about a minute or more each."""
    if args.messages is not None:
        return args.messages
    return max(1000, min(50_000, 3 * 10**9 // size))


def main() -> int:
    args = parse_args()
    for tool in (SMTP_SOURCE, "/usr/sbin/smtp-sink", "/usr/sbin/postfix"):
        if not os.access(tool, os.X_OK):
            print(f"{tool} not found (scripts/install-deps.sh installs postfix)", file=sys.stderr)
            return 2
    stop_on_signals()
    phases: list[Phase] = []
    try:
        run_all(args, phases)
    except KeyboardInterrupt:
        # The servers' context managers have stopped them and removed their directories.
        print("\ninterrupted: every server stopped, temporary directories removed", flush=True)
        if phases:
            summary(phases)
        return 130
    problems = summary(phases)
    return 1 if problems else 0


def run_all(args: argparse.Namespace, phases: list[Phase]) -> None:
    """Start the servers, fill Tidings, run every (size, mode) phase on each; appends to `phases`."""
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(SmtpSink(keep=args.keep)) if "sink" in args.servers else None
        postfix = stack.enter_context(PostfixServer(keep=args.keep)) if "postfix" in args.servers else None
        tidings = None
        if "tidings" in args.servers:
            tidings = TidingsSmtpServer(workers=args.workers, keep=args.keep)
            stack.callback(tidings.stop)  # started only once the INBOX is filled
            if args.prefill:
                print(f"filling Tidings' INBOX with {args.prefill:,} messages of {args.prefill_size:,} bytes")
                took = tidings.prefill(
                    args.prefill, args.prefill_size, lambda line: print(f"  {line}", flush=True)
                )
                print(
                    f"  prefill took {took:.0f} s (bench/smtp_prefill.py: store.delivery.accept, as the "
                    "SMTP session calls it, then the indexer to the end)"
                )
            tidings.start()
        print(
            f"smtp-source, {args.sessions} sessions; Tidings"
            f"{f' workers = {args.workers}' if args.workers else ' (default workers)'}, INBOX holds "
            f"{tidings.inbox_count() if tidings else 0:,} messages; load average {os.getloadavg()[0]:.1f} "
            f"on {os.cpu_count()} cores (other programs running disturb the figures)"
        )
        for size in args.sizes:
            messages = messages_for(args, size)
            for mode in args.modes:
                print(f"\n[{MODES[mode]}, {size:,} bytes, {messages:,} messages]", flush=True)
                if sink:
                    phases.append(
                        run_phase(Phase("smtp-sink", mode, size, messages), sink.port, args.sessions)
                    )
                if postfix:
                    phase = run_phase(
                        Phase("Postfix", mode, size, messages), postfix.port, args.sessions, postfix.delivered
                    )
                    postfix.clear_delivered()
                    phases.append(phase)
                if tidings:
                    settle(tidings)
                    phase = Phase("Tidings", mode, size, messages)
                    compact_after = None if args.no_compact else SLICE * 2
                    run_phase(phase, tidings.port, args.sessions, tidings.inbox_count, tidings, compact_after)
                    phases.append(phase)
        print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    sys.exit(main())
