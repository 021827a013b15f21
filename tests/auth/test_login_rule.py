"""One login rule on every path in: a name is an address compared case-insensitively, and a bare
local part means the default domain (tidings.auth.login.canonical_account)."""

from __future__ import annotations

import pytest

from tests.auth.wire import PASSWORD, PATHS
from tests.support.running import RunningServer
from tidings.auth.login import canonical_account
from tidings.config import AuthSettings

ALICE = "alice@example.test"


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    # Many wrong names from one address: the throttle is not what these tests are about.
    auth = AuthSettings(max_failures_per_ip=1000, max_failures_per_account=1000)
    server = RunningServer(tmp_path_factory.mktemp("rule") / "data", auth=auth).start()
    server.add_user(ALICE, PASSWORD)
    yield server
    server.stop()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", ["alice", "Alice", "ALICE@Example.Test", "alice@example.test"])
def test_every_spelling_of_the_account_logs_in_on_every_path(running, path, name):
    assert PATHS[path](running.ports, name, PASSWORD) == "ok"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", ["alice+tag@example.test", "alice@other.test", "alice@", "al(ice"])
def test_other_names_are_not_the_account_on_any_path(running, path, name):
    assert PATHS[path](running.ports, name, PASSWORD) == "failed"


def test_the_rule():
    assert canonical_account("Alice", "Example.ORG") == "alice@example.org"
    assert canonical_account("Alice@EXAMPLE.org", "other.test") == "alice@example.org"
    assert canonical_account("alice+x@example.org", "example.org") == "alice+x@example.org"
    assert canonical_account("", "example.org") is None
    assert canonical_account("a b", "example.org") is None
    assert canonical_account("x" * 400, "example.org") is None
