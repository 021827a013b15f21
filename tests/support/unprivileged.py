"""Running `tidings serve` as a separate process started as root, the way an administrator does.

An unprivileged user can only run the server if it can read the Python it runs on: a Python
installed under /root (pyenv) is closed to it. `python_for(user)` finds an interpreter the user can
use (this one, else Debian's /usr/bin/python3 with this environment's libraries), and
`open_directory()` a temporary directory the user can reach (pytest's own tmp_path lives under a
0700 directory).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]
TEST_USER = "tidings-test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: checks what `tidings serve` does when started as root")


def ensure_test_user(name: str = TEST_USER) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(name)


def python_for(user: str) -> tuple[str, dict[str, str]]:
    """(interpreter, environment) with which `user` can import Tidings and its libraries."""
    site = sysconfig.get_paths()["purelib"]
    candidates = [
        (sys.executable, str(CHECKOUT)),
        ("/usr/bin/python3", f"{CHECKOUT}{os.pathsep}{site}"),
    ]
    for python, path in candidates:
        env = {**os.environ, "PYTHONPATH": path}
        entry = pwd.getpwnam(user)
        try:
            probe = subprocess.run(
                [python, "-c", "import sqlite3, ssl, sqlalchemy, tidings.cli"],
                env=env,
                capture_output=True,
                cwd="/",
                user=entry.pw_uid,
                group=entry.pw_gid,
                extra_groups=[],
            )
        except PermissionError:
            continue
        if probe.returncode == 0:
            return python, env
    pytest.skip(f"no Python here that the user {user} can read (installed under /root?)")


def open_directory() -> Path:
    """A fresh directory every user can traverse (not under pytest's 0700 tmp root)."""
    path = Path(tempfile.mkdtemp(prefix="tidings-priv-", dir="/tmp"))
    path.chmod(0o755)
    return path


def serve(
    python: str, env: dict, args: list[str], cwd: Path, serve_args: tuple[str, ...] = (), **as_user
) -> subprocess.Popen:
    """`tidings ARGS… serve SERVE_ARGS…` (as root unless `user=`/`group=` are given, as for
    subprocess.Popen)."""
    return subprocess.Popen(
        [python, "-m", "tidings.cli", *args, "serve", *serve_args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **as_user,
    )


def wait_serving(process: subprocess.Popen, ports: list[int], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    for port in ports:
        while True:
            if process.poll() is not None:
                raise AssertionError(f"server exited with {process.returncode}:\n{process.stdout.read()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"nothing listens on {port}") from None
                time.sleep(0.1)


def stop(process: subprocess.Popen) -> str:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.stdout.read()


def ids_of(pid: int) -> list[tuple[list[int], list[int]]]:
    """(Uid line, Gid line) of every thread of process `pid`: real, effective, saved, filesystem."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = {}
        for line in (task / "status").read_text().splitlines():
            key, _, value = line.partition(":")
            fields[key] = [int(v) for v in value.split()] if key in ("Uid", "Gid") else value
        out.append((fields["Uid"], fields["Gid"]))
    return out


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
