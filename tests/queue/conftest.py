"""Fixtures of the queue tests: scriptable SMTP peers and a sending server routed to them."""

from __future__ import annotations

import pytest

from tests.queue.fake_smtp import FakeSMTP
from tests.support.running import RunningServer
from tidings.config import QueueSettings


@pytest.fixture
def fake():
    servers: list[FakeSMTP] = []

    def make(**kwargs) -> FakeSMTP:
        server = FakeSMTP(**kwargs).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def sender_server(tmp_path):
    """Server for a.test relaying b.test to the given fake peer (or to a closed port for None)."""
    started: list[RunningServer] = []

    def make(peer: FakeSMTP | None, name: str = "a", database: str | None = None, **queue) -> RunningServer:
        routes = {"b.test": ("127.0.0.1", peer.port if peer else 9)}
        settings = dict(routes=routes, poll_interval=0.2, retry_base=0.3, retry_max=1.0, connect_timeout=2.0)
        settings.update(queue)
        server = RunningServer(
            tmp_path / name,
            domain="a.test",
            listeners=("pop3",),
            database=database,
            queue=QueueSettings(**settings),
        ).start()
        started.append(server)
        return server

    yield make
    for server in reversed(started):
        if server.loop.is_running():
            server.stop()
