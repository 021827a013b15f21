"""RFC 5322 address lists (From, To, Cc, ...) parsed into IMAP envelope addresses.

An IMAP address (RFC 3501 section 7.4.2, RFC 9051 section 7.5.2) is the list
`[name, adl, mailbox, host]`; a group is opened by `[None, None, group-name, None]` and closed by
`[None, None, None, None]`. Names stay exactly as written (RFC 2047 encoded words undecoded), as
IMAP expects; `MailAddress` carries the decoded form used for display, sorting and search.

Lenient by design: real headers are often broken, and nothing here raises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tidings.mail.headers import MAX_STRUCTURED_VALUE, decode_rfc2047

ImapAddress = list  # [name, adl, mailbox, host], each str or None

# Tokens: whitespace, quoted strings, comments (one level, nested ones are rare), domain
# literals, specials, and runs of anything else (atoms, encoded words, 8-bit text).
_TOKEN = re.compile(
    r"""(?P<ws>\s+)|(?P<quoted>"(?:[^"\\]|\\.)*"?)|(?P<comment>\((?:[^()\\]|\\.|\([^()]*\))*\)?)"""
    r"""|(?P<literal>\[[^\[\]]*\]?)|(?P<special>[<>@,;:.])|(?P<atom>[^\s"(<>@,;:.\[]+|[\[\])])""",
    re.S,
)
_QUOTED_PAIR = re.compile(r"\\(.)", re.S)
MAX_ADDRESSES = 2000


@dataclass(frozen=True, slots=True)
class MailAddress:
    """A decoded mailbox: display name (RFC 2047 decoded, may be empty), local part, domain."""

    name: str
    mailbox: str
    host: str

    @property
    def addr_spec(self) -> str:
        return f"{self.mailbox}@{self.host}" if self.host else self.mailbox

    def to_json(self) -> list[str]:
        return [self.name, self.mailbox, self.host]

    @classmethod
    def from_json(cls, value: list[str]) -> MailAddress:
        return cls(value[0], value[1], value[2])


class _Mailbox:
    """Tokens of one mailbox while it is being read."""

    def __init__(self) -> None:
        self.phrase: list[str] = []
        self.route: list[str] = []
        self.addr: list[str] = []
        self.comment: str | None = None
        self.angle = False
        self.in_angle = False

    def empty(self) -> bool:
        return not (self.phrase or self.addr or self.angle)


def _unquote(token: str) -> str:
    inner = token[1:-1] if len(token) > 1 and token.endswith('"') else token[1:]
    return _QUOTED_PAIR.sub(r"\1", inner)


def _join_phrase(parts: list[str]) -> str:
    return " ".join("".join(parts).split())


def _finish(box: _Mailbox) -> ImapAddress | None:
    if box.empty():
        return None
    if box.angle:
        name = _join_phrase(box.phrase) or None
        spec = box.addr
    else:
        # A bare addr-spec; a trailing comment is the traditional place for the name.
        spec = box.phrase + box.addr
        name = box.comment
    spec_text = "".join(s for s in spec if not s.isspace())
    if "@" in spec_text:
        mailbox, host = spec_text.rsplit("@", 1)
    else:
        mailbox, host = spec_text, ""
    adl = ",".join(box.route) or None
    if not mailbox and not host and not name:
        return None
    return [name, adl, mailbox, host]


