"""SEARCH: evaluating a search-key tree over the selected mailbox, and the SEARCH / ESEARCH
replies (RFC 9051 6.4.4 and 7.3.4, RFC 3501 6.4.4; ESEARCH RFC 4731; SEARCHRES RFC 5182; PARTIAL RFC 9394;
CONDSTORE MODSEQ RFC 7162 3.1.5; WITHIN RFC 5032; SAVEDATE RFC 8514; OBJECTID RFC 8474).

Interface for the session (see :mod:`tidings.imap.message_data` for contexts and the loader)::

    check_charset(cmd.charset)                     # raises No [BADCHARSET (UTF-8 US-ASCII)]
    matched = await evaluate_search(cmd.criteria, contexts, loader,
                                    saved_uids=selected.saved_uids)
    reply = search_reply(cmd, matched, esearch=imap4rev2)
    write(reply.response)                          # may be b"" (RETURN (SAVE) alone)
    if reply.saved_uids is not None: selected.saved_uids = reply.saved_uids

``contexts`` must be the whole selected mailbox in sequence order (``*`` means its last
message).  The result is the matching contexts in sequence order.

Evaluation is staged so that a search costs only what its keys need: every message is first
tested with its store ref alone (flags, size, dates, UIDs, sequence numbers, MODSEQ, EMAILID)
using three-valued logic; only messages the tree cannot yet decide get their summary loaded
(SENT*, FROM/TO/CC/BCC/SUBJECT), and only those still undecided then get their bytes read
(HEADER, BODY, TEXT).  ``SEARCH FLAGGED BODY x`` thus reads only flagged messages.

Choices where the RFCs leave room: dates compare as UTC calendar days (INTERNALDATE is written
in +0000); SENT* compare the Date: header's own calendar day and never match a message without
a usable Date:; RECENT, NEW and OLD ask whether the session holds \\Recent for the message
(:attr:`MessageContext.recent`, IMAP4rev1 only);
THREADID compares the thread ids the caller looked up (store/threads.py); an empty
FROM/TO/CC/BCC/SUBJECT string matches messages whose field is non-empty.
"""

from __future__ import annotations

import datetime
import time
from bisect import bisect_right
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tidings.imap.commands import And, Not, Or, PartialRange, Search, SearchCriterion, SearchKey
from tidings.imap.message_data import MessageContext, MessageLoader, email_id, thread_id
from tidings.imap.sequence import SequenceSet, format_uid_set
from tidings.imap.states import No
from tidings.imap.wire import quote
from tidings.mail.message import MessageSummary
from tidings.mail.search_text import address_list_contains, body_contains, header_contains, text_contains
from tidings.offload import is_heavy, offload

SUPPORTED_CHARSETS = ("UTF-8", "US-ASCII")
BATCH = 200

# Keys that need the summary, or the stored bytes; every other key is answered from the ref.
_SUMMARY_KEYS = frozenset({"SENTBEFORE", "SENTON", "SENTSINCE", "FROM", "TO", "CC", "BCC", "SUBJECT"})
_BLOB_KEYS = frozenset({"HEADER", "BODY", "TEXT"})
_FLAG_KEYS = {
    "ANSWERED": ("\\answered", True),
    "DELETED": ("\\deleted", True),
    "DRAFT": ("\\draft", True),
    "FLAGGED": ("\\flagged", True),
    "SEEN": ("\\seen", True),
    "UNANSWERED": ("\\answered", False),
    "UNDELETED": ("\\deleted", False),
    "UNDRAFT": ("\\draft", False),
    "UNFLAGGED": ("\\flagged", False),
    "UNSEEN": ("\\seen", False),
}


def check_charset(charset: str | None) -> None:
    """Refuse a CHARSET we do not search in (RFC 9051 6.4.4: NO [BADCHARSET (list)])."""
    if charset is not None and charset.upper() not in SUPPORTED_CHARSETS:
        supported = " ".join(SUPPORTED_CHARSETS)
        raise No(f"Charset {charset} is not supported", code=f"BADCHARSET ({supported})")


