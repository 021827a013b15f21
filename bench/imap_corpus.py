"""Deterministic test messages for the IMAP benchmarks: the same bytes for every server.

Messages are 2-20 KB, RFC 5322 with CRLF line ends; about a third are multipart (text + HTML
alternative, some with a base64 attachment) so that BODYSTRUCTURE and section fetches have work to
do. A fixed seed makes two runs (and the two servers in one run) hold identical mailboxes.
"""

from __future__ import annotations

import base64
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

WORDS = [
    "meeting",
    "project",
    "budget",
    "report",
    "quarterly",
    "review",
    "invoice",
    "travel",
    "schedule",
    "agenda",
    "release",
    "deploy",
    "server",
    "backup",
    "storage",
    "network",
    "customer",
    "contract",
    "proposal",
    "design",
    "feedback",
    "lunch",
    "holiday",
    "team",
    "update",
    "status",
    "migration",
    "database",
    "security",
    "patch",
    "weekend",
    "conference",
    "ticket",
    "support",
    "launch",
    "roadmap",
    "hiring",
    "interview",
    "office",
    "printer",
    "coffee",
    "garden",
    "bicycle",
    "concert",
    "library",
    "harbour",
    "winter",
]
PEOPLE = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"]
DOMAINS = ["example.org", "example.net", "mail.example.com"]
# Words the SEARCH mix looks for in bodies; each is put into a few messages only, so that a
# search has a selective answer (the common words above occur in nearly every body).
RARE_WORDS = ["zeppelin", "marzipan", "quokka"]


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(6, 16))]
    return " ".join(words).capitalize() + "."


def _paragraphs(rng: random.Random, size: int) -> str:
    lines: list[str] = []
    total = 0
    while total < size:
        # Wrap at ~72 columns like a mail client would.
        line = _sentence(rng)
        while len(line) > 72:
            cut = line.rfind(" ", 0, 72)
            lines.append(line[:cut])
            total += cut + 2
            line = line[cut + 1 :]
        lines.append(line)
        total += len(line) + 2
        if rng.random() < 0.25:
            lines.append("")
    return "\r\n".join(lines)


def make_message(rng: random.Random, index: int, recipient: str) -> bytes:
    """One message of roughly 2-20 KB addressed to `recipient`."""
    sender = f"{rng.choice(PEOPLE)}@{rng.choice(DOMAINS)}"
    date = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=rng.randint(0, 600_000))
    subject = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6))).capitalize()
    target = rng.randint(2_000, 20_000)
    rare = [word for word in RARE_WORDS if rng.random() < 0.08]
    extra = "".join(f"\r\nPS: remember the {word} for next week.\r\n" for word in rare)
    headers = [
        f"Return-Path: <{sender}>",
        f"Received: from mx.{sender.split('@')[1]} by bench.test; {format_datetime(date)}",
        f"From: {sender.split('@')[0].capitalize()} <{sender}>",
        f"To: <{recipient}>",
        f"Subject: {subject}",
        f"Date: {format_datetime(date)}",
        f"Message-ID: <bench.{index}.{rng.randrange(1 << 32):08x}@{sender.split('@')[1]}>",
        "MIME-Version: 1.0",
    ]
    kind = rng.random()
    if kind < 0.65:
        headers.append("Content-Type: text/plain; charset=utf-8")
        headers.append("Content-Transfer-Encoding: 8bit")
        body = _paragraphs(rng, target - 400) + extra
        return ("\r\n".join(headers) + "\r\n\r\n" + body + "\r\n").encode()
    boundary = f"=_bench_{index}_{rng.randrange(1 << 32):08x}"
    text = _paragraphs(rng, target // 3) + extra
    html = "<html><body><p>" + text.replace("\r\n\r\n", "</p>\r\n<p>") + "</p></body></html>"
    alternative = (
        f'Content-Type: multipart/alternative; boundary="{boundary}a"\r\n\r\n'
        f"--{boundary}a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"
        f"--{boundary}a\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n"
        f"--{boundary}a--\r\n"
    )
    if kind < 0.85:
        headers.append(f'Content-Type: multipart/alternative; boundary="{boundary}a"')
        return ("\r\n".join(headers) + "\r\n\r\n" + alternative.split("\r\n\r\n", 1)[1]).encode()
    attachment = bytes(rng.randrange(256) for _ in range(max(500, target // 4)))
    encoded = base64.encodebytes(attachment).decode().replace("\n", "\r\n")
    headers.append(f'Content-Type: multipart/mixed; boundary="{boundary}m"')
    body = (
        f"--{boundary}m\r\n{alternative}"
        f'--{boundary}m\r\nContent-Type: application/octet-stream; name="data-{index}.bin"\r\n'
        f'Content-Disposition: attachment; filename="data-{index}.bin"\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n{encoded}"
        f"--{boundary}m--\r\n"
    )
    return ("\r\n".join(headers) + "\r\n\r\n" + body).encode()


def mailbox(user: str, count: int, seed: int = 1) -> list[bytes]:
    """`count` messages for `user` (an address), the same for the same arguments."""
    rng = random.Random(f"{seed}:{user}")
    return [make_message(rng, i, user) for i in range(count)]
