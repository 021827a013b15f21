"""FETCH: turning parsed fetch items into ``* n FETCH (...)`` response bytes (RFC 9051 6.4.5 and
7.5.2, RFC 3501 6.4.5 and 7.4.2; BINARY RFC 3516; CONDSTORE MODSEQ RFC 7162; EMAILID/THREADID
RFC 8474; SAVEDATE RFC 8514).

Interface for the session (see :mod:`tidings.imap.message_data` for the context and loader)::

    needs = fetch_needs(cmd.items)                    # FetchNeeds(summary, blob, sets_seen)
    targets = seen_targets(cmd.items, contexts, read_only=selected.read_only)
    # -> store.mailboxes.store_flags(..., [c.uid for c in targets], "add", ["\\Seen"]), then
    #    replace those contexts' refs with the changed refs and pass their UIDs as flags_changed
    async for response in fetch_responses(cmd.items, contexts, loader, uid=cmd.uid, utf8=utf8,
                                          condstore=condstore_enabled,
                                          changed_since=cmd.changed_since,
                                          flags_changed=uids_seen_just_now):
        for piece in response:                         # one message's response, in pieces
            write(piece); await pace()                 # (waits for a client slow to read)

``fetch_responses`` may raise :class:`~tidings.imap.states.No` — ``[UNKNOWN-CTE]`` when BINARY
meets an encoding it cannot undo (before that message's response is written), or
``[EXPUNGEISSUED]`` after all other responses when some messages had vanished from the store.

Rules kept here: items answer in the order requested (duplicates once); UID FETCH always
carries UID (first, when not requested); CHANGEDSINCE filters on MODSEQ and adds MODSEQ; a
message whose ``\\Seen`` was set by this fetch also reports FLAGS (and MODSEQ under CONDSTORE);
partial fetches answer ``BODY[...]<origin>`` with at most the requested octets, ``""`` past
the end; body data is a ``{n}`` literal, BINARY data a ``~{n}`` literal8 when it holds NUL.

Output is bounded by streaming, not by refusing: a message's response is handed over as pieces
whose message data are views into the message (see :func:`_response`), and the session writes
them one at a time with backpressure, so a FETCH naming the same large body many times (200
partials of an 820 KB message is a 164 MB answer) holds about one message in memory and
produces only as fast as the client reads.  Its size needs no limit of its own: it is paid for
by the client's own reading.

Pure apart from awaiting the loader: no store writes, no sockets.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from tidings.imap.commands import BinarySize, BodySection, FetchAttribute, FetchItem
from tidings.imap.message_data import MessageContext, MessageLoader, email_id, thread_id
from tidings.imap.states import No
from tidings.imap.wire import encode_list, encode_value, format_internaldate, quote
from tidings.mail.message import MessageSummary
from tidings.mail.sections import decode_section_binary, extract_section
from tidings.offload import is_heavy, offload
from tidings.store.mailboxes import format_flags

BATCH = 200
"""Summaries are loaded this many messages at a time: one query each, bounded memory."""

_UID = FetchAttribute("UID")
_FLAGS = FetchAttribute("FLAGS")
_MODSEQ = FetchAttribute("MODSEQ")

# Items answered from the summary; RFC822.HEADER/TEXT need its header size.
_SUMMARY_ATTRIBUTES = frozenset({"ENVELOPE", "BODY", "BODYSTRUCTURE", "RFC822.HEADER", "RFC822.TEXT"})
_BLOB_ATTRIBUTES = frozenset({"RFC822", "RFC822.HEADER", "RFC822.TEXT"})
# RFC 3501 6.4.5: RFC822 is BODY[] and RFC822.TEXT is BODY[TEXT]; both set \Seen.
_SEEN_ATTRIBUTES = frozenset({"RFC822", "RFC822.TEXT"})


@dataclass(frozen=True)
class FetchNeeds:
    """What answering a set of fetch items requires beyond the message refs."""

    summary: bool
    blob: bool
    sets_seen: bool


def _whole_message(item: BodySection) -> bool:
    return not item.section.part and item.section.text is None


def fetch_needs(items: Iterable[FetchItem]) -> FetchNeeds:
    summary = blob = sets_seen = False
    for item in items:
        if isinstance(item, FetchAttribute):
            summary |= item.name in _SUMMARY_ATTRIBUTES
            blob |= item.name in _BLOB_ATTRIBUTES
            sets_seen |= item.name in _SEEN_ATTRIBUTES
        elif isinstance(item, BodySection):
            blob = True
            summary |= not _whole_message(item)
            sets_seen |= item.sets_seen
        elif isinstance(item, BinarySize):
            blob = True
            summary |= bool(item.part)
    return FetchNeeds(summary, blob, sets_seen)


def seen_targets(
    items: Iterable[FetchItem], contexts: Iterable[MessageContext], *, read_only: bool
) -> list[MessageContext]:
    """The messages this fetch implicitly marks ``\\Seen`` (RFC 9051 6.4.5: BODY[...] without
    .PEEK, BINARY[...], RFC822, RFC822.TEXT), except on a read-only (EXAMINEd) mailbox and
    except those already seen."""
    if read_only or not fetch_needs(items).sets_seen:
        return []
    return [c for c in contexts if not any(flag.lower() == "\\seen" for flag in c.ref.flags)]


async def fetch_responses(
    items: Sequence[FetchItem],
    contexts: Iterable[MessageContext],
    loader: MessageLoader,
    *,
    uid: bool = False,
    utf8: bool = False,
    condstore: bool = False,
    changed_since: int | None = None,
    flags_changed: Collection[int] = (),
    thread_ids: Mapping[int, int] | None = None,
) -> AsyncIterator[list[Piece]]:
    """One ``* seq FETCH (...)\\r\\n`` response per context, in the order given, each as the
    pieces :func:`_response` describes (``b"".join`` them for the whole response).

    ``utf8``: the client accepts UTF-8 in quoted strings (UTF8=ACCEPT or IMAP4rev2).
    ``condstore``: CONDSTORE is enabled, so FLAGS reported because they changed carry MODSEQ.
    ``changed_since``: CHANGEDSINCE (RFC 7162 3.1.4): only messages with a greater mod-sequence,
    each with MODSEQ.  ``flags_changed``: UIDs whose flags this command changed (\\Seen).
    ``thread_ids``: {messages.id: store thread} for THREADID (RFC 8474 section 5.2).
    """
    requested = _effective_items(items, uid=uid, modseq=changed_since is not None)
    needs = fetch_needs(requested)
    selected = [c for c in contexts if changed_since is None or c.ref.modseq > changed_since]
    vanished = 0
    for start in range(0, len(selected), BATCH):
        batch = selected[start : start + BATCH]
        summaries: Mapping[int, MessageSummary] = {}
        if needs.summary:
            summaries = await loader.summaries([c.ref for c in batch])
        for context in batch:
            summary = summaries.get(context.ref.message_id)
            if needs.summary and summary is None:
                vanished += 1
                continue
            raw = await loader.blob(context.ref) if needs.blob else None
            if needs.blob and raw is None:
                vanished += 1
                continue
            message_items = requested
            if context.ref.uid in flags_changed:
                message_items = _with_changed_flags(requested, condstore)
            thread = thread_ids.get(context.ref.message_id) if thread_ids else None
            if raw is not None and is_heavy(len(raw)):
                # Cutting sections out of (and decoding) a big message is heavy work.
                yield await offload(_response, context, message_items, summary, raw, utf8, thread)
            else:
                yield _response(context, message_items, summary, raw, utf8, thread)
    if vanished:
        raise No("Some of the requested messages no longer exist", code="EXPUNGEISSUED")


def _effective_items(items: Sequence[FetchItem], *, uid: bool, modseq: bool) -> list[FetchItem]:
    out = list(dict.fromkeys(items))  # duplicates once, in one pass (a list may name thousands)
    if uid and _UID not in out:
        out.insert(0, _UID)
    if modseq and _MODSEQ not in out:
        out.append(_MODSEQ)
    return out


def _with_changed_flags(items: list[FetchItem], condstore: bool) -> list[FetchItem]:
    extra = [_FLAGS] if _FLAGS not in items else []
    if condstore and _MODSEQ not in items:
        extra.append(_MODSEQ)
    return items + extra if extra else items


@dataclass(frozen=True, slots=True)
class _Literal:
    """Message data to send as a ``{n}`` literal (``~{n}`` when ``binary``): a view, not a copy."""

    data: memoryview
    binary: bool = False


Piece = bytes | memoryview
"""A part of a FETCH response, written as is; message data are views into the message."""

_SectionKey = tuple[bool, tuple[int, ...], str | None, tuple[str, ...]]


def _response(
    context: MessageContext,
    items: Sequence[FetchItem],
    summary: MessageSummary | None,
    raw: bytes | None,
    utf8: bool,
    thread: int | None = None,
) -> list[Piece]:
    """One message's ``* n FETCH (...)`` response as pieces to be written in order.

    Message data are never copied into the response: each literal is a view into the message or
    into the one extracted (or decoded) copy of its section, made once per message however many
    items name it, so 200 partials of ``BODY[]`` cost the memory of the message, not 200 times
    it; the session writes the pieces one by one and waits for a client that is slow to read
    them.  Every item is worked out before the pieces are returned, so ``[UNKNOWN-CTE]`` comes
    before any of this message's response is written.
    """
    sections: dict[_SectionKey, bytes] = {}
    pieces: list[Piece] = []
    line = bytearray(b"* %d FETCH (" % context.seq)
    for index, item in enumerate(items):
        if index:
            line += b" "
        line += item.response_name().encode("utf-8") + b" "
        value = _item_value(item, context, summary, raw, utf8, thread, sections)
        if isinstance(value, _Literal):
            line += b"%s{%d}\r\n" % (b"~" if value.binary else b"", len(value.data))
            pieces.append(bytes(line))
            pieces.append(value.data)
            line = bytearray()
        else:
            line += value
    line += b")\r\n"
    pieces.append(bytes(line))
    return pieces


def _item_value(
    item: FetchItem,
    context: MessageContext,
    summary: MessageSummary | None,
    raw: bytes | None,
    utf8: bool,
    thread: int | None,
    sections: dict[_SectionKey, bytes],
) -> bytes | _Literal:
    if isinstance(item, FetchAttribute):
        return _attribute_value(item.name, context, summary, raw, utf8, thread)
    assert raw is not None
    if isinstance(item, BinarySize):
        return b"%d" % len(_section_data(True, item.part, None, (), summary, raw, sections))
    section = item.section
    data = _section_data(item.binary, section.part, section.text, section.fields, summary, raw, sections)
    start, end = 0, len(data)
    if item.partial is not None:
        offset, length = item.partial
        start, end = min(offset, end), min(offset + length, end)
    return _string(data, start, end, binary=item.binary)


def _section_data(
    binary: bool,
    part_path: tuple[int, ...],
    text: str | None,
    fields: tuple[str, ...],
    summary: MessageSummary | None,
    raw: bytes,
    sections: dict[_SectionKey, bytes],
) -> bytes:
    """The bytes a body section names (decoded for BINARY), once per message and section."""
    key = (binary, part_path, text, fields)
    data = sections.get(key)
    if data is not None:
        return data
    part = ".".join(map(str, part_path))
    if binary:
        data = decode_section_binary(raw, summary, part) if summary is not None else raw
        if data is None:
            raise No(f"Cannot decode the content-transfer-encoding of part {part}", code="UNKNOWN-CTE")
    elif summary is None:  # BODY[]: the whole message needs no summary
        data = raw
    else:
        data = extract_section(raw, summary, part, text or "", list(fields))
    sections[key] = data
    return data


def _attribute_value(
    name: str,
    context: MessageContext,
    summary: MessageSummary | None,
    raw: bytes | None,
    utf8: bool,
    thread: int | None = None,
) -> bytes | _Literal:
    ref = context.ref
    if name == "UID":
        return b"%d" % ref.uid
    if name == "FLAGS":
        text = format_flags(ref.flags)
        if context.recent:
            text = f"{text} \\Recent" if text else "\\Recent"
        return b"(" + text.encode("utf-8") + b")"
    if name == "INTERNALDATE":
        return quote(format_internaldate(_moment(ref.internal_date)))
    if name == "RFC822.SIZE":
        return b"%d" % ref.size
    if name == "MODSEQ":
        return b"(%d)" % ref.modseq
    if name == "EMAILID":
        return b"(" + email_id(ref).encode("ascii") + b")"
    if name == "THREADID":
        # RFC 8474 section 5.2; NIL only for a message that vanished before it was threaded
        return b"(" + thread_id(thread).encode("ascii") + b")" if thread is not None else b"NIL"
    if name == "SAVEDATE":
        return quote(format_internaldate(_moment(ref.save_date))) if ref.save_date else b"NIL"
    if name == "RFC822":
        assert raw is not None
        return _string(raw)
    assert summary is not None
    if name == "ENVELOPE":
        return encode_envelope(summary.envelope, utf8)
    if name == "BODY":
        return encode_body(summary.body, utf8)
    if name == "BODYSTRUCTURE":
        return encode_body(summary.bodystructure, utf8)
    assert raw is not None
    if name == "RFC822.HEADER":
        return _string(raw, 0, summary.header_size)
    if name == "RFC822.TEXT":
        return _string(raw, summary.header_size)
    raise ValueError(f"unknown fetch attribute {name}")


def _string(data: bytes, start: int = 0, end: int | None = None, binary: bool = False) -> bytes | _Literal:
    """``data[start:end]`` as a literal; ``""`` when empty (a zero-length quoted string reads
    best); a literal8 for BINARY data holding NUL (RFC 3516 section 4.3)."""
    end = len(data) if end is None else min(end, len(data))
    if start >= end:
        return b'""'
    return _Literal(memoryview(data)[start:end], binary and data.find(b"\x00", start, end) != -1)


def _moment(timestamp: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC)


def encode_body(structure: list, utf8: bool = False) -> bytes:
    """BODY / BODYSTRUCTURE data from the nested lists of :mod:`tidings.mail.bodystructure`.

    Differs from :func:`~tidings.imap.wire.encode_list` in two places of the RFC 9051 grammar:
    the parts of a multipart are written next to each other without spaces
    (``body-type-mpart = 1*body SP media-subtype ...``), and a MESSAGE/RFC822 part nests an
    envelope and a body of its own.
    """
    if structure and isinstance(structure[0], list):
        count = 0
        while count < len(structure) and isinstance(structure[count], list):
            count += 1
        children = b"".join(encode_body(child, utf8) for child in structure[:count])
        rest = b" ".join(encode_value(value, utf8) for value in structure[count:])
        return b"(" + children + (b" " + rest if rest else b"") + b")"
    if _is_message_part(structure):
        head = [encode_value(value, utf8) for value in structure[:7]]
        nested = [encode_envelope(structure[7], utf8), encode_body(structure[8], utf8)]
        tail = [encode_value(value, utf8) for value in structure[9:]]
        return b"(" + b" ".join(head + nested + tail) + b")"
    return encode_list(structure, utf8)


_ADDRESS_FIELDS = range(2, 8)  # from, sender, reply-to, to, cc, bcc


def encode_envelope(envelope: list, utf8: bool = False) -> bytes:
    """ENVELOPE data (RFC 9051 7.5.2) from :func:`tidings.mail.envelope.build_envelope`'s list.

    Address lists follow ``env-from = "(" 1*address ")" / nil`` exactly: the addresses are
    written next to each other with no space between them, as strict client parsers require;
    every other member is separated by one space like any list.
    """
    members = []
    for index, value in enumerate(envelope):
        if index in _ADDRESS_FIELDS and value:
            members.append(b"(" + b"".join(encode_list(address, utf8) for address in value) + b")")
        else:
            members.append(encode_value(value, utf8))
    return b"(" + b" ".join(members) + b")"


def _is_message_part(structure: list) -> bool:
    return (
        len(structure) >= 10
        and isinstance(structure[0], str)
        and structure[0].upper() == "MESSAGE"
        and isinstance(structure[7], list)
        and isinstance(structure[8], list)
    )