def uses_modseq(criteria: SearchCriterion) -> bool:
    """Whether the search mentions MODSEQ, so the reply carries ``(MODSEQ n)`` (RFC 7162 3.1.5)."""
    return _mentions(criteria, "MODSEQ")


def uses_threadid(criteria: SearchCriterion) -> bool:
    """Whether the search mentions THREADID, so the caller must pass ``thread_ids``."""
    return _mentions(criteria, "THREADID")


def _mentions(criteria: SearchCriterion, key: str) -> bool:
    stack = [criteria]
    while stack:
        node = stack.pop()
        if isinstance(node, SearchKey):
            if node.name == key:
                return True
        elif isinstance(node, And):
            stack.extend(node.keys)
        elif isinstance(node, Or):
            stack += [node.left, node.right]
        else:
            stack.append(node.key)
    return False


@dataclass
class _Candidate:
    """One message under evaluation and whatever has been loaded for it so far."""

    context: MessageContext
    flags: frozenset[str] = field(default_factory=frozenset)  # lower-case
    summary: MessageSummary | None = None
    raw: bytes | None = None


@dataclass
class _Scope:
    """Mailbox-wide values the keys refer to, and sequence sets resolved once per search."""

    largest_seq: int
    largest_uid: int
    saved_uids: frozenset[int]
    now: float
    thread_ids: Mapping[int, int]
    resolved: dict[tuple[int, int], tuple[list[int], list[int]]] = field(default_factory=dict)

    def in_set(self, sequence_set: SequenceSet, number: int, largest: int, uid: int) -> bool:
        """Membership in a sequence set, by binary search over its spans (a client may send
        thousands of ranges).  ``$`` (RFC 5182) names saved messages by UID, whichever numbering
        the set otherwise uses."""
        if sequence_set.includes_saved and uid in self.saved_uids:
            return True
        spans = self.resolved.get((id(sequence_set), largest))
        if spans is None:
            merged = sequence_set.resolve(largest) if largest > 0 else []
            spans = self.resolved[(id(sequence_set), largest)] = (
                [low for low, _ in merged],
                [high for _, high in merged],
            )
        lows, highs = spans
        index = bisect_right(lows, number) - 1
        return index >= 0 and number <= highs[index]


async def evaluate_search(
    criteria: SearchCriterion,
    contexts: Sequence[MessageContext],
    loader: MessageLoader,
    *,
    saved_uids: Iterable[int] = (),
    now: float | None = None,
    thread_ids: Mapping[int, int] | None = None,
    pace: Callable[[], Awaitable[None]] | None = None,
    largest: tuple[int, int] | None = None,
) -> list[MessageContext]:
    """The contexts matching ``criteria``, in the order given (sequence order).

    ``saved_uids``: the UIDs ``$`` stands for (RFC 5182).  ``now``: the clock for OLDER and
    YOUNGER (``time.time()`` when omitted).  ``thread_ids``: {messages.id: store thread} for
    THREADID (RFC 8474 section 6; see :func:`uses_threadid`).  Messages that vanished from the
    store while being searched do not match.  ``pace``: awaited after each message (the
    session's, which lets other sessions run every few milliseconds): the work is messages times
    keys, and the client chooses the keys.  ``largest``: (sequence number, UID) of the mailbox's
    last message, what ``*`` means, when ``contexts`` are only some of its messages (an
    updating context re-checking the changed ones, RFC 5267).
    """
    if pace is None:
        pace = _no_pause
    if largest is None:
        largest = (max((c.seq for c in contexts), default=0), max((c.ref.uid for c in contexts), default=0))
    scope = _Scope(
        largest_seq=largest[0],
        largest_uid=largest[1],
        saved_uids=frozenset(saved_uids),
        now=time.time() if now is None else now,
        thread_ids=thread_ids or {},
    )
    matched: set[int] = set()  # seq numbers
    undecided: list[_Candidate] = []
    for context in contexts:
        candidate = _Candidate(context, frozenset(flag.lower() for flag in context.ref.flags))
        verdict = _evaluate(criteria, candidate, scope)
        if verdict is None:
            undecided.append(candidate)
        elif verdict:
            matched.add(context.seq)
        await pace()

    still_undecided: list[_Candidate] = []
    for start in range(0, len(undecided), BATCH):
        batch = undecided[start : start + BATCH]
        summaries = await loader.summaries([c.context.ref for c in batch])
        for candidate in batch:
            candidate.summary = summaries.get(candidate.context.ref.message_id)
            if candidate.summary is None:
                continue  # vanished
            verdict = _evaluate(criteria, candidate, scope)
            if verdict is None:
                still_undecided.append(candidate)
            elif verdict:
                matched.add(candidate.context.seq)
            await pace()

    for candidate in still_undecided:
        candidate.raw = raw = await loader.blob(candidate.context.ref)
        if raw is not None:
            # Decoding and searching a big message's text is heavy work (tidings/offload.py).
            if is_heavy(len(raw)):
                verdict = await offload(_evaluate, criteria, candidate, scope)
            else:
                verdict = _evaluate(criteria, candidate, scope)
            if verdict:
                matched.add(candidate.context.seq)
        candidate.raw = None  # keep at most one message's bytes alive
        await pace()

    return [c for c in contexts if c.seq in matched]


