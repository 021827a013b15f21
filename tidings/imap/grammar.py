"""The IMAP command grammar: one function per command, turning a :class:`Reader` into a command.

Follows the formal syntax of RFC 9051 section 9 (and RFC 3501 section 9), with the extensions
named in each function's docstring.  Used by :class:`tidings.imap.parser.ImapParser`; raises
:class:`~tidings.imap.reader.Bad` (with ``tag`` filled in once known) for grammar errors and lets
:class:`~tidings.imap.reader.Incomplete` through when a literal has not arrived.

Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from tidings.imap import commands as c
from tidings.imap.reader import MAX_NUMBER64, Bad, Reader
from tidings.imap.wire import parse_date_time

Handler = Callable[[Reader, str, bool], c.Command]


def parse_command(reader: Reader) -> c.Command:
    """``command = tag SP (command-any / command-auth / command-nonauth / command-select) CRLF``."""
    tag = reader.tag()
    try:
        reader.sp()
        name = reader.atom("a command name").upper()
        uid = False
        if name == "UID":
            reader.sp()
            name = reader.atom("a command name after UID").upper()
            uid = True
            handler = _UID_COMMANDS.get(name)
        else:
            handler = _COMMANDS.get(name)
        if handler is None:
            raise Bad("Unknown command")
        command = handler(reader, tag, uid)
        reader.end()
        return command
    except Bad as error:
        error.tag = tag
        raise


def read_tag(reader: Reader) -> str | None:
    """The tag, if the command starts with a valid one (for error replies)."""
    try:
        return reader.tag()
    except Bad:
        return None


# --------------------------------------------------------------------------- simple commands


def _no_arguments(cls: type[c.Command]) -> Handler:
    def handler(reader: Reader, tag: str, uid: bool) -> c.Command:
        return cls(tag=tag)

    return handler


def _authenticate(reader: Reader, tag: str, uid: bool) -> c.Command:
    """AUTHENTICATE (RFC 9051 6.2.2) with the SASL-IR initial response (RFC 4959)."""
    reader.sp()
    mechanism = reader.atom("a SASL mechanism").upper()
    initial: bytes | None = None
    if reader.accept(b" "):
        if reader.accept(b"="):
            initial = b""
        else:
            token = reader.atom("a base64 initial response")
            try:
                initial = base64.b64decode(token, validate=True)
            except binascii.Error as exc:
                raise Bad("Invalid base64 in initial response") from exc
    return c.Authenticate(tag=tag, mechanism=mechanism, initial_response=initial)


def _login(reader: Reader, tag: str, uid: bool) -> c.Command:
    reader.sp()
    username = reader.astring_text("user name")
    reader.sp()
    password = reader.astring_text("password")
    return c.Login(tag=tag, username=username, password=password)


def _enable(reader: Reader, tag: str, uid: bool) -> c.Command:
    """ENABLE 1*(SP capability) (RFC 5161)."""
    reader.sp()
    names = [reader.atom("a capability").upper()]
    while reader.accept(b" "):
        names.append(reader.atom("a capability").upper())
    return c.Enable(tag=tag, capabilities=tuple(names))


def _mailbox_command(cls: type[c.Command]) -> Handler:
    def handler(reader: Reader, tag: str, uid: bool) -> c.Command:
        reader.sp()
        return cls(tag=tag, mailbox=reader.mailbox())  # type: ignore[call-arg]

    return handler


def _select(cls: type[c.Select]) -> Handler:
    """SELECT / EXAMINE with CONDSTORE or QRESYNC parameters (RFC 7162 sections 3.1.8, 3.2.5)."""

    def handler(reader: Reader, tag: str, uid: bool) -> c.Command:
        reader.sp()
        mailbox = reader.mailbox()
        condstore = False
        qresync: c.QresyncParameters | None = None
        if reader.accept(b" "):

            def parameter() -> None:
                nonlocal condstore, qresync
                name = reader.atom("a SELECT parameter").upper()
                if name == "CONDSTORE":
                    condstore = True
                elif name == "QRESYNC":
                    reader.sp()
                    qresync = _qresync_parameters(reader)
                else:
                    raise Bad(f"Unknown SELECT parameter {name}")

            reader.parenthesised(parameter)
        return cls(tag=tag, mailbox=mailbox, condstore=condstore, qresync=qresync)

    return handler


def _qresync_parameters(reader: Reader) -> c.QresyncParameters:
    reader.expect(b"(")
    uidvalidity = reader.nz_number(what="UIDVALIDITY")
    reader.sp()
    modseq = reader.nz_number(MAX_NUMBER64, "a mod-sequence")
    known_uids = None
    sequence_match = None
    if reader.accept(b" ") and reader.peek() != 0x28:
        known_uids = reader.sequence_set()
        if not reader.accept(b" "):
            reader.expect(b")")
            return c.QresyncParameters(uidvalidity, modseq, known_uids)
    if reader.accept(b"("):
        known_sequence = reader.sequence_set()
        reader.sp()
        known_sequence_uids = reader.sequence_set()
        reader.expect(b")")
        sequence_match = (known_sequence, known_sequence_uids)
    reader.expect(b")")
    return c.QresyncParameters(uidvalidity, modseq, known_uids, sequence_match)


def _create(reader: Reader, tag: str, uid: bool) -> c.Command:
    """CREATE mailbox [(USE (attrs))] (RFC 6154 section 3)."""
    reader.sp()
    mailbox = reader.mailbox()
    special_use: list[str] = []
    if reader.accept(b" "):

        def parameter() -> None:
            name = reader.atom("a CREATE parameter").upper()
            if name != "USE":
                raise Bad(f"Unknown CREATE parameter {name}")
            reader.sp()
            special_use.extend(reader.flag_list())

        reader.parenthesised(parameter)
    return c.Create(tag=tag, mailbox=mailbox, special_use=tuple(special_use))


def _rename(reader: Reader, tag: str, uid: bool) -> c.Command:
    reader.sp()
    old = reader.mailbox()
    reader.sp()
    return c.Rename(tag=tag, mailbox=old, new_name=reader.mailbox())


_LIST_SELECTION = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
_LIST_RETURN = frozenset({"SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS"})


def _list(reader: Reader, tag: str, uid: bool) -> c.Command:
    """LIST with LIST-EXTENDED (RFC 5258 section 6), LIST-STATUS (RFC 5819), SPECIAL-USE (RFC 6154)."""
    reader.sp()
    extended = False
    selection: set[str] = set()
    if reader.peek() == 0x28:
        extended = True
        for option in reader.parenthesised(lambda: reader.atom("a selection option").upper(), True):
            if option not in _LIST_SELECTION:
                raise Bad(f"Unknown LIST selection option {option}")
            selection.add(option)
        if "RECURSIVEMATCH" in selection and not selection - {"RECURSIVEMATCH", "REMOTE"}:
            raise Bad("RECURSIVEMATCH needs another selection option")
        reader.sp()
    reference = reader.mailbox()
    reader.sp()
    if reader.peek() == 0x28:
        extended = True
        patterns = tuple(reader.parenthesised(reader.list_mailbox))
    else:
        patterns = (reader.list_mailbox(),)
    return_options: set[str] = set()
    status_items: tuple[str, ...] = ()
    if reader.accept(b" "):
        if not reader.accept_keyword(b"RETURN"):
            raise Bad("Expected RETURN")
        extended = True
        reader.sp()

        def option() -> None:
            nonlocal status_items
            name = reader.atom("a return option").upper()
            if name not in _LIST_RETURN:
                raise Bad(f"Unknown LIST return option {name}")
            if name == "STATUS":
                reader.sp()
                status_items = _status_items(reader)
            return_options.add(name)

        reader.parenthesised(option, allow_empty=True)
    return c.List(
        tag=tag,
        reference=reference,
        patterns=patterns,
        selection=frozenset(selection),
        return_options=frozenset(return_options),
        status_items=status_items,
        extended=extended,
    )


def _lsub(reader: Reader, tag: str, uid: bool) -> c.Command:
    reader.sp()
    reference = reader.mailbox()
    reader.sp()
    return c.Lsub(tag=tag, reference=reference, pattern=reader.list_mailbox())


def _status_items(reader: Reader) -> tuple[str, ...]:
    def item() -> str:
        name = reader.atom("a STATUS item").upper()
        if name not in c.STATUS_ITEMS:
            raise Bad(f"Unknown STATUS item {name}")
        return name

    return tuple(reader.parenthesised(item))


def _status(reader: Reader, tag: str, uid: bool) -> c.Command:
    reader.sp()
    mailbox = reader.mailbox()
    reader.sp()
    return c.Status(tag=tag, mailbox=mailbox, items=_status_items(reader))


def _append(reader: Reader, tag: str, uid: bool) -> c.Command:
    """APPEND with MULTIAPPEND (RFC 3502), literal8 (RFC 3516), ``UTF8 (~{n})`` (RFC 6855) and
    ``CATENATE (TEXT {n} URL url ...)`` (RFC 4469 section 5)."""
    reader.sp()
    mailbox = reader.mailbox()
    messages: list[c.AppendMessage] = []
    while True:
        reader.sp()
        flags: tuple[str, ...] = ()
        internal_date = None
        if reader.peek() == 0x28:
            flags = reader.flag_list()
            reader.sp()
        if reader.peek() == 0x22:
            try:
                internal_date = parse_date_time(b'"' + reader.quoted() + b'"')
            except ValueError as exc:
                raise Bad("Invalid date-time") from exc
            reader.sp()
        parts: tuple[c.CatenatePart, ...] = ()
        if reader.accept_keyword(b"UTF8"):
            reader.sp()
            reader.expect(b"(")
            data, binary = reader.literal(allow_binary=True)
            reader.expect(b")")
        elif reader.accept_keyword(b"CATENATE"):
            reader.sp()
            data, binary = b"", False
            parts = tuple(reader.parenthesised(lambda: _catenate_part(reader)))
        else:
            data, binary = reader.literal(allow_binary=True)
        messages.append(
            c.AppendMessage(data=data, flags=flags, internal_date=internal_date, binary=binary, parts=parts)
        )
        if reader.at_end():
            break
    return c.Append(tag=tag, mailbox=mailbox, messages=tuple(messages))


def _catenate_part(reader: Reader) -> c.CatenatePart:
    """``cat-part = text-literal / url``: ``TEXT literal`` or ``URL astring`` (RFC 4469)."""
    kind = reader.atom("TEXT or URL").upper()
    reader.sp()
    if kind == "TEXT":
        return c.CatenatePart(text=reader.literal(allow_binary=True)[0])
    if kind == "URL":
        return c.CatenatePart(url=reader.astring_text("an IMAP URL"))
    raise Bad(f"Unknown CATENATE part {kind}")


def _expunge(reader: Reader, tag: str, uid: bool) -> c.Command:
    """EXPUNGE, or UID EXPUNGE set (RFC 4315 section 2.1)."""
    if not uid:
        return c.Expunge(tag=tag)
    reader.sp()
    return c.Expunge(tag=tag, uid=True, uid_set=reader.sequence_set())


# --------------------------------------------------------------------------- search

# UPDATE and CONTEXT: RFC 5267 section 4 (CONTEXT=SEARCH, CONTEXT=SORT).
_SEARCH_RETURN = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE", "PARTIAL", "UPDATE", "CONTEXT"})
_SORT_RETURN = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE", "PARTIAL", "UPDATE", "CONTEXT"})

_KEYS_WITHOUT_ARGUMENT = frozenset(
    {
        "ALL",
        "ANSWERED",
        "DELETED",
        "DRAFT",
        "FLAGGED",
        "NEW",
        "OLD",
        "RECENT",
        "SEEN",
        "UNANSWERED",
        "UNDELETED",
        "UNDRAFT",
        "UNFLAGGED",
        "UNSEEN",
        "SAVEDATESUPPORTED",
    }
)
_KEYS_WITH_STRING = frozenset({"BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"})
_KEYS_WITH_DATE = frozenset(
    {"BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE", "SAVEDBEFORE", "SAVEDON", "SAVEDSINCE"}
)
_KEYS_WITH_NUMBER = {
    "LARGER": MAX_NUMBER64,
    "SMALLER": MAX_NUMBER64,
    "OLDER": 0xFFFFFFFF,  # seconds (RFC 5032)
    "YOUNGER": 0xFFFFFFFF,
}
_MODSEQ_ENTRY_TYPES = frozenset({"PRIV", "SHARED", "ALL"})


def _return_options(reader: Reader, allowed: frozenset[str]) -> tuple[tuple[str, ...], c.PartialRange | None]:
    """``RETURN (opts)`` for ESEARCH (RFC 4731), SEARCHRES (RFC 5182), ESORT (RFC 5267) and
    ``PARTIAL range`` (RFC 9394 section 3.1, which must not be combined with ALL)."""
    reader.sp()
    partial: c.PartialRange | None = None

    def option() -> str:
        nonlocal partial
        name = reader.atom("a RETURN option").upper()
        if name not in allowed:
            raise Bad(f"Unknown RETURN option {name}")
        if name == "PARTIAL":
            if partial is not None:
                raise Bad("PARTIAL given twice")
            reader.sp()
            partial = _partial_range(reader)
        return name

    options = tuple(reader.parenthesised(option, allow_empty=True))
    if partial is not None and "ALL" in options:
        raise Bad("PARTIAL and ALL cannot be combined")
    reader.sp()
    return options, partial


def _partial_range(reader: Reader) -> c.PartialRange:
    """``partial-range = partial-range-first / partial-range-last`` (RFC 9394 section 5):
    ``nz-number ":" nz-number`` or ``"-" nz-number ":" "-" nz-number``."""
    from_end = reader.accept(b"-")
    first = reader.nz_number(what="a partial range position")
    reader.expect(b":")
    if reader.accept(b"-") != from_end:
        raise Bad("A partial range counts both ends from the start or both from the end")
    last = reader.nz_number(what="a partial range position")
    sign = -1 if from_end else 1
    return c.PartialRange(sign * first, sign * last)


def _search_program(reader: Reader) -> c.And:
    keys = [_search_key(reader, 0)]
    while reader.accept(b" "):
        keys.append(_search_key(reader, 0))
    return c.And(tuple(keys))


def _search_key(reader: Reader, depth: int) -> c.SearchCriterion:
    """``search-key`` (RFC 9051 section 9) plus MODSEQ (RFC 7162), OLDER/YOUNGER (RFC 5032),
    SAVED* (RFC 8514), EMAILID/THREADID (RFC 8474) and ``$`` (RFC 5182)."""
    if depth > reader.max_depth:
        raise Bad("Search criteria nested too deeply")
    first = reader.peek()
    if first == 0x28:
        return c.And(tuple(reader.parenthesised(lambda: _search_key(reader, depth + 1))))
    if first is not None and (0x30 <= first <= 0x39 or first in (0x2A, 0x24)):
        return c.SearchKey("SEQSET", (reader.sequence_set(),))
    name = reader.atom("a search key").upper()
    if name in _KEYS_WITHOUT_ARGUMENT:
        return c.SearchKey(name)
    reader.sp()
    if name in _KEYS_WITH_STRING:
        return c.SearchKey(name, (reader.search_string(),))
    if name in _KEYS_WITH_DATE:
        return c.SearchKey(name, (reader.date(),))
    if name in _KEYS_WITH_NUMBER:
        return c.SearchKey(name, (reader.number(_KEYS_WITH_NUMBER[name], name),))
    if name == "HEADER":
        field_name = reader.astring_text("header field name")
        reader.sp()
        return c.SearchKey(name, (field_name, reader.search_string()))
    if name in ("KEYWORD", "UNKEYWORD"):
        return c.SearchKey(name, (reader.atom("a keyword"),))
    if name == "UID":
        return c.SearchKey(name, (reader.sequence_set(),))
    if name in ("EMAILID", "THREADID"):
        return c.SearchKey(name, (reader.atom("an object id"),))
    if name == "NOT":
        return c.Not(_search_key(reader, depth + 1))
    if name == "OR":
        left = _search_key(reader, depth + 1)
        reader.sp()
        return c.Or(left, _search_key(reader, depth + 1))
    if name == "MODSEQ":
        entry_name: str | None = None
        entry_type: str | None = None
        if reader.peek() == 0x22 or reader.at_literal():  # quoted, or (as Dovecot takes) a literal
            entry_name = reader.astring_text("entry name")
            reader.sp()
            entry_type = reader.atom("an entry type").upper()
            if entry_type not in _MODSEQ_ENTRY_TYPES:
                raise Bad("MODSEQ entry type must be priv, shared or all")
            reader.sp()
        return c.SearchKey(name, (reader.number(MAX_NUMBER64, "a mod-sequence"), entry_name, entry_type))
    raise Bad(f"Unknown search key {name}")


def _search(reader: Reader, tag: str, uid: bool) -> c.Command:
    """[UID] SEARCH [RETURN (...)] [CHARSET charset] keys (RFC 9051 6.4.4, RFC 4731, RFC 5182)."""
    reader.sp()
    return_options = partial = None
    if reader.accept_keyword(b"RETURN"):
        return_options, partial = _return_options(reader, _SEARCH_RETURN)
    charset = None
    if reader.accept_keyword(b"CHARSET"):
        reader.sp()
        charset = reader.astring_text("charset").upper()
        reader.set_charset(charset)
        reader.sp()
    criteria = _search_program(reader)
    return c.Search(
        tag=tag, uid=uid, charset=charset, return_options=return_options, partial=partial, criteria=criteria
    )


def _sort(reader: Reader, tag: str, uid: bool) -> c.Command:
    """[UID] SORT [RETURN (...)] (criteria) charset keys (RFC 5256 section 3; ESORT RFC 5267;
    PARTIAL RFC 9394)."""
    reader.sp()
    return_options = partial = None
    if reader.accept_keyword(b"RETURN"):
        return_options, partial = _return_options(reader, _SORT_RETURN)

    def criterion() -> c.SortCriterion:
        reverse = reader.accept_keyword(b"REVERSE")
        if reverse:
            reader.sp()
        key = reader.atom("a sort key").upper()
        if key not in c.SORT_KEYS:
            raise Bad(f"Unknown sort key {key}")
        return c.SortCriterion(key, reverse)

    criteria = tuple(reader.parenthesised(criterion))
    reader.sp()
    charset = reader.astring_text("charset").upper()
    reader.set_charset(charset)
    reader.sp()
    search = _search_program(reader)
    return c.Sort(
        tag=tag,
        uid=uid,
        criteria=criteria,
        charset=charset,
        search=search,
        return_options=return_options,
        partial=partial,
    )


def _thread(reader: Reader, tag: str, uid: bool) -> c.Command:
    """[UID] THREAD algorithm charset keys (RFC 5256 section 3)."""
    reader.sp()
    algorithm = reader.atom("a threading algorithm").upper()
    reader.sp()
    charset = reader.astring_text("charset").upper()
    reader.set_charset(charset)
    reader.sp()
    return c.Thread(tag=tag, uid=uid, algorithm=algorithm, charset=charset, search=_search_program(reader))


# --------------------------------------------------------------------------- fetch and store


def _fetch(reader: Reader, tag: str, uid: bool) -> c.Command:
    """[UID] FETCH set items [modifiers] (RFC 9051 6.4.5; CHANGEDSINCE/VANISHED RFC 7162;
    PARTIAL RFC 9394 section 3.2)."""
    reader.sp()
    sequence_set = reader.sequence_set()
    reader.sp()
    items: list[c.FetchItem] = []
    if reader.peek() == 0x28:
        items = reader.parenthesised(lambda: _fetch_item(reader), allow_empty=True)
    else:
        macro = c.FETCH_MACROS.get(reader.peek_name())
        if macro is not None:
            reader.name("a fetch item")
            items = [c.FetchAttribute(name) for name in macro]
        else:
            items = [_fetch_item(reader)]
    changed_since = None
    vanished = False
    partial: c.PartialRange | None = None
    if reader.accept(b" "):

        def modifier() -> None:
            nonlocal changed_since, vanished, partial
            name = reader.atom("a FETCH modifier").upper()
            if name == "CHANGEDSINCE":
                reader.sp()
                changed_since = reader.number(MAX_NUMBER64, "a mod-sequence")
            elif name == "VANISHED":
                vanished = True
            elif name == "PARTIAL":
                reader.sp()
                partial = _partial_range(reader)
            else:
                raise Bad(f"Unknown FETCH modifier {name}")

        reader.parenthesised(modifier)
        if vanished and (not uid or changed_since is None):
            raise Bad("VANISHED needs UID FETCH with CHANGEDSINCE")
    return c.Fetch(
        tag=tag,
        uid=uid,
        sequence_set=sequence_set,
        items=tuple(items),
        changed_since=changed_since,
        vanished=vanished,
        partial=partial,
    )


def _fetch_item(reader: Reader) -> c.FetchItem:
    name = reader.name("a fetch item")
    if name in ("BODY", "BODY.PEEK") and reader.peek() == 0x5B:
        section = _section(reader)
        return c.BodySection(section=section, peek=name == "BODY.PEEK", partial=_partial(reader))
    if name in ("BINARY", "BINARY.PEEK"):
        part = _section_binary(reader)
        return c.BodySection(
            section=c.Section(part=part), peek=name == "BINARY.PEEK", binary=True, partial=_partial(reader)
        )
    if name == "BINARY.SIZE":
        return c.BinarySize(part=_section_binary(reader))
    if name in c.SIMPLE_FETCH_ATTRIBUTES:
        return c.FetchAttribute(name)
    raise Bad(f"Unknown fetch item {name}")


def _section_binary(reader: Reader) -> tuple[int, ...]:
    reader.expect(b"[")
    if reader.accept(b"]"):
        return ()
    parts = reader.name("a section part").split(".")
    if "" in parts:
        raise Bad("Invalid section part")
    reader.expect(b"]")
    return tuple(_part_number(part) for part in parts)


def _part_number(text: str) -> int:
    if not text.isdigit() or text.startswith("0") or len(text) > 10:
        raise Bad("Invalid section part number")
    return int(text)


_SECTION_TEXTS = frozenset({"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT"})


def _section(reader: Reader) -> c.Section:
    """``section`` (RFC 9051 section 9): part numbers, then HEADER[.FIELDS[.NOT] (list)]/TEXT/MIME."""
    reader.expect(b"[")
    if reader.accept(b"]"):
        return c.Section()
    components = reader.name("a section").split(".")
    if "" in components:
        raise Bad("Invalid section")
    part: list[int] = []
    while components and components[0][:1].isdigit():
        part.append(_part_number(components.pop(0)))
    text = ".".join(components) or None
    if text is not None and text not in _SECTION_TEXTS and not (text == "MIME" and part):
        raise Bad(f"Invalid section {text}")
    fields: tuple[str, ...] = ()
    if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        reader.sp()
        fields = tuple(reader.parenthesised(lambda: reader.astring_text("header field name")))
    reader.expect(b"]")
    return c.Section(part=tuple(part), text=text, fields=fields)


def _partial(reader: Reader) -> tuple[int, int] | None:
    """``partial = "<" number64 "." nz-number64 ">"``."""
    if not reader.accept(b"<"):
        return None
    offset = reader.number(MAX_NUMBER64, "a partial offset")
    reader.expect(b".")
    length = reader.nz_number(MAX_NUMBER64, "a partial length")
    reader.expect(b">")
    return (offset, length)


def _store(reader: Reader, tag: str, uid: bool) -> c.Command:
    """[UID] STORE set [(UNCHANGEDSINCE n)] [+|-]FLAGS[.SILENT] flags (RFC 9051 6.4.6, RFC 7162)."""
    reader.sp()
    sequence_set = reader.sequence_set()
    reader.sp()
    unchanged_since = None
    if reader.peek() == 0x28:

        def modifier() -> None:
            nonlocal unchanged_since
            name = reader.atom("a STORE modifier").upper()
            if name != "UNCHANGEDSINCE":
                raise Bad(f"Unknown STORE modifier {name}")
            reader.sp()
            unchanged_since = reader.number(MAX_NUMBER64, "a mod-sequence")

        reader.parenthesised(modifier)
        reader.sp()
    mode = c.StoreMode.REPLACE
    if reader.accept(b"+"):
        mode = c.StoreMode.ADD
    elif reader.accept(b"-"):
        mode = c.StoreMode.REMOVE
    verb = reader.name("FLAGS or FLAGS.SILENT")
    if verb not in ("FLAGS", "FLAGS.SILENT"):
        raise Bad(f"Cannot STORE {verb}")
    reader.sp()
    if reader.peek() == 0x28:
        flags = reader.flag_list()
    else:
        flag_items = [reader.flag()]
        while reader.accept(b" "):
            flag_items.append(reader.flag())
        flags = tuple(flag_items)
    return c.Store(
        tag=tag,
        uid=uid,
        sequence_set=sequence_set,
        mode=mode,
        silent=verb == "FLAGS.SILENT",
        flags=flags,
        unchanged_since=unchanged_since,
    )


def _copy_or_move(cls: type[c.Copy] | type[c.Move]) -> Handler:
    def handler(reader: Reader, tag: str, uid: bool) -> c.Command:
        reader.sp()
        sequence_set = reader.sequence_set()
        reader.sp()
        return cls(tag=tag, uid=uid, sequence_set=sequence_set, mailbox=reader.mailbox())

    return handler


# --------------------------------------------------------------------------- quota, ID, COMPRESS


def _getquota(reader: Reader, tag: str, uid: bool) -> c.Command:
    reader.sp()
    return c.GetQuota(tag=tag, root=reader.astring_text("quota root"))


def _getquotaroot(reader: Reader, tag: str, uid: bool) -> c.Command:
    reader.sp()
    return c.GetQuotaRoot(tag=tag, mailbox=reader.mailbox())


def _setquota(reader: Reader, tag: str, uid: bool) -> c.Command:
    """SETQUOTA root ((resource limit) ...) (RFC 9208 section 4.1.3)."""
    reader.sp()
    root = reader.astring_text("quota root")
    reader.sp()

    def resource() -> tuple[str, int]:
        name = reader.atom("a quota resource").upper()
        reader.sp()
        return (name, reader.number(MAX_NUMBER64, "a quota limit"))

    limits = tuple(reader.parenthesised(resource, allow_empty=True))
    return c.SetQuota(tag=tag, root=root, limits=limits)


# --------------------------------------------------------------------------- METADATA


def _metadata_entry(reader: Reader) -> str:
    """``entry = astring`` (RFC 5464 sections 3.2 and 5): "/"-separated, no "//", no trailing
    "/" (except "/" itself, which names everything under DEPTH infinity), no "*" or "%",
    printable US-ASCII.  Entry names are case-insensitive: lower-cased here."""
    name = reader.astring_text("an entry name")
    if not name.startswith("/") or "//" in name or (name != "/" and name.endswith("/")):
        raise Bad(f"Invalid entry name {name!r}")
    if "*" in name or "%" in name or not all(" " <= char < "\x7f" for char in name):
        raise Bad(f"Invalid entry name {name!r}")
    if len(name) > 255:
        raise Bad("Entry name too long")
    return name.lower()


def _getmetadata_options(reader: Reader) -> tuple[int | None, int | None]:
    """``(MAXSIZE n DEPTH 0/1/infinity)``."""
    max_size: int | None = None
    depth: int | None = 0
    seen: set[str] = set()

    def option() -> None:
        nonlocal max_size, depth
        name = reader.atom("a GETMETADATA option").upper()
        if name in seen:
            raise Bad(f"{name} given twice")
        seen.add(name)
        reader.sp()
        if name == "MAXSIZE":
            max_size = reader.number(what="MAXSIZE")
        elif name == "DEPTH":
            value = reader.atom("0, 1 or infinity").upper()
            if value not in ("0", "1", "INFINITY"):
                raise Bad("DEPTH must be 0, 1 or infinity")
            depth = None if value == "INFINITY" else int(value)
        else:
            raise Bad(f"Unknown GETMETADATA option {name}")

    reader.parenthesised(option)
    return max_size, depth


def _getmetadata(reader: Reader, tag: str, uid: bool) -> c.Command:
    """GETMETADATA [options] mailbox entries (RFC 5464 section 4.2; the options also after the
    mailbox, as the RFC's examples show)."""
    reader.sp()
    max_size, depth = None, 0
    have_options = reader.peek() == 0x28
    if have_options:
        max_size, depth = _getmetadata_options(reader)
        reader.sp()
    mailbox = reader.mailbox()
    reader.sp()
    if not have_options and any(reader.peek_is(start) for start in (b"(M", b"(m", b"(D", b"(d")):
        max_size, depth = _getmetadata_options(reader)
        reader.sp()
    if reader.peek() == 0x28:
        entries = tuple(reader.parenthesised(lambda: _metadata_entry(reader)))
    else:
        entries = (_metadata_entry(reader),)
    return c.GetMetadata(tag=tag, mailbox=mailbox, entries=entries, max_size=max_size, depth=depth)


def _setmetadata(reader: Reader, tag: str, uid: bool) -> c.Command:
    """SETMETADATA mailbox (entry value ...) (RFC 5464 section 4.3): ``value = nstring /
    literal8``; entries of a set are ``/private/...`` or ``/shared/...``, and vendor entries
    name a vendor and an entry (``/shared/vendor/acme/colour``, section 3.2)."""
    reader.sp()
    mailbox = reader.mailbox()
    reader.sp()

    def pair() -> tuple[str, bytes | None]:
        name = _metadata_entry(reader)
        parts = name.split("/")
        if len(parts) < 3 or parts[1] not in ("private", "shared"):
            raise Bad(f"Only /private/... and /shared/... entries can be set, not {name}")
        if parts[2] == "vendor" and len(parts) < 5:
            raise Bad(f"A vendor entry names the vendor and the entry: {name}")
        reader.sp()
        if reader.accept_keyword(b"NIL"):
            return name, None
        if reader.at_literal():
            return name, reader.literal(allow_binary=True)[0]
        return name, reader.quoted()

    entries = tuple(reader.parenthesised(pair))
    return c.SetMetadata(tag=tag, mailbox=mailbox, entries=entries)


# --------------------------------------------------------------------------- URLAUTH


def _genurlauth(reader: Reader, tag: str, uid: bool) -> c.Command:
    """``GENURLAUTH 1*(SP url-rump SP mechanism)`` (RFC 4467 section 9)."""
    requests = []
    while reader.accept(b" "):
        rump = reader.astring_text("a URL rump")
        reader.sp()
        requests.append((rump, reader.atom("a URLAUTH mechanism").upper()))
    if not requests:
        raise Bad("GENURLAUTH needs a URL and a mechanism")
    return c.GenUrlAuth(tag=tag, requests=tuple(requests))


def _resetkey(reader: Reader, tag: str, uid: bool) -> c.Command:
    """``RESETKEY [SP mailbox *(SP mechanism)]`` (RFC 4467 section 9)."""
    if not reader.accept(b" "):
        return c.ResetKey(tag=tag)
    mailbox = reader.mailbox()
    mechanisms = []
    while reader.accept(b" "):
        mechanisms.append(reader.atom("a URLAUTH mechanism").upper())
    return c.ResetKey(tag=tag, mailbox=mailbox, mechanisms=tuple(mechanisms))


def _urlfetch(reader: Reader, tag: str, uid: bool) -> c.Command:
    """``URLFETCH 1*(SP url)`` (RFC 4467 section 9)."""
    urls = []
    while reader.accept(b" "):
        urls.append(reader.astring_text("a URL"))
    if not urls:
        raise Bad("URLFETCH needs a URL")
    return c.UrlFetch(tag=tag, urls=tuple(urls))


def _id(reader: Reader, tag: str, uid: bool) -> c.Command:
    """ID (NIL | (key value ...)) (RFC 2971 section 4)."""
    reader.sp()
    if reader.accept_keyword(b"NIL"):
        return c.Id(tag=tag, parameters=None)

    def pair() -> tuple[str, str | None]:
        key = reader.astring_text("ID field name")
        reader.sp()
        return (key, reader.nstring_text())

    return c.Id(tag=tag, parameters=tuple(reader.parenthesised(pair, allow_empty=True)))


def _compress(reader: Reader, tag: str, uid: bool) -> c.Command:
    reader.sp()
    return c.Compress(tag=tag, mechanism=reader.atom("a compression mechanism").upper())


def _cancelupdate(reader: Reader, tag: str, uid: bool) -> c.Command:
    """CANCELUPDATE 1*(SP quoted) (RFC 5267 section 4.3.5): the tags of updating contexts."""
    tags = []
    while reader.accept(b" "):
        tags.append(reader.astring_text("a search tag"))
    if not tags:
        raise Bad("Expected the tag of an updating search")
    return c.CancelUpdate(tag=tag, tags=tuple(tags))


# --------------------------------------------------------------------------- NOTIFY


def _notify(reader: Reader, tag: str, uid: bool) -> c.Command:
    """NOTIFY SET [STATUS] event-groups / NOTIFY NONE (RFC 5465 section 8).

    Event names are any atom here (``event-ext``): an unsupported one is a NO [BADEVENT] from
    the handler, not a syntax error (RFC 5465 section 3.1)."""
    reader.sp()
    if reader.accept_keyword(b"NONE"):
        return c.Notify(tag=tag, groups=None)
    if not reader.accept_keyword(b"SET"):
        raise Bad("Expected SET or NONE")
    reader.sp()
    status = reader.accept_keyword(b"STATUS")
    if status:
        reader.sp()
    groups = [_notify_group(reader)]
    while reader.accept(b" "):
        groups.append(_notify_group(reader))
    return c.Notify(tag=tag, status=status, groups=tuple(groups))


def _notify_group(reader: Reader) -> c.NotifyGroup:
    """``"(" filter-mailboxes SP events ")"``."""
    reader.expect(b"(")
    kind = reader.atom("a mailbox specifier").upper()
    if kind not in c.NOTIFY_FILTERS:
        raise Bad(f"Unknown mailbox specifier {kind}")
    mailboxes: tuple[str, ...] = ()
    if kind in ("SUBTREE", "MAILBOXES"):
        reader.sp()
        if reader.peek() == 0x28:
            mailboxes = tuple(reader.parenthesised(reader.mailbox))
        else:
            mailboxes = (reader.mailbox(),)
    reader.sp()
    events: list[str] = []
    fetch_items: tuple[c.FetchItem, ...] = ()
    if not reader.accept_keyword(b"NONE"):

        def event() -> None:
            nonlocal fetch_items
            name = reader.atom("an event name")
            events.append(name)
            if name.upper() == "MESSAGENEW" and reader.peek_is(b" ("):
                reader.sp()
                fetch_items = tuple(reader.parenthesised(lambda: _fetch_item(reader)))

        reader.parenthesised(event)
    reader.expect(b")")
    return c.NotifyGroup(kind, mailboxes, tuple(events), fetch_items)


# --------------------------------------------------------------------------- dispatch tables

_COMMANDS: dict[str, Handler] = {
    "CAPABILITY": _no_arguments(c.Capability),
    "NOOP": _no_arguments(c.Noop),
    "LOGOUT": _no_arguments(c.Logout),
    "STARTTLS": _no_arguments(c.StartTls),
    "AUTHENTICATE": _authenticate,
    "LOGIN": _login,
    "ENABLE": _enable,
    "SELECT": _select(c.Select),
    "EXAMINE": _select(c.Examine),
    "CREATE": _create,
    "DELETE": _mailbox_command(c.Delete),
    "RENAME": _rename,
    "SUBSCRIBE": _mailbox_command(c.Subscribe),
    "UNSUBSCRIBE": _mailbox_command(c.Unsubscribe),
    "LIST": _list,
    "LSUB": _lsub,
    "NAMESPACE": _no_arguments(c.Namespace),
    "STATUS": _status,
    "APPEND": _append,
    "IDLE": _no_arguments(c.Idle),
    "CHECK": _no_arguments(c.Check),
    "CLOSE": _no_arguments(c.Close),
    "UNSELECT": _no_arguments(c.Unselect),
    "EXPUNGE": _expunge,
    "SEARCH": _search,
    "FETCH": _fetch,
    "STORE": _store,
    "COPY": _copy_or_move(c.Copy),
    "MOVE": _copy_or_move(c.Move),
    "SORT": _sort,
    "THREAD": _thread,
    "GETQUOTA": _getquota,
    "GETQUOTAROOT": _getquotaroot,
    "SETQUOTA": _setquota,
    "ID": _id,
    "COMPRESS": _compress,
    "GETMETADATA": _getmetadata,
    "SETMETADATA": _setmetadata,
    "GENURLAUTH": _genurlauth,
    "RESETKEY": _resetkey,
    "URLFETCH": _urlfetch,
    "NOTIFY": _notify,
    "CANCELUPDATE": _cancelupdate,
}

_UID_COMMAND_NAMES = ("FETCH", "STORE", "COPY", "MOVE", "SEARCH", "EXPUNGE", "SORT", "THREAD")
_UID_COMMANDS: dict[str, Handler] = {name: _COMMANDS[name] for name in _UID_COMMAND_NAMES}
