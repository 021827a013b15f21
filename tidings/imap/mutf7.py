"""Modified UTF-7 for IMAP mailbox names (RFC 3501 section 5.1.3; RFC 9051 section 5.1.3).

Printable US-ASCII (0x20-0x7E) stands for itself, except ``&`` which is written ``&-``.  Any
other run of characters is UTF-16BE, base64-encoded with ``,`` instead of ``/`` and no padding,
between ``&`` and ``-``.

Decoding is strict, as the RFC asks ("must not"): printable ASCII inside a shift, a shift that
encodes nothing, two adjacent shifts, non-zero padding bits or bad UTF-16 are all rejected, so
every name has exactly one encoding and the round trip is exact.  Whether a session uses this
encoding at all depends on UTF8=ACCEPT (RFC 6855); that choice is the session's.
"""

from __future__ import annotations

import base64
import binascii


class ModifiedUtf7Error(ValueError):
    """The text is not valid modified UTF-7."""


def _is_direct(char: str) -> bool:
    return 0x20 <= ord(char) <= 0x7E


def encode(name: str) -> str:
    """Encode a Unicode mailbox name as modified UTF-7 (always pure ASCII)."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if _is_direct(char):
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def decode(name: str | bytes) -> str:
    """Decode modified UTF-7; raises :class:`ModifiedUtf7Error` for anything not canonical."""
    if isinstance(name, bytes):
        try:
            name = name.decode("ascii")
        except UnicodeDecodeError as exc:
            raise ModifiedUtf7Error("modified UTF-7 is pure ASCII") from exc
    out: list[str] = []
    index = 0
    previous_was_shift = False
    while index < len(name):
        char = name[index]
        if not _is_direct(char):
            raise ModifiedUtf7Error(f"character {char!r} must be encoded")
        if char != "&":
            out.append(char)
            index += 1
            previous_was_shift = False
            continue
        end = name.find("-", index + 1)
        if end < 0:
            raise ModifiedUtf7Error("unterminated '&' shift")
        chunk = name[index + 1 : end]
        index = end + 1
        if not chunk:
            out.append("&")
            previous_was_shift = False
            continue
        if previous_was_shift:
            raise ModifiedUtf7Error("adjacent shifts must be merged")
        out.append(_decode_chunk(chunk))
        previous_was_shift = True
    return "".join(out)


def _decode_chunk(chunk: str) -> str:
    if len(chunk) % 4 == 1 or any(c == "/" or c == "=" for c in chunk):
        raise ModifiedUtf7Error(f"invalid base64 in shift {chunk!r}")
    padded = chunk.replace(",", "/") + "=" * (-len(chunk) % 4)
    try:
        raw = base64.b64decode(padded, validate=True)
    except binascii.Error as exc:
        raise ModifiedUtf7Error(f"invalid base64 in shift {chunk!r}") from exc
    if len(raw) % 2:
        raise ModifiedUtf7Error("shift does not hold whole UTF-16 units")
    # Re-encoding must give back the same text: rejects non-zero padding bits.
    if base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ",") != chunk:
        raise ModifiedUtf7Error(f"non-canonical base64 in shift {chunk!r}")
    try:
        text = raw.decode("utf-16-be")
    except UnicodeDecodeError as exc:
        raise ModifiedUtf7Error("shift holds invalid UTF-16") from exc
    if any(_is_direct(c) for c in text):
        raise ModifiedUtf7Error("printable ASCII must not be encoded")
    return text
