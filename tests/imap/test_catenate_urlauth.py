"""CATENATE (RFC 4469) and URLAUTH (RFC 4467) over a real IMAP connection, with the RFCs'
examples: building a message from stored parts, and URLs that carry their own authorisation."""

from __future__ import annotations

import re
import urllib.parse

import pytest

from tests.imap.session_support import ALICE, BOB, ImapTestServer

BOUNDARY = "--------------030308070208000400050907"
DRAFT = (
    "From: alice@example.test\r\nTo: bob@example.test\r\nSubject: Draft with attachment\r\n"
    "MIME-Version: 1.0\r\n"
    f'Content-Type: multipart/mixed; boundary="{BOUNDARY[2:]}"\r\n\r\n'
    f"{BOUNDARY}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nThe text of the draft.\r\n"
    f"{BOUNDARY}\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    f"QUJD\r\n{BOUNDARY}--\r\n"
).encode()
FORWARDED = b"From: carol@example.test\r\nSubject: to forward\r\n\r\nForward me.\r\n"


@pytest.fixture
def imap(server) -> ImapTestServer:
    running = ImapTestServer(server)  # accounts start with a Drafts mailbox
    running.deliver(DRAFT, mailbox="Drafts")  # UID 1
    running.deliver(FORWARDED, mailbox="Drafts")  # UID 2
    return running


def uidvalidity(raw, mailbox: str = "Drafts") -> int:
    line = raw.command(f"STATUS {mailbox} (UIDVALIDITY)")[0]
    return int(re.search(rb"UIDVALIDITY (\d+)", line).group(1))


def fetch_body(raw, mailbox: str, uid: int) -> bytes:
    raw.command(f"EXAMINE {mailbox}")
    line = raw.command(f"UID FETCH {uid} BODY.PEEK[]")[0]
    return line.split(b"}\r\n", 1)[1][:-1]


def test_catenate_and_urlauth_are_advertised(imap):
    capabilities = imap.raw(login=ALICE).command("CAPABILITY")[0].split()
    assert b"CATENATE" in capabilities and b"URLAUTH" in capabilities


def test_catenate_builds_a_message_from_text_and_stored_parts(imap):
    """RFC 4469 section 5 example: a new draft from the old one's header and parts, a new
    text part and a whole message, with synchronising literals."""
    raw = imap.raw(login=ALICE)
    validity = uidvalidity(raw)
    base = f"/Drafts;UIDVALIDITY={validity}/;UID=1"
    separator = f"\r\n{BOUNDARY}\r\n".encode()
    tag = raw.next_tag()
    raw.send(
        f'{tag} APPEND Drafts (\\Seen \\Draft $MDNSent) CATENATE (URL "{base}/;section=HEADER" '
        f"TEXT {{{len(separator)}}}\r\n".encode()
    )
    assert raw.line().startswith(b"+")
    raw.send(
        separator
        + f' URL "{base}/;section=1.MIME" URL "{base}/;section=1" TEXT {{{len(separator)}}}\r\n'.encode()
    )
    assert raw.line().startswith(b"+")
    closing = f"\r\n{BOUNDARY}--\r\n".encode()
    raw.send(separator + f' URL "/Drafts/;UID=2" TEXT {{{len(closing)}}}\r\n'.encode())
    assert raw.line().startswith(b"+")
    raw.send(closing + b")\r\n")
    tagged = raw.until_tagged(tag)[-1]
    assert re.match(rb"T\d+ OK \[APPENDUID \d+ 3\]", tagged), tagged
    header = DRAFT.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    first_part_mime = b"Content-Type: text/plain; charset=us-ascii\r\n\r\n"
    expected = (
        header + separator + first_part_mime + b"The text of the draft." + separator + FORWARDED + closing
    )
    assert fetch_body(raw, "Drafts", 3) == expected
    flags = raw.command("UID FETCH 3 FLAGS")[0]
    assert b"\\Draft" in flags and b"$MDNSent" in flags


def test_catenate_with_an_unusable_url_is_badurl_and_appends_nothing(imap):
    """RFC 4469 section 5: NO [BADURL url]; a URL to another user's message needs URLAUTH."""
    raw = imap.raw(login=ALICE)
    validity = uidvalidity(raw)
    for url in (
        f"/Drafts;UIDVALIDITY={validity}/;UID=200",
        f"/Drafts;UIDVALIDITY={validity + 1}/;UID=1",
        "/Nowhere/;UID=1",
        "imap://bob%40example.test@localhost/INBOX/;UID=1",
        "http://example.test/",
    ):
        tagged = raw.command(f'APPEND Drafts CATENATE (TEXT {{3+}}\r\nabc URL "{url}")')[-1]
        assert tagged.split()[1:3] == [b"NO", f"[BADURL {url}]".split()[0].encode()], tagged
    assert b"MESSAGES 2" in raw.command("STATUS Drafts (MESSAGES)")[0]
    # absolute URLs naming the user's own message work as well
    own = f"imap://{urllib.parse.quote(ALICE)}@localhost/Drafts/;UID=2"
    assert b" OK " in raw.command(f'APPEND INBOX CATENATE (URL "{own}")')[-1]
    raw.command("SELECT INBOX")
    assert fetch_body(raw, "INBOX", 1) == FORWARDED


