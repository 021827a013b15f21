"""SMTP command lines parsed into typed commands (RFC 5321 section 4.1, plus the ESMTP extensions).

Pure functions, no I/O and no knowledge of the session: `parse_command(line)` turns one command line
(without its line ending) into a dataclass, or raises `CommandError` carrying the reply the client
should get. Whether a command is allowed *now* (state, TLS, authentication, limits) is the
session's business; here we only judge syntax.

Extensions whose parameters are parsed here: SIZE (RFC 1870), 8BITMIME (RFC 6152), SMTPUTF8
(RFC 6531), DSN (RFC 3461: RET, ENVID, NOTIFY, ORCPT), AUTH (RFC 4954: the MAIL AUTH= parameter),
FUTURERELEASE (RFC 4865: HOLDFOR, HOLDUNTIL), CHUNKING (RFC 3030: BDAT).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Reply:
    """A reply: code, enhanced status code (RFC 3463 / RFC 2034) and human text."""

    code: int
    status: str
    text: str

    def encode(self) -> bytes:
        lines = self.text.split("\n")
        out = [f"{self.code}-{self.status} {line}" for line in lines[:-1]]
        out.append(f"{self.code} {self.status} {lines[-1]}")
        return ("\r\n".join(out) + "\r\n").encode("utf-8", "replace")


class CommandError(Exception):
    """A command line the client got wrong; `reply` says how."""

    def __init__(self, code: int, status: str, text: str) -> None:
        super().__init__(text)
        self.reply = Reply(code, status, text)


def syntax_error(text: str) -> CommandError:
    return CommandError(501, "5.5.4", text)


# --- commands ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hello:
    """EHLO / HELO (RFC 5321 section 4.1.1.1)."""

    domain: str
    extended: bool


@dataclass(frozen=True)
class MailParams:
    size: int | None = None
    body: str | None = None  # "7BIT" | "8BITMIME"
    smtputf8: bool = False
    ret: str | None = None  # "FULL" | "HDRS"
    envid: str | None = None  # xtext-decoded
    auth: str | None = None  # RFC 4954 section 5, decoded; "" for <>
    hold_for: int | None = None  # seconds
    hold_until: datetime | None = None


@dataclass(frozen=True)
class MailFrom:
    """MAIL FROM:<reverse-path> [params] (RFC 5321 section 4.1.1.2). `address` is "" for <>."""

    address: str
    params: MailParams = field(default_factory=MailParams)


@dataclass(frozen=True)
class RcptParams:
    notify: str | None = None  # "NEVER" or a comma list of SUCCESS, FAILURE, DELAY (upper case)
    orcpt: str | None = None  # "rfc822;addr", xtext-decoded


@dataclass(frozen=True)
class RcptTo:
    """RCPT TO:<forward-path> [params] (RFC 5321 section 4.1.1.3)."""

    address: str
    params: RcptParams = field(default_factory=RcptParams)


@dataclass(frozen=True)
class Data:
    """DATA (RFC 5321 section 4.1.1.4)."""


@dataclass(frozen=True)
class Bdat:
    """BDAT size [LAST] (RFC 3030 section 2)."""

    size: int
    last: bool


@dataclass(frozen=True)
class Burl:
    """BURL absolute-URI [LAST] (RFC 4468 section 3): the URL's content is the next chunk."""

    url: str
    last: bool


@dataclass(frozen=True)
class Rset:
    """RSET (RFC 5321 section 4.1.1.5)."""


@dataclass(frozen=True)
class Vrfy:
    """VRFY (RFC 5321 section 4.1.1.6)."""

    argument: str


@dataclass(frozen=True)
class Expn:
    """EXPN (RFC 5321 section 4.1.1.7)."""

    argument: str


@dataclass(frozen=True)
class Help:
    """HELP (RFC 5321 section 4.1.1.8)."""

    argument: str


@dataclass(frozen=True)
class Noop:
    """NOOP (RFC 5321 section 4.1.1.9)."""


