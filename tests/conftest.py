"""Shared fixtures: a running server on ephemeral ports with a temporary data directory."""

from __future__ import annotations

import pytest

from tests.support.running import RunningServer


@pytest.fixture
def server(tmp_path):
    """A Tidings server for domain example.test with every mail listener on 127.0.0.1, port 0."""
    running = RunningServer(tmp_path / "data").start()
    yield running
    running.stop()


@pytest.fixture
def make_server(tmp_path):
    """Factory for servers with custom settings (two instances, other domains, limits...)."""
    started: list[RunningServer] = []

    def make(name: str = "srv", **kwargs) -> RunningServer:
        running = RunningServer(tmp_path / name, **kwargs).start()
        started.append(running)
        return running

    yield make
    for running in reversed(started):
        running.stop()
