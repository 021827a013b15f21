"""A small HTTP client for the web tests: one cookie jar, no redirects followed, every header
and the status visible (http.client from the standard library, over a real socket)."""

from __future__ import annotations

import http.client
import re
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import urlencode

from tests.support.clients import client_tls


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def csrf(self) -> str:
        """The CSRF token a page carries in its forms."""
        match = re.search(r'name="csrf" value="([^"]+)"', self.text)
        assert match, "no CSRF field on the page"
        return match.group(1)


class WebClient:
    def __init__(self, host: str, port: int, tls: bool = False) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, path: str, form: dict | list | None = None, headers: dict | None = None
    ) -> Reply:
        if self.tls:
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=30, context=client_tls())
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            sent = dict(headers or {})
            body = None
            if form is not None:
                body = urlencode(form, doseq=True).encode()
                sent.setdefault("Content-Type", "application/x-www-form-urlencoded")
            if self.cookies:
                sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            reply = Reply(response.status, response.headers, response.read())
        finally:
            conn.close()
        for value in reply.headers.get_all("Set-Cookie") or []:
            cookie = SimpleCookie()
            cookie.load(value)
            for name, morsel in cookie.items():
                if morsel["max-age"] == "0" or not morsel.value or morsel.value == '""':
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return reply

    def get(self, path: str, **kwargs) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, form: dict | list | None = None, **kwargs) -> Reply:
        return self.request("POST", path, form=form if form is not None else {}, **kwargs)

    def login(self, username: str, password: str) -> Reply:
        page = self.get("/login")
        reply = self.post("/login", {"csrf": page.csrf(), "username": username, "password": password})
        return reply

    def csrf(self) -> str:
        """The session's CSRF token, read from a page like a browser would."""
        return self.get("/mail/folders").csrf()