@dataclass(frozen=True)
class Quit:
    """QUIT (RFC 5321 section 4.1.1.10)."""


@dataclass(frozen=True)
class StartTls:
    """STARTTLS (RFC 3207 section 4)."""


@dataclass(frozen=True)
class Auth:
    """AUTH mechanism [initial-response] (RFC 4954 section 4). `initial` is the base64 text."""

    mechanism: str
    initial: str | None


Command = (
    Hello | MailFrom | RcptTo | Data | Bdat | Burl | Rset | Vrfy | Expn | Help | Noop | Quit | StartTls | Auth
)


# --- parsing -----------------------------------------------------------------------------------

_NO_ARGUMENT = {"DATA": Data(), "RSET": Rset(), "NOOP": Noop(), "QUIT": Quit(), "STARTTLS": StartTls()}
# Commands that must come without arguments (NOOP may carry a string, RFC 5321 section 4.1.1.9).
_ARGUMENT_IGNORED = {"NOOP"}
MAX_PARAM_VALUE = 1000
_XTEXT_HEX = re.compile(r"\+([0-9A-F]{2})")
_DIGITS = re.compile(r"^[0-9]{1,20}$")
_KEYWORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
_NOTIFY_VALUES = {"SUCCESS", "FAILURE", "DELAY"}


def decode_command_line(line: bytes) -> str:
    """Command bytes to text. UTF-8 is allowed (SMTPUTF8 addresses); NULs and other bytes are not."""
    if b"\x00" in line:
        raise CommandError(500, "5.5.2", "NUL characters are not allowed in commands")
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError(500, "5.5.2", "Command is not valid UTF-8") from None


def parse_command(line: bytes) -> Command:
    """Parse one command line (without CRLF); raise CommandError for anything malformed."""
    text = decode_command_line(line)
    verb, _, rest = text.partition(" ")
    verb = verb.upper()
    rest = rest.strip()
    if verb in _NO_ARGUMENT:
        if rest and verb not in _ARGUMENT_IGNORED:
            raise syntax_error(f"{verb} takes no arguments")
        return _NO_ARGUMENT[verb]
    if verb in ("EHLO", "HELO"):
        return _parse_hello(rest, verb == "EHLO")
    if verb == "MAIL":
        return _parse_mail(rest)
    if verb == "RCPT":
        return _parse_rcpt(rest)
    if verb == "BDAT":
        return _parse_bdat(rest)
    if verb == "BURL":
        return _parse_burl(rest)
    if verb == "AUTH":
        return _parse_auth(rest)
    if verb == "VRFY":
        if not rest:
            raise syntax_error("VRFY needs an argument")
        return Vrfy(rest)
    if verb == "EXPN":
        if not rest:
            raise syntax_error("EXPN needs an argument")
        return Expn(rest)
    if verb == "HELP":
        return Help(rest)
    raise CommandError(500, "5.5.1", "Command not recognized")


def _parse_hello(rest: str, extended: bool) -> Hello:
    parts = rest.split()
    if not parts:
        raise syntax_error(f"{'EHLO' if extended else 'HELO'} needs a domain or address literal")
    # RFC 5321 4.1.1.1 allows only the domain; some clients add words after it, which we ignore.
    domain = parts[0]
    if any(ch in domain for ch in '<>"\\()') or len(domain) > 255:
        raise syntax_error("Invalid domain in greeting")
    return Hello(domain, extended)


