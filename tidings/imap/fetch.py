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
        write(response)                                # one whole response, literals included

``fetch_responses`` may raise :class:`~tidings.imap.states.No` — ``[UNKNOWN-CTE]`` when BINARY
meets an encoding it cannot undo (before that message's response is written), or
``[EXPUNGEISSUED]`` after all other responses when some messages had vanished from the store.

Rules kept here: items answer in the order requested (duplicates once); UID FETCH always
carries UID (first, when not requested); CHANGEDSINCE filters on MODSEQ and adds MODSEQ; a
message whose ``\\Seen`` was set by this fetch also reports FLAGS (and MODSEQ under CONDSTORE);
partial fetches answer ``BODY[...]<origin>`` with at most the requested octets, ``""`` past
the end; body data is a ``{n}`` literal, BINARY data a ``~{n}`` literal8 when it holds NUL.

Pure apart from awaiting the loader: no store writes, no sockets.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from tidings.imap.commands import BinarySize, BodySection, FetchAttribute, FetchItem
from tidings.imap.message_data import MessageContext, MessageLoader, email_id, thread_id
from tidings.imap.states import No
from tidings.imap.wire import encode_list, encode_value, format_internaldate, literal, quote
from tidings.mail.message import MessageSummary
from tidings.mail.sections import decode_section_binary, extract_section
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
) -> AsyncIterator[bytes]:
    """One ``* seq FETCH (...)\\r\\n`` response per context, in the order given.

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
            yield _response(context, message_items, summary, raw, utf8, thread)
    if vanished:
        raise No("Some of the requested messages no longer exist", code="EXPUNGEISSUED")


def _effective_items(items: Sequence[FetchItem], *, uid: bool, modseq: bool) -> list[FetchItem]:
    out: list[FetchItem] = []
    for item in items:
        if item not in out:
            out.append(item)
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


def _response(
    context: MessageContext,
    items: Sequence[FetchItem],
    summary: MessageSummary | None,
    raw: bytes | None,
    utf8: bool,
    thread: int | None = None,
) -> bytes:
    parts = [_item_response(item, context, summary, raw, utf8, thread) for item in items]
    return b"* %d FETCH (%s)\r\n" % (context.seq, b" ".join(parts))


def _item_response(
    item: FetchItem,
    context: MessageContext,
    summary: MessageSummary | None,
    raw: bytes | None,
    utf8: bool,
    thread: int | None = None,
) -> bytes:
    label = item.response_name().encode("utf-8")
    if isinstance(item, FetchAttribute):
        return label + b" " + _attribute_value(item.name, context, summary, raw, utf8, thread)
    assert raw is not None
    if isinstance(item, BinarySize):
        section = ".".join(map(str, item.part))
        decoded = decode_section_binary(raw, summary, section) if summary is not None else raw
        if decoded is None:
            raise No(f"Cannot decode the content-transfer-encoding of part {section}", code="UNKNOWN-CTE")
        return label + b" %d" % len(decoded)
    return label + b" " + _section_value(item, summary, raw)


def _attribute_value(
    name: str,
    context: MessageContext,
    summary: MessageSummary | None,
    raw: bytes | None,
    utf8: bool,
    thread: int | None = None,
) -> bytes:
    ref = context.ref
    if name == "UID":
        return b"%d" % ref.uid
    if name == "FLAGS":
        return b"(" + format_flags(ref.flags).encode("utf-8") + b")"
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
        return _string(raw[: summary.header_size])
    if name == "RFC822.TEXT":
        return _string(raw[summary.header_size :])
    raise ValueError(f"unknown fetch attribute {name}")


def _section_value(item: BodySection, summary: MessageSummary | None, raw: bytes) -> bytes:
    section = item.section
    part = ".".join(map(str, section.part))
    if item.binary:
        data = decode_section_binary(raw, summary, part) if summary is not None else raw
        if data is None:
            raise No(f"Cannot decode the content-transfer-encoding of part {part}", code="UNKNOWN-CTE")
    elif summary is None:  # BODY[]: the whole message needs no summary
        data = raw
    else:
        data = extract_section(raw, summary, part, section.text or "", list(section.fields))
    if item.partial is not None:
        offset, length = item.partial
        data = data[offset : offset + length]
    return _string(data, binary=item.binary)


def _string(data: bytes, binary: bool = False) -> bytes:
    """Message data as a literal; ``""`` when empty (a zero-length quoted string reads best);
    a literal8 for BINARY data holding NUL (RFC 3516 section 4.3)."""
    if not data:
        return b'""'
    return literal(data, binary=binary and b"\x00" in data)


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
