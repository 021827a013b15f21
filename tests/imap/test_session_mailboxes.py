"""IMAP session: LIST (LIST-EXTENDED, LIST-STATUS, CHILDREN, SPECIAL-USE), LSUB, CREATE, DELETE,
RENAME, SUBSCRIBE, STATUS, APPEND (MULTIAPPEND, APPENDUID), QUOTA, mailbox name encoding and
isolation between users."""

from __future__ import annotations

import re

import pytest
from imapclient import IMAPClient

from tests.imap.session_support import ALICE, BOB, PASSWORD, ImapTestServer, client_tls, message


@pytest.fixture
def imap(server) -> ImapTestServer:
    return ImapTestServer(server)


def listed(lines: list[bytes]) -> dict[bytes, bytes]:
    """name -> attributes from * LIST lines."""
    out = {}
    for line in lines:
        match = re.match(rb'\* (?:LIST|LSUB) \(([^)]*)\) "/" (.*?)( \(.*\))?$', line)
        if match:
            out[match.group(2).strip(b'"')] = match.group(1)
    return out


def test_list_shows_default_mailboxes_with_special_use_and_children(imap):
    raw = imap.raw(login=ALICE)
    raw.command("CREATE Projects/2024/Q1")
    boxes = listed(raw.command('LIST "" "*"'))
    assert boxes[b"INBOX"] == b"\\HasNoChildren"
    assert boxes[b"Sent"] == b"\\HasNoChildren \\Sent"
    assert boxes[b"Trash"] == b"\\HasNoChildren \\Trash"
    assert boxes[b"Projects"] == b"\\HasChildren"
    assert boxes[b"Projects/2024/Q1"] == b"\\HasNoChildren"


def test_list_percent_stops_at_the_delimiter_and_inbox_is_case_insensitive(imap):
    raw = imap.raw(login=ALICE)
    raw.command("CREATE Projects/2024")
    assert set(listed(raw.command('LIST "" "%"'))) == {
        b"INBOX",
        b"Archive",
        b"Drafts",
        b"Junk",
        b"Sent",
        b"Trash",
        b"Projects",
    }
    assert set(listed(raw.command('LIST "Projects/" "%"'))) == {b"Projects/2024"}
    assert set(listed(raw.command('LIST "" "inbox"'))) == {b"INBOX"}
    assert raw.command('LIST "" ""')[0] == b'* LIST (\\Noselect) "/" ""'


def test_list_marks_missing_parents_nonexistent(imap):
    raw = imap.raw(login=ALICE)
    raw.command("CREATE a/b/c")
    raw.command("DELETE a/b")
    boxes = listed(raw.command('LIST () "" "a/%"'))
    assert b"\\NonExistent" in boxes[b"a/b"] and b"\\HasChildren" in boxes[b"a/b"]


def test_list_extended_selection_and_return_options(imap):
    raw = imap.raw(login=ALICE)
    raw.command("CREATE Lists")
    raw.command("UNSUBSCRIBE Lists")
    subscribed = listed(raw.command('LIST (SUBSCRIBED) "" "*"'))
    assert b"Lists" not in subscribed and b"\\Subscribed" in subscribed[b"INBOX"]
    special = listed(raw.command('LIST (SPECIAL-USE) "" "*"'))
    assert set(special) == {b"Archive", b"Drafts", b"Junk", b"Sent", b"Trash"}
    both = listed(raw.command('LIST "" ("INBOX" "Lists") RETURN (SUBSCRIBED CHILDREN)'))
    assert b"\\Subscribed" in both[b"INBOX"] and b"\\Subscribed" not in both[b"Lists"]


def test_list_status_returns_status_per_mailbox(imap):
    imap.deliver(message("one"))
    raw = imap.raw(login=ALICE)
    lines = raw.command('LIST "" "INBOX" RETURN (STATUS (MESSAGES UNSEEN UIDNEXT))')
    assert lines[0].startswith(b'* LIST (\\HasNoChildren) "/" INBOX')
    assert lines[1] == b"* STATUS INBOX (MESSAGES 1 UNSEEN 1 UIDNEXT 2)"


