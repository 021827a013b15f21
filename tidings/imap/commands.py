"""Typed values for parsed IMAP commands: what :mod:`tidings.imap.parser` produces.

One frozen dataclass per command (RFC 3501 section 6, RFC 9051 section 6, plus the extensions
named on each class).  Every command has a ``tag`` field and a ``name`` class variable holding the
command's canonical upper-case name; ``UID FETCH`` and friends are the plain classes with
``uid=True``.  The search-key tree, fetch items and their helpers live here as well, because they
are part of what a command says.

Nothing here performs I/O or knows about mailboxes; the session decides what each value means
for the store.  Mailbox names are Python ``str`` as received (UTF-8 decoded, *not* modified-UTF-7
decoded, and not INBOX-normalised: see :func:`normalise_mailbox_name` and
:mod:`tidings.imap.mutf7`).
"""

from __future__ import annotations

import datetime
import enum
import re
from dataclasses import dataclass, field
from typing import ClassVar, TypeAlias

from tidings.imap.sequence import SequenceSet

# --------------------------------------------------------------------------- helpers


def normalise_mailbox_name(name: str, delimiter: str = "/") -> str:
    """Map any capitalisation of ``INBOX`` (and of an ``INBOX<delimiter>`` prefix) to ``INBOX``.

    RFC 9051 section 5.1: "INBOX" is case-insensitive, every other name is case-sensitive.
    """
    if name.upper() == "INBOX":
        return "INBOX"
    prefix = "INBOX" + delimiter
    if delimiter and name[: len(prefix)].upper() == prefix:
        return prefix + name[len(prefix) :]
    return name


_HEADER_ATOM = re.compile(r"[!#$&'+\-.0-9:;<=>?@A-Z^_`a-z|~]+")


def _format_header_name(name: str) -> str:
    """An atom when the name is a plain atom, a quoted string otherwise."""
    if _HEADER_ATOM.fullmatch(name) and name.upper() != "NIL":
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --------------------------------------------------------------------------- search keys


@dataclass(frozen=True)
class SearchKey:
    """One leaf search key (RFC 9051 section 6.4.4), ``name`` upper-case.

    ``args`` by key:

    * no arguments: ALL ANSWERED DELETED DRAFT FLAGGED NEW OLD RECENT SEEN UNANSWERED UNDELETED
      UNDRAFT UNFLAGGED UNSEEN SAVEDATESUPPORTED
    * ``(str,)``: BCC BODY CC FROM SUBJECT TEXT TO, EMAILID THREADID (RFC 8474)
    * ``(str, str)``: HEADER (field-name, value)
    * ``(str,)`` flag keyword: KEYWORD UNKEYWORD
    * ``(datetime.date,)``: BEFORE ON SINCE SENTBEFORE SENTON SENTSINCE, SAVEDBEFORE SAVEDON
      SAVEDSINCE (RFC 8514)
    * ``(int,)``: LARGER SMALLER, OLDER YOUNGER (seconds, RFC 5032)
    * ``(SequenceSet,)``: UID, and ``SEQSET`` for a bare message-set key (``1:5``, ``$``)
    * ``(int, str | None, str | None)``: MODSEQ (mod-sequence, entry name, entry type; RFC 7162)
    """

    name: str
    args: tuple[object, ...] = ()


@dataclass(frozen=True)
class And:
    """All of ``keys`` must match (a parenthesised list, or the whole search program)."""

    keys: tuple[SearchCriterion, ...]


@dataclass(frozen=True)
class Or:
    """``OR left right``."""

    left: SearchCriterion
    right: SearchCriterion


@dataclass(frozen=True)
class Not:
    """``NOT key``."""

    key: SearchCriterion


SearchCriterion: TypeAlias = SearchKey | And | Or | Not

# --------------------------------------------------------------------------- fetch items


@dataclass(frozen=True)
class FetchAttribute:
    """A fetch item without a section: ENVELOPE, FLAGS, INTERNALDATE, RFC822, RFC822.HEADER,
    RFC822.SIZE, RFC822.TEXT, BODY, BODYSTRUCTURE, UID, MODSEQ, EMAILID, THREADID, SAVEDATE."""

    name: str

    def response_name(self) -> str:
        return self.name


