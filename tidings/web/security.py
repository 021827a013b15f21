"""Headers every response of the web client carries, set in one place.

The Content-Security-Policy allows only our own scripts, styles, images and connections: no
inline script, no inline style attribute, no plugin, no framing by other sites. A response that
sets its own policy keeps it (the sandboxed message body, tidings/web/routes/mail_body.py).
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'self'"
)

DEFAULT_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"SAMEORIGIN"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), interest-cohort=()"),
]
NO_STORE = (b"cache-control", b"no-store")


class SecurityHeaders:
    """ASGI middleware: adds DEFAULT_HEADERS (each unless the response set it) and `no-store` for
    everything but static files. (No HSTS yet: with the self-signed certificate a browser could
    then never be told to go on.)

    Also `Server-Timing: app;dur=<ms>`: the time from the request reaching the app to its
    response starting, which the browser's developer tools show and bench/web.py reads to tell
    the server's share of a page's latency from the network's and the client's."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope.get("path", "").startswith("/static/")
        started = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                extra = [h for h in DEFAULT_HEADERS if h[0] not in present]
                if not static and b"cache-control" not in present:
                    extra.append(NO_STORE)
                elapsed = (time.perf_counter() - started) * 1000
                extra.append((b"server-timing", b"app;dur=%.1f" % elapsed))
                message = {**message, "headers": headers + extra}
            await send(message)

        await self.app(scope, receive, send_with_headers)
