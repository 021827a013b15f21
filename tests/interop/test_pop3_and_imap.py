"""POP3 and IMAP on one account agree: POP3's maildrop is exactly the IMAP INBOX, and a deletion
through either protocol is seen by the other (RFC 1939 section 6 UPDATE state; RFC 9051 7.5.1
EXPUNGE responses to a session that has the mailbox selected)."""

from __future__ import annotations

import imaplib
import poplib

import pytest

from tests.interop.conftest import ALICE, PASSWORD, client_tls, message, wait_until

pytestmark = pytest.mark.interop


def pop3s(mail) -> poplib.POP3_SSL:
    client = poplib.POP3_SSL("127.0.0.1", mail.ports["pop3s"], context=client_tls(), timeout=10)
    client.user(ALICE)
    client.pass_(PASSWORD)
    return client


def imaps(mail) -> imaplib.IMAP4_SSL:
    client = imaplib.IMAP4_SSL("127.0.0.1", mail.ports["imaps"], ssl_context=client_tls(), timeout=10)
    client.login(ALICE, PASSWORD)
    return client


def pop_subjects(client: poplib.POP3) -> list[str]:
    subjects = []
    for n in range(1, client.stat()[0] + 1):
        headers = client.top(n, 0)[1]
        subjects.append(
            next(h.split(b":", 1)[1].strip().decode() for h in headers if h.startswith(b"Subject:"))
        )
    return subjects


def imap_subjects(client: imaplib.IMAP4) -> list[str]:
    client.select("INBOX")
    typ, data = client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK"
    return [part[1].split(b":", 1)[1].strip().decode() for part in data if isinstance(part, tuple)]


def test_pop3_sees_exactly_the_imap_inbox(mail):
    mail.deliver(message("in inbox 1"))
    mail.deliver(message("archived"), mailbox="Archive")
    imap = imaps(mail)
    imap.append("INBOX", None, None, message("appended over imap"))
    imap.append("Sent", None, None, message("sent copy"))
    pop = pop3s(mail)
    assert pop_subjects(pop) == ["in inbox 1", "appended over imap"] == imap_subjects(imap)
    count, size = pop.stat()
    assert size == sum(ref.size for ref in mail.refs())
    # UIDL is unique per message and stable across sessions
    uidls = pop.uidl()[1]
    pop.quit()
    pop = pop3s(mail)
    assert pop.uidl()[1] == uidls and len(set(uidls)) == count
    pop.quit()
    imap.logout()


def test_a_message_deleted_over_pop3_is_expunged_for_imap(mail):
    for n in range(3):
        mail.deliver(message(f"m{n}"))
    watcher = imaps(mail)
    watcher.select("INBOX")
    pop = pop3s(mail)
    pop.dele(2)
    # Until QUIT (UPDATE state) nothing is deleted.
    assert len(mail.refs()) == 3
    pop.quit()
    assert mail.subjects() == ["m0", "m2"]
    # The session that has INBOX selected learns of it at its next command.
    typ, _ = watcher.noop()
    assert typ == "OK"
    assert watcher.untagged_responses.get("EXPUNGE") == [b"2"]
    assert imap_subjects(watcher) == ["m0", "m2"]
    fresh = imaps(mail)
    assert imap_subjects(fresh) == ["m0", "m2"]
    fresh.logout()
    watcher.logout()


def test_a_pop3_session_that_ends_without_quit_deletes_nothing(mail):
    mail.deliver(message("kept"))
    pop = pop3s(mail)
    pop.dele(1)
    pop.close()  # connection dropped without QUIT: RFC 1939 6, no UPDATE state

    def next_session():
        # The maildrop lock is held until the server has finished with the lost session.
        try:
            return pop3s(mail)
        except poplib.error_proto:
            return None

    wait_until(next_session).quit()
    imap = imaps(mail)
    assert imap_subjects(imap) == ["kept"]
    imap.logout()


def test_a_message_expunged_over_imap_is_gone_in_the_next_pop3_session(mail):
    for n in range(3):
        mail.deliver(message(f"m{n}"))
    imap = imaps(mail)
    imap.select("INBOX")
    imap.store("1", "+FLAGS", r"(\Deleted)")
    pop = pop3s(mail)
    assert pop.stat()[0] == 3  # \Deleted alone does not remove anything
    pop.quit()
    imap.expunge()
    pop = pop3s(mail)
    assert pop_subjects(pop) == ["m1", "m2"]
    assert b"m1" in b"\n".join(pop.retr(1)[1])
    pop.quit()
    imap.logout()


def test_a_message_moved_out_of_the_inbox_over_imap_leaves_the_pop3_maildrop(mail):
    mail.deliver(message("to archive"))
    mail.deliver(message("stays"))
    imap = imaps(mail)
    imap.select("INBOX")
    typ, _ = imap.uid("MOVE", "1", "Archive")
    assert typ == "OK"
    pop = pop3s(mail)
    assert pop_subjects(pop) == ["stays"]
    pop.quit()
    imap.logout()
