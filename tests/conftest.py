"""Shared fixtures: a running server on ephemeral ports with a temporary data directory."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

from tests.support.running import RunningServer

# Property tests check results, never speed: Hypothesis' default 200 ms deadline per example turned
# into failures on a loaded machine (test_resolve_agrees_with_contains, seen at load 20), and so
# would the "too slow to generate" health check.
settings.register_profile("tidings", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("tidings")


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
