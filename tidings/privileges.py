"""Least privilege for `tidings serve`: started as root, bind the ports, then run as `user`.

Root is needed for two things only: the standard ports below 1024 and a key file that only root
may read. `tidings serve` started as root therefore, before anything else runs (no thread, no
database, no file written):

1. finds the configured `user` (default `tidings`); a missing one is created as a system user
   with `useradd --system` (no home, no login shell), as a Debian package's postinst would;
2. creates the data directory (mode 0750) and hands it, and a `blob_dir` outside it, to that user:
   everything in them not yet owned by the user is chowned (the data of a version that ran as
   root, or a file an admin command run as root created), and other users lose access to them;
3. binds every listener (`tidings.net.listener.bind`) and loads the TLS certificate;
4. drops root for good: supplementary groups, gid, then uid (real, effective and saved), and
   checks that root cannot be regained;
5. checks that the user can reach the data directory and the program's own files, and refuses to
   run otherwise with a message that says what to change.

Only then are the store opened, the threads started and the worker processes forked
(tidings.supervisor), so every process, thread and file belongs to the user. `allow_root = true`
skips all of this and runs as root, which is refused otherwise; a start as any other user ignores
`user`.

Never imported by protocol packages; `tidings.cli` calls it for `serve` only.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tidings.config import Config, ConfigError

log = logging.getLogger(__name__)

DATA_DIR_MODE = 0o750


class PrivilegeError(ConfigError):
    """The server cannot run unprivileged as configured; the text says what to change."""


@dataclass(frozen=True)
class RunAs:
    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]


def started_as_root() -> bool:
    return os.geteuid() == 0


def plan(config: Config) -> RunAs | None:
    """Whom `serve` must become: None to stay as we are (not root, or root with allow_root)."""
    if not started_as_root():
        if config.user and _name_of(os.geteuid()) != config.user:
            log.info(
                "not started as root: running as uid %d (the setting `user` applies as root)", os.geteuid()
            )
        return None
    if config.allow_root:
        log.warning("running as root because allow_root = true; every session runs with root's rights")
        return None
    run_as = ensure_user(config.user)
    if run_as.uid == 0:
        raise PrivilegeError(
            f"user = {config.user!r} is root: name an unprivileged user, or set allow_root = true"
        )
    return run_as


def _name_of(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid without a passwd entry (containers)
        return str(uid)


def ensure_user(name: str) -> RunAs:
    """The account `name`, created as a system user (own group, no home, no shell) if missing."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        command = [
            useradd,
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            "--comment",
            "Tidings mail server",
            name,
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        except OSError as exc:
            raise PrivilegeError(
                f"no user {name!r} and cannot create it ({exc}); create it, or set allow_root = true"
            ) from None
        if done.returncode != 0:
            raise PrivilegeError(
                f"no user {name!r} and `useradd --system {name}` failed: {done.stderr.strip()}"
            ) from None
        log.warning("created the system user %s to run the server as", name)
        entry = pwd.getpwnam(name)
    groups = tuple(sorted({entry.pw_gid, *(g.gr_gid for g in grp.getgrall() if name in g.gr_mem)}))
    return RunAs(name, entry.pw_uid, entry.pw_gid, groups)


def data_dirs(config: Config) -> list[Path]:
    """The directories the server writes: the data directory and a blob directory outside it."""
    data = Path(config.data_dir).absolute()
    blobs = Path(config.blob_path).absolute()
    return [data] if blobs.is_relative_to(data) else [data, blobs]


def hand_over(config: Config, run_as: RunAs) -> None:
    """Create the data directories (0750) and give everything in them to `run_as`."""
    for top in data_dirs(config):
        if not top.exists():
            top.mkdir(parents=True, mode=DATA_DIR_MODE)
            log.info("created %s for %s", top, run_as.name)
        mode = top.stat().st_mode & 0o7777
        if mode & 0o007:  # mail is nobody else's business
            top.chmod(mode & ~0o007)
            log.info("closed %s to other users (mode %o)", top, mode & ~0o007)
        changed = chown_tree(top, run_as)
        if changed:
            log.info("gave %d file(s) under %s to %s", changed, top, run_as.name)


def chown_tree(top: Path, run_as: RunAs) -> int:
    """chown every entry under `top` (itself included) not owned by run_as; returns how many."""
    changed = 0
    for root, dirs, files in os.walk(top):
        for name in [None, *dirs, *files]:
            path = root if name is None else os.path.join(root, name)
            st = os.lstat(path)
            if (st.st_uid, st.st_gid) != (run_as.uid, run_as.gid):
                try:
                    os.lchown(path, run_as.uid, run_as.gid)
                except OSError as exc:
                    raise PrivilegeError(f"cannot give {path} to {run_as.name}: {exc.strerror}") from None
                changed += 1
    return changed


def drop(run_as: RunAs) -> None:
    """Become `run_as` for good (groups, gid, uid); raises if root could be regained."""
    os.setgroups(list(run_as.groups))
    os.setresgid(run_as.gid, run_as.gid, run_as.gid)
    os.setresuid(run_as.uid, run_as.uid, run_as.uid)
    if os.getresuid() != (run_as.uid,) * 3 or os.getresgid() != (run_as.gid,) * 3:
        raise PrivilegeError(f"could not become {run_as.name}")
    try:
        os.setuid(0)
    except PermissionError:
        pass
    else:
        raise PrivilegeError(f"still able to become root after switching to {run_as.name}")
    log.info("running as %s (uid %d, gid %d)", run_as.name, run_as.uid, run_as.gid)


def check_reachable(config: Config, run_as: RunAs) -> None:
    """After `drop`: refuse clearly when the user cannot use its data or read the program."""
    import sqlalchemy

    import tidings

    for directory in data_dirs(config):
        if not os.access(directory, os.R_OK | os.W_OK | os.X_OK):
            raise PrivilegeError(
                f"the user {run_as.name} cannot write {directory} (a directory above it is closed "
                'to other users?): put the data where it can, e.g. data_dir = "/var/lib/tidings", '
                "or set allow_root = true (or `tidings serve --allow-root`)"
            )
    for module in (os, tidings, sqlalchemy):  # the standard library, the program, its libraries
        directory = Path(module.__file__).parent
        if not os.access(directory, os.R_OK | os.X_OK):
            raise PrivilegeError(
                f"the user {run_as.name} cannot read the program in {directory} (a directory above "
                "it is closed to other users, e.g. /root?): install Tidings where it can, e.g. "
                "/opt/tidings, or set allow_root = true (or `tidings serve --allow-root`)"
            )
