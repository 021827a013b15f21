"""TLS for the listeners: the configured certificate (followed on disk), or a self-signed one.

Policy (the server side, every listener and STARTTLS alike): TLS 1.2 and 1.3 only; in TLS 1.2 only
ECDHE key exchange with AEAD ciphers (AES-GCM, ChaCha20-Poly1305), so every session has forward
secrecy and no CBC suite is left for LUCKY13-style padding oracles (TLS 1.3 suites are all of that
kind already); no compression, no renegotiation.

`ServerTls.context` is the one context every listener and STARTTLS is given. Its SNI callback, which
OpenSSL runs for every handshake, at most once a second looks at the certificate files and points
the handshake at the newest loaded context: a renewed certificate (certbot writing new files), or a
configured one appearing where only the self-signed one was usable, is used from the next
connection on, with no restart. Connections already open keep the certificate they started with.

The self-signed certificate (under data_dir/tls, made when no configured one can be loaded) is a
proper leaf for `hostname` (and localhost): CA:FALSE, digitalSignature, serverAuth, one year, a
random serial; it is made again when it is about to expire or the hostname changed. It never
overwrites configured files.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import ssl
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger(__name__)

# TLS 1.2 suites: ECDHE only (forward secrecy), AEAD only (no CBC: LUCKY13, no RC4/3DES/SHA-1 MACs).
TLS12_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    )
)
SELF_SIGNED_VALIDITY = datetime.timedelta(days=365)
RENEW_BEFORE = datetime.timedelta(days=30)
CHECK_INTERVAL = 1.0  # seconds between looks at the certificate files


# Each server context's tls-server-end-point channel binding (RFC 5929 section 4), for SCRAM-PLUS.
_END_POINTS: weakref.WeakKeyDictionary[ssl.SSLContext, bytes] = weakref.WeakKeyDictionary()


def end_point_binding(cert_der: bytes) -> bytes:
    """RFC 5929 section 4.1: the certificate's hash, with its signature's hash function (SHA-256
    in place of MD5 and SHA-1, and when the function is not a plain hash, e.g. Ed25519)."""
    cert = x509.load_der_x509_certificate(cert_der)
    algorithm = cert.signature_hash_algorithm
    if algorithm is None or algorithm.name in ("md5", "sha1"):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(cert_der)
    return digest.finalize()


def server_end_point(ssl_object) -> bytes | None:
    """The tls-server-end-point channel binding of one server-side TLS connection (None when the
    context is not one of ours). Python's ssl module has no TLS exporter, so tls-exporter (RFC 9266)
    cannot be offered; this binding ties a SCRAM login to our certificate instead."""
    if ssl_object is None:
        return None
    return _END_POINTS.get(ssl_object.context)


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    """A server context with our policy (see the module docstring) and this certificate."""
    cert_pem = Path(cert_path).read_bytes()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.load_cert_chain(str(cert_path), str(key_path))
    # The first certificate in the file is the one served (the rest is its chain).
    _END_POINTS[context] = end_point_binding(
        x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    )
    return context


def client_context(verify: bool = False) -> ssl.SSLContext:
    """For outbound SMTP: opportunistic TLS does not verify (RFC 7435); policy may require it."""
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


# ---------------------------------------------------------------------- the self-signed certificate


def _subject_alt_name(hostname: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(hostname))
    except ValueError:
        return x509.DNSName(hostname.encode("idna").decode("ascii"))


def _alt_names(hostname: str) -> list[x509.GeneralName]:
    """The hostname, then the names local clients (scripts, a webmail on the same machine) use:
    each once."""
    names: list[x509.GeneralName] = []
    for name in (hostname, "localhost", "127.0.0.1", "::1"):
        general = _subject_alt_name(name)
        if general not in names:
            names.append(general)
    return names


def make_self_signed(cert_path: Path, key_path: Path, hostname: str) -> None:
    """Write a new key and a self-signed leaf certificate for `hostname` (see the module docstring)."""
    hostname = (hostname or "localhost").lower().rstrip(".")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname[:64])])
    now = datetime.datetime.now(datetime.UTC)
    public_key = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + SELF_SIGNED_VALIDITY)
        .add_extension(x509.SubjectAlternativeName(_alt_names(hostname)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,  # an EC key only signs (ECDHE): no keyEncipherment
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_atomically(key_path, key_pem, 0o600)
    _write_atomically(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def self_signed_is_current(cert_path: Path, key_path: Path, hostname: str) -> bool:
    """False when the self-signed certificate must be made (again): missing, unreadable, about to
    expire, made for another hostname, or an old one that was not a proper leaf."""
    if not key_path.exists():
        return False
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        alt_names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    hostname = (hostname or "localhost").lower().rstrip(".")
    if basic.ca or _subject_alt_name(hostname) not in alt_names:
        return False
    return cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC) > RENEW_BEFORE


def ensure_self_signed(cert_path: Path, key_path: Path, hostname: str) -> bool:
    """Make the self-signed certificate unless a current one is there. True if made."""
    if self_signed_is_current(cert_path, key_path, hostname):
        return False
    make_self_signed(cert_path, key_path, hostname)
    return True


# ---------------------------------------------------------------------- the server's contexts


@dataclass(frozen=True)
class _Loaded:
    context: ssl.SSLContext
    cert_path: Path
    files: tuple  # identity of the files loaded (inode, mtime, size of each)


def _identity(*paths: Path) -> tuple:
    out = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            out.append(None)
        else:
            out.append((st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(out)


class ServerTls:
    """The listeners' TLS context and the certificate behind it (see the module docstring)."""

    def __init__(self, config) -> None:
        self.hostname = config.hostname
        self.configured: tuple[Path, Path] | None = (
            (Path(config.tls_cert), Path(config.tls_key)) if config.tls_cert and config.tls_key else None
        )
        self.self_signed = (config.self_signed_cert_path, config.self_signed_key_path)
        self._failed: tuple | None = None  # identity of configured files that did not load
        self._next_check = 0.0
        self.current = self._load()
        self.context = self.current.context
        self.context.sni_callback = self._pick_context

    @property
    def cert_path(self) -> Path:
        """The certificate file new connections are served."""
        return self.current.cert_path

    def _load(self) -> _Loaded:
        if self.configured is not None:
            loaded = self._load_configured()
            if loaded is not None:
                return loaded
        cert, key = self.self_signed
        if ensure_self_signed(cert, key, self.hostname):
            log.info("made a self-signed certificate for %s at %s", self.hostname, cert)
        return _Loaded(server_context(cert, key), cert, _identity(cert, key))

    def _load_configured(self) -> _Loaded | None:
        cert, key = self.configured
        files = _identity(cert, key)
        if None in files or files == self._failed:
            return None
        try:
            context = server_context(cert, key)
        except (OSError, ssl.SSLError) as exc:
            # E.g. certbot has written the new certificate but not yet its key: try again when
            # the files change next, keeping what we have.
            self._failed = files
            log.warning("cannot use the certificate %s with key %s: %s", cert, key, exc)
            return None
        if _identity(cert, key) != files:
            return None  # changed while we read them: next time
        self._failed = None
        return _Loaded(context, cert, files)

    def refresh(self) -> bool:
        """Look at the files now; True if new connections get a new certificate."""
        current = self.current
        if self.configured is not None:
            configured_files = _identity(*self.configured)
            if current.cert_path != self.configured[0] or configured_files != current.files:
                loaded = self._load_configured()
                if loaded is not None:
                    self.current = loaded
                    log.info("TLS: now serving the certificate %s", loaded.cert_path)
                    return True
        if current.cert_path == self.self_signed[0]:
            cert, key = self.self_signed
            if _identity(cert, key) != current.files or not self_signed_is_current(cert, key, self.hostname):
                ensure_self_signed(cert, key, self.hostname)
                self.current = _Loaded(server_context(cert, key), cert, _identity(cert, key))
                log.info("TLS: reloaded the self-signed certificate %s", cert)
                return True
        return False

    def _pick_context(self, ssl_object, server_name, context) -> None:
        """OpenSSL's servername callback, run early in every handshake (with or without SNI)."""
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + CHECK_INTERVAL
            try:
                self.refresh()
            except Exception:
                log.exception("TLS: checking the certificate files failed; keeping the current one")
        if self.current.context is not context:
            ssl_object.context = self.current.context
