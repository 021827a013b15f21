"""Configuration: one TOML file, every key with a working default.

`tidings serve` with no file runs the embedded default: data under ./tidings-data, SQLite, domain
`localhost`, a self-signed certificate and unprivileged ports when not root. The same `Config` is used
by the admin commands so that `--data DIR` selects one store for both.

Example file (every key optional)::

    data_dir = "/var/lib/tidings"
    hostname = "mail.example.org"
    database = "postgresql://tidings@/tidings"   # default: sqlite under data_dir
    blob_dir = "/srv/shared/blobs"              # default: data_dir/blobs
    default_domain = "example.org"               # created on first start when no domain exists
    user = "tidings"                             # started as root: bind, then run as this user
                                                 # (created with `useradd --system` if missing)
    allow_root = false                           # true: keep running as root (not recommended)
    allow_asynchronous_commit = false            # PostgreSQL: true lets serve start although
                                                 # synchronous_commit or fsync is off
    workers = 0                                  # server processes; 0 = one per CPU core,
                                                 # 1 = a single process without a supervisor

    [tls]                                        # followed on disk: a renewed certificate is used
    cert = "/etc/ssl/mail.pem"                   # from the next connection on, no restart needed;
    key = "/etc/ssl/mail.key"                    # until both load: self-signed under data_dir/tls

    [listen]                                     # "addr:port" lists; [] disables a listener
    smtp = ["0.0.0.0:25"]
    submission = ["0.0.0.0:587"]
    submissions = ["0.0.0.0:465"]
    pop3 = ["0.0.0.0:110"]
    pop3s = ["0.0.0.0:995"]
    imap = ["0.0.0.0:143"]
    imaps = ["0.0.0.0:993"]
    http = ["0.0.0.0:80"]                        # the web client (tidings/web)
    https = ["0.0.0.0:443"]                      # the web client over TLS (the [tls] certificate)

    [limits]
    message_size = 52428800
    recipients = 100
    line_length = 4096          # SMTP command line
    imap_literal = 67108864
    idle_timeout = 300          # seconds for SMTP/POP3; IMAP uses 30 minutes per RFC
    connections = 5000          # open connections per listener (all its addresses together)
    connections_per_ip = 100    # per listener and client address (IPv6: per /64)
    unauthenticated = 500       # per listener: sessions not logged in yet (every MX session)
    login_timeout = 60          # seconds from connect to login (IMAP, POP3, submission), however busy
    mx_session_timeout = "10m"  # the whole of an SMTP session on the MX port that does not log in
    header_fields = 1000        # more header fields than this: 552 5.3.4 at end of DATA (max 5000)
    header_bytes = "256k"       # a larger header section: 552 5.3.4 at end of DATA
    imap_notify_burst = 1000    # IMAP NOTIFY responses in one round before NOTIFICATIONOVERFLOW

    [queue]
    lifetime = "5d"
    delay_warning = "4h"
    retry_base = 60             # seconds; doubles per attempt up to retry_max
    retry_max = 3600
    per_domain_concurrency = 4
    routes = { "b.test" = "127.0.0.3:2525" }     # static next hops, bypass MX lookup
    dns_resolver = ""           # "host:port" to use a specific DNS server
    require_tls = false
    connect_timeout = 30
    poll_interval = 5           # longest sleep between queue scans
    lease = 120                 # seconds a claimed entry stays ours; renewed while delivering

    [auth]
    max_failures_per_ip = 10     # within window
    max_failures_per_account = 10
    failure_window = 300
    allow_plaintext = false      # AUTH/LOGIN before TLS
    scram_plus = false           # offer SCRAM-SHA-256-PLUS (tls-server-end-point) over TLS

    [web]
    session_idle = "8h"          # a web session unused this long is logged out
    session_max_age = "30d"      # and any web session this old, used or not

    [durability]
    flags = "lazy"               # flag changes, expunges, \\Recent, subscriptions commit without
                                 # waiting for fsync (survive kill -9, not a power loss);
                                 # "strict": fsynced before the reply, like new mail always is

    [srs]                        # Sender Rewriting Scheme for forwarded mail (aliases, catch-alls)
    domain = ""                  # envelope domain of rewritten senders; default: default_domain
    secret = ""                  # HMAC key; default: generated once into data_dir/srs-secret.
                                 # Nodes sharing one database must share one secret.
    max_age = "21d"              # bounces to older SRS addresses are refused (550)
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from tidings.mail.authorship import DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_HEADER_FIELDS
from tidings.mail.headers import MAX_HEADER_FIELDS


class ConfigError(ValueError):
    """The configuration file or a command-line override is invalid."""


STANDARD_PORTS = {
    "smtp": 25,
    "submission": 587,
    "submissions": 465,
    "pop3": 110,
    "pop3s": 995,
    "imap": 143,
    "imaps": 993,
    "http": 80,
    "https": 443,
}
UNPRIVILEGED_PORTS = {
    "smtp": 2525,
    "submission": 1587,
    "submissions": 1465,
    "pop3": 1110,
    "pop3s": 1995,
    "imap": 1143,
    "imaps": 1993,
    "http": 8080,
    "https": 8443,
}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_duration(value: str | int | float) -> float:
    """Seconds from `300`, `"90s"`, `"4h"` or `"5d"`."""
    if isinstance(value, (int, float)):
        return float(value)
    match = _DURATION.match(value)
    if not match:
        raise ConfigError(f"not a duration: {value!r} (use e.g. 90s, 15m, 4h, 5d)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_size(value: str | int) -> int:
    """Bytes from `1048576`, `"500M"`, `"2GiB"` or `"10k"`."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(value)
    if not match:
        raise ConfigError(f"not a size: {value!r} (use e.g. 500M, 2G, 10k)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def parse_hostport(value: str, default_port: int | None = None) -> tuple[str, int]:
    """`"127.0.0.1:25"`, `"[::1]:25"` or (with a default port) `"mx.example"`."""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest.lstrip(":")
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    else:
        host, port = value, ""
    if not port:
        if default_port is None:
            raise ConfigError(f"missing port in {value!r}")
        return host, default_port
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"bad port in {value!r}")
    return host, int(port)


