"""Sweeps over every route of the web client, found from the app itself (a route added later is
swept too): state changes without the CSRF token are refused, and one account can never reach
another's mailboxes, messages, attachments or folders by putting their ids in a URL or a form."""

from __future__ import annotations

import json
import re
import time

import pytest
from starlette.routing import Route, WebSocketRoute
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tidings.store import Envelope
from tidings.web.routes import all_routes
from tidings.web.security import CONTENT_SECURITY_POLICY

PARAM = re.compile(r"{(\w+)(?::\w+)?}")


def http_routes(guards: set[str]) -> list[tuple[str, str]]:
    """(method, path template) of every route whose endpoint wears one of `guards`."""
    out = []
    for route in all_routes():
        if isinstance(route, Route) and route.endpoint.tidings_guard in guards:
            for method in sorted(route.methods - {"HEAD"}):
                out.append((method, route.path))
    return out


def fill(template: str, values: dict[str, object]) -> str:
    return PARAM.sub(lambda m: str(values[m.group(1)]), template)


@pytest.fixture
def mail(web):
    """Each account with one message carrying an attachment; the ids of bob's things."""
    for address in ("alice@example.test", "bob@example.test"):
        web.deliver(
            address,
            subject=f"For {address}",
            body="private text",
            attachments=[("secret.txt", "text/plain", b"bob's secret" if "bob" in address else b"alice's")],
        )
    ids = {}
    for address in ("alice@example.test", "bob@example.test"):
        account = web.call(web.store.accounts.get_user(address))
        inbox = web.call(web.store.mailboxes.get(account.id, "INBOX"))
        box, refs = web.call(web.store.mailboxes.messages(account.id, inbox.id))
        extra = web.call(web.store.mailboxes.create(account.id, f"Projects-{address[0]}"))
        identity = web.call(web.store.identities.save(account.id, None, address, address, "sig", True))
        later = Envelope(
            sender=address, remote=[("x@remote.test", None, None)], release_at=time.time() + 3600
        )
        later.account_id = account.id
        scheduled = web.call(web.store.delivery.accept(later, b"Subject: later\r\n\r\nsecret\r\n"))
        ids[address] = {
            "account": account.id,
            "mailbox_id": inbox.id,
            "uid": refs[0].uid,
            "section": "2",
            "folder": extra.id,
            **pim_things(web, account.id, address.split("@")[0].title()),
            "id": identity.id,  # settings: an identity
            "address": address,  # admin console: a user and a change to it (admins only)
            "change": "disable",
            "domain": "example.test",
            "queue_id": scheduled.queue_id,
        }
    return ids


def pim_things(web, account_id: int, whose: str) -> dict:
    """A contact with a photo, an event and a journal entry: the ids the PIM routes take."""
    from tidings.pim.contacts import Contact
    from tidings.pim.events import Entry, Event

    pim = web.store.pim
    book = web.call(pim.default_collection(account_id, "contacts"))
    calendar = web.call(pim.default_collection(account_id, "calendar"))
    journal = web.call(pim.default_collection(account_id, "journal"))
    photo = ("image/png", b"\x89PNG\r\n\x1a\n")
    card = Contact(name=f"{whose} secret contact", emails=[("work", "x@example.org")], photo=photo)
    contact = web.call(pim.put(account_id, book.id, None, card.to_card()))
    event = web.call(
        pim.put(account_id, calendar.id, None, Event(title=f"{whose} secret event").to_calendar())
    )
    entry = web.call(
        pim.put(account_id, journal.id, None, Entry(title=f"{whose} secret entry").to_calendar())
    )
    return {
        "book_id": book.id,
        "calendar_id": calendar.id,
        "contact_id": contact.id,
        "event_id": event.id,
        "entry_id": entry.id,
    }


def bob_state(web, mail) -> tuple:
    bob = mail["bob@example.test"]
    boxes = web.call(web.store.mailboxes.list(bob["account"]))
    contents: list = [("scheduled", [e.id for e in web.call(web.store.queue.scheduled(bob["account"]))])]
    for box in boxes:
        _, refs = web.call(web.store.mailboxes.messages(bob["account"], box.id))
        contents.append((box.name, [(r.uid, sorted(r.flags)) for r in refs]))
    for collection in web.call(web.store.pim.collections(bob["account"])):
        contents.append((collection.name, collection.sync_seq))
    account = web.call(web.store.accounts.get_user("bob@example.test"))
    identities = web.call(web.store.identities.list(bob["account"]))
    return tuple(contents), identities, account.disabled


def test_every_route_is_swept():
    """The sweeps below cover every page and action (a new area's routes are swept by itself)."""
    assert ("GET", "/mail/{mailbox_id:int}/{uid:int}/part/{section}") in http_routes({"page"})
    assert ("POST", "/mail/{mailbox_id:int}/act") in http_routes({"action"})
    assert len(http_routes({"action"})) >= 6
    assert ("GET", "/contacts/{contact_id:int}") in http_routes({"page"})
    assert ("POST", "/calendar/event/{event_id:int}/instance") in http_routes({"action"})