def test_lsub_lists_subscribed_mailboxes(imap):
    raw = imap.raw(login=ALICE)
    raw.command("CREATE Hidden")
    raw.command("UNSUBSCRIBE Hidden")
    names = set(listed(raw.command('LSUB "" "*"')))
    assert b"INBOX" in names and b"Hidden" not in names
    raw.command("SUBSCRIBE Hidden")
    assert b"Hidden" in set(listed(raw.command('LSUB "" "*"')))
    assert b"NO [NONEXISTENT]" in raw.command("SUBSCRIBE Nowhere")[-1]


def test_create_reports_mailboxid_and_refuses_duplicates(imap):
    raw = imap.raw(login=ALICE)
    tagged = raw.command("CREATE Receipts")[-1]
    assert re.match(rb"T2 OK \[MAILBOXID \(M[0-9a-f]+\)\]", tagged)
    assert b"NO [ALREADYEXISTS]" in raw.command("CREATE Receipts")[-1]
    assert b"NO [ALREADYEXISTS]" in raw.command("CREATE inbox")[-1]
    assert b"NO [CANNOT]" in raw.command('CREATE "bad%name"')[-1]


def test_create_special_use(imap):
    raw = imap.raw(login=ALICE)
    assert raw.command("CREATE Everything (USE (\\All))")[-1].startswith(b"T2 OK")
    assert b"\\All" in listed(raw.command('LIST "" Everything'))[b"Everything"]
    assert b"NO [USEATTR]" in raw.command("CREATE Odd (USE (\\Important))")[-1]


def test_delete_and_rename(imap):
    raw = imap.raw(login=ALICE)
    raw.command("CREATE Old/Child")
    assert raw.command("RENAME Old New")[-1].startswith(b"T3 OK")
    names = set(listed(raw.command('LIST "" "*"')))
    assert {b"New", b"New/Child"} <= names and b"Old" not in names
    assert b"NO [NONEXISTENT]" in raw.command("RENAME Old Other")[-1]
    assert b"NO [ALREADYEXISTS]" in raw.command("RENAME New Sent")[-1]
    assert raw.command("DELETE New/Child")[-1].startswith(b"T7 OK")
    assert b"NO [NONEXISTENT]" in raw.command("DELETE New/Child")[-1]
    assert b"NO" in raw.command("DELETE INBOX")[-1]


def test_rename_inbox_moves_its_messages_and_leaves_it_empty(imap):
    imap.deliver(message("keep me"))
    raw = imap.raw(login=ALICE)
    assert raw.command("RENAME INBOX Saved")[-1].startswith(b"T2 OK")
    assert b"MESSAGES 1" in raw.command("STATUS Saved (MESSAGES)")[0]
    assert b"MESSAGES 0" in raw.command("STATUS INBOX (MESSAGES)")[0]


def test_status_items(imap):
    imap.deliver(message("one"))
    imap.deliver(message("two"))
    raw = imap.raw(login=ALICE)
    line = raw.command(
        "STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE HIGHESTMODSEQ APPENDLIMIT)"
    )[0]
    match = re.match(
        rb"\* STATUS INBOX \(MESSAGES 2 RECENT 2 UIDNEXT 3 UIDVALIDITY \d+ UNSEEN 2 DELETED 0 SIZE (\d+) "
        rb"HIGHESTMODSEQ \d+ APPENDLIMIT \d+\)",
        line,
    )
    assert match and int(match.group(1)) == len(message("one")) + len(message("two"))
    assert b"NO [NONEXISTENT]" in raw.command("STATUS Nowhere (MESSAGES)")[-1]


def test_append_with_flags_and_date_returns_appenduid(imap):
    client = imap.client()
    typ, data = client.append("Drafts", r"(\Draft $Label)", '"05-Mar-2024 10:11:12 +0100"', message("draft"))
    assert typ == "OK" and re.match(rb"\[APPENDUID \d+ 1\]", data[0])
    _, refs = imap.mailbox_refs("Drafts")
    assert refs[0].flags == frozenset({"\\Draft", "$Label"})
    assert refs[0].internal_date == 1709629872.0


def test_append_to_missing_mailbox_says_trycreate(imap):
    client = imap.client()
    typ, data = client.append("Nowhere", None, None, message("x"))
    assert typ == "NO" and data[0].startswith(b"[TRYCREATE]")


