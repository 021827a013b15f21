"""IMAP BODY and BODYSTRUCTURE from a MIME tree (RFC 3501 section 7.4.2, RFC 9051 section 7.5.2).

Output is nested lists for the IMAP formatter (str = string, int = number, None = NIL):

* basic part: `[TYPE, SUBTYPE, params, id, description, ENCODING, size]`, then for TEXT/* the line
  count, for MESSAGE/RFC822 (and MESSAGE/GLOBAL) `envelope, body, lines`; BODYSTRUCTURE adds the
  extension data `md5, disposition, language, location`.
* multipart: `[child, child, ..., SUBTYPE]`; BODYSTRUCTURE adds `params, disposition, language,
  location`. A multipart is recognisable by its first element being a list; the formatter must
  write its children next to each other with no space between them (`body-type-mpart`).

`params` is `[KEY, value, KEY, value, ...]` or None; `disposition` is `[TYPE, params]` or None;
`language` is a list of tags or None. Type, subtype, encoding and parameter names are upper-cased
like the RFC's examples; values are kept as written (RFC 2047/2231 encoding included).
Sizes are octets of the stored body; lines count LFs plus an unterminated last line.
"""

from __future__ import annotations

from tidings.mail.envelope import build_envelope
from tidings.mail.headers import parse_disposition
from tidings.mail.mime import SCAN_PIECE, MimePart


def _params(params: list[tuple[str, str]]) -> list[str] | None:
    flat: list[str] = []
    for key, value in params:
        flat += [key.upper(), value.replace("\x00", "")]
    return flat or None


def count_lines(raw: bytes, start: int, end: int) -> int:
    if end <= start:
        return 0
    # A megabyte per call: analysis of a big message runs in a worker thread, which lets the event
    # loop's thread have the GIL only between C calls (tidings/offload.py).
    lines = sum(raw.count(b"\n", at, min(at + SCAN_PIECE, end)) for at in range(start, end, SCAN_PIECE))
    return lines + (0 if raw[end - 1] == 0x0A else 1)


def _extension(raw: bytes, part: MimePart) -> list:
    header = part.header
    disposition = parse_disposition(header.text(raw, "Content-Disposition"))
    language = header.text(raw, "Content-Language")
    tags = [tag.strip() for tag in language.split(",") if tag.strip()] if language else []
    return [
        [disposition[0].upper(), _params(disposition[1])] if disposition else None,
        tags or None,
        header.text(raw, "Content-Location") or None,
    ]


def body_structure(raw: bytes, part: MimePart, extensible: bool = True) -> list:
    """BODYSTRUCTURE (`extensible=True`) or BODY (`False`) of the entity `part`."""
    header = part.header
    if part.children:
        out: list = [body_structure(raw, child, extensible) for child in part.children]
        out.append(part.subtype.upper())
        if extensible:
            out += [_params(part.params), *_extension(raw, part)]
        return out
    size = part.end - part.body_start
    out = [
        part.maintype.upper(),
        part.subtype.upper(),
        _params(part.params),
        header.text(raw, "Content-ID") or None,
        header.text(raw, "Content-Description") or None,
        part.encoding.upper(),
        size,
    ]
    if part.message is not None:
        out += [
            build_envelope(raw, part.message.header),
            body_structure(raw, part.message, extensible),
            count_lines(raw, part.body_start, part.end),
        ]
    elif part.maintype == "text":
        out.append(count_lines(raw, part.body_start, part.end))
    if extensible:
        out += [header.text(raw, "Content-MD5") or None, *_extension(raw, part)]
    return out
