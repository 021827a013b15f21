"""IMAP URLs naming a message or a part of one (RFC 5092), with their URLAUTH parts (RFC 4467).

Used by IMAP CATENATE (RFC 4469), GENURLAUTH/URLFETCH (RFC 4467) and SMTP BURL (RFC 4468); the
store resolves a parsed URL to bytes (:mod:`tidings.store.urlauth`).  Two forms are read:

* absolute: ``imap://fred@example.com/INBOX;UIDVALIDITY=7/;UID=20/;SECTION=1.2;URLAUTH=...``
* relative to the session's server and user (CATENATE): ``/INBOX/;UID=20/;SECTION=1.MIME``

Mailbox names are percent-encoded UTF-8 (RFC 5092 section 5).  Only URLs that name one message
(``;UID=``) are accepted; message lists (``?search``) and bare mailboxes are not.  Pure: no I/O.
"""

from __future__ import annotations

import datetime
import re
import urllib.parse
from dataclasses import dataclass

_SECTION_TEXT = re.compile(
    r"(?:[1-9][0-9]*\.)*(?:[1-9][0-9]*)?(?:\.?(?:HEADER\.FIELDS(?:\.NOT)? \([^()]*\)|HEADER|TEXT|MIME))?"
)
_MECHANISM = re.compile(r"[A-Za-z0-9.\-]+")
_TOKEN = re.compile(r"[0-9A-Fa-f]{32,}")


class BadUrl(ValueError):
    """Not an IMAP URL we can resolve (answered ``NO [BADURL url]``)."""


@dataclass(frozen=True)
class ImapUrl:
    """One message, or a section of it, in some user's mailbox.

    ``user`` is None in a relative URL (the session's own user).  ``section`` is the section
    text (``"1.2"``, ``"HEADER"``, ``"1.MIME"``) or ``""`` for the whole message; ``partial``
    is (offset, length or None).  ``access`` is the URLAUTH access identifier (``"submit+fred"``,
    ``"user+fred"``, ``"authuser"``, ``"anonymous"``) and ``mechanism``/``token`` its verifier;
    ``rump`` is the URL up to and including the access identifier, which the token signs.
    """

    user: str | None
    host: str | None
    mailbox: str
    uid: int
    uidvalidity: int | None = None
    section: str = ""
    partial: tuple[int, int | None] | None = None
    expire: datetime.datetime | None = None
    access: str | None = None
    mechanism: str | None = None
    token: str | None = None
    rump: str = ""

    @property
    def authorized(self) -> bool:
        """Carries a URLAUTH verifier (``;URLAUTH=access:mech:token``)."""
        return self.token is not None


