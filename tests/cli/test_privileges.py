"""`tidings serve` started as root binds its ports, then runs every thread as an unprivileged user.

Real processes, real sockets: the server is a subprocess started as root (the tests need root and
skip otherwise); its identity is read from /proc, its service checked with smtplib, imaplib and
poplib, its files from the file system.
"""

from __future__ import annotations

import imaplib
import os
import poplib
import pwd
import smtplib
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.support.running import fresh_database_url
from tests.support.unprivileged import (
    TEST_USER,
    ensure_test_user,
    free_port,
    ids_of,
    need_root,
    open_directory,
    python_for,
    remove,
    serve,
    stop,
    wait_serving,
)
from tidings.config import STANDARD_PORTS

ALICE, PASSWORD = "alice@example.test", "correct horse 1"
MESSAGE = "From: bob@remote.test\r\nTo: alice@example.test\r\nSubject: hi\r\n\r\nhello\r\n"


@pytest.fixture
def place():
    """An open directory with a config writer: `place.config(**top_level_keys)` -> config path."""
    need_root()
    base = open_directory()
    ports = {"smtp": free_port(), "submission": free_port(), "imap": free_port(), "pop3": free_port()}
    database = fresh_database_url()

    def config(data: Path | None = None, **keys) -> Path:
        lines = [
            f'data_dir = "{data or base / "data"}"',
            'hostname = "mail.example.test"',
            'default_domain = "example.test"',
        ]
        if database:
            lines.append(f'database = "{database}"')
        for key, value in keys.items():
            lines.append(f"{key} = {value!r}".replace("True", "true").replace("False", "false"))
        lines += ["[auth]", "allow_plaintext = true", "[listen]"]
        lines += [f'{name} = ["127.0.0.1:{port}"]' for name, port in ports.items()]
        path = base / "tidings.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    class Place:
        pass

    place = Place()
    place.base, place.ports, place.config = base, ports, config
    yield place
    remove(base)