@dataclass(frozen=True)
class Section:
    """A body section spec (RFC 9051 section 6.4.5, ``section-spec``).

    ``part`` is the part path (``(1, 2, 3)`` for ``1.2.3``, empty for the whole message);
    ``text`` is one of ``None``, ``"HEADER"``, ``"HEADER.FIELDS"``, ``"HEADER.FIELDS.NOT"``,
    ``"TEXT"``, ``"MIME"``; ``fields`` holds the header names for the HEADER.FIELDS forms, spelled
    as the client sent them.
    """

    part: tuple[int, ...] = ()
    text: str | None = None
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        spec = ".".join(str(number) for number in self.part)
        if self.text:
            spec = f"{spec}.{self.text}" if spec else self.text
        if self.text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
            spec += " (" + " ".join(_format_header_name(name) for name in self.fields) + ")"
        return spec


@dataclass(frozen=True)
class BodySection:
    """``BODY[...]``, ``BODY.PEEK[...]``, ``BINARY[...]`` or ``BINARY.PEEK[...]`` (RFC 3516),
    with an optional ``<offset.length>`` partial."""

    section: Section
    peek: bool = False
    binary: bool = False
    partial: tuple[int, int] | None = None  # (offset, length)

    def response_name(self) -> str:
        """The label the FETCH response must use: no ``.PEEK``, and only ``<origin>`` of a
        partial (RFC 9051 section 7.5.2)."""
        label = f"{'BINARY' if self.binary else 'BODY'}[{self.section}]"
        if self.partial is not None:
            label += f"<{self.partial[0]}>"
        return label

    @property
    def sets_seen(self) -> bool:
        """Fetching a non-peek body section sets ``\\Seen`` on a read-write mailbox."""
        return not self.peek


@dataclass(frozen=True)
class BinarySize:
    """``BINARY.SIZE[part]`` (RFC 3516)."""

    part: tuple[int, ...] = ()

    def response_name(self) -> str:
        return "BINARY.SIZE[" + ".".join(str(number) for number in self.part) + "]"


FetchItem: TypeAlias = FetchAttribute | BodySection | BinarySize

FETCH_MACROS: dict[str, tuple[str, ...]] = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}

SIMPLE_FETCH_ATTRIBUTES = frozenset(
    {
        "ENVELOPE",
        "FLAGS",
        "INTERNALDATE",
        "RFC822",
        "RFC822.HEADER",
        "RFC822.SIZE",
        "RFC822.TEXT",
        "BODY",
        "BODYSTRUCTURE",
        "UID",
        "MODSEQ",
        "EMAILID",
        "THREADID",
        "SAVEDATE",
    }
)

# --------------------------------------------------------------------------- commands


@dataclass(frozen=True, kw_only=True)
class Command:
    """Base of every parsed command."""

    name: ClassVar[str] = ""
    tag: str


@dataclass(frozen=True, kw_only=True)
class Capability(Command):
    name: ClassVar[str] = "CAPABILITY"


@dataclass(frozen=True, kw_only=True)
class Noop(Command):
    name: ClassVar[str] = "NOOP"


@dataclass(frozen=True, kw_only=True)
class Logout(Command):
    name: ClassVar[str] = "LOGOUT"


@dataclass(frozen=True, kw_only=True)
class StartTls(Command):
    """STARTTLS.  The parser pauses after it; see ``ImapParser.discard_buffered``."""

    name: ClassVar[str] = "STARTTLS"


@dataclass(frozen=True, kw_only=True)
class Authenticate(Command):
    """AUTHENTICATE mechanism [initial-response] (RFC 9051 section 6.2.2; SASL-IR RFC 4959).

    ``initial_response`` is the base64-decoded response, ``b""`` for ``=``, ``None`` if absent.
    The parser pauses after it; the session drives the exchange with ``expect_raw_line()``.
    """

    name: ClassVar[str] = "AUTHENTICATE"
    mechanism: str
    initial_response: bytes | None = None


@dataclass(frozen=True, kw_only=True)
class Login(Command):
    name: ClassVar[str] = "LOGIN"
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class Enable(Command):
    """ENABLE (RFC 5161); capability names upper-cased."""

    name: ClassVar[str] = "ENABLE"
    capabilities: tuple[str, ...]


@dataclass(frozen=True)
class QresyncParameters:
    """``QRESYNC (uidvalidity modseq [known-uids] [(seqs uids)])`` (RFC 7162 section 3.2.5)."""

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    sequence_match: tuple[SequenceSet, SequenceSet] | None = None  # (known seqs, their UIDs)


@dataclass(frozen=True, kw_only=True)
class Select(Command):
    """SELECT mailbox [(CONDSTORE | QRESYNC (...))] (RFC 9051 6.3.2, RFC 7162)."""

    name: ClassVar[str] = "SELECT"
    mailbox: str
    condstore: bool = False
    qresync: QresyncParameters | None = None

    @property
    def read_only(self) -> bool:
        return False


