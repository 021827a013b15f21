"""The private Postfix that bench/smtp.py measures Tidings against: its generated configuration is
one Postfix accepts, and the instance really delivers into its own Maildir, on its own port, while
the system's Postfix configuration stays untouched. (The benchmark itself is not run here.)"""

from __future__ import annotations

import importlib.util
import os
import smtplib
import sys
from pathlib import Path

import pytest

from tests.interop.conftest import require_tool, wait_until

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(os.geteuid() != 0, reason="a private Postfix instance needs root"),
]

BENCH = Path(__file__).resolve().parents[2] / "bench" / "smtp_servers.py"


def bench_servers():
    if str(BENCH.parent) not in sys.path:  # its sibling bench/managed.py, as when a benchmark runs
        sys.path.insert(0, str(BENCH.parent))
    spec = importlib.util.spec_from_file_location("bench_smtp_servers", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def system_postfix_state() -> list[tuple[str, int]]:
    return [(str(p), p.stat().st_mtime_ns) for p in sorted(Path("/etc/postfix").glob("*")) if p.is_file()]


def test_private_postfix_accepts_its_config_and_delivers_to_its_maildir():
    require_tool("postfix")
    servers = bench_servers()
    before = system_postfix_state()
    with servers.PostfixServer() as postfix:
        assert postfix.port not in (25, 587, 465)
        message = b"From: <a@example.org>\r\nSubject: bench check\r\n\r\nHello.\r\n"
        with smtplib.SMTP(servers.HOST, postfix.port, timeout=30) as client:
            assert client.sendmail("a@example.org", [servers.RECIPIENT], message) == {}
        wait_until(lambda: postfix.delivered() == 1, timeout=30)
        (delivered,) = (postfix.maildir / "new").iterdir()
        assert delivered.read_bytes().endswith(b"Hello.\n")
        directory = postfix.dir
    assert not directory.exists()
    assert system_postfix_state() == before