def test_every_state_change_without_the_csrf_token_is_refused(web, mail):
    alice = mail["alice@example.test"]
    client = web.client("alice@example.test")
    values = {**alice, "mailbox_id": alice["folder"]}
    before = web.call(web.store.mailboxes.list(alice["account"]))
    for method, template in http_routes({"action"}):
        path = fill(template, values)
        form = {"op": "delete", "uid": alice["uid"], "name": "Renamed", "target": alice["mailbox_id"]}
        assert client.request(method, path, form=form).status == 403, path
        wrong = {**form, "csrf": "not-the-token"}
        assert client.request(method, path, form=wrong).status == 403, path
        other = web.client("bob@example.test")  # bob's token is no good for alice's session
        assert client.request(method, path, form={**form, "csrf": other.csrf()}).status == 403, path
    assert web.call(web.store.mailboxes.list(alice["account"])) == before
    assert client.get(f"/mail/{alice['mailbox_id']}").status == 200  # still logged in, mail still there
    _, refs = web.call(web.store.mailboxes.messages(alice["account"], alice["mailbox_id"]))
    assert [r.uid for r in refs] == [alice["uid"]]


def test_another_accounts_ids_in_urls_give_404(web, mail):
    client = web.client("alice@example.test")
    csrf = client.csrf()
    before = bob_state(web, mail)
    bob = mail["bob@example.test"]
    for guard, values in (("page", bob), ("action", {**bob, "mailbox_id": bob["folder"]})):
        for method, template in http_routes({guard}):
            if not PARAM.search(template):
                continue
            path = fill(template, values)
            form = {"csrf": csrf, "op": "delete", "uid": bob["uid"], "name": "Stolen"}
            reply = client.request(method, path, form=form if method == "POST" else None)
            assert reply.status == 404, (path, reply.status)
            assert b"bob's secret" not in reply.body and b"For bob" not in reply.body
            assert b"Bob secret" not in reply.body
    assert bob_state(web, mail) == before


def test_another_accounts_ids_in_forms_give_404(web, mail):
    alice, bob = mail["alice@example.test"], mail["bob@example.test"]
    client = web.client("alice@example.test")
    csrf = client.csrf()
    before = bob_state(web, mail)
    # Move my message into bob's inbox.
    reply = client.post(
        f"/mail/{alice['mailbox_id']}/act",
        {"csrf": csrf, "op": "move", "uid": alice["uid"], "target": bob["mailbox_id"]},
    )
    assert reply.status == 404
    # A folder of mine created inside one of bob's.
    reply = client.post("/mail/folders", {"csrf": csrf, "name": "Inside", "parent": bob["folder"]})
    assert reply.status == 404
    assert bob_state(web, mail) == before
    _, refs = web.call(web.store.mailboxes.messages(alice["account"], alice["mailbox_id"]))
    assert [r.uid for r in refs] == [alice["uid"]]


def test_every_page_carries_the_content_security_policy(web, mail):
    alice = mail["alice@example.test"]
    client = web.client("alice@example.test")
    for _, template in http_routes({"page", "public"}):
        reply = client.get(fill(template, alice))
        policy = reply.header("Content-Security-Policy")
        assert policy, template
        assert "unsafe-inline" not in policy or policy.startswith("sandbox"), template
        if reply.status == 200 and "text/html" in (reply.header("Content-Type") or ""):
            assert policy == CONTENT_SECURITY_POLICY or policy.startswith("sandbox"), template
            assert not re.search(rb"<script(?![^>]*\bsrc=)", reply.body), template
            assert not re.search(rb"\son[a-z]+\s*=", reply.body), template
            assert b' style="' not in reply.body or policy.startswith("sandbox"), template


def test_the_live_socket_needs_a_session_and_our_own_origin(web, mail):
    client = web.client("alice@example.test")
    url = f"ws://127.0.0.1:{web.port}/live"
    cookie = f"tidings_session={client.cookies['tidings_session']}"
    origin = web.base
    for headers in ({"Origin": origin}, {"Cookie": cookie, "Origin": "http://evil.test"}, {"Cookie": cookie}):
        try:
            with connect(url, additional_headers=headers, origin=None, open_timeout=10) as socket:
                with pytest.raises(ConnectionClosed):  # closed by the server without a word
                    socket.recv(timeout=10)
        except InvalidStatus:
            pass
    with connect(url, additional_headers={"Cookie": cookie, "Origin": origin}, open_timeout=10) as socket:
        assert json.loads(socket.recv(timeout=10)) == {"type": "hello"}
        web.deliver("bob@example.test", subject="not for alice")
        web.deliver("alice@example.test", subject="for alice")
        message = json.loads(socket.recv(timeout=10))
        assert message == {"type": "changes", "mailboxes": [mail["alice@example.test"]["mailbox_id"]]}


def test_only_a_websocket_route_is_unguarded_by_http_guards():
    kinds = {type(route) for route in all_routes()}
    assert kinds <= {Route, WebSocketRoute}


def test_a_logged_out_sessions_socket_is_closed_instead_of_told(web, mail):
    client = web.client("alice@example.test")
    url = f"ws://127.0.0.1:{web.port}/live"
    headers = {"Cookie": f"tidings_session={client.cookies['tidings_session']}", "Origin": web.base}
    with connect(url, additional_headers=headers, open_timeout=10) as socket:
        assert json.loads(socket.recv(timeout=10)) == {"type": "hello"}
        assert client.post("/logout", {"csrf": client.csrf()}).status == 303
        web.deliver("alice@example.test", subject="after logout")
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=10)
        assert closed.value.rcvd.code == 4401