def parse_imap_url(text: str, *, relative: bool = False) -> ImapUrl:
    """Parse ``text``; ``relative`` also accepts ``/mailbox/;UID=n...`` (CATENATE)."""
    if any(ord(char) <= 0x20 or ord(char) >= 0x7F for char in text):
        raise BadUrl("IMAP URLs are printable US-ASCII")
    user = host = None
    if text[:7].lower() == "imap://":
        rest = text[7:]
        authority, slash, path = rest.partition("/")
        if not slash:
            raise BadUrl("the URL names no mailbox")
        userinfo, at, hostport = authority.rpartition("@")
        if at:
            user = _decode(userinfo.split(";", 1)[0]) or None
        host = hostport.lower()
        if not host:
            raise BadUrl("the URL names no server")
    elif relative and text.startswith("/"):
        path = text[1:]
    else:
        raise BadUrl("not an IMAP URL")

    access: str | None = None
    verifier: str | None = None
    auth_at = path.upper().find(";URLAUTH=")
    if auth_at >= 0:
        access, colon, verifier = path[auth_at + len(";URLAUTH=") :].partition(":")
        path = path[:auth_at]
        if not colon:
            verifier = None

    segments = path.split("/;")
    mailbox_part = segments[0]
    mailbox_text, _, mailbox_params = mailbox_part.partition(";")
    mailbox = _decode(mailbox_text)
    if not mailbox:
        raise BadUrl("the URL names no mailbox")
    uidvalidity = None
    if mailbox_params:
        name, _, value = mailbox_params.partition("=")
        if name.upper() != "UIDVALIDITY":
            raise BadUrl(f"unknown mailbox parameter {name}")
        uidvalidity = _nz_number(value)
    uid = None
    section = ""
    partial = None
    expire = None
    for segment in segments[1:]:
        pieces = segment.split(";")
        name, _, value = pieces[0].partition("=")
        name = name.upper()
        if name == "UID" and uid is None:
            uid = _nz_number(value)
        elif name == "SECTION" and uid is not None and not section:
            section = _decode(value).upper()
            if not section or not _SECTION_TEXT.fullmatch(section):
                raise BadUrl(f"invalid section {section}")
        elif name == "PARTIAL" and uid is not None and partial is None:
            offset, dot, length = value.partition(".")
            partial = (_number(offset), _nz_number(length) if dot else None)
        else:
            raise BadUrl(f"unexpected ;{name} in the URL")
        for extra in pieces[1:]:
            key, _, argument = extra.partition("=")
            if key.upper() != "EXPIRE" or expire is not None:
                raise BadUrl(f"unexpected ;{key} in the URL")
            expire = _expire(argument)
    if uid is None:
        raise BadUrl("the URL names no message (;UID=)")
    mechanism = token = None
    if access is not None:
        if not access or not re.fullmatch(r"(?i)(submit\+|user\+)[^:]+|authuser|anonymous", access):
            raise BadUrl("invalid URLAUTH access identifier")
        access = _decode_access(access)
        if verifier is not None:
            mechanism, colon, token = verifier.partition(":")
            if not colon or not _MECHANISM.fullmatch(mechanism) or not _TOKEN.fullmatch(token):
                raise BadUrl("invalid URLAUTH verifier")
            mechanism = mechanism.upper()
            token = token.lower()
    # The token signs the whole URL up to the access identifier (RFC 4467 section 3).
    signed = text[: len(text) - len(verifier) - 1] if verifier is not None else text
    return ImapUrl(
        user=user,
        host=host,
        mailbox=mailbox,
        uid=uid,
        uidvalidity=uidvalidity,
        section=section,
        partial=partial,
        expire=expire,
        access=access,
        mechanism=mechanism,
        token=token,
        rump=signed,
    )


def _decode(text: str) -> str:
    try:
        return urllib.parse.unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise BadUrl("percent-encoding is not UTF-8") from None


def _decode_access(access: str) -> str:
    lowered = access.lower()
    for prefix in ("submit+", "user+"):
        if lowered.startswith(prefix):
            return prefix + _decode(access[len(prefix) :])
    return lowered


def _number(text: str) -> int:
    if not text.isdigit() or len(text) > 10 or int(text) > 0xFFFFFFFF:
        raise BadUrl(f"invalid number {text!r}")
    return int(text)


def _nz_number(text: str) -> int:
    number = _number(text)
    if number == 0 or text.startswith("0"):
        raise BadUrl(f"invalid number {text!r}")
    return number


def _expire(text: str) -> datetime.datetime:
    try:
        moment = datetime.datetime.fromisoformat(_decode(text).replace("z", "Z"))
    except ValueError:
        raise BadUrl("invalid ;EXPIRE= date-time") from None
    if moment.tzinfo is None:
        raise BadUrl(";EXPIRE= needs a time zone")
    return moment


def section_parts(section: str) -> tuple[str, str, list[str]]:
    """``"1.2.HEADER.FIELDS (FROM TO)"`` -> (``"1.2"``, ``"HEADER.FIELDS"``, [``"FROM"``, ``"TO"``])
    as :func:`tidings.mail.sections.extract_section` takes them."""
    head, _, fields_text = section.partition(" (")
    fields = fields_text.rstrip(")").split() if fields_text else []
    numbers: list[str] = []
    words = head.split(".") if head else []
    while words and words[0].isdigit():
        numbers.append(words.pop(0))
    return ".".join(numbers), ".".join(words), fields