@dataclass
class Limits:
    message_size: int = 50 * 1024 * 1024
    recipients: int = 100
    line_length: int = 4096
    imap_literal: int = 64 * 1024 * 1024
    idle_timeout: float = 300.0
    connections: int = 5000
    connections_per_ip: int = 100
    unauthenticated: int = 500
    login_timeout: float = 60.0
    mx_session_timeout: float = 600.0
    header_fields: int = DEFAULT_MAX_HEADER_FIELDS
    header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    # IMAP NOTIFY: responses one round of notifications may carry before NOTIFICATIONOVERFLOW.
    imap_notify_burst: int = 1000


@dataclass
class SrsSettings:
    domain: str = ""  # "" = the default domain
    secret: str = ""  # "" = data_dir/srs-secret, created on first start
    max_age: float = 21 * 86400.0


@dataclass
class QueueSettings:
    lifetime: float = 5 * 86400.0
    delay_warning: float = 4 * 3600.0
    retry_base: float = 60.0
    retry_max: float = 3600.0
    per_domain_concurrency: int = 4
    routes: dict[str, tuple[str, int]] = field(default_factory=dict)
    dns_resolver: tuple[str, int] | None = None
    require_tls: bool = False
    connect_timeout: float = 30.0
    poll_interval: float = 5.0
    # A claimed entry is ours for this long (renewed while delivering); after a crash it becomes due again.
    lease: float = 120.0


@dataclass
class AuthSettings:
    max_failures_per_ip: int = 10
    max_failures_per_account: int = 10
    failure_window: float = 300.0
    allow_plaintext: bool = False
    # Offer SCRAM-SHA-256-PLUS over TLS (tls-server-end-point binding). Off by default: GNU SASL
    # clients (mutt's SMTP) pick -PLUS, insist on tls-exporter over TLS 1.3 and do not fall back.
    scram_plus: bool = False


@dataclass
class WebSettings:
    # The web client's sessions (store/web_sessions.py): logged out after this long unused, and
    # after this long at all.
    session_idle: float = 8 * 3600.0
    session_max_age: float = 30 * 86400.0


@dataclass
class DurabilitySettings:
    # "lazy": writes that only change mail already stored (flags, keywords, \Recent, expunges,
    # subscriptions) are answered once committed, before the commit's fsync (Dovecot's default
    # mail_fsync=optimized does the same); "strict": fsynced before the reply. New mail (SMTP, APPEND,
    # COPY/MOVE) is fsynced before the reply either way.
    flags: str = "lazy"


