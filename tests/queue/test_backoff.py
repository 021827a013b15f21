"""Retry timing: exponential backoff with jitter, capped, never past the queue lifetime."""

import random

from tidings.config import QueueSettings
from tidings.queue import backoff


def test_delay_doubles_per_attempt_without_jitter():
    assert [backoff.retry_delay(n, 60, 10_000, jitter=0) for n in range(4)] == [60, 120, 240, 480]


def test_delay_is_capped_at_retry_max():
    assert backoff.retry_delay(20, 60, 3600, jitter=0) == 3600
    assert backoff.retry_delay(10_000, 60, 3600, jitter=0) == 3600  # no overflow for absurd counts


def test_jitter_stays_within_ten_percent_and_varies():
    rng = random.Random(7)
    delays = [backoff.retry_delay(2, 60, 3600, rng=rng) for _ in range(200)]
    assert all(216 <= d <= 264 for d in delays)
    assert len(set(delays)) > 100


def test_next_attempt_never_later_than_expiry():
    settings = QueueSettings(lifetime=100, retry_base=60, retry_max=3600)
    # Released at 0, now 90: the backoff would say 90+240 but the last try belongs at the deadline.
    assert backoff.next_attempt_at(90, 2, 0, settings) == 100
    assert backoff.next_attempt_at(10, 0, 0, settings) <= 10 + 66


def test_lifetime_counts_from_release_so_scheduled_mail_gets_full_lifetime():
    settings = QueueSettings(lifetime=5 * 86400)
    release = 1_000_000.0
    assert not backoff.is_expired(release + 4 * 86400, release, settings)
    assert backoff.is_expired(release + 5 * 86400, release, settings)


def test_delay_warning_due_once_after_threshold():
    settings = QueueSettings(delay_warning=3600)
    assert not backoff.delay_warning_due(3599, 0, False, settings)
    assert backoff.delay_warning_due(3600, 0, False, settings)
    assert not backoff.delay_warning_due(7200, 0, True, settings)
