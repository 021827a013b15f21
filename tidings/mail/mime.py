"""MIME structure of a stored message as a tree of byte ranges (RFC 2045, RFC 2046).

We split the raw bytes ourselves instead of using the `email` package because IMAP section
numbers and byte-exact FETCH BODY[...] need the offset of every part's header and body.

Safety: the tree is capped at `MAX_DEPTH` levels of nesting and `MAX_PARTS` parts; what lies
beyond is kept as an opaque application/octet-stream leaf (or simply not split further), and the
root is marked `truncated`. Delimiter lines are found with one compiled regular expression per
multipart, so a part costs C-speed scanning of its own bytes and Python work per real part only.
Nothing here raises on malformed input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tidings.mail.headers import HeaderBlock, param_value, parse_content_type, parse_header_block

MAX_DEPTH = 100
MAX_PARTS = 5000
# Delimiter lines are looked for a megabyte at a time: one regular-expression scan over a 30 MB
# attachment would hold the GIL for all of it, and big messages are analysed in a worker thread
# precisely so that the event loop's thread can have the GIL in between (tidings/offload.py).
SCAN_PIECE = 1024 * 1024

# RFC 2045 section 6.1; anything else is "unknown" and cannot be decoded for BINARY[].
IDENTITY_ENCODINGS = ("7bit", "8bit", "binary")
MESSAGE_SUBTYPES = ("rfc822", "global")  # RFC 9051 treats message/global like message/rfc822


@dataclass(slots=True)
class MimePart:
    """One entity: `raw[header_start:body_start]` is its header (blank line included) and
    `raw[body_start:end]` its body. For a message/rfc822 part, `message` is the encapsulated
    message, whose own header starts at this part's `body_start`."""

    header: HeaderBlock
    end: int
    maintype: str
    subtype: str
    params: list[tuple[str, str]]
    has_content_type: bool
    encoding: str
    children: list[MimePart] = field(default_factory=list)
    message: MimePart | None = None
    truncated: bool = False

    @property
    def header_start(self) -> int:
        return self.header.start

    @property
    def body_start(self) -> int:
        return self.header.body_start

    @property
    def is_multipart(self) -> bool:
        return bool(self.children)

    @property
    def content_type(self) -> str:
        return f"{self.maintype}/{self.subtype}"


class _Budget:
    def __init__(self) -> None:
        self.parts_left = MAX_PARTS
        self.truncated = False


def parse_mime(raw: bytes) -> MimePart:
    """The MIME tree of a whole message."""
    budget = _Budget()
    root = _parse_entity(raw, 0, len(raw), 0, budget, ("text", "plain"))
    root.truncated = budget.truncated
    return root


def _parse_entity(
    raw: bytes, start: int, end: int, depth: int, budget: _Budget, default: tuple[str, str]
) -> MimePart:
    budget.parts_left -= 1
    header = parse_header_block(raw, start, end)
    parsed = parse_content_type(header.text(raw, "Content-Type"))
    if parsed is None:
        maintype, subtype = default
        params = [("charset", "US-ASCII")] if default == ("text", "plain") else []
    else:
        maintype, subtype, params = parsed
    encoding_text = header.text(raw, "Content-Transfer-Encoding")
    encoding = (encoding_text or "7bit").split("(")[0].strip().lower() or "7bit"
    part = MimePart(header, end, maintype, subtype, params, parsed is not None, encoding)

    if maintype == "multipart":
        if depth >= MAX_DEPTH:
            budget.truncated = True
            _make_opaque(part, "application", "octet-stream")
            return part
        boundary = param_value(params, "boundary")
        ranges = _split_multipart(raw, part.body_start, end, boundary, budget) if boundary else []
        if not ranges:
            # RFC 2046 requires a boundary and at least one body part; without them the
            # body can only be shown as text, as RFC 2045 section 5.2 suggests for bad types.
            _make_opaque(part, "text", "plain")
            return part
        child_default = ("message", "rfc822") if subtype == "digest" else ("text", "plain")
        for child_start, child_end in ranges:
            if budget.parts_left <= 0:
                budget.truncated = True
                break
            part.children.append(_parse_entity(raw, child_start, child_end, depth + 1, budget, child_default))
        if not part.children:
            _make_opaque(part, "application", "octet-stream")
    elif maintype == "message" and subtype in MESSAGE_SUBTYPES and encoding in IDENTITY_ENCODINGS:
        if depth >= MAX_DEPTH or budget.parts_left <= 0:
            budget.truncated = True
            _make_opaque(part, "application", "octet-stream")
            return part
        part.message = _parse_entity(raw, part.body_start, end, depth + 1, budget, ("text", "plain"))
    elif maintype == "message" and subtype in MESSAGE_SUBTYPES:
        # An encoded message/rfc822 is not allowed (RFC 2046 section 5.2.1) and IMAP's
        # MESSAGE/RFC822 structure needs an envelope we cannot read: show it as opaque data.
        _make_opaque(part, "application", "octet-stream")
    return part


