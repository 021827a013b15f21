"""SORT and THREAD over search results (RFC 5256; DISPLAYFROM/DISPLAYTO RFC 5957; ESORT
RFC 5267 RETURN options; PARTIAL RFC 9394; CONDSTORE MODSEQ RFC 7162 3.1.5).

Interface for the session (contexts and loader: :mod:`tidings.imap.message_data`)::

    check_charset(cmd.charset)                                   # from tidings.imap.search
    matched = await evaluate_search(cmd.search, contexts, loader, saved_uids=...)
    ordered = await sort_messages(cmd.criteria, matched, loader)
    reply = sort_reply(cmd, ordered)                             # a SearchReply
    # THREAD:
    check_thread_algorithm(cmd.algorithm)                        # raises Bad for unknown ones
    threads = await thread_messages(cmd.algorithm, matched, loader, uid=cmd.uid)
    write(format_thread(threads))                                # b"* THREAD (2)(3 6 (4 23))\\r\\n"

The comparison keys themselves (base subject, first address, display name, sent date with the
internal-date fallback) come from :mod:`tidings.mail.sorting` and the trees from
:mod:`tidings.mail.threading`; this module loads what they need, applies REVERSE per criterion,
breaks every tie by sequence number (RFC 5256 section 3) and writes the replies.  ARRIVAL and
SIZE need only the store refs, so sorting by them alone loads nothing.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence

from tidings.imap.commands import Sort, SortCriterion
from tidings.imap.message_data import MessageContext, MessageLoader
from tidings.imap.search import (
    SearchReply,
    context_only,
    esearch_header,
    format_esearch,
    result_options,
    saved_uids,
    uses_modseq,
)
from tidings.imap.states import Bad
from tidings.mail.message import MessageSummary, thread_message
from tidings.mail.sorting import sort_key
from tidings.mail.threading import ThreadNode, format_threads, thread_orderedsubject, thread_references

THREAD_ALGORITHMS = ("ORDEREDSUBJECT", "REFERENCES")
"""Advertised as THREAD=ORDEREDSUBJECT THREAD=REFERENCES."""

_REF_ONLY_CRITERIA = frozenset({"ARRIVAL", "SIZE"})
BATCH = 500


async def _load_summaries(
    contexts: Sequence[MessageContext], loader: MessageLoader
) -> dict[int, MessageSummary]:
    found: dict[int, MessageSummary] = {}
    for start in range(0, len(contexts), BATCH):
        batch = contexts[start : start + BATCH]
        found.update(await loader.summaries([c.ref for c in batch]))
    return found


def _internal_date(context: MessageContext) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(context.ref.internal_date, datetime.UTC)


async def sort_messages(
    criteria: Sequence[SortCriterion], contexts: Sequence[MessageContext], loader: MessageLoader
) -> list[MessageContext]:
    """``contexts`` ordered by ``criteria`` (RFC 5256 section 3), ties by sequence number.
    Messages whose summary vanished meanwhile are left out."""
    ordered = sorted(contexts, key=lambda c: c.seq)
    if not all(criterion.key.upper() in _REF_ONLY_CRITERIA for criterion in criteria):
        summaries: Mapping[int, MessageSummary] = await _load_summaries(ordered, loader)
        ordered = [c for c in ordered if c.ref.message_id in summaries]
    else:
        summaries = {}

    def key_for(criterion: SortCriterion):
        name = criterion.key.upper()
        if name == "ARRIVAL":
            return lambda c: c.ref.internal_date
        if name == "SIZE":
            return lambda c: c.ref.size
        return lambda c: sort_key(summaries[c.ref.message_id], name, _internal_date(c))

    # Stable sorts from the last criterion to the first give the lexicographic order; Python
    # keeps equal elements in order even with reverse=True, so ties stay by sequence number.
    for criterion in reversed(criteria):
        ordered.sort(key=key_for(criterion), reverse=criterion.reverse)
    return ordered


def sort_reply(command: Sort, ordered: Sequence[MessageContext]) -> SearchReply:
    """``* SORT 2 3 1`` (RFC 5256 section 4), with ``(MODSEQ n)`` when the search used MODSEQ;
    with RETURN (...) the ESORT form ``* ESEARCH (TAG "x") UID ALL 3,1:2`` (RFC 5267)."""
    numbers = [c.ref.uid if command.uid else c.seq for c in ordered]
    modseq = max((c.ref.modseq for c in ordered), default=None) if uses_modseq(command.search) else None
    options = command.return_options
    if options is None:
        return SearchReply(format_sort(numbers, modseq))
    if context_only(options):
        return SearchReply(esearch_header(command.tag, command.uid) + b"\r\n")
    options = result_options(options)
    partial = command.partial
    saved = saved_uids(options, ordered, partial) if "SAVE" in options else None
    if set(options) == {"SAVE"}:
        return SearchReply(b"", saved)
    response = format_esearch(
        command.tag, numbers, options, uid=command.uid, modseq=modseq, ordered=True, partial=partial
    )
    return SearchReply(response, saved)


def format_sort(numbers: Sequence[int], modseq: int | None = None) -> bytes:
    line = b"* SORT"
    if numbers:
        line += b" " + b" ".join(b"%d" % n for n in numbers)
        if modseq is not None:
            line += b" (MODSEQ %d)" % modseq
    return line + b"\r\n"


def check_thread_algorithm(algorithm: str) -> None:
    """An algorithm we do not implement is an invalid argument: BAD (RFC 5256 section 3)."""
    if algorithm.upper() not in THREAD_ALGORITHMS:
        raise Bad(f"Unsupported threading algorithm {algorithm}")


async def thread_messages(
    algorithm: str, contexts: Sequence[MessageContext], loader: MessageLoader, *, uid: bool
) -> list[ThreadNode]:
    """Thread trees of ``contexts`` (RFC 5256 section 3.1 ORDEREDSUBJECT, 3.2 REFERENCES),
    numbered by UID or sequence number.  A missing sent date falls back to the internal date."""
    check_thread_algorithm(algorithm)
    summaries = await _load_summaries(contexts, loader)
    messages = [
        thread_message(summaries[c.ref.message_id], c.ref.uid if uid else c.seq, _internal_date(c))
        for c in contexts
        if c.ref.message_id in summaries
    ]
    if algorithm.upper() == "ORDEREDSUBJECT":
        return thread_orderedsubject(messages)
    return thread_references(messages)


def format_thread(threads: list[ThreadNode]) -> bytes:
    """``* THREAD (2)(3 6 (4 23)(44 7 96))`` (RFC 5256 section 4); ``* THREAD`` when empty."""
    text = format_threads(threads)
    return b"* THREAD" + (b" " + text.encode("ascii") if text else b"") + b"\r\n"
