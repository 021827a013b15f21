"""Commands valid in any or most states: CAPABILITY, NOOP, LOGOUT, ID, ENABLE, COMPRESS, IDLE.

RFC 9051 6.1 (any state), RFC 2971 (ID), RFC 5161 (ENABLE), RFC 4978 (COMPRESS), RFC 2177 (IDLE).
"""

from __future__ import annotations

from tidings.imap import commands as c
from tidings.imap import wire
from tidings.imap.states import ANSWERED, ANY, AUTHENTICATED, Bad, No, State, command

# ENABLE-able extensions (RFC 5161 3.1: unknown ones are silently ignored).
SERVER_VERSION = "0.1"

ENABLEABLE = {"CONDSTORE", "QRESYNC", "UTF8=ACCEPT", "IMAP4REV2"}

MAX_ID_PAIRS = 30  # RFC 2971 3.3


@command("CAPABILITY", ANY)
async def capability(session, cmd: c.Capability) -> None:
    """RFC 9051 6.1.1."""
    session.untagged("CAPABILITY " + " ".join(session.capabilities()))


@command("NOOP", ANY)
async def noop(session, cmd: c.Noop) -> None:
    """RFC 9051 6.1.2: nothing, but pending mailbox updates go out before the OK."""


@command("LOGOUT", ANY)
async def logout(session, cmd: c.Logout) -> None:
    """RFC 9051 6.1.3: BYE, then the tagged OK, then the connection closes."""
    session.untagged("BYE Logging out")
    session.tagged(cmd.tag, "OK", "LOGOUT completed")
    session.state = State.LOGOUT


@command("ID", ANY)
async def identify(session, cmd: c.Id) -> None:
    """RFC 2971: remember what the client says about itself, say who we are."""
    if cmd.parameters is not None:
        if len(cmd.parameters) > MAX_ID_PAIRS:
            raise Bad("Too many ID parameters")
        session.client_id = {key[:30]: (value[:1024] if value else value) for key, value in cmd.parameters}
    ours = ["name", "Tidings", "version", SERVER_VERSION, "vendor", "Tidings"]
    session.untagged(b"ID " + wire.encode_list(ours))


@command("ENABLE", AUTHENTICATED)
async def enable(session, cmd: c.Enable) -> None:
    """RFC 5161; QRESYNC implies CONDSTORE (RFC 7162 3.2.3).  Only before SELECT (RFC 5161 3.1)."""
    newly = []
    for capability_name in cmd.capabilities:
        if capability_name in ENABLEABLE and capability_name not in session.enabled:
            if capability_name in ("CONDSTORE", "QRESYNC"):
                session.enable_condstore()
            session.enabled.add(capability_name)
            newly.append("IMAP4rev2" if capability_name == "IMAP4REV2" else capability_name)
    session.untagged("ENABLED" + "".join(" " + name for name in newly))


@command("COMPRESS", AUTHENTICATED)
async def compress(session, cmd: c.Compress) -> None:
    """RFC 4978: the OK goes out uncompressed, everything after is raw deflate."""
    if cmd.mechanism != "DEFLATE":
        raise Bad(f"Unknown compression mechanism {cmd.mechanism}")
    if session.conn.compressed:
        raise No("Compression is already active", "COMPRESSIONACTIVE")
    await session.send_updates()
    session.tagged(cmd.tag, "OK", "DEFLATE active")
    await session.flush()
    session.conn.start_compression()
    return ANSWERED


@command("IDLE", AUTHENTICATED)
async def idle(session, cmd: c.Idle) -> None:
    """RFC 2177 / RFC 9051 6.3.13."""
    await session.idle(cmd.tag)
    return "IDLE terminated"