def _make_opaque(part: MimePart, maintype: str, subtype: str) -> None:
    part.maintype, part.subtype = maintype, subtype
    part.params = [("charset", "US-ASCII")] if maintype == "text" else []


def _split_multipart(
    raw: bytes, start: int, end: int, boundary: str, budget: _Budget
) -> list[tuple[int, int]]:
    """Byte ranges of the body parts between delimiter lines (RFC 2046 section 5.1.1).

    The line break before a delimiter belongs to the delimiter, so a part ends before it.
    Preamble and epilogue are not parts. A missing close delimiter ends the last part at `end`.
    """
    boundary_bytes = boundary.strip().encode("utf-8", "replace")[:200]
    if not boundary_bytes:
        return []
    line = b"--" + re.escape(boundary_bytes) + rb"(--)?[ \t]*\r?(?=\n|\Z)"
    first_line = re.compile(line)
    later_line = re.compile(b"\n" + line)

    ranges: list[tuple[int, int]] = []
    part_start: int | None = None

    def delimiter(line_start: int, line_end: int, closing: bool) -> bool:
        """Record a delimiter line; False when splitting must stop."""
        nonlocal part_start
        if part_start is not None:
            part_end = line_start
            if part_end > part_start and raw[part_end - 1] == 0x0D:
                part_end -= 1
            if budget.parts_left - len(ranges) <= 0:
                budget.truncated = True
                return False
            ranges.append((part_start, max(part_start, part_end)))
        if closing:
            return False
        part_start = line_end + 1 if line_end < end else end
        return True

    match = first_line.match(raw, start, end)
    position = start
    if match is not None:
        if not delimiter(start, match.end(), match.group(1) is not None):
            return ranges
        position = match.end()
    for match in _matches_after_newline(later_line, b"\n--" + boundary_bytes, raw, position, end):
        if not delimiter(match.start(), match.end(), match.group(1) is not None):
            return ranges
    if part_start is not None and budget.parts_left - len(ranges) > 0:
        ranges.append((part_start, end))
    elif part_start is not None:
        budget.truncated = True
    return ranges


def _matches_after_newline(pattern: re.Pattern[bytes], prefix: bytes, raw: bytes, start: int, end: int):
    """The same matches as `pattern.finditer(raw, start, end)`, for a pattern whose every match
    begins with the literal `prefix`: candidates are found with `bytes.find` a `SCAN_PIECE` at a
    time, then matched where they stand."""
    position = start
    while position < end:
        window_end = min(end, position + SCAN_PIECE + len(prefix))
        found = raw.find(prefix, position, window_end)
        if found < 0:
            position = window_end - len(prefix) + 1 if window_end < end else end
            continue
        match = pattern.match(raw, found, end)
        if match is None:
            position = found + 1
            continue
        yield match
        position = max(match.end(), found + 1)


def iter_parts(part: MimePart):
    """Every entity of the tree, depth first (encapsulated messages included)."""
    stack = [part]
    while stack:
        current = stack.pop()
        yield current
        if current.message is not None:
            stack.append(current.message)
        stack.extend(reversed(current.children))
