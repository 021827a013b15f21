"""GETMETADATA and SETMETADATA: server and mailbox annotations (RFC 5464, capability METADATA).

The empty mailbox name means the server; any other name is one of the user's mailboxes.  Entry
names arrive checked and lower-cased from the grammar; this module picks the entries a
GETMETADATA asks for (DEPTH, MAXSIZE) and maps the store's limits to the response codes of
section 4.3.  Storage, ownership and limits are :mod:`tidings.store.metadata`'s business.
"""

from __future__ import annotations

from tidings.imap import commands as c
from tidings.imap import wire
from tidings.imap.states import AUTHENTICATED, No, command
from tidings.store.metadata import MetadataTooLarge, MetadataTooMany


async def _target(session, wire_name: str) -> int | None:
    """None for the server, else the id of the user's mailbox (NO [NONEXISTENT] otherwise)."""
    if wire_name == "":
        return None
    return (await session.mailbox(wire_name)).id


def _wanted(name: str, requested: tuple[str, ...], depth: int | None) -> bool:
    """Whether entry ``name`` answers one of the ``requested`` names at ``depth`` (RFC 5464
    section 4.2.2: 0 the entry itself, 1 also its children, infinity all its descendants)."""
    for entry in requested:
        if name == entry:
            return True
        prefix = entry if entry.endswith("/") else entry + "/"
        below = name.startswith(prefix) and depth != 0
        if below and (depth is None or "/" not in name[len(prefix) :]):
            return True
    return False


def _value(data: bytes, utf8: bool) -> bytes:
    """A value as the client may read it: quoted when it can be, a literal8 when it holds NUL."""
    if b"\x00" in data:
        return wire.literal(data, binary=True)
    return wire.quote(data, utf8)


@command("GETMETADATA", AUTHENTICATED)
async def getmetadata(session, cmd: c.GetMetadata):
    """RFC 5464 section 4.2: one ``* METADATA mailbox (entry value ...)`` with the entries that
    exist (none when none do); values over MAXSIZE are left out and the largest of them is
    named in ``[METADATA LONGENTRIES n]``."""
    target = await _target(session, cmd.mailbox)
    entries = await session.store.metadata.entries(session.account.id, target)
    found: list[bytes] = []
    longest: int | None = None
    for name in sorted(entries):
        if not _wanted(name, cmd.entries, cmd.depth):
            continue
        value = entries[name]
        if cmd.max_size is not None and len(value) > cmd.max_size:
            longest = max(longest or 0, len(value))
            continue
        found.append(wire.astring(name) + b" " + _value(value, session.utf8))
    if found:
        mailbox = session.encode_name(cmd.mailbox) if cmd.mailbox else b'""'
        session.untagged(b"METADATA " + mailbox + b" (" + b" ".join(found) + b")")
    if longest is not None:
        return f"METADATA LONGENTRIES {longest}", "GETMETADATA completed"
    return None


@command("SETMETADATA", AUTHENTICATED)
async def setmetadata(session, cmd: c.SetMetadata):
    """RFC 5464 section 4.3: all entries or none; NIL removes one."""
    target = await _target(session, cmd.mailbox)
    try:
        await session.store.metadata.set(session.account.id, target, list(cmd.entries))
    except MetadataTooLarge as exc:
        raise No(str(exc), f"METADATA MAXSIZE {exc.limit}") from None
    except MetadataTooMany as exc:
        raise No(str(exc), "METADATA TOOMANY") from None
    return None
