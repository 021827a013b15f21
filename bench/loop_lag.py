"""Event-loop lag under the heavy loads of tests/load, at full size: the first SELECT of a mailbox of
100,000 messages (the test suite uses 20,000 to keep its run short).

    .venv/bin/python bench/loop_lag.py                     # 100,000 messages
    .venv/bin/python bench/loop_lag.py 50000               # another size

Runs tests/load/test_event_loop_lag.py::test_first_select_of_a_big_mailbox_... with that size and
prints what the NOOP probe saw (lag = slowest NOOP round trip minus the baseline one).

What it shows on a 2-core machine (December 2026): before the snapshot moved off the loop, 1.3 to
5 s of lag; now 300-450 ms, and that rest is CPython's cyclic garbage collector: building 100,000
`MessageRef`s starts full collections that walk every live tracked object, the snapshot included,
with the GIL held. Getting under 100 ms at this size needs a snapshot the collector does not walk
(exact tuples, or arrays, instead of one object per message) or a freeze of snapshots.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST = "tests/load/test_event_loop_lag.py::test_first_select_of_a_big_mailbox_does_not_stall_other_sessions"


def main() -> int:
    size = sys.argv[1] if len(sys.argv) > 1 else "100000"
    env = {**os.environ, "TIDINGS_BIG_MAILBOX": size, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", TEST],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    for line in result.stdout.splitlines():
        if line.startswith(("NoopRoundTrips", "filled")) or " passed" in line or " failed" in line:
            print(f"{size} messages: {line}")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
