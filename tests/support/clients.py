"""Client-side helpers shared by the protocol tests."""

from __future__ import annotations

import ssl


def client_tls() -> ssl.SSLContext:
    """The test servers' certificates are self-signed: test clients do not verify them."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
