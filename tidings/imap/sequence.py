"""IMAP sequence sets: parsing, membership, resolution and compact formatting.

A sequence set (RFC 3501 section 9, ``sequence-set``; RFC 9051 section 9) names messages either by
message sequence number or by UID, e.g. ``1:3,5,7:*``.  RFC 5182 adds ``$``, "the result saved by
the last SEARCH ... RETURN (SAVE)".

Rules worth remembering (RFC 9051 section 6.4.8 and the ``seq-range`` ABNF comment):

* ``*`` stands for the largest number in use: the number of messages for sequence numbers, the
  largest UID in the mailbox for UIDs (so it only makes sense against a non-empty mailbox).
* A range may be written in either order: ``4:2`` is ``2:4``.
* ``n:*`` with ``n`` larger than the largest UID still includes the largest UID, because it means
  ``largest:n``.

This module is pure: no I/O, no knowledge of mailboxes beyond the ``largest`` number handed in.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

MAX_NUMBER = 0xFFFFFFFF
"""``nz-number`` is a 32-bit unsigned value (RFC 9051 section 9)."""

MAX_RANGES = 16_384
"""Elements one sequence set may have; more is a :class:`SequenceSetError` (a BAD).  RFC 7162
section 4 asks clients to keep command lines within 8,192 octets, which holds at most about 4,000
elements, so no client that follows it comes near; the bound keeps the work a set costs (parsing,
merging, matching a mailbox's UIDs) proportional to a size we chose."""

STAR: None = None
"""A bound of ``None`` in a :class:`SequenceRange` means ``*``."""

_ELEMENT = re.compile(r"(\d+|\*)(?::(\d+|\*))?")
_NUMBERS = re.compile(r"[1-9][0-9]{0,9}(?:,[1-9][0-9]{0,9})*")


class SequenceSetError(ValueError):
    """The text is not a valid ``sequence-set``."""


class SequenceRange(NamedTuple):
    """One element of a sequence set: ``start:end`` as written, ``None`` standing for ``*``.

    A single number ``n`` is stored as ``SequenceRange(n, n)``; a lone ``*`` as ``(None, None)``.
    A tuple rather than a dataclass: a set may hold thousands, made and read in tight loops.
    """

    start: int | None
    end: int | None

    def bounds(self, largest: int) -> tuple[int, int]:
        """The inclusive (low, high) bounds once ``*`` is replaced by ``largest``."""
        low = largest if self.start is None else self.start
        high = largest if self.end is None else self.end
        return (low, high) if low <= high else (high, low)

    def __str__(self) -> str:
        first = "*" if self.start is None else str(self.start)
        if self.start == self.end:
            return first
        return f"{first}:{'*' if self.end is None else self.end}"


_as_range = functools.partial(tuple.__new__, SequenceRange)
"""``(start, end)`` -> :class:`SequenceRange` without a Python-level call per element."""


@dataclass(frozen=True)
class SequenceSet:
    """A parsed ``sequence-set``, kept as written so it can be resolved against any mailbox size.

    ``includes_saved`` is true when the set mentions ``$`` (RFC 5182); the caller supplies the
    saved numbers when resolving.
    """

    ranges: tuple[SequenceRange, ...]
    includes_saved: bool = False

    @classmethod
    def parse(cls, text: str | bytes) -> SequenceSet:
        """Parse ``1:3,5,7:*,$``.  Raises :class:`SequenceSetError` on anything else."""
        if isinstance(text, bytes):
            try:
                text = text.decode("ascii")
            except UnicodeDecodeError as exc:
                raise SequenceSetError("sequence set must be ASCII") from exc
        if not text:
            raise SequenceSetError("empty sequence set")
        elements = text.split(",")
        if len(elements) > MAX_RANGES:
            raise SequenceSetError(f"too many ranges in a sequence set (at most {MAX_RANGES})")
        if _NUMBERS.fullmatch(text):
            # Only numbers (a client's list of UIDs): converted in C, thousands at a time.
            numbers = list(map(int, elements))
            if max(numbers) <= MAX_NUMBER:
                return cls(tuple(map(_as_range, zip(numbers, numbers, strict=True))))
        ranges: list[SequenceRange] = []
        saved = False
        for element in elements:
            if element == "$":
                saved = True
                continue
            match = _ELEMENT.fullmatch(element)
            if match is None:
                raise SequenceSetError(f"invalid sequence set element {element!r}")
            start = _parse_bound(match.group(1))
            end = start if match.group(2) is None else _parse_bound(match.group(2))
            ranges.append(SequenceRange(start, end))
        return cls(tuple(ranges), saved)

    @classmethod
    def from_numbers(cls, numbers: Iterable[int]) -> SequenceSet:
        """A compact set holding exactly ``numbers`` (e.g. to remember a SEARCH result)."""
        return cls(tuple(SequenceRange(low, high) for low, high in _runs(sorted(set(numbers)))))

    def resolve(self, largest: int, saved: Iterable[int] | None = None) -> list[tuple[int, int]]:
        """Sorted, merged, inclusive ``(low, high)`` ranges within ``1..largest``.

        Numbers above ``largest`` are dropped: such messages do not exist.  For message sequence
        numbers the session should check :meth:`mentions_beyond` first, since RFC 9051 makes those
        an error rather than a silent no-op.  ``saved`` supplies the numbers ``$`` stands for
        (treated as empty when ``None``).
        """
        spans = [(max(low, 1), min(high, largest)) for low, high in self._spans(largest)]
        spans = [(low, high) for low, high in spans if low <= high]
        if self.includes_saved and saved is not None:
            spans.extend(_runs(sorted(n for n in set(saved) if 1 <= n <= largest)))
        return _merge(spans)

    def iter_numbers(self, largest: int, saved: Iterable[int] | None = None) -> Iterator[int]:
        """Every number in the set, ascending, without duplicates, within ``1..largest``."""
        for low, high in self.resolve(largest, saved):
            yield from range(low, high + 1)

    def contains(self, number: int, largest: int, saved: Iterable[int] | None = None) -> bool:
        """Whether ``number`` is in the set when ``*`` means ``largest``.

        Unlike :meth:`resolve` this does not clip to ``largest``: a UID set ``5:10`` contains 8
        even if the caller passes a smaller ``largest``.
        """
        for element in self.ranges:
            low, high = element.bounds(largest)
            if low <= number <= high:
                return True
        return self.includes_saved and saved is not None and number in set(saved)

    def select(self, ascending: Iterable[int], largest: int) -> list[int]:
        """The numbers of ``ascending`` (sorted, e.g. expunged UIDs) that are in the set, with
        ``*`` meaning ``largest``; like :meth:`contains` (no clipping to ``largest``, ``$`` not
        included) for each number, but in one merge of the two sorted lists: O(numbers + ranges)
        rather than their product, which a client controls (QRESYNC known UIDs, VANISHED)."""
        spans = _merge(self._spans(largest))
        out: list[int] = []
        index = 0
        for number in ascending:
            while index < len(spans) and spans[index][1] < number:
                index += 1
            if index == len(spans):
                break
            if spans[index][0] <= number:
                out.append(number)
        return out

    def _spans(self, largest: int) -> list[tuple[int, int]]:
        """Each element's inclusive (low, high) once ``*`` means ``largest`` (as
        :meth:`SequenceRange.bounds`, inlined: this runs once per element)."""
        out = []
        for start, end in self.ranges:
            low = largest if start is None else start
            high = largest if end is None else end
            out.append((low, high) if low <= high else (high, low))
        return out

    def mentions_beyond(self, largest: int) -> bool:
        """True if an explicit number exceeds ``largest`` (a BAD for message sequence numbers)."""
        return any(
            bound is not None and bound > largest
            for element in self.ranges
            for bound in (element.start, element.end)
        )

    def __str__(self) -> str:
        parts = [str(element) for element in self.ranges]
        if self.includes_saved:
            parts.append("$")
        return ",".join(parts)


def _parse_bound(text: str) -> int | None:
    if text == "*":
        return STAR
    if len(text) > 10 or text.startswith("0"):
        raise SequenceSetError(f"invalid number {text!r} in sequence set")
    value = int(text)
    if value > MAX_NUMBER:
        raise SequenceSetError(f"number {text} out of range")
    return value


def _runs(sorted_numbers: Iterable[int]) -> Iterator[tuple[int, int]]:
    """Collapse an ascending list into consecutive runs."""
    start = previous = None
    for number in sorted_numbers:
        if previous is not None and number == previous + 1:
            previous = number
            continue
        if start is not None and previous is not None:
            yield (start, previous)
        start = previous = number
    if start is not None and previous is not None:
        yield (start, previous)


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    spans.sort()
    merged: list[tuple[int, int]] = []
    for low, high in spans:
        if merged and low <= merged[-1][1] + 1:
            if high > merged[-1][1]:
                merged[-1] = (merged[-1][0], high)
        else:
            merged.append((low, high))
    return merged


def format_uid_set(numbers: Iterable[int]) -> str:
    """Compact ``sequence-set`` text for COPYUID, APPENDUID, VANISHED and ESEARCH (``1:3,5``).

    The input need not be sorted or unique; the output is ascending.  Empty input gives ``""``,
    which the caller must not send (an empty set is not valid IMAP syntax).
    """
    return ",".join(str(low) if low == high else f"{low}:{high}" for low, high in _runs(sorted(set(numbers))))