@dataclass
class Config:
    data_dir: Path = Path("tidings-data")
    hostname: str = ""
    database: str = ""
    blob_dir: Path | None = None
    default_domain: str = "localhost"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    listen: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    queue: QueueSettings = field(default_factory=QueueSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    srs: SrsSettings = field(default_factory=SrsSettings)
    durability: DurabilitySettings = field(default_factory=DurabilitySettings)
    web: WebSettings = field(default_factory=WebSettings)
    node_id: str = ""
    # Started as root, `tidings serve` binds its ports and then runs as this user (tidings.privileges).
    user: str = "tidings"
    allow_root: bool = False
    # PostgreSQL with synchronous_commit or fsync off would say 250 before the data is on disk.
    allow_asynchronous_commit: bool = False
    # Worker processes of `tidings serve` (tidings.supervisor): 0 = os.cpu_count(), 1 = one process
    # and no supervisor, as before there were workers.
    workers: int = 0

    def __post_init__(self) -> None:
        if not self.hostname:
            self.hostname = socket.getfqdn() or "localhost"
        if not self.listen:
            ports = STANDARD_PORTS if _is_root() else UNPRIVILEGED_PORTS
            self.listen = {name: [("0.0.0.0", port)] for name, port in ports.items()}
        if not self.node_id:
            self.node_id = f"{socket.gethostname()}-{os.getpid()}"

    @property
    def database_url(self) -> str:
        return self.database or f"sqlite:///{(self.data_dir / 'tidings.db').resolve()}"

    @property
    def worker_count(self) -> int:
        """How many server processes `tidings serve` runs (`workers`, 0 meaning one per core)."""
        return self.workers or os.cpu_count() or 1

    @property
    def blob_path(self) -> Path:
        return self.blob_dir or self.data_dir / "blobs"

    @property
    def cert_path(self) -> Path:
        return self.tls_cert or self.self_signed_cert_path

    @property
    def srs_secret_path(self) -> Path:
        return self.data_dir / "srs-secret"

    @property
    def key_path(self) -> Path:
        return self.tls_key or self.self_signed_key_path

    @property
    def self_signed_cert_path(self) -> Path:
        """Used while no configured certificate can be loaded; never written over a configured one."""
        return self.data_dir / "tls" / "cert.pem"

    @property
    def self_signed_key_path(self) -> Path:
        return self.data_dir / "tls" / "key.pem"


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def load_config(path: Path | None = None, data_dir: Path | None = None) -> Config:
    """Read `path` (TOML) if given; `data_dir` overrides the file's data_dir."""
    raw: dict = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    config = _from_dict(raw, base=Path(path).parent if path else Path.cwd())
    if data_dir is not None:
        config.data_dir = Path(data_dir)
    return config


def _from_dict(raw: dict, base: Path) -> Config:
    known = {
        "data_dir",
        "hostname",
        "database",
        "blob_dir",
        "default_domain",
        "tls",
        "listen",
        "limits",
        "queue",
        "auth",
        "srs",
        "durability",
        "web",
        "node_id",
        "user",
        "allow_root",
        "allow_asynchronous_commit",
        "workers",
    }
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"unknown configuration keys: {', '.join(sorted(unknown))}")

    def rel(value: str | None) -> Path | None:
        if value is None:
            return None
        p = Path(value)
        return p if p.is_absolute() else base / p

    kwargs: dict = {}
    if "data_dir" in raw:
        kwargs["data_dir"] = rel(raw["data_dir"])
    for key in ("hostname", "database", "default_domain", "node_id", "user"):
        if key in raw:
            kwargs[key] = str(raw[key])
    for key in ("allow_root", "allow_asynchronous_commit"):
        if key in raw:
            if not isinstance(raw[key], bool):
                raise ConfigError(f"{key} must be true or false")
            kwargs[key] = raw[key]
    if "workers" in raw:
        if not isinstance(raw["workers"], int) or isinstance(raw["workers"], bool) or raw["workers"] < 0:
            raise ConfigError("workers must be a whole number: 0 (one per core) or more")
        kwargs["workers"] = raw["workers"]
    if "user" in kwargs and not kwargs["user"]:
        raise ConfigError("user must name a user (set allow_root = true to run as root)")
    if "blob_dir" in raw:
        kwargs["blob_dir"] = rel(raw["blob_dir"])
    tls = raw.get("tls", {})
    kwargs["tls_cert"] = rel(tls.get("cert"))
    kwargs["tls_key"] = rel(tls.get("key"))
    if "listen" in raw:
        listen: dict[str, list[tuple[str, int]]] = {}
        for name in STANDARD_PORTS:
            value = raw["listen"].get(name, [])
            if isinstance(value, str):
                value = [value]
            listen[name] = [parse_hostport(v) for v in value]
        unknown_listeners = set(raw["listen"]) - set(STANDARD_PORTS)
        if unknown_listeners:
            raise ConfigError(f"unknown listeners: {', '.join(sorted(unknown_listeners))}")
        kwargs["listen"] = listen
    limits = Limits()
    for key, value in raw.get("limits", {}).items():
        if key in ("idle_timeout", "login_timeout", "mx_session_timeout"):
            setattr(limits, key, parse_duration(value))
        elif key in ("message_size", "imap_literal"):
            setattr(limits, key, parse_size(value))
        elif key in (
            "recipients",
            "line_length",
            "connections",
            "connections_per_ip",
            "unauthenticated",
            "imap_notify_burst",
        ):
            limits.__setattr__(key, int(value))
        elif key == "header_fields":
            limits.header_fields = int(value)
            # Half the parser's own limit: trace fields added on the way must still fit in what the
            # indexer and the DKIM signer read.
            if not 1 <= limits.header_fields <= MAX_HEADER_FIELDS // 2:
                raise ConfigError(f"limits.header_fields must be between 1 and {MAX_HEADER_FIELDS // 2}")
        elif key == "header_bytes":
            limits.header_bytes = parse_size(value)
        else:
            raise ConfigError(f"unknown key limits.{key}")
    kwargs["limits"] = limits
    queue = QueueSettings()
    for key, value in raw.get("queue", {}).items():
        if key in (
            "lifetime",
            "delay_warning",
            "retry_base",
            "retry_max",
            "connect_timeout",
            "poll_interval",
            "lease",
        ):
            setattr(queue, key, parse_duration(value))
        elif key == "per_domain_concurrency":
            queue.per_domain_concurrency = int(value)
        elif key == "routes":
            queue.routes = {d.lower(): parse_hostport(v, 25) for d, v in value.items()}
        elif key == "dns_resolver":
            queue.dns_resolver = parse_hostport(value, 53) if value else None
        elif key == "require_tls":
            queue.require_tls = bool(value)
        else:
            raise ConfigError(f"unknown key queue.{key}")
    kwargs["queue"] = queue
    auth = AuthSettings()
    for key, value in raw.get("auth", {}).items():
        if key == "failure_window":
            auth.failure_window = parse_duration(value)
        elif key in ("max_failures_per_ip", "max_failures_per_account"):
            setattr(auth, key, int(value))
        elif key in ("allow_plaintext", "scram_plus"):
            setattr(auth, key, bool(value))
        else:
            raise ConfigError(f"unknown key auth.{key}")
    kwargs["auth"] = auth
    srs = SrsSettings()
    for key, value in raw.get("srs", {}).items():
        if key in ("domain", "secret"):
            setattr(srs, key, str(value))
        elif key == "max_age":
            srs.max_age = parse_duration(value)
        else:
            raise ConfigError(f"unknown key srs.{key}")
    kwargs["srs"] = srs
    durability = DurabilitySettings()
    for key, value in raw.get("durability", {}).items():
        if key == "flags":
            if value not in ("lazy", "strict"):
                raise ConfigError('durability.flags must be "lazy" or "strict"')
            durability.flags = value
        else:
            raise ConfigError(f"unknown key durability.{key}")
    kwargs["durability"] = durability
    web = WebSettings()
    for key, value in raw.get("web", {}).items():
        if key in ("session_idle", "session_max_age"):
            setattr(web, key, parse_duration(value))
        else:
            raise ConfigError(f"unknown key web.{key}")
    kwargs["web"] = web
    return Config(**kwargs)