def test_multiappend_is_one_operation_with_uid_range(imap):
    raw = imap.raw(login=ALICE)
    first, second = message("m1"), message("m2")
    raw.send(
        b"M1 APPEND INBOX (\\Seen) {%d+}\r\n%s {%d+}\r\n%s\r\n" % (len(first), first, len(second), second)
    )
    tagged = raw.until_tagged("M1")[-1]
    assert re.match(rb"M1 OK \[APPENDUID \d+ 1:2\]", tagged)
    assert len(imap.mailbox_refs()[1]) == 2


def test_append_over_quota_is_refused(imap):
    account = imap.running.call(imap.running.store.accounts.get_user(ALICE))
    imap.running.call(imap.running.store.accounts.set_quota(ALICE, 100))
    client = imap.client()
    typ, data = client.append("INBOX", None, None, message("big", body="x" * 500))
    assert typ == "NO" and data[0].startswith(b"[OVERQUOTA]")
    assert account.id and imap.mailbox_refs()[1] == []


def test_quota_root_and_quota(imap):
    imap.running.call(imap.running.store.accounts.set_quota(ALICE, 10 * 1024 * 1024))
    imap.deliver(message("sized", body="y" * 3000))
    raw = imap.raw(login=ALICE)
    lines = raw.command("GETQUOTAROOT INBOX")
    assert lines[0] == b'* QUOTAROOT INBOX ""'
    assert re.match(rb'\* QUOTA "" \(STORAGE [34] 10240\)', lines[1])
    assert raw.command('GETQUOTA ""')[0] == lines[1]
    assert b"NO" in raw.command('SETQUOTA "" (STORAGE 1)')[-1]


def test_non_ascii_names_are_modified_utf7_unless_utf8_enabled(imap):
    raw = imap.raw(login=ALICE)
    assert raw.command("CREATE &ZeVnLIqe-")[-1].startswith(b"T2 OK")  # 日本語
    assert b"&ZeVnLIqe-" in listed(raw.command('LIST "" "*"'))
    raw.command("ENABLE UTF8=ACCEPT")
    assert "日本語".encode() in listed(raw.command('LIST "" "*"'))
    assert raw.command('SELECT "日本語"'.encode())[-1].startswith(b"T6 OK")


def test_other_users_mailboxes_are_unreachable(imap):
    bob = imap.raw(login=BOB)
    bob.command("CREATE Secret")
    alice = imap.raw(login=ALICE)
    for name in ('"../bob@example.test/Secret"', "Secret", '"#shared/Secret"', '"~bob/Secret"', '"/Secret"'):
        assert b" NO " in alice.command(f"SELECT {name}")[-1]
    assert b"NO" in alice.command('CREATE "~bob/Inject"')[-1]
    assert b"Secret" not in b"".join(alice.command('LIST "" "*"'))


def test_imapclient_folder_operations(imap):
    with IMAPClient(
        "127.0.0.1", imap.ports["imaps"], ssl=True, ssl_context=client_tls(), timeout=10
    ) as client:
        client.login(ALICE, PASSWORD)
        client.create_folder("Ünïcode")
        assert "Ünïcode" in [name for _, _, name in client.list_folders()]
        assert client.folder_status("Ünïcode", ["MESSAGES"])[b"MESSAGES"] == 0
        client.rename_folder("Ünïcode", "Plain")
        assert client.folder_exists("Plain") and not client.folder_exists("Ünïcode")
        client.delete_folder("Plain")
        assert client.find_special_folder(b"\\Sent") == "Sent"


def test_status_mailboxid_matches_select(imap):
    raw = imap.raw(login=ALICE)
    status = raw.command("STATUS INBOX (MAILBOXID)")[0]
    selected = b" ".join(raw.command("SELECT INBOX"))
    mailbox_id = re.search(rb"MAILBOXID \((M[0-9a-f]+)\)", status).group(1)
    assert b"[MAILBOXID (" + mailbox_id + b")]" in selected


def test_a_failing_handler_answers_serverbug_and_the_session_goes_on(imap, monkeypatch):
    async def broken(mailbox_id):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(imap.running.store.mailboxes, "status", broken)
    raw = imap.raw(login=ALICE)
    assert raw.command("STATUS INBOX (MESSAGES)")[-1] == b"T2 NO [SERVERBUG] Internal server error"
    assert raw.command("NOOP")[-1] == b"T3 OK NOOP completed"