@dataclass(frozen=True, kw_only=True)
class Examine(Select):
    name: ClassVar[str] = "EXAMINE"

    @property
    def read_only(self) -> bool:
        return True


@dataclass(frozen=True, kw_only=True)
class Create(Command):
    """CREATE mailbox [(USE (\\Drafts ...))] (RFC 6154 section 3)."""

    name: ClassVar[str] = "CREATE"
    mailbox: str
    special_use: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Delete(Command):
    name: ClassVar[str] = "DELETE"
    mailbox: str


@dataclass(frozen=True, kw_only=True)
class Rename(Command):
    name: ClassVar[str] = "RENAME"
    mailbox: str
    new_name: str


@dataclass(frozen=True, kw_only=True)
class Subscribe(Command):
    name: ClassVar[str] = "SUBSCRIBE"
    mailbox: str


@dataclass(frozen=True, kw_only=True)
class Unsubscribe(Command):
    name: ClassVar[str] = "UNSUBSCRIBE"
    mailbox: str


@dataclass(frozen=True, kw_only=True)
class List(Command):
    """LIST, including LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819), SPECIAL-USE (RFC 6154).

    ``selection``: upper-case subset of SUBSCRIBED, REMOTE, RECURSIVEMATCH, SPECIAL-USE.
    ``return_options``: upper-case subset of SUBSCRIBED, CHILDREN, SPECIAL-USE, STATUS.
    ``status_items``: the STATUS items when ``"STATUS"`` is in ``return_options``.
    ``extended``: the client used extended syntax (selection options, several patterns or
    RETURN), so the response may carry extended data.
    """

    name: ClassVar[str] = "LIST"
    reference: str
    patterns: tuple[str, ...]
    selection: frozenset[str] = frozenset()
    return_options: frozenset[str] = frozenset()
    status_items: tuple[str, ...] = ()
    extended: bool = False


@dataclass(frozen=True, kw_only=True)
class Lsub(Command):
    name: ClassVar[str] = "LSUB"
    reference: str
    pattern: str


@dataclass(frozen=True, kw_only=True)
class Namespace(Command):
    name: ClassVar[str] = "NAMESPACE"


STATUS_ITEMS = frozenset(
    {
        "MESSAGES",
        "RECENT",
        "UIDNEXT",
        "UIDVALIDITY",
        "UNSEEN",
        "DELETED",
        "SIZE",
        "HIGHESTMODSEQ",
        "APPENDLIMIT",
        "MAILBOXID",  # RFC 8474 section 4.2
    }
)


@dataclass(frozen=True, kw_only=True)
class Status(Command):
    """STATUS mailbox (items); items upper-case, from :data:`STATUS_ITEMS`."""

    name: ClassVar[str] = "STATUS"
    mailbox: str
    items: tuple[str, ...]


@dataclass(frozen=True)
class CatenatePart:
    """One part of ``CATENATE (...)`` (RFC 4469 section 5): ``TEXT`` bytes, or the text of an
    IMAP ``URL`` whose bytes the server puts in its place."""

    text: bytes | None = field(default=None, repr=False)
    url: str | None = None


