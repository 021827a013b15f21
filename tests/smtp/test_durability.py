"""`250 OK` means durable: kill -9 the server mid-stream and find every acknowledged message.

kill -9 keeps the page cache, so this alone would pass without fsyncs: test_fsync.py watches them."""

from __future__ import annotations

import asyncio
import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.support.process import wait_ports_closed
from tidings.config import load_config
from tidings.store import Store

USER = "rcpt@durable.test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tidings(*args: str, config: Path, **kwargs) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tidings.cli", "--config", str(config), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=True, **kwargs)


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError("server did not start")


def serve(config: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.Popen(
        [sys.executable, "-m", "tidings.cli", "--config", str(config), "serve"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def stored_subjects(config_path: Path) -> set[bytes]:
    async def read() -> set[bytes]:
        store = Store.open(load_config(config_path))
        try:
            account = await store.accounts.get_user(USER)
            box = await store.mailboxes.get(account.id, "INBOX")
            _, refs = await store.mailboxes.messages(account.id, box.id)
            subjects = set()
            for ref in refs:
                raw = await store.mailboxes.read_blob(ref.blob_hash)
                subjects.add(raw.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0])
            return subjects
        finally:
            store.close()

    return asyncio.run(read())


def test_every_acknowledged_message_survives_kill_9(tmp_path):
    port = free_port()
    config = tmp_path / "tidings.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\nhostname = "mx.durable.test"\ndefault_domain = "durable.test"\n'
        "allow_root = true\n"  # the data is under pytest's tmp root, closed to other users
        f'[listen]\nsmtp = ["127.0.0.1:{port}"]\n'
    )
    tidings("domain", "add", "durable.test", config=config)
    tidings("user", "add", USER, "--password-stdin", config=config, input="correct horse 1\n")
    server = serve(config)
    try:
        wait_for_port(port, server)
        acknowledged: list[bytes] = []
        stop = threading.Event()

        def send(worker: int) -> None:
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                    for n in range(10_000):
                        if stop.is_set():
                            return
                        subject = f"w{worker}-{n}"
                        body = f"Subject: {subject}\r\n\r\n" + "z" * 3000 + "\r\n"
                        client.sendmail("s@remote.test", [USER], body)
                        acknowledged.append(subject.encode())  # only after the 250
            except (smtplib.SMTPException, OSError):
                pass  # the server died under us: expected

        senders = [threading.Thread(target=send, args=(w,)) for w in range(4)]
        for thread in senders:
            thread.start()
        deadline = time.monotonic() + 20
        while len(acknowledged) < 150 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.send_signal(signal.SIGKILL)  # while messages are in flight
        server.wait(10)
        wait_ports_closed([port])  # its worker processes die a few milliseconds after it
        stop.set()
        for thread in senders:
            thread.join(15)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert len(acknowledged) >= 150
    # The restarted server recovers the store and takes mail again.
    server = serve(config)
    try:
        wait_for_port(port, server)
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.sendmail("s@remote.test", [USER], "Subject: after-restart\r\n\r\nhi\r\n")
    finally:
        server.terminate()
        server.wait(15)
    acknowledged.append(b"after-restart")
    missing = set(acknowledged) - stored_subjects(config)
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {sorted(missing)[:5]}"
