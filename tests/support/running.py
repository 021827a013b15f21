"""A real Tidings server for tests: started in a background thread with its own event loop.

Tests talk to it over sockets with ordinary clients (smtplib, poplib, imaplib, swaks...). Admin
operations run on the server's loop through `RunningServer.call`, exactly as the CLI would do them.
With TIDINGS_TEST_DATABASE set to a PostgreSQL URL, every server gets a fresh database there.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from tidings.config import AuthSettings, Config, Limits, QueueSettings
from tidings.server import Server

ALL_LISTENERS = ("smtp", "submission", "submissions", "pop3", "pop3s", "imap", "imaps")


def fresh_database_url() -> str:
    """'' for SQLite (under the data dir), or a new empty PostgreSQL database."""
    base = os.environ.get("TIDINGS_TEST_DATABASE", "")
    if not base:
        return ""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:16]
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return base.rsplit("/", 1)[0] + "/" + name


class RunningServer:
    def __init__(
        self,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        domain: str = "example.test",
        listeners=ALL_LISTENERS,
        database: str | None = None,
        **overrides: Any,
    ) -> None:
        self.host = host
        self.loop = overrides.pop("loop_factory", asyncio.new_event_loop)()  # uvloop.new_event_loop too
        limits = overrides.pop("limits", Limits())
        queue = overrides.pop("queue", QueueSettings(poll_interval=0.2, retry_base=1.0, retry_max=5.0))
        auth = overrides.pop("auth", AuthSettings())
        self.config = Config(
            data_dir=data_dir,
            hostname=overrides.pop("hostname", f"mail.{domain}"),
            database=database if database is not None else fresh_database_url(),
            default_domain=domain,
            listen={name: [(host, 0)] for name in listeners},
            limits=limits,
            queue=queue,
            auth=auth,
            # One id per server, as separate processes would have: several test servers share a
            # process, and a node drops change events carrying its own id as echoes.
            node_id=overrides.pop("node_id", f"test-{uuid.uuid4().hex[:12]}"),
            **overrides,
        )
        self.server = Server(self.config)
        self._thread = threading.Thread(target=self.loop.run_forever, name="tidings-test-server", daemon=True)
        self.ports: dict[str, int] = {}

    def start(self) -> RunningServer:
        self._thread.start()
        self.call(self.server.start())
        self.ports = {name: addrs[0][1] for name, addrs in self.server.bound_ports().items()}
        return self

    @property
    def app(self):
        return self.server.app

    @property
    def store(self):
        return self.server.app.store

    def call(self, coro: Coroutine, timeout: float = 30) -> Any:
        """Run a coroutine on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def _task_stacks(self) -> str:
        """Where each task of the server's loop waits: what a hung stop() needs to be understood."""
        import io

        out = io.StringIO()
        try:
            for task in list(asyncio.all_tasks(self.loop)):
                task.print_stack(limit=8, file=out)
        except RuntimeError as exc:  # the task set changed while read from this thread
            out.write(f"(could not list the tasks: {exc})")
        return out.getvalue()

    def add_user(self, address: str, password: str = "correct horse 1", quota: int | None = None):
        return self.call(self.store.accounts.add_user(address, password, quota))

    def stop(self) -> None:
        try:
            self.call(self.server.stop())
        except TimeoutError:
            raise TimeoutError(
                "server.stop() did not finish; tasks still running:\n" + self._task_stacks()
            ) from None
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
