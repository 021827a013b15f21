"""Settings over plain HTTP: the password (the login rule and the throttle), identities (only the
account's own addresses, only its own identities), and filters/vacation/forwarding stored as the
account's Sieve script, read back into the form."""

from __future__ import annotations

from sievelib.parser import Parser

from tidings.rules.simple import SCRIPT_NAME

ALICE = "alice@example.test"
BOB = "bob@example.test"


def account_id(web, address: str) -> int:
    return web.call(web.store.accounts.get_user(address)).id


def test_password_change_needs_the_current_password_and_a_strong_new_one(web):
    client = web.client(ALICE)
    csrf = client.get("/settings").csrf()
    wrong = client.post(
        "/settings/password",
        {"csrf": csrf, "current": "nope nope 1", "new": "brand new pass 1", "again": "brand new pass 1"},
    )
    assert wrong.status == 400 and "current password is not right" in wrong.text
    weak = client.post(
        "/settings/password",
        {"csrf": csrf, "current": web.passwords[ALICE], "new": "aaaaaaaa", "again": "aaaaaaaa"},
    )
    assert weak.status == 400 and "fewer than 4 different characters" in weak.text
    differ = client.post(
        "/settings/password",
        {
            "csrf": csrf,
            "current": web.passwords[ALICE],
            "new": "brand new pass 1",
            "again": "brand new pass 2",
        },
    )
    assert differ.status == 400
    ok = client.post(
        "/settings/password",
        {
            "csrf": csrf,
            "current": web.passwords[ALICE],
            "new": "brand new pass 1",
            "again": "brand new pass 1",
        },
    )
    assert ok.status == 303
    assert web.client().login(ALICE, "brand new pass 1").status == 303
    assert web.client().login(ALICE, web.passwords[ALICE]).status == 401


def test_identities_are_the_accounts_own_and_another_accounts_ids_are_404(web):
    web.call(web.store.accounts.add_alias("sales@example.test", [ALICE]))
    alice = web.client(ALICE)
    page = alice.get("/settings")
    assert page.status == 200 and "sales@example.test" in page.text
    csrf = page.csrf()
    saved = alice.post(
        "/settings/identities",
        {
            "csrf": csrf,
            "id": "0",
            "name": "Alice Sales",
            "address": "sales@example.test",
            "signature": "-- \nSales",
            "default": "on",
        },
    )
    assert saved.status == 303
    identities = web.call(web.store.identities.list(account_id(web, ALICE)))
    assert [(i.name, i.address, i.signature, i.is_default) for i in identities] == [
        ("Alice Sales", "sales@example.test", "-- \nSales", True)
    ]
    foreign = alice.post("/settings/identities", {"csrf": csrf, "id": "0", "name": "B", "address": BOB})
    assert foreign.status == 400 and "not an address of this account" in foreign.text
    bob = web.client(BOB)
    bob_csrf = bob.get("/settings").csrf()
    theirs = identities[0].id
    assert (
        bob.post(
            "/settings/identities", {"csrf": bob_csrf, "id": str(theirs), "name": "x", "address": BOB}
        ).status
        == 404
    )
    assert bob.post(f"/settings/identities/{theirs}/delete", {"csrf": bob_csrf}).status == 404
    assert len(web.call(web.store.identities.list(account_id(web, ALICE)))) == 1
    assert alice.post(f"/settings/identities/{theirs}/delete", {"csrf": csrf}).status == 303


def test_rules_become_the_active_sieve_script_and_fill_the_form_again(web):
    client = web.client(ALICE)
    csrf = client.get("/settings/rules").csrf()
    form = {
        "csrf": csrf,
        "vacation": "on",
        "subject": "Away",
        "message": "Back on Monday.",
        "days": "3",
        "start": "2026-12-20",
        "end": "2027-01-04",
        "forward": "alice@elsewhere.test",
        "keep": "on",
        "field-0": "subject",
        "match-0": "contains",
        "value-0": "invoice",
        "action-0": "fileinto",
        "target-0": "Archive",
        "field-1": "from",
        "match-1": "contains",
        "value-1": "",
        "action-1": "fileinto",
        "target-1": "",
    }
    assert client.post("/settings/rules", form).status == 303
    script = web.call(web.store.rules.active(account_id(web, ALICE)))
    assert script.name == SCRIPT_NAME
    parser = Parser()
    assert parser.parse(script.content.encode()), parser.error
    assert (
        'fileinto "Archive";' in script.content and 'redirect :copy "alice@elsewhere.test";' in script.content
    )
    assert ':addresses ["alice@example.test"]' in script.content and ":days 3" in script.content
    page = client.get("/settings/rules").text
    assert 'value="invoice"' in page and "Back on Monday." in page and 'value="2026-12-20"' in page
    assert web.call(web.store.rules.active(account_id(web, BOB))) is None
    loop = client.post("/settings/rules", {**form, "forward": ALICE})
    assert loop.status == 400 and "loop" in loop.text
    bad = client.post("/settings/rules", {**form, "start": "soon"})
    assert bad.status == 400 and "not a date" in bad.text
    assert "Archive" in web.call(web.store.rules.active(account_id(web, ALICE))).content


def test_a_script_written_elsewhere_is_announced_not_shown_as_the_forms(web):
    web.call(
        web.store.rules.put(
            account_id(web, ALICE), "mine", 'require "fileinto";\r\nfileinto "X";\r\n', activate=True
        )
    )
    page = web.client(ALICE).get("/settings/rules").text
    assert "written with another program" in page and "mine" in page


def test_server_settings_page_lists_the_real_ports_and_the_one_click_links(web):
    page = web.client(BOB).get("/settings/clients").text
    ports = web.running.ports
    for name in ("imaps", "imap", "pop3s", "pop3", "submissions", "submission"):
        assert f"<td>{ports[name]}</td>" in page, name
    assert f"<td>{ports['smtp']}</td>" not in page
    assert "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=bob%40example.test" in page
    assert "/settings/clients/tidings.mobileconfig" in page
