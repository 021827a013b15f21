"""Login throttling: failed logins are counted per client IP and per account in a sliding window.

Past the limit further attempts are refused without checking the password (so guessing costs the
attacker time, not us CPU), until the window has passed. Shared by SMTP AUTH, POP3 and IMAP.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque


class LoginThrottle:
    def __init__(self, max_per_ip: int = 10, max_per_account: int = 10, window: float = 300.0) -> None:
        self.max_per_ip = max_per_ip
        self.max_per_account = max_per_account
        self.window = window
        self._by_ip: dict[str, deque[float]] = defaultdict(deque)
        self._by_account: dict[str, deque[float]] = defaultdict(deque)

    def _recent(self, bucket: dict[str, deque[float]], key: str, now: float) -> int:
        times = bucket.get(key)
        if not times:
            return 0
        while times and times[0] < now - self.window:
            times.popleft()
        if not times:
            del bucket[key]
            return 0
        return len(times)

    def is_blocked(self, ip: str, account: str) -> bool:
        now = time.monotonic()
        return (
            self._recent(self._by_ip, ip, now) >= self.max_per_ip
            or self._recent(self._by_account, account.lower(), now) >= self.max_per_account
        )

    def record_failure(self, ip: str, account: str) -> None:
        now = time.monotonic()
        self._by_ip[ip].append(now)
        if account:
            self._by_account[account.lower()].append(now)

    def record_success(self, ip: str, account: str) -> None:
        self._by_account.pop(account.lower(), None)
