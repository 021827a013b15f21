"""Latency probe: one SMTP client of its own that sends a message every INTERVAL seconds while
smtp-source loads the server, and times the end of DATA (the final "<CRLF>.<CRLF>") to the 250.

    python bench/smtp_probe.py PORT RECIPIENT SIZE [INTERVAL]

Runs in its own process so that the benchmark's polling never delays it. It keeps one connection
(reconnecting if the server closes it) and sends the next message INTERVAL after the previous one
started, or at once when that one took longer (so a slow server is probed less often: this records
what a sender sees, not a fixed arrival rate). On SIGTERM it finishes the message in flight, says
QUIT and prints one JSON line: {"latencies": [seconds...], "errors": n, "accepted": n}.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import sys
import time

HOST = "127.0.0.1"


class Probe:
    def __init__(self, port: int, recipient: str, size: int) -> None:
        self.port = port
        self.recipient = recipient
        self.body = self._body(size)
        self.sock: socket.socket | None = None
        self.reader = None

    @staticmethod
    def _body(size: int) -> bytes:
        head = b"From: <probe@example.org>\r\nSubject: latency probe\r\n\r\n"
        line = b"probe line of text to fill the message to the size smtp-source sends\r\n"
        return head + line * max(1, (size - len(head)) // len(line))

    def reply(self) -> tuple[int, str]:
        """The code and text of one (possibly multi-line) reply."""
        while True:
            line = self.reader.readline()
            if not line:
                raise ConnectionError("server closed the connection")
            if line[3:4] != b"-":
                return int(line[:3]), line.decode(errors="replace").strip()

    def command(self, text: bytes, expect: int) -> None:
        self.sock.sendall(text)
        code, line = self.reply()
        if code != expect:
            raise ConnectionError(f"{text[:20]!r}: {line}")

    def connect(self) -> None:
        self.sock = socket.create_connection((HOST, self.port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")
        if self.reply()[0] != 220:
            raise ConnectionError("no greeting")
        self.command(b"EHLO probe.example.org\r\n", 250)

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.sendall(b"QUIT\r\n")
            self.sock.close()
            self.sock = None

    def send_one(self) -> float:
        """One transaction; returns the seconds from the end of DATA to the 250."""
        if self.sock is None:
            self.connect()
        self.command(b"MAIL FROM:<probe@example.org>\r\n", 250)
        self.command(f"RCPT TO:<{self.recipient}>\r\n".encode(), 250)
        self.command(b"DATA\r\n", 354)
        self.sock.sendall(self.body)
        started = time.perf_counter()
        self.sock.sendall(b".\r\n")
        code, line = self.reply()
        elapsed = time.perf_counter() - started
        if code != 250:
            raise ConnectionError(f"end of DATA: {line}")
        return elapsed


def main() -> int:
    port, recipient, size = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    interval = float(sys.argv[4]) if len(sys.argv) > 4 else 0.05
    stopping = False

    def stop(signum, frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    probe = Probe(port, recipient, size)
    latencies: list[float] = []
    errors = 0
    while not stopping:
        started = time.monotonic()
        try:
            latencies.append(probe.send_one())
        except (OSError, ValueError) as exc:
            errors += 1
            print(f"probe: {exc}", file=sys.stderr)
            probe.close()
            time.sleep(0.5)
        pause = interval - (time.monotonic() - started)
        if pause > 0 and not stopping:
            time.sleep(pause)
    probe.close()
    print(json.dumps({"latencies": latencies, "errors": errors, "accepted": len(latencies)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
