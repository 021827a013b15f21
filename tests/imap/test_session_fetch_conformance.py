"""FETCH answers that strict clients and conformance suites check byte for byte, over a real
socket: ENVELOPE address lists and groups (RFC 3501 7.4.2 / RFC 9051 7.5.2 grammar), BINARY of
quoted-printable parts (RFC 3516, RFC 2045 6.7), and section numbers inside single-part bodies
(RFC 3501 6.4.5), compared with what Dovecot answers where the RFC leaves room."""

from __future__ import annotations

import pytest

from tests.imap.session_support import ALICE, ImapTestServer


@pytest.fixture
def imap(server) -> ImapTestServer:
    return ImapTestServer(server)


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


def fetch_one(imap: ImapTestServer, raw_message: bytes, items: str) -> bytes:
    imap.deliver(raw_message)
    raw = imap.raw(login=ALICE)
    raw.command("SELECT INBOX")
    lines = raw.command(f"FETCH 1 {items}")
    assert lines[-1].startswith(b"T3 OK"), lines
    return b"\r\n".join(lines[:-1])


# --------------------------------------------------------------------------- ENVELOPE

GROUPS = crlf(
    "From: Alice <alice@example.test>\n"
    "To: undisclosed-recipients:;\n"
    "Cc: friends: a@b.example, c@d.example;, Solo <solo@e.example>\n"
    "Subject: groups\n"
    "\n"
    "body\n"
)


def test_envelope_address_lists_have_no_space_between_addresses_and_groups_are_marked(imap):
    """RFC 9051 9: ``env-to = "(" 1*address ")" / nil`` -- addresses follow each other with no
    separator (a space is a syntax error for strict parsers).  A group is opened by
    ``(NIL NIL "name" NIL)`` and closed by ``(NIL NIL NIL NIL)``, with nothing else invented
    (RFC 3501 7.4.2); an empty group is just the two markers."""
    data = fetch_one(imap, GROUPS, "ENVELOPE")
    assert b'((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL))' in data, data
    assert (
        b'((NIL NIL "friends" NIL)(NIL NIL "a" "b.example")(NIL NIL "c" "d.example")(NIL NIL NIL NIL)'
        b'("Solo" NIL "solo" "e.example"))'
    ) in data, data
    assert b'"groups" (("Alice" NIL "alice" "example.test")) (("Alice"' in data, data


def test_envelope_of_an_attached_message_in_bodystructure_follows_the_same_grammar(imap):
    attached = crlf(
        "From: a@b.example\n"
        "Subject: outer\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="XX"\n'
        "\n"
        "--XX\n"
        "Content-Type: message/rfc822\n"
        "\n"
        "From: x@y.example, z@w.example\n"
        "Subject: inner\n"
        "\n"
        "inner body\n"
        "--XX--\n"
    )
    data = fetch_one(imap, attached, "BODYSTRUCTURE")
    assert b'((NIL NIL "x" "y.example")(NIL NIL "z" "w.example"))' in data, data


# --------------------------------------------------------------------------- BINARY

QUOTED_PRINTABLE = (
    b"From: a@b.example\r\n"
    b"Subject: qp\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="XX"\r\n'
    b"\r\n"
    b"--XX\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"caf=C3=A9 soft=\r\n"
    b"break =3d=3D lower  \r\n"
    b"trail\t \r\n"
    b"soft with space =  \r\n"
    b"end=\r\n"
    b"=41\r\n"
    b"--XX\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"=00=01=FF\r\n"
    b"--XX--\r\n"
)
QP_DECODED = b"caf\xc3\xa9 softbreak == lower\r\ntrail\r\nsoft with space endA"


def test_binary_decodes_quoted_printable_exactly_and_size_is_the_decoded_size(imap):
    """RFC 2045 6.7: ``=`` at the end of a line (after deleting trailing whitespace) is a soft
    line break, ``=XX`` is one octet (Dovecot also takes lower-case hex), and trailing spaces
    and tabs on a line are transport padding and go.  RFC 3516 4.2: BINARY.SIZE is the size of
    the decoded data, and a partial BINARY[1]<o.n> counts decoded octets.  (Dovecot decodes this
    part to the same 53 octets.)"""
    data = fetch_one(
        imap,
        QUOTED_PRINTABLE,
        "(BINARY.SIZE[1] BINARY.PEEK[1] BINARY.PEEK[1]<5.10> BINARY.SIZE[2] BINARY.PEEK[2])",
    )
    assert b"BINARY.SIZE[1] %d " % len(QP_DECODED) in data, data
    assert b"BINARY[1] {%d}\r\n" % len(QP_DECODED) + QP_DECODED in data, data
    assert b"BINARY[1]<5> {10}\r\n soft" + b"break" in data, data
    assert b"BINARY.SIZE[2] 3 BINARY[2] ~{3}\r\n\x00\x01\xff" in data, data


# --------------------------------------------------------------------------- section numbers

NESTED_SINGLE_PARTS = crlf(
    "From: a@b.example\n"
    "Subject: outer\n"
    "MIME-Version: 1.0\n"
    'Content-Type: multipart/mixed; boundary="XX"\n'
    "\n"
    "--XX\n"
    "Content-Type: text/plain\n"
    "\n"
    "first\n"
    "--XX\n"
    "Content-Type: message/rfc822\n"
    "\n"
    "From: in@b.example\n"
    "Subject: inner\n"
    "Content-Type: text/plain\n"
    "\n"
    "inner body\n"
    "--XX--\n"
)


def test_part_one_of_a_single_part_body_inside_a_multipart_is_the_part_itself(imap):
    """RFC 3501 6.4.5: a non-multipart body has only a part 1, so BODY[1.1] of the text/plain
    part 1 of a multipart is that part -- Dovecot answers "first" for BODY[1.1] and BODY[1.1]'s
    MIME header is part 1's.  Only once: Dovecot answers BODY[1.1.1] with an empty string, as it
    does BODY[2.1.1] (inside the attached single-part message, 2.1 is already its body)."""
    data = fetch_one(
        imap,
        NESTED_SINGLE_PARTS,
        "(BODY.PEEK[1.1] BODY.PEEK[1.1.MIME] BINARY.PEEK[1.1] BODY.PEEK[1.1.1] BODY.PEEK[2.1] "
        "BODY.PEEK[2.1.1])",
    )
    assert b"BODY[1.1] {5}\r\nfirst " in data, data
    assert b"BODY[1.1.MIME] {28}\r\nContent-Type: text/plain\r\n\r\n " in data, data
    assert b"BINARY[1.1] {5}\r\nfirst " in data, data
    assert b'BODY[1.1.1] "" ' in data, data
    assert b"BODY[2.1] {10}\r\ninner body " in data, data
    assert b'BODY[2.1.1] "")' in data, data


def test_part_one_of_one_of_a_plain_single_part_message_is_empty(imap):
    """The "1" of a single-part message is its body; "1.1" names nothing (RFC 3501 6.4.5), and
    Dovecot answers an empty string too."""
    data = fetch_one(
        imap, crlf("From: a@b.example\nSubject: s\n\nHello body\n"), "(BODY.PEEK[1] BODY.PEEK[1.1])"
    )
    assert data == b'* 1 FETCH (BODY[1] {12}\r\nHello body\r\n BODY[1.1] "")', data
