"""NOTIFY (RFC 5465) over real IMAP connections: a second connection (or a delivery) changes
mailboxes and the NOTIFY session is told without asking -- outside IDLE, between commands.

The first tests follow Dovecot's imaptest ``notify`` script and the RFC's examples.
"""

from __future__ import annotations

import re

import pytest

from tests.imap.session_support import ALICE, ImapTestServer, RawImap, message, ok
from tidings.config import Limits


@pytest.fixture
def imap(server) -> ImapTestServer:
    return ImapTestServer(server)


def unsolicited(raw: RawImap, count: int = 1) -> list[bytes]:
    """The next ``count`` lines the server sends on its own (the socket times out after 10 s)."""
    return [raw.line() for _ in range(count)]


def nothing_pending(raw: RawImap) -> list[bytes]:
    """What arrives before a NOOP's answer (a NOOP also lets pending updates out)."""
    return ok(raw, "NOOP")


def status_values(line: bytes) -> dict[str, int]:
    items = re.search(rb"\((.*)\)$", line).group(1).split()
    return {items[i].decode(): int(items[i + 1]) for i in range(0, len(items), 2)}


def test_notify_is_advertised(imap):
    raw = imap.raw(login=ALICE)
    assert b"NOTIFY" in raw.command("CAPABILITY")[0].split()


def test_notify_set_status_reports_watched_mailboxes_before_the_ok(imap):
    """imaptest notify: NOTIFY SET STATUS sends a STATUS for each watched non-selected mailbox
    before the tagged OK (RFC 5465 section 3.1); FlagChange adds UNSEEN and HIGHESTMODSEQ;
    without STATUS nothing is sent."""
    imap.deliver(message("first"), mailbox="INBOX")
    raw = imap.raw(login=ALICE)
    ok(raw, "CREATE box2")
    imap.deliver(message("in box2"), mailbox="box2")
    (line,) = ok(raw, "NOTIFY SET STATUS (mailboxes box2 (MessageNew MessageExpunge))")
    assert line.startswith(b"* STATUS box2 (")
    values = status_values(line)
    assert values["MESSAGES"] == 1 and values["UIDNEXT"] == 2 and "HIGHESTMODSEQ" not in values
    assert set(values) == {"MESSAGES", "UIDNEXT", "UIDVALIDITY"}
    (line,) = ok(raw, "NOTIFY SET STATUS (mailboxes box2 (MessageNew MessageExpunge FlagChange))")
    assert set(status_values(line)) == {"MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ"}
    assert ok(raw, "NOTIFY SET (mailboxes box2 (MessageNew MessageExpunge FlagChange))") == []
    # PERSONAL covers every mailbox; the selected one is left to SELECTED
    ok(raw, "SELECT INBOX")
    names = {
        line.split(b" (")[0] for line in ok(raw, "NOTIFY SET STATUS (personal (MessageNew MessageExpunge))")
    }
    assert b"* STATUS box2" in names and b"* STATUS Drafts" in names and b"* STATUS INBOX" not in names


def test_a_change_to_a_watched_mailbox_arrives_unasked_as_status(imap):
    """RFC 5465 section 5.2: a message delivered to another mailbox -> STATUS, sent while the
    client is not running any command (and not idling)."""
    raw = imap.raw(login=ALICE)
    ok(raw, "CREATE Lists")
    ok(raw, "SELECT INBOX")
    ok(raw, "NOTIFY SET (selected (MessageNew MessageExpunge)) (subtree Lists (MessageNew MessageExpunge))")
    other = imap.raw(login=ALICE)
    ok(other, "CREATE Lists/tidings")
    imap.deliver(message("list mail"), mailbox="Lists/tidings")
    (line,) = unsolicited(raw)
    assert line.startswith(b"* STATUS Lists/tidings (")
    assert status_values(line)["MESSAGES"] == 1
    # the next command sees nothing repeated
    assert nothing_pending(raw) == []
    # a mailbox outside the subtree is not reported
    ok(other, "CREATE Elsewhere")
    imap.deliver(message("elsewhere"), mailbox="Elsewhere")
    imap.deliver(message("list mail 2"), mailbox="Lists")
    (line,) = unsolicited(raw)
    assert line.startswith(b"* STATUS Lists (")


