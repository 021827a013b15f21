"""Fuzz harness for the IMAP parser (not collected by pytest).

Run ``python tests/imap/fuzz_parser.py [seconds]``.  With atheris installed it runs
coverage-guided fuzzing (``python tests/imap/fuzz_parser.py -atheris_runs=100000``); without it, a
random mutation loop over sample command streams for the given number of seconds (default 20).

Checked on every input: ``feed()`` never raises, every event has a known type, and feeding the
input in random pieces gives the same events as feeding it whole.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tidings.imap import commands  # noqa: E402
from tidings.imap.parser import ContinuationNeeded, ImapParser, ParseError, RawLine  # noqa: E402

EVENT_TYPES = (commands.Command, ContinuationNeeded, ParseError, RawLine)
SEEDS = [
    b"a LOGIN {3}\r\nbob {3+}\r\npw1\r\n",
    b'c APPEND INBOX (\\Seen) " 7-Feb-1994 21:52:25 -0800" {5+}\r\nhello ~{2}\r\n\x00\x01\r\n',
    b"d UID FETCH 1:*,$ (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (Subject)]<0.10> BINARY[1]) "
    b"(CHANGEDSINCE 5 VANISHED)\r\n",
    b'e SEARCH RETURN (MIN SAVE) CHARSET UTF-8 OR (FROM "x" SINCE 1-Jan-2020) NOT UID 1:5 '
    b'MODSEQ "/flags/\\\\seen" all 5\r\n',
    b"i SELECT INBOX (QRESYNC (1 2 1:3 (1 2)))\r\nj STORE 1 (UNCHANGEDSINCE 3) +FLAGS.SILENT (\\Deleted)\r\n",
    b'k LIST (SUBSCRIBED RECURSIVEMATCH) "" ("a" b) RETURN (STATUS (MESSAGES) CHILDREN)\r\n',
    b"l UID SORT RETURN (COUNT) (REVERSE DATE) UTF-8 ALL\r\n",
    b'm ID ("name" NIL)\r\nn SETQUOTA x (STORAGE 1)\r\n',
    b"o IDLE\r\nDONE\r\np AUTHENTICATE PLAIN =\r\nq STARTTLS\r\n",
]


def session_feed(parser: ImapParser, data: bytes) -> list:
    """Feed like a session that ends IDLE, AUTHENTICATE and STARTTLS at once."""
    events = parser.feed(data)
    while parser.paused and not parser.closed:
        parser.resume()
        events.extend(parser.feed(b""))
    return events


def check(data: bytes, cuts: list[int], max_line: int, max_literal: int) -> None:
    whole = session_feed(ImapParser(max_line=max_line, max_literal=max_literal), data)
    assert all(isinstance(event, EVENT_TYPES) for event in whole), whole
    parser = ImapParser(max_line=max_line, max_literal=max_literal)
    pieces: list = []
    start = 0
    for cut in sorted(set(cuts)) + [len(data)]:
        pieces.extend(session_feed(parser, data[start:cut]))
        start = cut
    assert pieces == whole, (data, cuts)


def mutate(rng: random.Random) -> bytes:
    data = bytearray(b"".join(rng.choice(SEEDS) for _ in range(rng.randint(1, 3))))
    for _ in range(rng.randint(0, 8)):
        position = rng.randrange(len(data) + 1)
        choice = rng.random()
        if choice < 0.3 and data:
            del data[position : position + rng.randint(1, 5)]
        elif choice < 0.6:
            data[position:position] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        else:
            data[position:position] = rng.choice(
                [b"{", b"}", b"(", b")", b"\r\n", b" ", b'"', b"+", b"~{3}", b"["]
            )
    return bytes(data)


def random_loop(seconds: float) -> int:
    rng = random.Random(0)
    deadline = time.monotonic() + seconds
    runs = 0
    while time.monotonic() < deadline:
        data = mutate(rng)
        cuts = [rng.randrange(len(data) + 1) for _ in range(rng.randint(0, 6))]
        check(data, cuts, rng.choice([8, 40, 200, 65536]), rng.choice([0, 5, 100]))
        runs += 1
    return runs


def main() -> None:
    try:
        import atheris  # type: ignore[import-not-found]
    except ImportError:
        seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
        print(f"atheris not installed; random mutation for {seconds:.0f}s")
        print(f"{random_loop(seconds)} inputs checked, no failures")
        return

    def one_input(data: bytes) -> None:
        provider = atheris.FuzzedDataProvider(data)
        max_line = provider.ConsumeIntInRange(8, 300)
        cuts = [provider.ConsumeIntInRange(0, 512) for _ in range(provider.ConsumeIntInRange(0, 4))]
        check(provider.ConsumeBytes(4096), cuts, max_line, provider.ConsumeIntInRange(0, 100))

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