def _split_path(rest: str, keyword: str) -> tuple[str, str]:
    """`FROM:<path> params` -> (path, params). Tolerates a space after the colon."""
    if rest[: len(keyword) + 1].upper() != keyword + ":":
        raise syntax_error(f"Syntax: {'MAIL FROM' if keyword == 'FROM' else 'RCPT TO'}:<address>")
    rest = rest[len(keyword) + 1 :].lstrip(" ")
    if not rest.startswith("<"):
        # Lenient: a bare address without angle brackets (seen from old clients and scripts).
        path, _, params = rest.partition(" ")
        if not path:
            raise syntax_error("Missing address")
        return path, params
    end = _closing_bracket(rest)
    if end < 0:
        raise syntax_error("Unterminated <address>")
    path, params = rest[1:end], rest[end + 1 :]
    if params and not params.startswith(" "):
        raise syntax_error("Garbage after <address>")
    return path, params


def _closing_bracket(text: str) -> int:
    """Index of the '>' closing the path that starts at text[0], respecting quoted local parts."""
    quoted = escaped = False
    for index in range(1, len(text)):
        ch = text[index]
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == ">" and not quoted:
            return index
    return -1


def _path_address(path: str, allow_empty: bool) -> str:
    """The mailbox of a path; a source route (`@a,@b:user@d`) is dropped (RFC 5321 section 4.1.2/C)."""
    if path.startswith("@"):
        colon = path.find(":")
        if colon < 0:
            raise syntax_error("Malformed source route")
        path = path[colon + 1 :]
    if not path:
        if allow_empty:
            return ""
        raise syntax_error("Empty address")
    local, at, domain = path.rpartition("@")
    unquoted_specials = any(ch in path for ch in " \t<>") and not local.startswith('"')
    if not at or not local or not domain or unquoted_specials:
        raise syntax_error(f"Malformed address <{path}>")
    if len(path) > 320:
        raise syntax_error("Address too long")
    return path


def _params(text: str) -> list[tuple[str, str | None]]:
    out = []
    for item in text.split():
        key, eq, value = item.partition("=")
        if not _KEYWORD.match(key):
            raise syntax_error(f"Malformed parameter {item[:40]!r}")
        if eq and (not value or len(value) > MAX_PARAM_VALUE):
            raise syntax_error(f"Malformed parameter value for {key.upper()}")
        out.append((key.upper(), value if eq else None))
    return out


def decode_xtext(value: str) -> str:
    """RFC 3461 section 4: `+XX` hex escapes; other characters are printable ASCII except `+` and `=`."""
    if any(ch < "!" or ch > "~" or ch == "=" for ch in value):
        raise syntax_error("Malformed xtext")
    decoded = _XTEXT_HEX.sub(lambda m: chr(int(m.group(1), 16)), value)
    if "+" in _XTEXT_HEX.sub("", value):
        raise syntax_error("Malformed xtext (a '+' must start a hex escape)")
    return decoded


def encode_xtext(value: str) -> str:
    """The inverse of `decode_xtext` (for values we pass on)."""
    return "".join(ch if "!" <= ch <= "~" and ch not in "+=" else f"+{ord(ch):02X}" for ch in value)


def _no_value(key: str, value: str | None) -> None:
    if value is not None:
        raise syntax_error(f"{key} takes no value")


def _needs_value(key: str, value: str | None) -> str:
    if value is None:
        raise syntax_error(f"{key} needs a value")
    return value