async def _no_pause() -> None:
    return None


def _evaluate(node: SearchCriterion, candidate: _Candidate, scope: _Scope) -> bool | None:
    """Three-valued (Kleene) evaluation: ``None`` when the data loaded so far cannot decide."""
    if isinstance(node, SearchKey):
        return _evaluate_key(node, candidate, scope)
    if isinstance(node, Not):
        inner = _evaluate(node.key, candidate, scope)
        return None if inner is None else not inner
    if isinstance(node, Or):
        left = _evaluate(node.left, candidate, scope)
        if left is True:
            return True
        right = _evaluate(node.right, candidate, scope)
        if right is True:
            return True
        return None if left is None or right is None else False
    result: bool | None = True
    for key in node.keys:
        verdict = _evaluate(key, candidate, scope)
        if verdict is False:
            return False
        if verdict is None:
            result = None
    return result


def _evaluate_key(key: SearchKey, candidate: _Candidate, scope: _Scope) -> bool | None:
    name, args = key.name, key.args
    ref = candidate.context.ref
    if name in _SUMMARY_KEYS:
        summary = candidate.summary
        return None if summary is None else _summary_key(name, args, summary)
    if name in _BLOB_KEYS:
        if candidate.raw is None or candidate.summary is None:
            return None
        return _blob_key(name, args, candidate.raw, candidate.summary)
    if name in _FLAG_KEYS:
        flag, wanted = _FLAG_KEYS[name]
        return (flag in candidate.flags) == wanted
    if name == "ALL" or name == "SAVEDATESUPPORTED":
        return True  # every mailbox keeps save dates (RFC 8514)
    if name == "RECENT":
        return candidate.context.recent
    if name == "NEW":
        return candidate.context.recent and "\\seen" not in candidate.flags  # RECENT UNSEEN
    if name == "OLD":
        return not candidate.context.recent
    if name == "KEYWORD":
        return str(args[0]).lower() in candidate.flags
    if name == "UNKEYWORD":
        return str(args[0]).lower() not in candidate.flags
    if name == "LARGER":
        return ref.size > _number(args[0])
    if name == "SMALLER":
        return ref.size < _number(args[0])
    if name in ("BEFORE", "ON", "SINCE"):
        return _compare_day(name, _utc_day(ref.internal_date), args[0])
    if name in ("SAVEDBEFORE", "SAVEDON", "SAVEDSINCE"):
        return _compare_day(name[5:], _utc_day(ref.save_date), args[0])
    if name == "OLDER":
        return scope.now - ref.internal_date >= _number(args[0])
    if name == "YOUNGER":
        return scope.now - ref.internal_date <= _number(args[0])
    if name == "UID":
        return scope.in_set(args[0], ref.uid, scope.largest_uid, ref.uid)
    if name == "SEQSET":
        return scope.in_set(args[0], candidate.context.seq, scope.largest_seq, ref.uid)
    if name == "MODSEQ":
        return ref.modseq >= _number(args[0])
    if name == "EMAILID":
        return email_id(ref) == args[0]
    if name == "THREADID":
        thread = scope.thread_ids.get(ref.message_id)
        return thread is not None and thread_id(thread) == args[0]
    raise ValueError(f"unknown search key {name}")


