"""On PostgreSQL, "250 OK" waits for a commit; with synchronous_commit off that commit is not on disk,
so `tidings serve` refuses to start unless `allow_asynchronous_commit` says to serve anyway."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.support.running import RunningServer, fresh_database_url

pytestmark = pytest.mark.skipif(
    not os.environ.get("TIDINGS_TEST_DATABASE", "").startswith("postgres"), reason="needs PostgreSQL"
)


def database_with_asynchronous_commit() -> str:
    url = fresh_database_url()
    with psycopg.connect(os.environ["TIDINGS_TEST_DATABASE"], autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{url.rsplit("/", 1)[1]}" SET synchronous_commit = off')
    return url


def serve(tmp_path: Path, database: str, *extra: str) -> subprocess.Popen:
    config = tmp_path / "tidings.toml"
    lines = [f'data_dir = "{tmp_path / "data"}"', f'database = "{database}"', "allow_root = true", *extra]
    lines += ["[listen]", 'smtp = ["127.0.0.1:0"]']
    config.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.Popen(
        [sys.executable, "-m", "tidings.cli", "--config", str(config), "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_serve_refuses_a_database_with_synchronous_commit_off(tmp_path):
    process = serve(tmp_path, database_with_asynchronous_commit())
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 1, output
    assert "synchronous_commit=off" in output and "allow_asynchronous_commit = true" in output
    assert "Traceback" not in output
    assert not (tmp_path / "data" / "status.json").exists()


def test_allow_asynchronous_commit_serves_with_a_warning(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="tidings.server")
    server = RunningServer(
        tmp_path / "data", database=database_with_asynchronous_commit(), allow_asynchronous_commit=True
    ).start()
    try:
        assert server.ports["smtp"]
    finally:
        server.stop()
    assert any("synchronous_commit=off" in r.getMessage() for r in caplog.records)


def test_a_durable_database_serves_without_a_warning(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="tidings.server")
    server = RunningServer(tmp_path / "data").start()
    server.stop()
    assert not any("synchronous_commit" in r.getMessage() for r in caplog.records)
