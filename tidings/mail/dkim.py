"""DKIM (RFC 6376) keys and signing for mail leaving for remote domains, using dkimpy."""

from __future__ import annotations

import base64

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

SIGNED_HEADERS = [
    b"from",
    b"to",
    b"cc",
    b"subject",
    b"date",
    b"message-id",
    b"reply-to",
    b"in-reply-to",
    b"references",
    b"mime-version",
    b"content-type",
    b"content-transfer-encoding",
]


def make_key(bits: int = 2048) -> tuple[str, str]:
    """A new RSA key: (private key PEM, the TXT record value to publish)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    return private_pem, _record(key.public_key())


def public_record(private_key_pem: str) -> str:
    """The TXT record value (RFC 6376 3.6.1) that publishes the public half of a stored key."""
    key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    return _record(key.public_key())


def dns_record(domain: str, selector: str, private_key_pem: str) -> str:
    """The whole zone-file line to publish, as `tidings domain dkim` prints it."""
    return f'{selector}._domainkey.{domain}. IN TXT "{public_record(private_key_pem)}"'


def _record(public_key) -> str:
    public_der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(public_der).decode()


def sign(message: bytes, domain: str, selector: str, private_key_pem: str) -> bytes:
    """Return the DKIM-Signature header line (with CRLF) to prepend to `message`."""
    signature = dkim.sign(
        message,
        selector.encode(),
        domain.encode(),
        private_key_pem.encode(),
        include_headers=[h for h in SIGNED_HEADERS],
        canonicalize=(b"relaxed", b"relaxed"),
    )
    return signature.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
