"""SASL PLAIN (RFC 4616) and LOGIN decoding, shared by SMTP, POP3 and IMAP (through auth.login)."""

from __future__ import annotations

import base64
import binascii


class SaslError(ValueError):
    pass


def b64decode_strict(data: str | bytes) -> bytes:
    if isinstance(data, str):
        data = data.encode("ascii", "replace")
    data = data.strip()
    if data == b"=":
        return b""
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise SaslError("invalid base64") from None


def decode_plain(data: bytes) -> tuple[str, str, str]:
    """Return (authzid, authcid, password) from a decoded PLAIN response."""
    parts = data.split(b"\0")
    if len(parts) != 3:
        raise SaslError("malformed PLAIN response")
    try:
        authzid, authcid, password = (p.decode("utf-8") for p in parts)
    except UnicodeDecodeError:
        raise SaslError("PLAIN response is not UTF-8") from None
    if not authcid or not password:
        raise SaslError("empty user name or password")
    return authzid, authcid, password


def decode_login_response(data: bytes) -> str:
    """One response of the LOGIN mechanism (a user name or a password): UTF-8, not empty."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SaslError("LOGIN response is not UTF-8") from None
    if not text:
        raise SaslError("empty LOGIN response")
    return text