def admin(python: str, env: dict, config: Path, *args: str, stdin: str | None = None) -> None:
    done = subprocess.run(
        [python, "-m", "tidings.cli", "--config", str(config), *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def owners(top: Path) -> set[tuple[int, int]]:
    found = {(top.lstat().st_uid, top.lstat().st_gid)}
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            st = os.lstat(os.path.join(root, name))
            found.add((st.st_uid, st.st_gid))
    return found


def test_root_start_binds_then_runs_every_thread_as_the_configured_user(place):
    user = ensure_test_user()
    python, env = python_for(TEST_USER)
    config = place.config(user=TEST_USER)
    # An admin command run as root first: the data directory and database are root's now.
    admin(python, env, config, "domain", "add", "example.test")
    admin(python, env, config, "user", "add", ALICE, "--password-stdin", stdin=PASSWORD + "\n")
    data = place.base / "data"
    assert (0, 0) in owners(data)

    server = serve(python, env, ["--config", str(config)], place.base)
    try:
        wait_serving(server, list(place.ports.values()))
        for uids, gids in ids_of(server.pid):  # every thread
            assert uids == [user.pw_uid] * 4 and gids == [user.pw_gid] * 4
        groups = Path(f"/proc/{server.pid}/status").read_text().split("Groups:")[1].split("\n")[0].split()
        assert "0" not in groups

        with smtplib.SMTP("127.0.0.1", place.ports["smtp"], timeout=10) as mx:
            mx.sendmail("bob@remote.test", [ALICE], MESSAGE)
        with smtplib.SMTP("127.0.0.1", place.ports["submission"], timeout=10) as submission:
            submission.login(ALICE, PASSWORD)
            submission.sendmail(ALICE, [ALICE], MESSAGE.replace("bob@remote.test", ALICE))
        imap = imaplib.IMAP4("127.0.0.1", place.ports["imap"], timeout=10)
        imap.login(ALICE, PASSWORD)
        assert imap.select("INBOX") == ("OK", [b"2"])
        imap.logout()
        pop = poplib.POP3("127.0.0.1", place.ports["pop3"], timeout=10)
        pop.user(ALICE)
        pop.pass_(PASSWORD)
        assert pop.stat()[0] == 2
        pop.quit()
        # Everything the server keeps, including what root made before, is the user's now.
        assert owners(data) == {(user.pw_uid, user.pw_gid)}
        assert (data / "status.json").exists() and (data / "srs-secret").exists()
        assert data.stat().st_mode & 0o007 == 0
    finally:
        log = stop(server)
    assert server.returncode == 0, log
    assert f"running as {TEST_USER}" in log


@pytest.mark.parametrize("told", ["config", "command line"])
def test_allow_root_keeps_root(place, told):
    python, env = python_for(ensure_test_user().pw_name)
    if told == "config":
        server = serve(python, env, ["--config", str(place.config(allow_root=True))], place.base)
    else:
        server = serve(
            python, env, ["--config", str(place.config())], place.base, serve_args=("--allow-root",)
        )
    try:
        wait_serving(server, list(place.ports.values()))
        assert all(uids == [0] * 4 for uids, _ in ids_of(server.pid))
    finally:
        log = stop(server)
    assert "running as root because allow_root = true" in log


def test_root_start_refuses_when_the_user_cannot_reach_its_data(place):
    ensure_test_user()
    python, env = python_for(TEST_USER)
    closed = place.base / "closed"
    closed.mkdir(mode=0o700)
    config = place.config(data=closed / "data", user=TEST_USER)
    done = subprocess.run(
        [python, "-m", "tidings.cli", "--config", str(config), "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert f"the user {TEST_USER} cannot write {closed / 'data'}" in done.stderr
    assert "allow_root = true" in done.stderr and "Traceback" not in done.stderr
    with pytest.raises(OSError):  # nothing is left listening
        socket.create_connection(("127.0.0.1", place.ports["imap"]), timeout=1).close()


def test_a_missing_user_is_created_as_a_system_user(place):
    python, env = python_for(ensure_test_user().pw_name)
    name = "tidings-t" + uuid.uuid4().hex[:8]
    server = serve(python, env, ["--config", str(place.config(user=name))], place.base)
    try:
        wait_serving(server, list(place.ports.values()))
        created = pwd.getpwnam(name)
        assert 0 < created.pw_uid < 1000 and created.pw_shell == "/usr/sbin/nologin"
        assert all(uids == [created.pw_uid] * 4 for uids, _ in ids_of(server.pid))
    finally:
        log = stop(server)
        subprocess.run(["userdel", name], capture_output=True)
    assert f"created the system user {name}" in log


def test_a_start_as_another_user_ignores_user(place):
    runner = ensure_test_user()
    python, env = python_for(TEST_USER)
    os.chown(place.base, runner.pw_uid, runner.pw_gid)
    config = place.config(user="tidings-nobody-" + uuid.uuid4().hex[:6])
    server = serve(
        python,
        env,
        ["--config", str(config)],
        place.base,
        user=runner.pw_uid,
        group=runner.pw_gid,
        extra_groups=[],
    )
    try:
        wait_serving(server, list(place.ports.values()))
        assert all(uids == [runner.pw_uid] * 4 for uids, _ in ids_of(server.pid))
    finally:
        log = stop(server)
    assert server.returncode == 0, log
    assert "the setting `user` applies as root" in log


def test_readme_first_command_as_root_serves_the_standard_ports_as_tidings(place):
    """`tidings serve` with no configuration, started as root from a checkout others can read."""
    for port in STANDARD_PORTS.values():
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("0.0.0.0", port))
            except OSError:
                pytest.skip(f"port {port} is in use on this machine")
    existed = _user_exists("tidings")
    python, env = python_for(ensure_test_user().pw_name)
    server = serve(python, env, [], place.base)
    try:
        wait_serving(server, sorted(STANDARD_PORTS.values()))
        tidings = pwd.getpwnam("tidings")
        assert all(uids == [tidings.pw_uid] * 4 for uids, _ in ids_of(server.pid))
        assert owners(place.base / "tidings-data") == {(tidings.pw_uid, tidings.pw_gid)}
        imap = imaplib.IMAP4("127.0.0.1", 143, timeout=10)
        assert b"STARTTLS" in imap.capabilities or "STARTTLS" in imap.capabilities
        imap.logout()
    finally:
        log = stop(server)
        if not existed:
            subprocess.run(["userdel", "tidings"], capture_output=True)
    assert server.returncode == 0, log


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@pytest.mark.parametrize(
    ("line", "message"),
    [('allow_root = "yes"', "allow_root must be true or false"), ('user = ""', "user must name a user")],
)
def test_privilege_settings_are_checked_when_read(tmp_path, line, message):
    from tidings.config import ConfigError, load_config

    path = tmp_path / "tidings.toml"
    path.write_text(line + "\n")
    with pytest.raises(ConfigError, match=message):
        load_config(path)
