"""The one exception POP3 handlers raise to answer `-ERR`: the session loop turns it into the reply.

`code` is an extended response code (RFC 2449 section 8, RFC 3206): "AUTH", "SYS/TEMP", "SYS/PERM",
"IN-USE", "LOGIN-DELAY", or None for a plain `-ERR`.
"""

from __future__ import annotations


class Refused(Exception):
    def __init__(self, text: str, code: str | None = None, *, close: bool = False) -> None:
        super().__init__(text)
        self.text = text
        self.code = code
        # True: the session ends after this reply (e.g. a failed TLS negotiation cannot be resumed).
        self.close = close