ATOM_NAME = "!#$&'+,-.0123456789:;<=>?@^_`|}"
"""Every atom character that is not a letter (RFC 3501 section 9: atom-specials exclude "}")."""
ATOM_NAME_MUTF7 = ATOM_NAME.replace("&", "&-")  # RFC 3501 5.1.3: "&" is sent as "&-"


def test_a_name_of_every_atom_character_works_unquoted_in_select_create_and_list(imap):
    raw = imap.raw(login=ALICE)
    wire = ATOM_NAME_MUTF7
    assert re.match(rb"T\d+ NO \[NONEXISTENT\]", raw.command(f"SELECT {wire}")[-1])
    assert re.match(rb"T\d+ NO \[NONEXISTENT\]", raw.command(f"SELECT {wire}x")[-1])
    assert b" OK " in raw.command(f"CREATE {wire}")[-1]
    assert b" OK " in raw.command(f"CREATE {wire}/child}}")[-1]
    lines = raw.command(f'LIST "" {wire}')
    assert lines[0] == b'* LIST (\\HasChildren) "/" "' + wire.encode() + b'"', lines
    assert lines[-1].endswith(b"OK LIST completed")
    pattern = wire.replace(":;", "%")
    assert set(listed(raw.command(f'LIST "" {pattern}*'))) == {wire.encode(), wire.encode() + b"/child}"}
    assert set(listed(raw.command(f"LIST {wire}/ %}}"))) == {wire.encode() + b"/child}"}
    assert b" OK " in raw.command(f"SELECT {wire}")[-1]
    assert b" OK " in raw.command(f"STATUS {wire} (MESSAGES)")[-1]


def test_a_bare_ampersand_is_no_rather_than_bad_unless_utf8_is_enabled(imap):
    """A bare "&" is not modified UTF-7, but the command is well formed: NO, never BAD."""
    raw = imap.raw(login=ALICE)
    assert re.match(rb"T\d+ NO \[NONEXISTENT\]", raw.command(f"SELECT {ATOM_NAME}")[-1])
    assert re.match(rb"T\d+ NO \[CANNOT\]", raw.command(f"CREATE {ATOM_NAME}")[-1])
    assert raw.command(f'LIST "" {ATOM_NAME}')[-1].endswith(b"OK LIST completed")
    raw.command("ENABLE UTF8=ACCEPT")
    assert b" OK " in raw.command(f"CREATE {ATOM_NAME}")[-1]
    assert set(listed(raw.command(f'LIST "" {ATOM_NAME}'))) == {ATOM_NAME.encode()}
    assert b" OK " in raw.command(f"SELECT {ATOM_NAME}")[-1]


def test_imapclient_handles_a_name_of_every_atom_character(imap):
    with IMAPClient(
        "127.0.0.1", imap.ports["imaps"], ssl=True, ssl_context=client_tls(), timeout=10
    ) as client:
        client.login(ALICE, PASSWORD)
        assert not client.folder_exists(ATOM_NAME)
        client.create_folder(ATOM_NAME)
        assert ATOM_NAME in [name for _, _, name in client.list_folders()]
        assert [name for _, _, name in client.list_folders(pattern=ATOM_NAME)] == [ATOM_NAME]
        assert client.select_folder(ATOM_NAME)[b"EXISTS"] == 0


def test_lsub_percent_returns_an_unsubscribed_parent_as_noselect(imap):
    """RFC 3501 6.3.9's example, in our "/" hierarchy: with comp/mail/mime and comp/mail/misc
    subscribed and comp/mail not, LSUB "comp/%" returns comp/mail flagged \\Noselect."""
    raw = imap.raw(login=ALICE)
    for name in ("comp/mail/mime", "comp/mail/misc", "comp/news"):
        assert b" OK " in raw.command(f"CREATE {name}")[-1]
    for name in ("comp", "comp/mail", "comp/news"):
        raw.command(f"UNSUBSCRIBE {name}")
    assert raw.command('LSUB "" "comp/mail/*"')[:2] == [
        b'* LSUB () "/" comp/mail/mime',
        b'* LSUB () "/" comp/mail/misc',
    ]
    assert raw.command('LSUB "" "comp/%"')[:-1] == [b'* LSUB (\\Noselect) "/" comp/mail']
    assert raw.command('LSUB "comp/" "%"')[:-1] == [b'* LSUB (\\Noselect) "/" comp/mail']
    assert raw.command('LSUB "" "%"')[:-1][-1] == b'* LSUB (\\Noselect) "/" comp'
    raw.command("SUBSCRIBE comp/mail")
    assert raw.command('LSUB "" "comp/%"')[:-1] == [b'* LSUB () "/" comp/mail']