def _number(value: object) -> int:
    assert isinstance(value, int)
    return value


def _utc_day(timestamp: float) -> datetime.date:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).date()


def _compare_day(relation: str, day: datetime.date, wanted: object) -> bool:
    assert isinstance(wanted, datetime.date)
    if relation == "BEFORE":
        return day < wanted
    if relation == "ON":
        return day == wanted
    return day >= wanted  # SINCE: "within or later than the specified date"


def _summary_key(name: str, args: tuple[object, ...], summary: MessageSummary) -> bool:
    if name.startswith("SENT"):
        if summary.sent_date is None:
            return False
        # "disregarding time and timezone": the calendar day the Date: header names.
        return _compare_day(name[4:], summary.sent_date.date(), args[0])
    if name == "SUBJECT":
        needle = str(args[0]).casefold()
        return needle in summary.subject.casefold() if needle else bool(summary.subject)
    return address_list_contains(summary.envelope, name, str(args[0]))


def _blob_key(name: str, args: tuple[object, ...], raw: bytes, summary: MessageSummary) -> bool:
    if name == "HEADER":
        return header_contains(raw, summary, str(args[0]), str(args[1]))
    if name == "BODY":
        return body_contains(raw, summary, str(args[0]))
    return text_contains(raw, summary, str(args[0]))


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class SearchReply:
    """What to send for a SEARCH (possibly ``b""``) and, for RETURN (SAVE), the UIDs ``$`` must
    stand for from now on (``None``: leave the saved result alone)."""

    response: bytes
    saved_uids: list[int] | None = None


def search_reply(command: Search, matched: Sequence[MessageContext], *, esearch: bool = False) -> SearchReply:
    """The untagged reply to ``command`` given its matches (in sequence order).

    ``esearch``: the client speaks IMAP4rev2, which answers even a plain SEARCH with
    ``* ESEARCH ... ALL`` (RFC 9051 6.4.4); RETURN (...) always gets ESEARCH (RFC 4731).
    """
    numbers = [c.ref.uid if command.uid else c.seq for c in matched]
    modseq = max((c.ref.modseq for c in matched), default=None) if uses_modseq(command.criteria) else None
    options = command.return_options
    if options is None:
        if not esearch:
            return SearchReply(format_search(numbers, modseq))
        options = ("ALL",)
    if context_only(options):
        return SearchReply(esearch_header(command.tag, command.uid) + b"\r\n")
    options = result_options(options)
    partial = command.partial
    saved = saved_uids(options, matched, partial) if "SAVE" in options else None
    if set(options) == {"SAVE"}:
        # RFC 5182 section 2.1: RETURN (SAVE) alone produces no ESEARCH response.
        return SearchReply(b"", saved)
    response = format_esearch(command.tag, numbers, options, uid=command.uid, modseq=modseq, partial=partial)
    return SearchReply(response, saved)


def result_options(options: Sequence[str]) -> tuple[str, ...]:
    """The RETURN options that ask for result data: the RFC 5267 UPDATE and CONTEXT left out;
    ``RETURN ()`` (or only the CONTEXT hint) means ALL (RFC 4731 section 3.1)."""
    return tuple(o for o in options if o not in ("UPDATE", "CONTEXT")) or ("ALL",)


def context_only(options: Sequence[str]) -> bool:
    """RETURN (UPDATE) with no result option: the reply is the bare ESEARCH correlator and the
    results follow as ADDTO updates (RFC 5267 section 4.3)."""
    return "UPDATE" in options and all(o in ("UPDATE", "CONTEXT") for o in options)