def _parse_mail(rest: str) -> MailFrom:
    path, param_text = _split_path(rest, "FROM")
    address = _path_address(path, allow_empty=True)
    values: dict = {}
    seen: set[str] = set()
    for key, value in _params(param_text):
        if key in seen:
            raise syntax_error(f"Duplicate parameter {key}")
        seen.add(key)
        if key == "SIZE":
            if value is None or not _DIGITS.match(value):
                raise syntax_error("SIZE needs a number")
            values["size"] = int(value)
        elif key == "BODY":
            body = _needs_value(key, value).upper()
            if body not in ("7BIT", "8BITMIME"):
                raise CommandError(555, "5.5.4", f"BODY={body} is not supported")
            values["body"] = body
        elif key == "SMTPUTF8":
            _no_value(key, value)
            values["smtputf8"] = True
        elif key == "RET":
            ret = _needs_value(key, value).upper()
            if ret not in ("FULL", "HDRS"):
                raise syntax_error("RET must be FULL or HDRS")
            values["ret"] = ret
        elif key == "ENVID":
            envid = decode_xtext(_needs_value(key, value))
            if len(envid) > 100:
                raise syntax_error("ENVID longer than 100 characters")
            values["envid"] = envid
        elif key == "AUTH":
            auth = _needs_value(key, value)
            values["auth"] = "" if auth == "<>" else decode_xtext(auth)
        elif key == "HOLDFOR":
            if value is None or not _DIGITS.match(value):
                raise syntax_error("HOLDFOR needs a number of seconds")
            values["hold_for"] = int(value)
        elif key == "HOLDUNTIL":
            values["hold_until"] = parse_rfc3339(_needs_value(key, value))
        else:
            raise CommandError(555, "5.5.4", f"MAIL parameter {key} not recognized")
    if "hold_for" in values and "hold_until" in values:
        raise syntax_error("HOLDFOR and HOLDUNTIL are mutually exclusive")
    if values.get("smtputf8") is not True and not address.isascii():
        raise CommandError(553, "5.6.7", "Non-ASCII address requires the SMTPUTF8 parameter")
    return MailFrom(address, MailParams(**values))


def _parse_rcpt(rest: str) -> RcptTo:
    path, param_text = _split_path(rest, "TO")
    # RFC 5321 4.1.1.3: <Postmaster> without a domain is valid.
    address = path if path.lower() == "postmaster" else _path_address(path, allow_empty=False)
    values: dict = {}
    seen: set[str] = set()
    for key, value in _params(param_text):
        if key in seen:
            raise syntax_error(f"Duplicate parameter {key}")
        seen.add(key)
        if key == "NOTIFY":
            items = [v.upper() for v in _needs_value(key, value).split(",")]
            if items != ["NEVER"] and not (set(items) <= _NOTIFY_VALUES and len(set(items)) == len(items)):
                raise syntax_error("NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY")
            values["notify"] = ",".join(items)
        elif key == "ORCPT":
            addr_type, semi, original = _needs_value(key, value).partition(";")
            if not semi or not _KEYWORD.match(addr_type) or not original:
                raise syntax_error("ORCPT must be addr-type;xtext")
            values["orcpt"] = f"{addr_type.lower()};{decode_xtext(original)}"
        else:
            raise CommandError(555, "5.5.4", f"RCPT parameter {key} not recognized")
    return RcptTo(address, RcptParams(**values))


def _parse_bdat(rest: str) -> Bdat:
    parts = rest.split()
    if not parts or not _DIGITS.match(parts[0]) or len(parts) > 2:
        raise syntax_error("Syntax: BDAT <size> [LAST]")
    if len(parts) == 2 and parts[1].upper() != "LAST":
        raise syntax_error("Syntax: BDAT <size> [LAST]")
    return Bdat(int(parts[0]), len(parts) == 2)


def _parse_burl(rest: str) -> Burl:
    parts = rest.split()
    if not parts or len(parts) > 2 or (len(parts) == 2 and parts[1].upper() != "LAST"):
        raise syntax_error("Syntax: BURL <url> [LAST]")
    return Burl(parts[0], len(parts) == 2)


def _parse_auth(rest: str) -> Auth:
    parts = rest.split()
    if not parts or len(parts) > 2 or not _KEYWORD.match(parts[0]):
        raise syntax_error("Syntax: AUTH <mechanism> [initial-response]")
    return Auth(parts[0].upper(), parts[1] if len(parts) == 2 else None)


_RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def parse_rfc3339(value: str) -> datetime:
    """RFC 3339 date-time as used by HOLDUNTIL (RFC 4865 section 5); always timezone-aware."""
    if not _RFC3339.match(value):
        raise syntax_error("HOLDUNTIL needs an RFC 3339 date-time")
    try:
        return datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        raise syntax_error("HOLDUNTIL date-time out of range") from None
