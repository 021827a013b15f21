"""Compose over plain HTTP (no JavaScript): the submission rules hold whatever the form says.
The body is bounded by the submission size limit before it is read; the From address must be
one the account may send as (as for SMTP submission); unknown local recipients are refused and
nothing is stored or queued; a plain form post saves a draft and sends it."""

from __future__ import annotations

import pytest

from tidings.config import Limits

ALICE, BOB = "alice@example.test", "bob@example.test"


def counts(web, address: str) -> dict[str, int]:
    account = web.call(web.store.accounts.get_user(address))
    out = {}
    for box in web.call(web.store.mailboxes.list(account.id)):
        _, refs = web.call(web.store.mailboxes.messages(account.id, box.id))
        out[box.name] = len(refs)
    out["queue"] = web.call(web.store.queue.count())
    return out


@pytest.mark.web_server(limits=Limits(message_size=200_000))
def test_a_body_over_the_submission_limit_is_refused_before_it_is_read(web):
    client = web.client(ALICE)
    csrf = client.csrf()
    before = counts(web, ALICE)
    reply = client.post("/mail/compose", {"csrf": csrf, "op": "save", "to": BOB, "text": "x" * 1_300_000})
    assert reply.status == 413
    assert counts(web, ALICE) == before


def test_sending_as_someone_else_or_to_nobody_is_refused_and_nothing_is_stored(web):
    client = web.client(ALICE)
    csrf = client.csrf()
    before = counts(web, ALICE), counts(web, BOB)
    form = {"csrf": csrf, "op": "send", "from": BOB, "to": BOB, "subject": "Forged", "text": "x"}
    reply = client.post("/mail/compose", form)
    assert reply.status == 400 and "is not one of your addresses" in reply.text
    reply = client.post("/mail/compose", {**form, "from": ALICE, "to": "nobody@example.test"})
    assert reply.status == 400 and "no such user here" in reply.text
    reply = client.post("/mail/compose", {**form, "from": ALICE, "to": "not an address"})
    assert reply.status == 400 and "not a mail address" in reply.text
    assert (counts(web, ALICE), counts(web, BOB)) == before


def test_a_plain_form_saves_a_draft_and_sends_it(web):
    client = web.client(ALICE)
    csrf = client.csrf()
    form = {"csrf": csrf, "op": "save", "from": ALICE, "to": BOB, "subject": "No script", "text": "Plain."}
    reply = client.post("/mail/compose", form)
    assert reply.status == 303 and reply.header("Location").startswith("/mail/compose?draft=")
    uid = reply.header("Location").rpartition("=")[2]
    assert counts(web, ALICE)["Drafts"] == 1
    page = client.get(f"/mail/compose?draft={uid}")
    assert 'value="No script"' in page.text
    reply = client.post("/mail/compose", {**form, "op": "send", "draft": uid})
    assert reply.status == 303
    after = counts(web, ALICE)
    assert (after["Drafts"], after["Sent"]) == (0, 1)
    assert counts(web, BOB)["INBOX"] == 1