def generate(raw, rump: str) -> str:
    lines = raw.command(f'GENURLAUTH "{rump}" INTERNAL')
    assert lines[-1].split()[1] == b"OK", lines
    return re.match(rb'\* GENURLAUTH "(.*)"$', lines[0]).group(1).decode()


def test_genurlauth_and_urlfetch(imap):
    """RFC 4467 sections 7.2 and 7.3: the owner signs a URL; users it admits fetch it."""
    alice = imap.raw(login=ALICE)
    owner = urllib.parse.quote(ALICE)
    rump = f"imap://{owner}@localhost/Drafts/;uid=1/;section=1;urlauth=user+{urllib.parse.quote(BOB)}"
    signed = generate(alice, rump)
    assert re.fullmatch(re.escape(rump) + r":INTERNAL:[0-9a-f]{64}", signed)
    bob = imap.raw(login=BOB)
    assert bob.command(f'URLFETCH "{signed}"')[0] == (
        f'* URLFETCH "{signed}" {{22}}\r\nThe text of the draft.'.encode()
    )
    # Bob can put it into a message of his own with CATENATE
    assert b" OK " in bob.command(f'APPEND INBOX CATENATE (URL "{signed}" TEXT {{2+}}\r\n!!)')[-1]
    # Alice is not "user+bob"; a forged token, an unsigned URL and a submit+ URL give NIL
    assert alice.command(f'URLFETCH "{signed}"')[0].endswith(b" NIL")
    forged = signed[:-4] + ("0000" if not signed.endswith("0000") else "1111")
    assert bob.command(f'URLFETCH "{forged}"')[0].endswith(b" NIL")
    assert bob.command(f'URLFETCH "{rump}"')[0].endswith(b" NIL")
    submit = generate(alice, f"imap://{owner}@localhost/Drafts/;uid=2;urlauth=submit+{owner}")
    assert alice.command(f'URLFETCH "{submit}"')[0].endswith(b" NIL")
    anyone = generate(alice, f"imap://{owner}@localhost/Drafts/;uid=2;urlauth=authuser")
    assert bob.command(f'URLFETCH "{anyone}" "{forged}"')[0] == (
        f'* URLFETCH "{anyone}" {{{len(FORWARDED)}}}\r\n'.encode() + FORWARDED + f' "{forged}" NIL'.encode()
    )


def test_genurlauth_refuses_what_is_not_the_users(imap):
    alice = imap.raw(login=ALICE)
    owner = urllib.parse.quote(ALICE)
    bob = urllib.parse.quote(BOB)
    for rump in (
        f"imap://{bob}@localhost/INBOX/;uid=1;urlauth=anonymous",  # Bob's mailbox
        f"imap://{owner}@localhost/Nowhere/;uid=1;urlauth=anonymous",
        f"imap://{owner}@localhost/Drafts/;uid=1",  # no ;URLAUTH=
        "/Drafts/;uid=1;urlauth=anonymous",  # not absolute
    ):
        assert b"NO [BADURL" in alice.command(f'GENURLAUTH "{rump}" INTERNAL')[-1], rump
    rump = f"imap://{owner}@localhost/Drafts/;uid=1;urlauth=anonymous"
    assert alice.command(f'GENURLAUTH "{rump}" HMAC')[-1].split()[1] == b"NO"


def test_resetkey_voids_the_urls_of_a_mailbox(imap):
    """RFC 4467 section 7.1."""
    alice = imap.raw(login=ALICE)
    owner = urllib.parse.quote(ALICE)
    signed = generate(alice, f"imap://{owner}@localhost/Drafts/;uid=2;urlauth=authuser")
    bob = imap.raw(login=BOB)
    assert not bob.command(f'URLFETCH "{signed}"')[0].endswith(b" NIL")
    assert alice.command("RESETKEY Drafts INTERNAL")[-1].startswith(b"T3 OK [URLMECH INTERNAL]")
    assert bob.command(f'URLFETCH "{signed}"')[0].endswith(b" NIL")
    again = generate(alice, f"imap://{owner}@localhost/Drafts/;uid=2;urlauth=authuser")
    assert again != signed and not bob.command(f'URLFETCH "{again}"')[0].endswith(b" NIL")
    assert alice.command("RESETKEY")[-1].startswith(b"T5 OK")
    assert bob.command(f'URLFETCH "{again}"')[0].endswith(b" NIL")
    assert b"NO [NONEXISTENT]" in alice.command("RESETKEY Nowhere")[-1]