def fruit_and_vegetables(raw) -> None:
    """RFC 5258 section 5's mailboxes: Fruit/peach was subscribed, then deleted."""
    for name in ("Fruit/banana", "Fruit/peach", "Vegetable/broccoli", "Tofu/firm"):
        assert b" OK " in raw.command(f"CREATE {name}")[-1]
    for name in ("Fruit", "Tofu", "Tofu/firm", "Archive", "Drafts", "Junk", "Sent", "Trash"):
        assert b" OK " in raw.command(f"UNSUBSCRIBE {name}")[-1]
    assert b" OK " in raw.command("DELETE Fruit/peach")[-1]


def test_list_subscribed_shows_a_deleted_subscribed_mailbox_as_nonexistent(imap):
    """RFC 5258 section 5 example 2: A02 LIST (SUBSCRIBED) "" "*"; a subscription outlives its
    mailbox (RFC 3501 6.3.6)."""
    raw = imap.raw(login=ALICE)
    fruit_and_vegetables(raw)
    boxes = listed(raw.command('LIST (SUBSCRIBED) "" "*"'))
    assert list(boxes) == [b"INBOX", b"Fruit/banana", b"Fruit/peach", b"Vegetable", b"Vegetable/broccoli"]
    assert all(b"\\Subscribed" in attributes for attributes in boxes.values())
    assert b"\\NonExistent" in boxes[b"Fruit/peach"]
    assert not any(b"\\NonExistent" in boxes[name] for name in boxes if name != b"Fruit/peach")
    # Plain LIST does not show it; RETURN (SUBSCRIBED) marks only what exists.
    assert b"Fruit/peach" not in listed(raw.command('LIST "" "*"'))
    assert b"Fruit/peach" not in listed(raw.command('LIST "" "*" RETURN (SUBSCRIBED)'))
    assert set(listed(raw.command('LSUB "" "Fruit/*"'))) == {b"Fruit/banana", b"Fruit/peach"}
    # It can be unsubscribed although it has no mailbox; re-creating the mailbox keeps it subscribed.
    assert b" OK " in raw.command("UNSUBSCRIBE Fruit/peach")[-1]
    assert b"Fruit/peach" not in listed(raw.command('LIST (SUBSCRIBED) "" "*"'))
    assert b"NO [NONEXISTENT]" in raw.command("UNSUBSCRIBE Fruit/peach")[-1]
    raw.command("CREATE Fruit/plum")
    raw.command("DELETE Fruit/plum")
    assert b" OK " in raw.command("CREATE Fruit/plum")[-1]
    boxes = listed(raw.command('LIST (SUBSCRIBED) "" "Fruit/*"'))
    assert boxes[b"Fruit/plum"] == b"\\HasNoChildren \\Subscribed"


def test_list_subscribed_recursivematch_gives_childinfo(imap):
    """RFC 5258 section 5 examples 3 and 8: RETURN (CHILDREN), and RECURSIVEMATCH naming an
    unsubscribed parent of subscribed names with CHILDINFO."""
    raw = imap.raw(login=ALICE)
    fruit_and_vegetables(raw)
    children = listed(raw.command('LIST () "" "%" RETURN (CHILDREN)'))
    assert children[b"Fruit"] == b"\\HasChildren" and children[b"Tofu"] == b"\\HasChildren"
    assert children[b"INBOX"] == b"\\HasNoChildren"
    lines = raw.command('LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (CHILDREN)')
    assert b'* LIST (\\HasChildren) "/" Fruit ("CHILDINFO" ("SUBSCRIBED"))' in lines
    assert b'* LIST (\\HasChildren \\Subscribed) "/" Vegetable' in lines
    assert not any(b'"/" Tofu' in line for line in lines)  # no subscribed child
    # Without RECURSIVEMATCH, an unsubscribed parent is not listed.
    assert b"Fruit" not in listed(raw.command('LIST (SUBSCRIBED) "" "%"'))
