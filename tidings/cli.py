"""The `tidings` command: run the server and administer domains, users, aliases and the queue.

Every admin command opens the same store as `tidings serve` (chosen by --config / --data), so it
works while the server runs; running servers learn of a removed or disabled user within a second or
two and end that user's sessions (see tidings/auth/logins.py). Errors are one clear line on stderr
and exit status 1; nothing is half-written because each change is one transaction.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
import time
from pathlib import Path

from tidings.auth.passwords import WeakPassword
from tidings.config import Config, ConfigError, load_config, parse_size
from tidings.mail.address import BadAddress
from tidings.store import Store, StoreError


class CommandError(Exception):
    pass


def _global_options(parser: argparse.ArgumentParser, suppress: bool = False) -> None:
    # Sub-commands repeat the options (so they may come after the command) without resetting them.
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("--config", type=Path, default=default, help="TOML configuration file")
    parser.add_argument("--data", type=Path, default=default, help="data directory (default ./tidings-data)")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, suppress=True)
    parser = argparse.ArgumentParser(prog="tidings", description=__doc__.splitlines()[0])
    _global_options(parser)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", parents=[common], help="run the server")
    serve.add_argument("-v", "--verbose", action="store_true")
    serve.add_argument(
        "--allow-root",
        action="store_true",
        help="started as root, keep running as root (as allow_root = true; for a quick try only)",
    )
    serve.add_argument(
        "--workers",
        type=_worker_count,
        help="server processes (as `workers`): 0 = one per CPU core, 1 = a single process",
    )

    domain = sub.add_parser("domain", parents=[common], help="manage domains").add_subparsers(
        dest="action", required=True
    )
    domain.add_parser("add", parents=[common]).add_argument("domain")
    domain.add_parser("list", parents=[common])
    rm = domain.add_parser("remove", parents=[common])
    rm.add_argument("domain")
    rm.add_argument("--force", action="store_true", help="also remove the domain's accounts and mail")
    dkim = domain.add_parser("dkim", parents=[common], help="make a DKIM key and print the DNS record")
    dkim.add_argument("domain")
    dkim.add_argument("--selector", default="tidings")

    user = sub.add_parser("user", parents=[common], help="manage users").add_subparsers(
        dest="action", required=True
    )
    add = user.add_parser("add", parents=[common])
    add.add_argument("address")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.add_argument("--quota", help="e.g. 500M, 2G (default: unlimited)")
    add.add_argument("--admin", action="store_true", help="may use the web client's admin console")
    admin = user.add_parser("admin", parents=[common], help="grant or revoke the admin console")
    admin.add_argument("address")
    admin.add_argument("--revoke", action="store_true")
    passwd = user.add_parser("passwd", parents=[common])
    passwd.add_argument("address")
    passwd.add_argument("--password-stdin", action="store_true")
    quota = user.add_parser("quota", parents=[common])
    quota.add_argument("address")
    quota.add_argument("quota", help="e.g. 500M, or 'none'")
    user.add_parser("list", parents=[common]).add_argument("domain", nargs="?")
    user.add_parser("remove", parents=[common]).add_argument("address")
    user.add_parser(
        "disable", parents=[common], help="refuse the user's logins and end their open sessions"
    ).add_argument("address")
    user.add_parser("enable", parents=[common], help="let a disabled user log in again").add_argument(
        "address"
    )

    alias = sub.add_parser("alias", parents=[common], help="manage aliases").add_subparsers(
        dest="action", required=True
    )
    a_add = alias.add_parser("add", parents=[common])
    a_add.add_argument("alias", help="alias@domain, or @domain for a catch-all")
    a_add.add_argument("targets", nargs="+")
    alias.add_parser("list", parents=[common])
    a_rm = alias.add_parser("remove", parents=[common])
    a_rm.add_argument("alias")
    a_rm.add_argument("target", nargs="?")

    queue = sub.add_parser("queue", parents=[common], help="inspect the outbound queue").add_subparsers(
        dest="action", required=True
    )
    queue.add_parser("list", parents=[common])
    q_retry = queue.add_parser("retry", parents=[common])
    q_retry.add_argument("id", nargs="?", type=int, help="entry id (default: all)")
    queue.add_parser("delete", parents=[common]).add_argument("id", type=int)

    sub.add_parser("status", parents=[common], help="listeners, queue, accounts, storage")
    sub.add_parser("compact", parents=[common], help="remove message contents nothing refers to any more")
    return parser


def _worker_count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _read_password(args, prompt: str = "Password: ") -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise CommandError("no terminal to ask for a password: use --password-stdin")
    first = getpass.getpass(prompt)
    if getpass.getpass("Again: ") != first:
        raise CommandError("the passwords differ")
    return first


async def _admin(args, config: Config) -> int:
    # Our own node id: a server with the same configured `node_id` would otherwise drop the change
    # events we send it (NOTIFY) as echoes of its own.
    config.node_id = f"{config.node_id}/cli-{os.getpid()}"
    store = Store.open(config)
    try:
        return await _dispatch(args, config, store)
    finally:
        store.close()


async def _dispatch(args, config: Config, store: Store) -> int:
    accounts = store.accounts
    cmd, action = args.command, getattr(args, "action", None)
    if cmd == "domain":
        if action == "add":
            domain = await accounts.add_domain(args.domain)
            print(f"added domain {domain.name}")
        elif action == "list":
            for d in await accounts.list_domains():
                print(d.name + (f"  (DKIM selector {d.dkim_selector})" if d.dkim_selector else ""))
        elif action == "remove":
            await accounts.remove_domain(args.domain, force=args.force)
            print(f"removed domain {args.domain}")
        elif action == "dkim":
            from tidings.mail.dkim import dns_record, make_key

            domain = await accounts.get_domain(args.domain)
            private_pem, _ = make_key()
            await accounts.set_dkim(domain.name, args.selector, private_pem)
            print(dns_record(domain.name, args.selector, private_pem))
    elif cmd == "user":
        if action == "add":
            quota = parse_size(args.quota) if args.quota else None
            password = _read_password(args)
            account = await accounts.add_user(args.address, password, quota, admin=args.admin)
            print(f"added {'admin ' if account.admin else ''}user {account.address}")
        elif action == "admin":
            await accounts.set_admin(args.address, not args.revoke)
            print(f"{'revoked' if args.revoke else 'granted'} the admin console for {args.address}")
        elif action == "passwd":
            await accounts.get_user(args.address)
            await accounts.set_password(args.address, _read_password(args, "New password: "))
            print(f"changed password of {args.address}")
        elif action == "quota":
            quota = None if args.quota.lower() in ("none", "unlimited") else parse_size(args.quota)
            await accounts.set_quota(args.address, quota)
            print(f"quota of {args.address}: {args.quota}")
        elif action == "list":
            for a in await accounts.list_users(args.domain):
                quota = _human(a.quota_bytes) if a.quota_bytes is not None else "unlimited"
                state = ("  (admin)" if a.admin else "") + ("  (disabled)" if a.disabled else "")
                print(f"{a.address}  used {_human(a.used_bytes)} of {quota}{state}")
        elif action == "remove":
            await accounts.remove_user(args.address)
            print(f"removed user {args.address}")
        elif action in ("disable", "enable"):
            await accounts.set_disabled(args.address, action == "disable")
            print(f"{action}d user {args.address}")
    elif cmd == "alias":
        if action == "add":
            await accounts.add_alias(args.alias, args.targets)
            print(f"added alias {args.alias} -> {', '.join(args.targets)}")
        elif action == "list":
            for source, target in await accounts.list_aliases():
                print(f"{source} -> {target}")
        elif action == "remove":
            await accounts.remove_alias(args.alias, args.target)
            print(f"removed alias {args.alias}")
    elif cmd == "queue":
        if action == "list":
            entries = await store.queue.list()
            for e in entries:
                when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.next_attempt_at))
                pending = ", ".join(r.address for r in e.pending)
                state = "scheduled" if e.release_at > time.time() and e.attempts == 0 else "next attempt"
                print(f"{e.id}  from <{e.sender}>  to {pending}  size {e.size}  attempts {e.attempts}")
                print(f"    {state} {when}")
                if e.last_error:
                    print(f"    last error: {e.last_error}")
            print(f"{len(entries)} message(s) in the queue")
        elif action == "retry":
            count = await store.queue.retry(args.id)
            print(f"{count} message(s) will be retried now")
        elif action == "delete":
            await store.queue.delete(args.id)
            print(f"deleted queue entry {args.id}")
    elif cmd == "status":
        await _status(config, store)
    elif cmd == "compact":
        from tidings.store.compaction import compact

        report = await compact(store.db, store.blobs)
        print(
            f"removed {report.messages} unreferenced message(s), {report.inline_bodies} inline "
            f"body(ies), {report.files} body file(s); freed {_human(report.bytes_freed)}"
        )
    return 0


async def _status(config: Config, store: Store) -> None:
    from tidings.server import STATUS_INTERVAL
    from tidings.status import port_open, read_status

    domains, users, aliases = await store.accounts.count()
    queue_length = await store.queue.count()
    running = read_status(config)
    print(f"data directory: {Path(config.data_dir).resolve()}")
    print(f"database: {store.db.url.split('@')[-1]}")
    if running:
        uptime = int(time.time() - running.started_at)
        print(f"server: running (pid {running.pid}, up {_duration(uptime)})")
        for name, addresses in running.listeners.items():
            for host, port in addresses:
                state = "open" if port_open(host, port) else "NOT ANSWERING"
                print(f"  {name:<12} {host}:{port}  {state}  ({running.sessions.get(name, 0)} session(s))")
        lags = running.loop_lags
        if lags:
            print(
                f"event loop lag: {max(lag['recent_max_ms'] for lag in lags)} ms at most in the last "
                f"{STATUS_INTERVAL:g} s, {max(lag['max_ms'] for lag in lags)} ms since start, "
                f"{running.stalls} stall(s) of 100 ms or more"
            )
        if running.workers:
            print(f"workers: {len(running.workers)}")
        for worker in running.workers:
            _print_worker(worker)
    else:
        print("server: not running")
    print(f"queue: {queue_length} message(s)")
    print(f"accounts: {users} user(s), {aliases} alias(es), {domains} domain(s)")
    used = sum(a.used_bytes for a in await store.accounts.list_users())
    bodies = _human(store.blobs.usage_bytes())
    print(f"storage: {_human(used)} in mailboxes, {bodies} of stored message bodies")


def _print_worker(worker) -> None:
    role = "primary" if worker.primary else "worker"
    if not worker.pid:
        print(f"  worker {worker.index}  {role:<7}  restarting  ({worker.restarts} restart(s))")
        return
    uptime = _duration(int(time.time() - worker.started_at))
    sessions = ", ".join(f"{name} {count}" for name, count in sorted(worker.sessions.items()) if count)
    lag = worker.loop_lag
    lag_text = f"  loop lag {lag['recent_max_ms']} ms" if lag else ""
    print(
        f"  worker {worker.index}  {role:<7}  pid {worker.pid}  up {uptime}  "
        f"{worker.restarts} restart(s)  sessions: {sessions or 'none'}{lag_text}"
    )


def _duration(seconds: int) -> str:
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _human(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def _bind_and_drop_root(config: Config, *, copies: int):
    """Started as root: bind the ports, load the TLS certificate, then give up root
    (tidings.privileges); with several worker processes (`copies` > 1) bind them when not started
    as root too. Returns (one set of sockets per worker, tls), (None, None) when nothing was
    bound."""
    from tidings import privileges
    from tidings.net.tls import ServerTls
    from tidings.server import Server

    run_as = privileges.plan(config)
    if run_as is None and copies == 1:
        return None, None
    if run_as is not None:
        privileges.hand_over(config, run_as)
    else:
        Path(config.data_dir).mkdir(parents=True, exist_ok=True)
    try:
        sockets = Server.bind(config, copies)
    except OSError as exc:
        raise CommandError(str(exc.strerror or exc)) from None
    tls = ServerTls(config)  # as root: a configured key may be readable by root only
    if run_as is not None:
        if config.self_signed_cert_path.parent.exists():  # a self-signed certificate made just now
            privileges.chown_tree(config.self_signed_cert_path.parent, run_as)
        privileges.drop(run_as)
        privileges.check_reachable(config, run_as)
    return sockets, tls


def _serve(config: Config) -> int:
    """One process (`workers = 1`), or a supervisor and its worker processes (tidings.supervisor)."""
    from tidings.server import Server, run_server

    count = config.worker_count
    sockets, tls = _bind_and_drop_root(config, copies=count)
    if count == 1:
        run_server(Server(config, sockets[0] if sockets else None, tls))
        return 0
    from tidings.supervisor import Supervisor

    return Supervisor(config, sockets, tls, count).run()


# The form of every log line (docs/admin.md "Logs"); the fail2ban filter in docs/fail2ban relies on it.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config, args.data)
        if args.command == "serve":
            if args.allow_root:
                config.allow_root = True
            logging.basicConfig(
                level=logging.DEBUG if args.verbose else logging.INFO,
                format=LOG_FORMAT,
            )
            if args.workers is not None:
                config.workers = args.workers
            return _serve(config)
        return asyncio.run(_admin(args, config))
    except (ConfigError, StoreError, BadAddress, WeakPassword, CommandError, ValueError) as exc:
        print(f"tidings: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
