"""BURL (RFC 4468): submitting a message stored in IMAP by its URLAUTH URL, over smtplib, with
the URL made by GENURLAUTH over IMAP."""

from __future__ import annotations

import re
import urllib.parse

import pytest

from tests.imap.session_support import ImapTestServer
from tests.smtp.conftest import ALICE, BOB, PASSWORD, client_tls

DRAFT = (
    f"From: Alice <{ALICE}>\r\nTo: {BOB}\r\nSubject: stored draft\r\n"
    "Message-ID: <draft.1@example.test>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\n"
    "Sent without uploading it again.\r\n"
).encode()
OWNER = urllib.parse.quote(ALICE)


@pytest.fixture
def servers(server) -> ImapTestServer:
    running = ImapTestServer(server)
    running.deliver(DRAFT, mailbox="Drafts")  # UID 1
    return running


def signed_url(servers: ImapTestServer, access: str, user: str = ALICE) -> str:
    raw = servers.raw(login=user)
    rump = f"imap://{OWNER}@localhost/Drafts/;uid=1;urlauth={access}"
    line = raw.command(f'GENURLAUTH "{rump}" INTERNAL')[0]
    raw.close()
    return re.match(rb'\* GENURLAUTH "(.*)"$', line).group(1).decode()


def submission(servers: ImapTestServer, user: str = ALICE):
    import smtplib

    client = smtplib.SMTP("127.0.0.1", servers.ports["submission"], timeout=10)
    client.starttls(context=client_tls())
    client.login(user, PASSWORD)
    return client


def bob_inbox(servers: ImapTestServer) -> list[bytes]:
    store = servers.running.store

    async def read():
        account = await store.accounts.get_user(BOB)
        box = await store.mailboxes.get(account.id, "INBOX")
        _, refs = await store.mailboxes.messages(account.id, box.id)
        return [await store.mailboxes.read_blob(ref.blob_hash) for ref in refs]

    return servers.running.call(read())


def test_burl_is_advertised_on_submission(servers):
    with submission(servers) as client:
        client.ehlo()
        assert client.esmtp_features.get("burl", "").split() == ["imap"]


def test_burl_sends_the_stored_draft(servers):
    """RFC 4468 section 3: MAIL, RCPT, then ``BURL imap://...;urlauth=submit+user:internal:...
    LAST`` instead of DATA."""
    url = signed_url(servers, f"submit+{OWNER}")
    with submission(servers) as client:
        client.ehlo()
        assert client.mail(ALICE)[0] == 250 and client.rcpt(BOB)[0] == 250
        code, text = client.docmd("BURL", f"{url} LAST")
        assert code == 250, text
    [stored] = bob_inbox(servers)
    assert stored.endswith(DRAFT.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\nSent without uploading it again.\r\n")


def test_bdat_chunks_and_burl_chunks_join(servers):
    """RFC 4468 section 3: BURL mixes with BDAT; a header chunk, then the draft by URL."""
    url = signed_url(servers, f"submit+{OWNER}")
    with submission(servers) as client:
        client.ehlo()
        client.mail(ALICE)
        client.rcpt(BOB)
        extra = b"X-Sent-By: burl test\r\n"
        client.send(b"BDAT %d\r\n" % len(extra) + extra)
        assert client.getreply()[0] == 250
        code, text = client.docmd("BURL", url)
        assert (code, text[:5]) == (250, b"2.5.0")
        client.send(b"BDAT 0 LAST\r\n")
        assert client.getreply()[0] == 250
    [stored] = bob_inbox(servers)
    assert b"X-Sent-By: burl test\r\nFrom: Alice" in stored


def test_burl_refuses_urls_the_user_may_not_use(servers):
    good = signed_url(servers, f"submit+{OWNER}")
    forged = good[:-4] + ("0000" if not good.endswith("0000") else "1111")
    only_imap = signed_url(servers, f"user+{OWNER}")
    plain = f"imap://{OWNER}@localhost/Drafts/;uid=1"
    for user, url, expected in (
        (ALICE, forged, 554),
        (BOB, good, 554),  # submit+alice admits only Alice's submissions
        (BOB, plain, 554),  # a plain URL names only the user's own messages
        (ALICE, "imap://nowhere", 554),
        (ALICE, plain, 250),
        (ALICE, only_imap, 250),  # user+alice: Alice herself
    ):
        with submission(servers, user) as client:
            client.ehlo()
            client.mail(user)
            client.rcpt(BOB)
            code, text = client.docmd("BURL", f"{url} LAST")
            assert code == expected, (user, url, text)
            if code == 554:
                assert text.startswith(b"5.6.6")
                # the transaction is over: RCPT needs a new MAIL
                assert client.rcpt(BOB)[0] == 503
    assert len(bob_inbox(servers)) == 2


def test_burl_before_rcpt_is_out_of_sequence(servers):
    with submission(servers) as client:
        client.ehlo()
        assert client.docmd("BURL", f"imap://{OWNER}@localhost/Drafts/;uid=1 LAST")[0] == 503
        client.mail(ALICE)
        assert client.docmd("BURL", "")[0] == 501
