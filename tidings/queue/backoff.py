"""Retry timing: exponential backoff with a little jitter, bounded by the queue lifetime.

RFC 5321 section 4.5.4.1 asks for retries spaced at least 30 minutes apart and a give-up time of at
least 4-5 days; the spacing here is configurable (`retry_base` doubling per attempt up to
`retry_max`), the give-up time is `lifetime` counted from when the message became due (its release
time, which equals its arrival unless it was scheduled).
"""

from __future__ import annotations

import random

from tidings.config import QueueSettings

JITTER = 0.1  # +-10 %: spreads retries of many messages deferred by one outage


def retry_delay(
    attempts: int, base: float, maximum: float, jitter: float = JITTER, rng: random.Random | None = None
) -> float:
    """Seconds to wait after attempt number `attempts` (0 for the first attempt) failed temporarily."""
    delay = min(base * 2 ** min(attempts, 32), maximum)
    spread = (rng or random).uniform(-jitter, jitter)
    return max(0.0, delay * (1 + spread))


def expires_at(release_at: float, settings: QueueSettings) -> float:
    """The moment deferred recipients turn into failures."""
    return release_at + settings.lifetime


def next_attempt_at(
    now: float, attempts: int, release_at: float, settings: QueueSettings, rng: random.Random | None = None
) -> float:
    """When to try again; never later than expiry, so the last attempt happens right at the deadline."""
    planned = now + retry_delay(attempts, settings.retry_base, settings.retry_max, rng=rng)
    return min(planned, max(now, expires_at(release_at, settings)))


def is_expired(now: float, release_at: float, settings: QueueSettings) -> bool:
    return now >= expires_at(release_at, settings)


def delay_warning_due(now: float, release_at: float, already_warned: bool, settings: QueueSettings) -> bool:
    return not already_warned and now >= release_at + settings.delay_warning