@dataclass(frozen=True)
class AppendMessage:
    """One message of an APPEND (MULTIAPPEND, RFC 3502, allows several).

    ``flags`` as sent (system flags canonically capitalised); ``binary`` when sent as a
    ``~{n}`` literal8 (RFC 3516), which may contain NUL and unencoded 8-bit parts.  With
    CATENATE (RFC 4469) ``data`` is empty and ``parts`` lists what to join.
    """

    data: bytes = field(repr=False)
    flags: tuple[str, ...] = ()
    internal_date: datetime.datetime | None = None
    binary: bool = False
    parts: tuple[CatenatePart, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Append(Command):
    name: ClassVar[str] = "APPEND"
    mailbox: str
    messages: tuple[AppendMessage, ...]


@dataclass(frozen=True, kw_only=True)
class Idle(Command):
    """IDLE (RFC 2177).  The parser pauses after it; the session sends ``+ idling`` and then
    calls ``expect_raw_line()`` to receive ``DONE``."""

    name: ClassVar[str] = "IDLE"


@dataclass(frozen=True, kw_only=True)
class Check(Command):
    name: ClassVar[str] = "CHECK"


@dataclass(frozen=True, kw_only=True)
class Close(Command):
    name: ClassVar[str] = "CLOSE"


@dataclass(frozen=True, kw_only=True)
class Unselect(Command):
    name: ClassVar[str] = "UNSELECT"


@dataclass(frozen=True, kw_only=True)
class Expunge(Command):
    """EXPUNGE, or ``UID EXPUNGE set`` (RFC 4315) when ``uid`` is true."""

    name: ClassVar[str] = "EXPUNGE"
    uid: bool = False
    uid_set: SequenceSet | None = None


@dataclass(frozen=True)
class PartialRange:
    """``partial-range`` (RFC 9394 section 3.1): a window of 1-based positions in a result,
    ``first:last`` counted from its start, or ``-first:-last`` counted back from its end
    (``-1`` is the last result).  Both numbers keep the sign and order the client sent, since
    the reply echoes the range as given."""

    first: int
    last: int

    def __str__(self) -> str:
        return f"{self.first}:{self.last}"

    def window(self, items: list) -> list:
        """The items at the positions of this range, in their order in ``items``."""
        low, high = sorted((abs(self.first), abs(self.last)))
        if self.first > 0:
            return items[low - 1 : high]
        count = len(items)
        return items[max(count - high, 0) : max(count - low + 1, 0)]


@dataclass(frozen=True, kw_only=True)
class Search(Command):
    """[UID] SEARCH [RETURN (...)] [CHARSET x] keys (RFC 9051 6.4.4, ESEARCH RFC 4731,
    SEARCHRES RFC 5182, PARTIAL RFC 9394).

    ``return_options`` is ``None`` without RETURN (classic ``* SEARCH`` reply) and otherwise the
    upper-case options, possibly empty (``RETURN ()`` means ``ALL``); ``PARTIAL`` among them
    comes with its range in ``partial``.  ``criteria`` is always an
    :class:`And`.  ``charset`` is upper-case or ``None``; strings in keys are already decoded.
    """

    name: ClassVar[str] = "SEARCH"
    uid: bool = False
    charset: str | None = None
    return_options: tuple[str, ...] | None = None
    partial: PartialRange | None = None
    criteria: And


@dataclass(frozen=True, kw_only=True)
class Fetch(Command):
    """[UID] FETCH set items [(CHANGEDSINCE n [VANISHED] [PARTIAL range])] (RFC 9051 6.4.5,
    RFC 7162, RFC 9394 section 3.2).

    Macros (ALL, FAST, FULL) are expanded into ``items``.  For UID FETCH the session must add UID
    to the response itself.  ``partial`` limits the answer to a window of the messages the set
    names (after CHANGEDSINCE), in UID order.
    """

    name: ClassVar[str] = "FETCH"
    uid: bool = False
    sequence_set: SequenceSet
    items: tuple[FetchItem, ...]
    changed_since: int | None = None
    vanished: bool = False
    partial: PartialRange | None = None


class StoreMode(enum.Enum):
    REPLACE = ""
    ADD = "+"
    REMOVE = "-"


@dataclass(frozen=True, kw_only=True)
class Store(Command):
    """[UID] STORE set [(UNCHANGEDSINCE n)] [+|-]FLAGS[.SILENT] flags (RFC 9051 6.4.6, RFC 7162)."""

    name: ClassVar[str] = "STORE"
    uid: bool = False
    sequence_set: SequenceSet
    mode: StoreMode
    silent: bool = False
    flags: tuple[str, ...]
    unchanged_since: int | None = None


@dataclass(frozen=True, kw_only=True)
class Copy(Command):
    name: ClassVar[str] = "COPY"
    uid: bool = False
    sequence_set: SequenceSet
    mailbox: str


@dataclass(frozen=True, kw_only=True)
class Move(Command):
    """[UID] MOVE (RFC 6851)."""

    name: ClassVar[str] = "MOVE"
    uid: bool = False
    sequence_set: SequenceSet
    mailbox: str


SORT_KEYS = frozenset({"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"})


@dataclass(frozen=True)
class SortCriterion:
    key: str  # one of SORT_KEYS
    reverse: bool = False


@dataclass(frozen=True, kw_only=True)
class Sort(Command):
    """[UID] SORT [RETURN (...)] (criteria) charset keys (RFC 5256; ESORT RFC 5267; PARTIAL
    RFC 9394)."""

    name: ClassVar[str] = "SORT"
    uid: bool = False
    criteria: tuple[SortCriterion, ...]
    charset: str
    search: And
    return_options: tuple[str, ...] | None = None
    partial: PartialRange | None = None


@dataclass(frozen=True, kw_only=True)
class Thread(Command):
    """[UID] THREAD algorithm charset keys (RFC 5256); algorithm upper-case."""

    name: ClassVar[str] = "THREAD"
    uid: bool = False
    algorithm: str
    charset: str
    search: And


@dataclass(frozen=True, kw_only=True)
class GetQuota(Command):
    """GETQUOTA root (RFC 9208)."""

    name: ClassVar[str] = "GETQUOTA"
    root: str


@dataclass(frozen=True, kw_only=True)
class GetQuotaRoot(Command):
    name: ClassVar[str] = "GETQUOTAROOT"
    mailbox: str


@dataclass(frozen=True, kw_only=True)
class SetQuota(Command):
    """SETQUOTA root ((resource limit)...) (RFC 9208); resources upper-case."""

    name: ClassVar[str] = "SETQUOTA"
    root: str
    limits: tuple[tuple[str, int], ...]


@dataclass(frozen=True, kw_only=True)
class GetMetadata(Command):
    """GETMETADATA [(MAXSIZE n DEPTH d)] mailbox entries (RFC 5464 section 4.2).

    ``mailbox`` is ``""`` for server entries; ``entries`` lower-case; ``depth`` is 0, 1 or
    ``None`` for ``infinity``.
    """

    name: ClassVar[str] = "GETMETADATA"
    mailbox: str
    entries: tuple[str, ...]
    max_size: int | None = None
    depth: int | None = 0


@dataclass(frozen=True, kw_only=True)
class SetMetadata(Command):
    """SETMETADATA mailbox (entry value ...) (RFC 5464 section 4.3); a ``None`` value (NIL)
    removes the entry.  ``mailbox`` is ``""`` for server entries; entries lower-case."""

    name: ClassVar[str] = "SETMETADATA"
    mailbox: str
    entries: tuple[tuple[str, bytes | None], ...] = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class GenUrlAuth(Command):
    """GENURLAUTH (url-rump mechanism) ... (RFC 4467 section 7.2); mechanisms upper-case."""

    name: ClassVar[str] = "GENURLAUTH"
    requests: tuple[tuple[str, str], ...]


@dataclass(frozen=True, kw_only=True)
class ResetKey(Command):
    """RESETKEY [mailbox [mechanism ...]] (RFC 4467 section 7.1)."""

    name: ClassVar[str] = "RESETKEY"
    mailbox: str | None = None
    mechanisms: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class UrlFetch(Command):
    """URLFETCH url ... (RFC 4467 section 7.3)."""

    name: ClassVar[str] = "URLFETCH"
    urls: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Id(Command):
    """ID (RFC 2971); ``parameters`` is ``None`` for ``ID NIL``, else (key, value) pairs in order."""

    name: ClassVar[str] = "ID"
    parameters: tuple[tuple[str, str | None], ...] | None


@dataclass(frozen=True, kw_only=True)
class Compress(Command):
    """COMPRESS mechanism (RFC 4978); mechanism upper-case (normally DEFLATE)."""

    name: ClassVar[str] = "COMPRESS"
    mechanism: str


NOTIFY_FILTERS = frozenset(
    {"SELECTED", "SELECTED-DELAYED", "INBOXES", "PERSONAL", "SUBSCRIBED", "SUBTREE", "MAILBOXES"}
)
"""RFC 5465 section 6 mailbox specifiers, upper-case."""


@dataclass(frozen=True)
class NotifyGroup:
    """One ``event-group`` of NOTIFY SET (RFC 5465 section 8): which mailboxes, which events.

    ``filter`` is upper-case from :data:`NOTIFY_FILTERS`; ``mailboxes`` the names given to
    SUBTREE or MAILBOXES (as received); ``events`` the event names as the client spelled them,
    ``()`` for NONE (unknown ones are kept so the session can answer ``NO [BADEVENT]``);
    ``fetch_items`` what MessageNew asks to be fetched for a new message in the selected mailbox.
    """

    filter: str
    mailboxes: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    fetch_items: tuple[FetchItem, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Notify(Command):
    """NOTIFY SET [STATUS] groups / NOTIFY NONE (RFC 5465 section 3.1); ``groups`` is ``None``
    for NONE."""

    name: ClassVar[str] = "NOTIFY"
    status: bool = False
    groups: tuple[NotifyGroup, ...] | None = None


@dataclass(frozen=True, kw_only=True)
class CancelUpdate(Command):
    """CANCELUPDATE "tag" ... (RFC 5267 section 4.3.5)."""

    name: ClassVar[str] = "CANCELUPDATE"
    tags: tuple[str, ...]
