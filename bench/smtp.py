"""SMTP ingest benchmark: Tidings MX (durable delivery) against Postfix's smtp-sink (wire speed).

Postfix's `smtp-source` sends N messages of about S bytes over C parallel sessions, first to
`smtp-sink` (which throws everything away: the reference for what the client and the loopback can
do), then to a `tidings serve` started here with a fresh data directory (SQLite, one user). Tidings
acknowledges a message only after its blob is fsynced and the delivery transaction committed, so
this measures durable throughput. Afterwards the INBOX must hold exactly N new messages.

Two client modes are measured: one connection per message (smtp-source's default) and connections
reused for many messages (`-d`). Postfix itself is never started; smtp-sink advertises STARTTLS but
cannot do it, so smtp-source runs without TLS.

    .venv/bin/python bench/smtp.py                       # 10,000 x 5 KB over 20 sessions, both modes
    .venv/bin/python bench/smtp.py --messages 2000 --mode reuse
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tidings.config import load_config  # noqa: E402
from tidings.store import Store  # noqa: E402

SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"
DOMAIN = "bench.test"
RECIPIENT = f"rcpt@{DOMAIN}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port}")


def run_source(port: int, messages: int, sessions: int, size: int, reuse: bool) -> float:
    """Run smtp-source; return messages per second."""
    command = [SMTP_SOURCE, "-s", str(sessions), "-m", str(messages), "-l", str(size), "-t", RECIPIENT]
    if reuse:
        command.append("-d")
    command.append(f"127.0.0.1:{port}")
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"smtp-source failed: {result.stderr.strip() or result.stdout.strip()}")
    return messages / elapsed


def inbox_count(config_path: Path) -> int:
    async def count() -> int:
        store = Store.open(load_config(config_path))
        try:
            account = await store.accounts.get_user(RECIPIENT)
            box = await store.mailboxes.get(account.id, "INBOX")
            return (await store.mailboxes.status(account.id, box.id)).messages
        finally:
            store.close()

    return asyncio.run(count())


def tidings_cli(config: Path, *args: str, stdin: str | None = None) -> None:
    subprocess.run(
        [sys.executable, "-m", "tidings.cli", "--config", str(config), *args],
        input=stdin,
        text=True,
        check=True,
        capture_output=True,
        cwd=ROOT,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--size", type=int, default=5000, help="message size in bytes (smtp-source -l)")
    parser.add_argument(
        "--mode",
        choices=("connect", "reuse", "both"),
        default="both",
        help="connect: one connection per message; reuse: smtp-source -d",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    args = parser.parse_args()
    for tool in (SMTP_SOURCE, SMTP_SINK):
        if not os.access(tool, os.X_OK):
            print(f"{tool} not found (Debian package postfix)", file=sys.stderr)
            return 2

    workdir = Path(tempfile.mkdtemp(prefix="tidings-bench-smtp-"))
    sink_port, mx_port = free_port(), free_port()
    config = workdir / "tidings.toml"
    config.write_text(
        f'data_dir = "{workdir / "data"}"\nhostname = "mx.{DOMAIN}"\ndefault_domain = "{DOMAIN}"\n'
        "allow_root = true\n"  # measured as the reference servers run: no privilege switch
        f'[listen]\nsmtp = ["127.0.0.1:{mx_port}"]\n'
    )
    tidings_cli(config, "domain", "add", DOMAIN)
    tidings_cli(config, "user", "add", RECIPIENT, "--password-stdin", stdin="correct horse 1\n")

    sink_command = [SMTP_SINK]
    if os.geteuid() == 0:
        sink_command += ["-u", "nobody"]  # smtp-sink refuses to run as root without it
    sink_command += [f"127.0.0.1:{sink_port}", "1000"]
    sink = subprocess.Popen(sink_command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = subprocess.Popen(
        [sys.executable, "-m", "tidings.cli", "--config", str(config), "serve"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    modes = ["connect", "reuse"] if args.mode == "both" else [args.mode]
    failures = 0
    try:
        wait_for_port(sink_port, sink)
        wait_for_port(mx_port, server)
        print(f"{args.messages} messages of {args.size} bytes over {args.sessions} sessions")
        expected = 0
        for mode in modes:
            reuse = mode == "reuse"
            label = "reused connections (-d)" if reuse else "one connection per message"
            sink_rate = run_source(sink_port, args.messages, args.sessions, args.size, reuse)
            tidings_rate = run_source(mx_port, args.messages, args.sessions, args.size, reuse)
            expected += args.messages
            print(f"[{label}]")
            print(f"  smtp-sink (discards): {sink_rate:9.0f} msg/s")
            print(f"  tidings (durable):    {tidings_rate:9.0f} msg/s")
            print(f"  ratio:                {tidings_rate / sink_rate:9.3f}")
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        stored = inbox_count(config)
        verdict = "OK" if stored == expected else "MISMATCH"
        failures += stored != expected
        print(f"stored in INBOX: {stored} (expected {expected}) {verdict}")
    finally:
        for process in (server, sink):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"data kept in {workdir}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
