"""POP3 command parser: one command line (bytes, without or with its CRLF) -> a command dataclass.

Pure: no I/O, no store, no session state. Bad input of any kind (non-UTF-8, control characters,
wrong argument counts, numbers out of range) raises `ParseError`, never anything else, so the
session can answer `-ERR` and carry on.

Grammar: RFC 1939 section 3 (keyword, single-space separated arguments, case-insensitive keyword),
RFC 2449 section 3 (CAPA), RFC 2595 section 4 (STLS), RFC 5034 section 4 (AUTH with initial response).
Deviation on purpose: the PASS argument is the rest of the line, spaces included, because passwords
may contain spaces (RFC 1939 section 7 leaves this open; every common server does the same).
"""

from __future__ import annotations

from dataclasses import dataclass

# RFC 1939 limits keywords to 3-4 characters and arguments to 40; RFC 2449 section 4 limits a
# command line to 255 octets. We accept longer lines (long passwords, AUTH PLAIN initial responses)
# up to this many octets including CRLF; the session refuses anything longer unparsed.
MAX_COMMAND_LINE = 1024
# Message numbers and line counts are decimal; this keeps int() away from megabyte-long digits.
MAX_NUMBER_DIGITS = 10


class ParseError(ValueError):
    """The line is not a valid POP3 command; the message is safe to send back after "-ERR "."""


@dataclass(frozen=True)
class Command:
    """Base of all commands; `keyword` is the upper-case command name."""

    keyword = ""


@dataclass(frozen=True)
class Capa(Command):
    keyword = "CAPA"


@dataclass(frozen=True)
class Stls(Command):
    keyword = "STLS"


@dataclass(frozen=True)
class User(Command):
    name: str
    keyword = "USER"


@dataclass(frozen=True)
class Pass(Command):
    password: str
    keyword = "PASS"


@dataclass(frozen=True)
class Auth(Command):
    """AUTH alone lists mechanisms (a common extension); otherwise mechanism and optional initial
    response (RFC 5034 section 4: "=" stands for an empty initial response)."""

    mechanism: str | None = None
    initial_response: str | None = None
    keyword = "AUTH"


@dataclass(frozen=True)
class Stat(Command):
    keyword = "STAT"


@dataclass(frozen=True)
class List(Command):
    number: int | None = None
    keyword = "LIST"


@dataclass(frozen=True)
class Retr(Command):
    number: int
    keyword = "RETR"


@dataclass(frozen=True)
class Top(Command):
    number: int
    lines: int
    keyword = "TOP"


@dataclass(frozen=True)
class Uidl(Command):
    number: int | None = None
    keyword = "UIDL"


@dataclass(frozen=True)
class Dele(Command):
    number: int
    keyword = "DELE"


@dataclass(frozen=True)
class Rset(Command):
    keyword = "RSET"


@dataclass(frozen=True)
class Noop(Command):
    keyword = "NOOP"


@dataclass(frozen=True)
class Quit(Command):
    keyword = "QUIT"


def _strip_line_end(line: bytes) -> bytes:
    if line.endswith(b"\r\n"):
        return line[:-2]
    if line.endswith(b"\n"):  # bare LF from sloppy clients: accept (RFC 1939 says CRLF)
        return line[:-1]
    return line


def _decode(line: bytes) -> str:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("command line is not valid UTF-8") from None
    if any(ord(c) < 0x20 or c == "\x7f" for c in text):
        raise ParseError("control characters in command line")
    return text


def _number(text: str, what: str, minimum: int) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > MAX_NUMBER_DIGITS:
        raise ParseError(f"{what} must be a decimal number")
    value = int(text)
    if value < minimum:
        raise ParseError(f"{what} must be at least {minimum}")
    return value


def _message_number(text: str) -> int:
    return _number(text, "message number", 1)


def _no_args(cls: type[Command]):
    def build(args: list[str]) -> Command:
        if args:
            raise ParseError(f"{cls.keyword} takes no arguments")
        return cls()

    return build


def _one_number(cls: type[Command]):
    def build(args: list[str]) -> Command:
        if len(args) != 1:
            raise ParseError(f"{cls.keyword} needs one message number")
        return cls(_message_number(args[0]))

    return build


def _optional_number(cls: type[Command]):
    def build(args: list[str]) -> Command:
        if len(args) > 1:
            raise ParseError(f"{cls.keyword} takes at most one message number")
        return cls(_message_number(args[0]) if args else None)

    return build


def _user(args: list[str]) -> Command:
    if len(args) != 1:
        raise ParseError("USER needs one user name")
    return User(args[0])


def _top(args: list[str]) -> Command:
    if len(args) != 2:
        raise ParseError("TOP needs a message number and a line count")
    return Top(_message_number(args[0]), _number(args[1], "line count", 0))


def _auth(args: list[str]) -> Command:
    if not args:
        return Auth()
    if len(args) > 2:
        raise ParseError("AUTH takes a mechanism and at most one initial response")
    mechanism = args[0].upper()
    if not mechanism.isascii() or len(mechanism) > 20:
        raise ParseError("bad SASL mechanism name")
    return Auth(mechanism, args[1] if len(args) == 2 else None)


_BUILDERS = {
    "CAPA": _no_args(Capa),
    "STLS": _no_args(Stls),
    "USER": _user,
    "AUTH": _auth,
    "STAT": _no_args(Stat),
    "LIST": _optional_number(List),
    "RETR": _one_number(Retr),
    "TOP": _top,
    "UIDL": _optional_number(Uidl),
    "DELE": _one_number(Dele),
    "RSET": _no_args(Rset),
    "NOOP": _no_args(Noop),
    "QUIT": _no_args(Quit),
}


def parse_command(line: bytes) -> Command:
    """Parse one command line; raises ParseError for anything that is not a valid command."""
    if len(line) > MAX_COMMAND_LINE:
        raise ParseError("command line too long")
    text = _decode(_strip_line_end(line))
    keyword, _, rest = text.partition(" ")
    keyword = keyword.upper()
    if not keyword:
        raise ParseError("empty command")
    if keyword == "PASS":
        # The rest of the line, verbatim: passwords may contain (and end in) spaces.
        if not rest:
            raise ParseError("PASS needs a password")
        return Pass(rest)
    builder = _BUILDERS.get(keyword)
    if builder is None:
        raise ParseError("unknown command")
    # RFC 1939: arguments are separated by a single space; tolerate runs of spaces and a trailing one.
    args = rest.split()
    return builder(args)


def parse_sasl_response(line: bytes) -> str | None:
    """A client's SASL continuation line (RFC 5034 section 4): base64 text, or None for "*" (cancel)."""
    if len(line) > MAX_COMMAND_LINE:
        raise ParseError("SASL response too long")
    text = _decode(_strip_line_end(line)).strip()
    if text == "*":
        return None
    return text