def test_flag_changes_elsewhere_are_reported_only_when_asked(imap):
    raw = imap.raw(login=ALICE)
    ok(raw, "CREATE a")
    ok(raw, "CREATE b")
    imap.deliver(message("in a"), mailbox="a")
    imap.deliver(message("in b"), mailbox="b")
    ok(
        raw,
        "NOTIFY SET (mailboxes a (MessageNew MessageExpunge FlagChange))"
        " (mailboxes b (MessageNew MessageExpunge))",
    )
    other = imap.raw(login=ALICE)
    ok(other, "SELECT b")
    ok(other, "STORE 1 +FLAGS (\\Seen)")  # b does not ask for FlagChange: nothing
    ok(other, "SELECT a")
    ok(other, "STORE 1 +FLAGS (\\Seen)")
    (line,) = unsolicited(raw)
    assert line.startswith(b"* STATUS a (") and status_values(line)["UNSEEN"] == 0


def test_selected_mailbox_events_arrive_unasked_with_the_requested_fetch_items(imap):
    """RFC 5465 sections 5.1-5.3 for the selected mailbox: EXISTS then a FETCH of the
    MessageNew fetch-atts (UID included), FETCH FLAGS for FlagChange, EXPUNGE for
    MessageExpunge -- each pushed without a command."""
    imap.deliver(message("one"))
    raw = imap.raw(login=ALICE)
    ok(raw, "SELECT INBOX")
    ok(
        raw,
        "NOTIFY SET (selected (MessageNew (UID BODY.PEEK[HEADER.FIELDS (Subject)])"
        " MessageExpunge FlagChange))",
    )
    imap.deliver(message("two"))
    exists, recent, fetch = unsolicited(raw, 3)
    assert exists == b"* 2 EXISTS"
    assert recent == b"* 2 RECENT"  # this session selected first: 1 and 2 are \Recent here
    assert fetch.startswith(b"* 2 FETCH (UID 2 BODY[HEADER.FIELDS (Subject)] {")
    assert fetch.endswith(b"Subject: two\r\n\r\n)")
    other = imap.raw(login=ALICE)
    ok(other, "SELECT INBOX")
    ok(other, "STORE 1 +FLAGS.SILENT (\\Flagged)")
    assert unsolicited(raw) == [b"* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent))"]
    ok(other, "STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert unsolicited(raw) == [b"* 1 FETCH (UID 1 FLAGS (\\Deleted \\Flagged \\Recent))"]
    ok(other, "EXPUNGE")
    assert unsolicited(raw) == [b"* 1 EXPUNGE"]
    assert ok(raw, "UID FETCH 1:* (FLAGS)") == [b"* 1 FETCH (UID 2 FLAGS (\\Recent))"]


def test_selected_delayed_holds_expunges_until_a_command_allows_them(imap):
    """RFC 5465 section 6.1: under SELECTED-DELAYED, EXPUNGE waits for a command that may
    report it, so sequence numbers stay stable between commands."""
    imap.deliver(message("one"))
    imap.deliver(message("two"))
    raw = imap.raw(login=ALICE)
    ok(raw, "SELECT INBOX")
    ok(raw, "NOTIFY SET (selected-delayed (MessageNew MessageExpunge))")
    other = imap.raw(login=ALICE)
    ok(other, "SELECT INBOX")
    ok(other, "STORE 1 +FLAGS.SILENT (\\Deleted)")
    ok(other, "EXPUNGE")
    imap.deliver(message("three"))
    # The new message (\Recent here: this session hears of it first), but not the expunge.
    assert unsolicited(raw, 2) == [b"* 3 EXISTS", b"* 3 RECENT"]
    assert ok(raw, "FETCH 1 (UID)") == [b"* 1 FETCH (UID 1)"]  # FETCH may not report expunges
    assert ok(raw, "NOOP") == [b"* 1 EXPUNGE"]


def test_without_a_selected_group_the_selected_mailbox_is_not_pushed(imap):
    """Omitting SELECTED is SELECTED NONE (RFC 5465 section 3.1): nothing about the selected
    mailbox is pushed; commands still report the new message as RFC 9051 requires."""
    raw = imap.raw(login=ALICE)
    ok(raw, "CREATE other")
    ok(raw, "SELECT INBOX")
    ok(raw, "NOTIFY SET (personal (MessageNew MessageExpunge))")
    imap.deliver(message("to inbox"))
    imap.deliver(message("to other"), mailbox="other")
    (line,) = unsolicited(raw)
    assert line.startswith(b"* STATUS other (")  # and no EXISTS for INBOX before it
    assert ok(raw, "NOOP") == [b"* 1 EXISTS", b"* 1 RECENT"]


def test_mailbox_name_and_subscription_events_as_list_responses(imap):
    """RFC 5465 sections 5.4 and 5.5: created, renamed (OLDNAME), deleted (\\NonExistent),
    (un)subscribed mailboxes -- changed by another connection -- arrive as LIST responses."""
    raw = imap.raw(login=ALICE)
    ok(raw, "NOTIFY SET (personal (MailboxName SubscriptionChange))")
    other = imap.raw(login=ALICE)
    ok(other, "CREATE Plans")
    assert unsolicited(raw) == [b'* LIST (\\HasNoChildren \\Subscribed) "/" Plans']
    ok(other, "RENAME Plans Attic")
    assert unsolicited(raw) == [b'* LIST (\\HasNoChildren \\Subscribed) "/" Attic ("OLDNAME" (Plans))']
    ok(other, "UNSUBSCRIBE Attic")
    assert unsolicited(raw) == [b'* LIST (\\HasNoChildren) "/" Attic']
    ok(other, "SUBSCRIBE Attic")
    assert unsolicited(raw) == [b'* LIST (\\HasNoChildren \\Subscribed) "/" Attic']
    ok(other, "DELETE Attic")
    assert unsolicited(raw) == [b'* LIST (\\NonExistent) "/" Attic']
    # MailboxName alone: subscription changes are not reported
    ok(raw, "NOTIFY SET (personal (MailboxName))")
    ok(other, "CREATE Quiet")
    assert unsolicited(raw) == [b'* LIST (\\HasNoChildren \\Subscribed) "/" Quiet']
    ok(other, "UNSUBSCRIBE Quiet")
    assert nothing_pending(raw) == []


def test_notifications_reach_a_session_in_idle(imap):
    """RFC 5465 section 4: during IDLE the same events are sent."""
    raw = imap.raw(login=ALICE)
    ok(raw, "CREATE side")
    ok(raw, "NOTIFY SET (mailboxes side (MessageNew MessageExpunge))")
    raw.send(b"I1 IDLE\r\n")
    assert raw.line().startswith(b"+ ")
    imap.deliver(message("while idling"), mailbox="side")
    (line,) = unsolicited(raw)
    assert line.startswith(b"* STATUS side (")
    raw.send(b"DONE\r\n")
    assert raw.line().startswith(b"I1 OK")


def test_notify_none_stops_notifications(imap):
    raw = imap.raw(login=ALICE)
    ok(raw, "CREATE side")
    ok(raw, "NOTIFY SET (mailboxes side (MessageNew MessageExpunge))")
    ok(raw, "NOTIFY NONE")
    imap.deliver(message("unheard"), mailbox="side")
    assert nothing_pending(raw) == []


@pytest.mark.parametrize(
    ("arguments", "reply"),
    [
        # RFC 5465 section 3.1: an unsupported event is NO [BADEVENT (the supported ones)]
        (
            "SET (personal (AnnotationChange MessageNew MessageExpunge))",
            b"NO [BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange"
            b" MailboxMetadataChange ServerMetadataChange)]",
        ),
        ("SET (personal (Gossip))", b"NO [BADEVENT ("),
        # section 5: MessageNew and MessageExpunge together; FlagChange needs both
        ("SET (personal (MessageNew))", b"BAD"),
        ("SET (personal (FlagChange))", b"BAD"),
        # section 6.1: one selected specifier, message events only
        ("SET (selected (MessageNew MessageExpunge)) (selected-delayed NONE)", b"BAD"),
        ("SET (selected (MailboxName))", b"BAD"),
        ("SET (selected (MailboxMetadataChange))", b"BAD"),
        ("SET (elsewhere (MailboxName))", b"BAD"),
        ("SET", b"BAD"),
    ],
)
def test_notify_refuses_what_the_rfc_rules_out(imap, arguments, reply):
    raw = imap.raw(login=ALICE)
    tagged = raw.command(f"NOTIFY {arguments}")[-1]
    assert tagged.split(b" ", 1)[1].startswith(reply), tagged


def test_too_many_notifications_at_once_overflow_and_stop(make_server):
    """RFC 5465 section 5.8: past ``limits.imap_notify_burst`` responses in one round the
    session sends OK [NOTIFICATIONOVERFLOW] and behaves as after NOTIFY NONE."""
    imap = ImapTestServer(make_server(limits=Limits(imap_notify_burst=2)))
    raw = imap.raw(login=ALICE)
    for name in ("tree", "tree/a", "tree/b", "tree/c"):
        ok(raw, f"CREATE {name}")
    ok(raw, "NOTIFY SET (personal (MailboxName))")
    other = imap.raw(login=ALICE)
    ok(other, "RENAME tree forest")  # four LIST responses in one round
    (line,) = unsolicited(raw)
    assert line.startswith(b"* OK [NOTIFICATIONOVERFLOW]")
    ok(other, "CREATE more")
    assert nothing_pending(raw) == []


def test_a_mailbox_named_in_notify_that_does_not_exist_is_watched_once_created(imap):
    raw = imap.raw(login=ALICE)
    ok(raw, "NOTIFY SET STATUS (mailboxes later (MessageNew MessageExpunge MailboxName))")
    other = imap.raw(login=ALICE)
    ok(other, "CREATE later")
    assert unsolicited(raw) == [b'* LIST (\\HasNoChildren \\Subscribed) "/" later']
    ok(other, "APPEND later {4+}\r\nhi\r\n")
    (line,) = unsolicited(raw)
    assert line.startswith(b"* STATUS later (") and status_values(line)["MESSAGES"] == 1


def test_metadata_changes_are_named_in_unsolicited_metadata_responses(imap):
    """RFC 5465 sections 5.6 and 5.7 (RFC 5464 4.4.2): another connection sets and removes
    mailbox and server entries; the NOTIFY session gets ``METADATA name entry ...`` naming just
    the entries that changed, and nothing for mailboxes it does not watch."""
    raw = imap.raw(login=ALICE)
    ok(raw, "CREATE notes")
    ok(raw, "CREATE elsewhere")
    other = imap.raw(login=ALICE)
    ok(other, 'SETMETADATA notes (/private/comment "old")')
    ok(raw, "NOTIFY SET (mailboxes notes (MailboxMetadataChange)) (personal (ServerMetadataChange))")
    ok(other, 'SETMETADATA notes (/private/comment "new" /shared/comment "hello")')
    assert unsolicited(raw) == [b"* METADATA notes /private/comment /shared/comment"]
    ok(other, 'SETMETADATA notes (/shared/comment "hello")')  # unchanged: nothing
    ok(other, 'SETMETADATA elsewhere (/private/comment "x")')  # not watched: nothing
    ok(other, 'SETMETADATA "" (/private/vendor/tidings/colour "blue")')
    assert unsolicited(raw) == [b'* METADATA "" /private/vendor/tidings/colour']
    ok(other, "SETMETADATA notes (/private/comment NIL)")
    assert unsolicited(raw) == [b"* METADATA notes /private/comment"]


def test_deleting_the_selected_mailbox_ends_a_notify_session_without_a_command(imap):
    raw = imap.raw(login=ALICE)
    ok(raw, "CREATE doomed")
    ok(raw, "SELECT doomed")
    ok(raw, "NOTIFY SET (selected (MessageNew MessageExpunge)) (personal (MailboxName))")
    other = imap.raw(login=ALICE)
    ok(other, "DELETE doomed")
    lines = unsolicited(raw, 2)
    assert lines[0] == b'* LIST (\\NonExistent) "/" doomed' and lines[1].startswith(b"* BYE")
    assert raw.closed_by_server()
