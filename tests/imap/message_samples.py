"""Real messages and a tiny in-memory mailbox for the FETCH/SEARCH/SORT/THREAD engine tests."""

from __future__ import annotations

import asyncio
import calendar
from collections.abc import Sequence

from tidings.imap.commands import Command
from tidings.imap.message_data import MemoryMessageLoader, MessageContext
from tidings.imap.parser import ImapParser
from tidings.store.mailboxes import MessageRef


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


# RFC 3501 section 8's example message (its ENVELOPE is spelled out in the RFC).
PLAIN = crlf(
    "Date: Mon, 7 Feb 1994 21:52:25 -0800\n"
    "From: Fred Foobar <foobar@Blurdybloop.example>\n"
    "Subject: afternoon meeting\n"
    "To: mooch@owatagu.siam.edu.example\n"
    "Message-Id: <B27397-0100000@Blurdybloop.example>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\n"
    "\n"
    "Hello Joe, do you think we can meet at 3:30 tomorrow?\n"
)

ATTACHMENT_BYTES = b"\x00\x01\x02\x03\x00\xff"  # base64 "AAECAwD/"

MIXED = crlf(
    'From: "Doe, Jane" <jane@example.org>\n'
    "To: Bob Bobson <bob@example.net>, carol@example.net\n"
    "Cc: Dave <dave@example.com>\n"
    "Subject: Re: [team] report\n"
    "Date: Tue, 02 Jan 2024 23:30:00 -0500\n"
    "Message-ID: <mixed@example.org>\n"
    "In-Reply-To: <B27397-0100000@Blurdybloop.example>\n"
    "References: <B27397-0100000@Blurdybloop.example>\n"
    "X-Priority: 3\n"
    "MIME-Version: 1.0\n"
    'Content-Type: multipart/mixed; boundary="b1"\n'
    "\n"
    "preamble\n"
    "--b1\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: quoted-printable\n"
    "\n"
    "The report is attached. Caf=C3=A9 at noon?\n"
    "--b1\n"
    'Content-Type: application/octet-stream; name="data.bin"\n'
    'Content-Disposition: attachment; filename="data.bin"\n'
    "Content-Transfer-Encoding: base64\n"
    "\n"
    "AAECAwD/\n"
    "--b1\n"
    "Content-Type: text/plain\n"
    "Content-Transfer-Encoding: x-uuencode\n"
    "\n"
    "begin 644 x\n"
    "--b1--\n"
)

NESTED = crlf(
    "From: Forwarder <fwd@example.com>\n"
    "To: Alice <alice@example.com>\n"
    "Subject: Fwd: plans\n"
    "Date: Wed, 03 Jan 2024 10:00:00 +0000\n"
    "Message-ID: <nested@example.com>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=outer\n"
    "\n"
    "--outer\n"
    "Content-Type: text/plain\n"
    "\n"
    "See below.\n"
    "--outer\n"
    "Content-Type: message/rfc822\n"
    "\n"
    "From: Zed <zed@example.net>\n"
    "Subject: plans\n"
    "Date: Tue, 02 Jan 2024 09:00:00 +0000\n"
    "Content-Type: multipart/alternative; boundary=inner\n"
    "\n"
    "--inner\n"
    "Content-Type: text/plain\n"
    "\n"
    "lunch at the harbour\n"
    "--inner\n"
    "Content-Type: text/html\n"
    "\n"
    "<p>lunch at the <b>harbour</b></p>\n"
    "--inner--\n"
    "--outer--\n"
)

# 8-bit ISO-8859-1 in the header, not encoded (broken, but common).
LATIN1 = (
    b"From: J\xf6rg <joerg@example.de>\r\n"
    b"To: Bob Bobson <bob@example.net>\r\n"
    b"Subject: Gr\xfc\xdfe\r\n"
    b"Date: Thu, 04 Jan 2024 08:00:00 +0100\r\n"
    b"Message-ID: <latin1@example.de>\r\n"
    b"Content-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Viele Gr\xfc\xdfe aus K\xf6ln\r\n"
)

# RFC 2047 encoded words: "Grüße aus Köln" from "Jörg Müller".
ENCODED = crlf(
    "From: =?ISO-8859-1?Q?J=F6rg_M=FCller?= <mueller@example.de>\n"
    "To: carol@example.net\n"
    "Subject: =?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?=\n"
    "Message-ID: <encoded@example.de>\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "\n"
    "Bis bald.\n"
)

SAMPLES = {"plain": PLAIN, "mixed": MIXED, "nested": NESTED, "latin1": LATIN1, "encoded": ENCODED}


def timestamp(text: str) -> float:
    """'2024-01-05 12:00:00' (UTC) as epoch seconds."""
    date, clock = text.split()
    year, month, day = map(int, date.split("-"))
    hour, minute, second = map(int, clock.split(":"))
    return float(calendar.timegm((year, month, day, hour, minute, second)))


def ref(
    uid: int,
    raw: bytes,
    *,
    flags: Sequence[str] = (),
    modseq: int = 1,
    internal: str = "2024-01-05 12:00:00",
    saved: str | None = None,
    message_id: int | None = None,
    blob: str | None = None,
) -> MessageRef:
    return MessageRef(
        uid=uid,
        message_id=message_id if message_id is not None else 100 + uid,
        blob_hash=blob or f"blob-{uid}",
        size=len(raw),
        flags=frozenset(flags),
        modseq=modseq,
        internal_date=timestamp(internal),
        save_date=timestamp(saved or internal),
    )


class Mailbox:
    """Messages in UID order with their bytes: contexts for the engines plus a loader."""

    def __init__(self, refs_and_bytes: Sequence[tuple[MessageRef, bytes]]) -> None:
        self.refs = [r for r, _ in refs_and_bytes]
        self.contexts = [MessageContext(seq, r) for seq, r in enumerate(self.refs, start=1)]
        self.loader = MemoryMessageLoader({r.blob_hash: raw for r, raw in refs_and_bytes})


def parse(line: str) -> Command:
    """A command as the real parser produces it."""
    events = ImapParser().feed(line.encode("utf-8") + b"\r\n")
    assert len(events) == 1 and isinstance(events[0], Command), events
    return events[0]


def run(coroutine):
    return asyncio.run(coroutine)
