"""Crash safety: `kill -9` of `tidings serve` in the middle of a delivery loses nothing; the restarted
server resumes once the dead process's lease has run out."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.queue.fake_smtp import FakeSMTP
from tests.support.running import fresh_database_url
from tidings.config import load_config
from tidings.store import Store
from tidings.store.delivery import Envelope

MESSAGE = b"From: alice@a.test\r\nTo: bob@b.test\r\nSubject: crash\r\n\r\nsurvive this\r\n"


def wait_until(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return value


def with_store(config_path, operation):
    async def run():
        store = Store.open(load_config(config_path))
        try:
            return await operation(store)
        finally:
            store.close()

    return asyncio.run(run())


def serve(config_path, log_path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tidings.cli", "--config", str(config_path), "serve"],
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
        cwd=os.getcwd(),
    )


@pytest.fixture
def peer():
    # The first delivery hangs in DATA for a long time: that is when the server gets killed.
    server = FakeSMTP(data_delays=[60.0, 0.0]).start()
    yield server
    server.stop()


def test_kill_9_during_delivery_loses_nothing_and_restart_delivers(tmp_path, peer):
    config_path = tmp_path / "tidings.toml"
    config_path.write_text(
        f"""
data_dir = "{tmp_path / "data"}"
database = "{fresh_database_url()}"
hostname = "mail.a.test"
default_domain = "a.test"
allow_root = true
[listen]
smtp = []
[queue]
routes = {{ "b.test" = "127.0.0.1:{peer.port}" }}
poll_interval = 0.2
retry_base = 0.3
lease = 1.5
"""
    )
    log_path = tmp_path / "serve.log"
    queue_id = with_store(config_path, _accept)
    process = serve(config_path, log_path)
    try:
        wait_until(lambda: peer.data_started >= 1, what=f"first DATA ({log_path.read_text()})")
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        entry = with_store(config_path, lambda store: store.queue.get(queue_id))
        assert [r.address for r in entry.pending] == ["bob@b.test"]
        assert peer.messages == []

        process = serve(config_path, log_path)
        [tx] = peer.wait_messages(1, timeout=20)
        assert b"survive this" in tx.data
        wait_until(
            lambda: with_store(config_path, lambda store: store.queue.count()) == 0, what="empty queue"
        )
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


async def _accept(store: Store) -> int:
    result = await store.delivery.accept(
        Envelope("alice@a.test", remote=[("bob@b.test", None, None)]), MESSAGE
    )
    return result.queue_id