def parse_address_list(text: str | None) -> list[ImapAddress]:
    """An address-list header value (unfolded, undecoded) as IMAP addresses with group markers."""
    if not text:
        return []
    result: list[ImapAddress] = []
    box = _Mailbox()
    in_group = False
    for match in _TOKEN.finditer(text[:MAX_STRUCTURED_VALUE]):
        if len(result) >= MAX_ADDRESSES:
            break
        kind, token = match.lastgroup, match.group()
        if kind == "comment":
            if box.comment is None and not box.in_angle:
                inner = token[1:-1] if token.endswith(")") else token[1:]
                box.comment = " ".join(inner.split()) or None
            continue
        if box.in_angle:
            if token == ">":
                box.in_angle = False
            elif token == ":" and box.addr and box.addr[0].startswith("@"):
                box.route = [r for r in "".join(box.addr).split(",") if r]
                box.addr = []
            elif kind != "ws":
                box.addr.append(token)
            continue
        if token == "<":
            box.angle = box.in_angle = True
            box.addr = []
        elif token == ",":
            finished = _finish(box)
            if finished:
                result.append(finished)
            box = _Mailbox()
        elif token == ":" and not in_group and not box.angle:
            group_name = _join_phrase([_unquote(p) if p.startswith('"') else p for p in box.phrase])
            result.append([None, None, group_name, None])
            box = _Mailbox()
            in_group = True
        elif token == ";" and in_group:
            finished = _finish(box)
            if finished:
                result.append(finished)
            result.append([None, None, None, None])
            box = _Mailbox()
            in_group = False
        else:
            # Quotes stay for now: a quoted local part needs them; names lose them at the end.
            box.phrase.append(token)
    finished = _finish(box)
    if finished:
        result.append(finished)
    if in_group:
        result.append([None, None, None, None])
    return [_strip_name_quotes(address) for address in result]


def _strip_name_quotes(address: ImapAddress) -> ImapAddress:
    """Display names lose their quoting (`"Doe, John"` -> `Doe, John`)."""
    name = address[0]
    if name and '"' in name:
        parts = [_unquote(m.group()) if m.lastgroup == "quoted" else m.group() for m in _TOKEN.finditer(name)]
        address = [" ".join("".join(parts).split()), *address[1:]]
    return address


def mail_addresses(imap_addresses: list[ImapAddress]) -> list[MailAddress]:
    """The real mailboxes of a parsed list (group markers dropped), names RFC 2047 decoded."""
    out = []
    for name, _adl, mailbox, host in imap_addresses:
        if host is None:
            continue  # group start or end marker
        out.append(MailAddress(decode_rfc2047(name or ""), mailbox or "", host or ""))
    return out


def is_group_marker(address: ImapAddress) -> bool:
    """A group's start (`[None, None, name, None]`) or end (all None) marker, not a mailbox."""
    return address[3] is None


def address_search_texts(imap_addresses: list[ImapAddress]) -> list[str]:
    """What SEARCH FROM/TO/CC/BCC look in, RFC 2047 decoded: each mailbox as it reads in a
    header, `Name <local@host>` (or the bare addr-spec), and each group's name, so that a
    search finds display names, local parts, domains and groups alike."""
    texts = []
    for name, _adl, mailbox, host in imap_addresses:
        if host is None:
            if mailbox is not None:
                texts.append(decode_rfc2047(mailbox))  # group start: its name
            continue
        spec = f"{mailbox or ''}@{host}" if host else mailbox or ""
        texts.append(f"{decode_rfc2047(name)} <{spec}>" if name else spec)
    return texts


def first_address_sort_fields(imap_addresses: list[ImapAddress]) -> tuple[str, str]:
    """(addr-mailbox, display text) of the first address of a list, for SORT FROM/TO/CC
    (RFC 5256 section 3: "the first addr-mailbox") and DISPLAYFROM/DISPLAYTO (RFC 5957
    section 3: the display name, else the addr-spec).  As in the IMAP envelope, a list that
    opens with a group has the group's name as its first mailbox; it is its display text too
    (what Dovecot sorts by).  ("", "") for an empty list."""
    if not imap_addresses:
        return "", ""
    name, _adl, mailbox, host = imap_addresses[0]
    if host is None:
        group = decode_rfc2047(mailbox or "")
        return mailbox or "", group
    display = decode_rfc2047(name or "").strip()
    return mailbox or "", display or (f"{mailbox or ''}@{host}" if host else mailbox or "")
