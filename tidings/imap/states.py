"""The IMAP session's states, the command registry and the errors handlers raise.

Which commands are legal in which state lives here, in one table (RFC 9051 section 3, RFC 3501
section 3): a handler is registered with ``@command("SELECT", states=AUTHENTICATED_OR_SELECTED)``
and the session refuses anything else with ``BAD`` before the handler runs.  Handlers raise
:class:`No` or :class:`Bad`; the session turns them into tagged replies.

Pure: no I/O.  Handler modules import this module, never :mod:`tidings.imap.session`.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any


class State(enum.Enum):
    """RFC 9051 section 3: the four connection states."""

    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


ANY = frozenset({State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED})
NOT_AUTHENTICATED = frozenset({State.NOT_AUTHENTICATED})
AUTHENTICATED = frozenset({State.AUTHENTICATED, State.SELECTED})  # SELECTED is an authenticated state
SELECTED = frozenset({State.SELECTED})


class CommandFailed(Exception):
    """Base of the errors a handler raises to end its command with a tagged NO or BAD."""

    status = "NO"

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code  # response code without brackets, e.g. "TRYCREATE" or "COPYUID 1 2 3"


class No(CommandFailed):
    """The command was understood but failed (``tag NO [code] text``)."""

    status = "NO"


class Bad(CommandFailed):
    """The command is not acceptable here (``tag BAD [code] text``)."""

    status = "BAD"


Handler = Callable[[Any, Any], Awaitable[None]]


@dataclass(frozen=True)
class Registration:
    name: str
    states: frozenset[State]
    handler: Handler
    # Whether untagged EXPUNGE may be sent while this command runs (RFC 3501 7.4.1 forbids it
    # during FETCH, STORE and SEARCH by sequence number, because numbers would shift under them).
    expunge_allowed: bool = True


COMMANDS: dict[str, Registration] = {}


def command(
    name: str, states: frozenset[State], *, expunge_allowed: bool = True
) -> Callable[[Handler], Handler]:
    """Register ``handler(session, cmd)`` for the command class whose ``name`` is ``name``."""

    def register(handler: Handler) -> Handler:
        if name in COMMANDS:
            raise RuntimeError(f"IMAP command {name} registered twice")
        COMMANDS[name] = Registration(name, states, handler, expunge_allowed)
        return handler

    return register


class _Answered:
    """Returned by a handler that already wrote its own tagged reply (COMPRESS, STARTTLS)."""

    def __repr__(self) -> str:
        return "ANSWERED"


ANSWERED = _Answered()