def esearch_header(tag: str, uid: bool) -> bytes:
    return b"* ESEARCH (TAG " + quote(tag) + b")" + (b" UID" if uid else b"")


def saved_uids(
    options: Sequence[str], matched: Sequence[MessageContext], partial: PartialRange | None = None
) -> list[int]:
    """What ``$`` holds after RETURN (SAVE ...): with MIN and/or MAX but neither ALL nor COUNT,
    only the minimum and/or maximum (RFC 5182 section 2.1); with PARTIAL, only the messages of
    its window (RFC 9394 section 3.1); otherwise every match.  ``matched`` is in result order."""
    uids = [c.ref.uid for c in matched]
    if partial is not None:
        return sorted(partial.window(uids))
    if not uids or "ALL" in options or "COUNT" in options or not {"MIN", "MAX"} & set(options):
        return sorted(uids)
    chosen = []
    if "MIN" in options:
        chosen.append(uids[0])
    if "MAX" in options and uids[-1] not in chosen:
        chosen.append(uids[-1])
    return sorted(chosen)


def format_search(numbers: Sequence[int], modseq: int | None = None) -> bytes:
    """``* SEARCH 2 3 5 (MODSEQ 917162500)``; the MODSEQ part only when there are matches."""
    line = b"* SEARCH"
    if numbers:
        line += b" " + b" ".join(b"%d" % n for n in numbers)
        if modseq is not None:
            line += b" (MODSEQ %d)" % modseq
    return line + b"\r\n"


def format_esearch(
    tag: str,
    numbers: Sequence[int],
    options: Iterable[str],
    *,
    uid: bool,
    modseq: int | None = None,
    ordered: bool = False,
    partial: PartialRange | None = None,
) -> bytes:
    """``* ESEARCH (TAG "a1") UID MIN 2 MAX 9 COUNT 3 ALL 2,5:6`` (RFC 4731 section 3.1).

    MIN, MAX and ALL are left out when nothing matched; COUNT never is.  ``ordered`` (ESORT,
    RFC 5267): ``numbers`` are in sort order, MIN/MAX are the first and last of that order
    and ALL keeps the order, compressing only ascending runs.  ``partial`` (RFC 9394 section
    3.1): ``PARTIAL (range set)`` with the numbers at the window's positions, ``NIL`` for none.
    """
    wanted = set(options) or {"ALL"}
    line = b"* ESEARCH (TAG " + quote(tag) + b")"
    if uid:
        line += b" UID"
    if numbers:
        if "MIN" in wanted:
            line += b" MIN %d" % (numbers[0] if ordered else min(numbers))
        if "MAX" in wanted:
            line += b" MAX %d" % (numbers[-1] if ordered else max(numbers))
    if "COUNT" in wanted:
        line += b" COUNT %d" % len(numbers)
    if numbers and "ALL" in wanted:
        text = format_ordered_set(numbers) if ordered else format_uid_set(numbers)
        line += b" ALL " + text.encode("ascii")
    if partial is not None:
        window = partial.window(list(numbers))
        text = (format_ordered_set(window) if ordered else format_uid_set(window)) if window else "NIL"
        line += f" PARTIAL ({partial} {text})".encode("ascii")
    if numbers and modseq is not None:
        line += b" MODSEQ %d" % modseq
    return line + b"\r\n"


def format_ordered_set(numbers: Sequence[int]) -> str:
    """A sequence-set listing ``numbers`` in the given order: ascending runs become ``a:b``."""
    runs: list[str] = []
    start = previous = None
    for number in numbers:
        if previous is not None and number == previous + 1:
            previous = number
            continue
        if start is not None:
            runs.append(str(start) if start == previous else f"{start}:{previous}")
        start = previous = number
    if start is not None:
        runs.append(str(start) if start == previous else f"{start}:{previous}")
    return ",".join(runs)
