"""When the background indexer runs: in lulls, not against arriving mail, and only a share of the
time under load that never pauses (tidings/store/indexer.py `Pace`)."""

from __future__ import annotations

from tidings.store.indexer import LOAD_SHARE, MAX_DELAY, QUIET_SECONDS, Pace


def test_with_no_mail_arriving_batches_run_back_to_back():
    pace = Pace()
    assert pace.before_batch(100.0) == 0.0
    pace.mail_arrived(100.0)
    assert pace.before_batch(100.0 + QUIET_SECONDS) == 0.0


def test_arriving_mail_stops_the_indexer_between_batches_until_a_lull():
    pace = Pace()
    assert pace.before_batch(10.0) == 0.0  # a backlog, started in a lull
    pace.mail_arrived(10.1)  # a new burst begins
    assert pace.before_batch(10.2) is None
    assert 0 < pace.wait_for_lull(10.2) <= QUIET_SECONDS
    pace.mail_arrived(10.5)
    assert pace.before_batch(10.9) is None
    assert pace.before_batch(10.5 + QUIET_SECONDS) == 0.0  # the burst is over


def test_under_unbroken_load_it_runs_after_max_delay_for_a_share_of_the_time():
    pace = Pace()
    pace.mail_arrived(0.0)
    assert pace.before_batch(0.0) is None
    assert pace.wait_for_lull(0.0) <= QUIET_SECONDS
    now = 0.0
    while now < MAX_DELAY:  # mail keeps arriving faster than QUIET_SECONDS
        now += QUIET_SECONDS / 2
        pace.mail_arrived(now)
        if now < MAX_DELAY:
            assert pace.before_batch(now) is None
    pace.last_batch = 0.3
    pause = pace.before_batch(now)
    assert pause is not None
    assert abs(pace.last_batch / (pace.last_batch + pause) - LOAD_SHARE) < 1e-9
    # Still no lull: the next batches keep that share; after a lull the count starts again.
    pace.mail_arrived(now + 1)
    assert pace.before_batch(now + 1) == pause
    assert pace.before_batch(now + 1 + QUIET_SECONDS) == 0.0
    pace.mail_arrived(now + 2)
    assert pace.before_batch(now + 2) is None
