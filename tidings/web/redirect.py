"""The "http" listener once a real certificate is configured: every request is sent to the same
path on "https" (308, so a POST stays a POST), and nothing is served in plain text.

With only the self-signed certificate, plain HTTP keeps serving the web client: sending people to
a certificate warning would be worse, and a first try on a new box must just work.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from starlette.types import Receive, Scope, Send

_HOST = re.compile(r"^[A-Za-z0-9.-]{1,253}$")


def redirects_to_https(config) -> bool:
    """True when a certificate file is configured and an "https" listener runs."""
    return config.tls_cert is not None and bool(config.listen.get("https"))


class HttpsRedirect:
    """ASGI app: 308 to https://<host>[:port]<path>?<query>."""

    def __init__(self, https_port: Callable[[], int], fallback_host: str) -> None:
        self.https_port = https_port  # asked per request: "https" may start after "http"
        self.fallback_host = fallback_host

    def location(self, scope: Scope) -> str:
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1").rsplit(":", 1)[0] if b"host" in headers else ""
        if host.startswith("[") or not _HOST.match(host or ""):
            host = self.fallback_host
        https_port = self.https_port()
        port = "" if https_port == 443 else f":{https_port}"
        query = scope.get("query_string", b"").decode("latin-1")
        return f"https://{host}{port}{scope.get('path', '/')}" + (f"?{query}" if query else "")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            return
        await send(
            {
                "type": "http.response.start",
                "status": 308,
                "headers": [(b"location", self.location(scope).encode("latin-1")), (b"content-length", b"0")],
            }
        )
        await send({"type": "http.response.body", "body": b""})
