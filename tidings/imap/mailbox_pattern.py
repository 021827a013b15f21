"""LIST and LSUB mailbox patterns (RFC 9051 6.3.9): ``*`` matches anything, ``%`` anything but the
hierarchy delimiter, every other character itself.

A pattern is a client's input and a name may be 1,000 characters long, so matching must never
backtrack: a regular expression such as ``.*a.*a.*a ... b`` takes time exponential in the number of
wildcards (a dozen of them against a 300-character name would keep the server busy for hours).
Here the set of name positions the pattern can have reached is kept as the bits of one integer and
advanced element by element, so a match costs one pass over the pattern with a few operations on a
``len(name)``-bit integer per character: linear in the pattern, whatever it holds.

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

_STAR = "*"
_PERCENT = "%"


@dataclass(frozen=True)
class MailboxPattern:
    """A compiled pattern; ``MailboxPattern.compile("INBOX/%").matches("INBOX/Sent")``."""

    elements: tuple[str, ...]  # literal runs, and "*" or "%" for each run of wildcards
    literal_length: int  # characters a name needs at least
    delimiter: str = "/"

    @classmethod
    def compile(cls, pattern: str, delimiter: str = "/") -> MailboxPattern:
        elements: list[str] = []
        literal: list[str] = []
        wildcard = ""
        for char in pattern:
            if char in (_STAR, _PERCENT):
                if literal:
                    elements.append("".join(literal))
                    literal = []
                # a run of wildcards is one: "*" if it holds any "*", else "%"
                wildcard = _STAR if _STAR in (char, wildcard) else _PERCENT
                continue
            if wildcard:
                elements.append(wildcard)
                wildcard = ""
            literal.append(char)
        if literal:
            elements.append("".join(literal))
        if wildcard:
            elements.append(wildcard)
        length = sum(len(element) for element in elements if element not in (_STAR, _PERCENT))
        return cls(tuple(elements), length, delimiter)

    def matches(self, name: str) -> bool:
        """Whether the whole of ``name`` matches.

        Bit ``i`` of ``reached`` says that the elements seen so far can match ``name[:i]``.
        """
        size = len(name)
        if self.literal_length > size:
            return False
        every = (1 << (size + 1)) - 1
        at: dict[str, int] = {}  # character -> bits of the positions holding it
        for index, char in enumerate(name):
            at[char] = at.get(char, 0) | 1 << index
        # bits of the positions a "%" may step over (anything but the delimiter)
        steppable = ((1 << size) - 1) & ~at.get(self.delimiter, 0)
        reached = 1
        for element in self.elements:
            if element == _STAR:
                reached = every & ~((reached & -reached) - 1)  # from the first reached position on
            elif element == _PERCENT:
                # Adding `steppable` carries each reached bit through its run of non-delimiter
                # positions up to the next delimiter; the XOR keeps the positions carried over.
                start = reached & steppable
                reached |= ((start + steppable) ^ steppable) & every
            else:
                starts = every  # positions where the literal run occurs
                for offset, char in enumerate(element):
                    starts &= at.get(char, 0) >> offset
                reached = (reached & starts) << len(element)
            if not reached:
                return False
        return bool(reached >> size & 1)
