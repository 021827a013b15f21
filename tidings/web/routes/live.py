"""Live updates: a WebSocket per open page, fed by the same change events IMAP IDLE waits on
(tidings.notify: this process's own changes, other worker processes' through the supervisor,
other nodes' through PostgreSQL NOTIFY).

The server only ever says which of the account's mailboxes changed:
`{"type": "changes", "mailboxes": [3, 7]}`; the page fetches what it shows again (through the
ordinary guarded routes), so nothing here reads mail or trusts anything the browser sends.
Bursts are gathered for COALESCE seconds into one message. Before each message, and every
REVALIDATE seconds when nothing happens, the session is looked up again: a logged-out or disabled
session's socket is closed (code 4401) instead.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from tidings.notify import Change
from tidings.store.web_sessions import WebSession
from tidings.web.session import SESSION_COOKIE, socket, tidings

COALESCE = 0.2
REVALIDATE = 60.0
KINDS = {"message", "mailbox"}


async def read_until_closed(websocket: WebSocket) -> None:
    """Read and ignore what the browser sends, until it goes away."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return


@socket
async def live(websocket: WebSocket, session: WebSession) -> None:
    store = tidings(websocket).store
    token = websocket.cookies.get(SESSION_COOKIE, "")
    await websocket.accept()
    changed: set[int] = set()
    wake = asyncio.Event()

    def on_change(change: Change) -> None:
        if change.kind == "account":  # disabled or removed: the loop looks at the session again
            wake.set()
        elif change.kind in KINDS and change.mailbox_id is not None:
            changed.add(change.mailbox_id)
            wake.set()

    unsubscribe = store.hub.subscribe(session.account_id, on_change)
    reader = asyncio.create_task(read_until_closed(websocket))
    try:
        await websocket.send_json({"type": "hello"})
        while not reader.done():
            waiter = asyncio.create_task(wake.wait())
            await asyncio.wait({reader, waiter}, timeout=REVALIDATE, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if reader.done():
                break
            # Before telling anything, and now and then when nothing happens: is the session still
            # valid (not logged out, here or "everywhere"; the account not disabled)?
            if await store.web_sessions.find(token) is None:
                await websocket.close(code=4401)
                break
            if wake.is_set():
                await asyncio.sleep(COALESCE)
                wake.clear()
                boxes = sorted(changed)
                changed.clear()
                if boxes:
                    await websocket.send_json({"type": "changes", "mailboxes": boxes})
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        unsubscribe()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader


routes = [WebSocketRoute("/live", live)]
