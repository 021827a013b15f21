"""Sample messages for the mail analysis tests (CRLF unless a test says otherwise)."""

from __future__ import annotations


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


RFC3501_ENVELOPE_MESSAGE = crlf(
    "Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\n"
    "From: Terry Gray <gray@cac.washington.edu>\n"
    "Subject: IMAP4rev1 WG mtg summary and minutes\n"
    "To: imap@cac.washington.edu\n"
    "cc: minutes@CNRI.Reston.VA.US,\n"
    " John Klensin <KLENSIN@MIT.EDU>\n"
    "Message-Id: <B27397-0100000@cac.washington.edu>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\n"
    "\n"
    "Minutes of the meeting.\n"
    "Second line.\n"
)

PART_ONE_BODY = ("x" * 48 + "\r\n") * 22 + "y" * 52  # 1152 octets, 23 lines
PART_TWO_BODY = ("A" * 61 + "\r\n") * 72 + "B" * 18  # 4554 octets, 73 lines

RFC3501_MIXED_MESSAGE = (
    "From: a@example.com\r\n"
    "Subject: diff\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: MULTIPART/MIXED; BOUNDARY="--=_b"\r\n'
    "\r\n"
    "This is a multi-part message in MIME format.\r\n"
    "----=_b\r\n"
    "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
    "\r\n" + PART_ONE_BODY + "\r\n"
    "----=_b\r\n"
    "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII; NAME=cc.diff\r\n"
    "Content-ID: <960723163407.20117h@cac.washington.edu>\r\n"
    "Content-Description: Compiler diff\r\n"
    "Content-Transfer-Encoding: BASE64\r\n"
    "\r\n" + PART_TWO_BODY + "\r\n"
    "----=_b--\r\n"
).encode("ascii")


def _part(content_type: str, body: str, extra: str = "") -> str:
    return f"Content-Type: {content_type}\n{extra}\n{body}"


# The structure of the example in RFC 3501 section 6.4.5.
_INNER_3 = (
    "Subject: inner three\nFrom: c@example.com\nContent-Type: multipart/mixed; boundary=m3\n\n"
    "--m3\n"
    + _part("text/plain", "three one")
    + "\n--m3\n"
    + _part("application/octet-stream", "AAAA", "Content-Transfer-Encoding: base64\n")
    + "\n--m3--\n"
)
_INNER_4_2 = (
    "Subject: inner four two\nContent-Type: multipart/mixed; boundary=m42\n\n"
    "--m42\n" + _part("text/plain", "four two one") + "\n--m42\n"
    "Content-Type: multipart/alternative; boundary=alt\n\n"
    "--alt\n"
    + _part("text/plain", "plain alt")
    + "\n--alt\n"
    + _part("text/richtext", "<bold>rich</bold>")
    + "\n--alt--\n"
    "\n--m42--\n"
)
RFC3501_SECTIONS_MESSAGE = crlf(
    "From: a@example.com\nSubject: sections\nMIME-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=top\n\n"
    "--top\n"
    + _part("text/plain", "part one")
    + "\n--top\n"
    + _part("application/octet-stream", "AAEC", "Content-Transfer-Encoding: base64\n")
    + "\n--top\n"
    + _part("message/rfc822", _INNER_3)
    + "\n--top\n"
    "Content-Type: multipart/mixed; boundary=four\n\n"
    "--four\n"
    + _part("image/gif", "R0lGODlh", "Content-Transfer-Encoding: base64\n")
    + "\n--four\n"
    + _part("message/rfc822", _INNER_4_2)
    + "\n--four--\n"
    "\n--top--\n"
)

ALTERNATIVE_MESSAGE = crlf(
    "From: =?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?= <keld@dkuug.dk>\n"
    "To: =?US-ASCII?Q?Keith_Moore?= <moore@cs.utk.edu>\n"
    "Subject: =?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?=\n"
    " =?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?=\n"
    "Date: Tue, 1 Mar 2022 10:00:00 +0100\n"
    "Message-ID: <alt@example.org>\n"
    "In-Reply-To: <parent@example.org>\n"
    "References: <root@example.org>\n <parent@example.org>\n"
    "MIME-Version: 1.0\n"
    'Content-Type: multipart/alternative; boundary="alt"\n\n'
    "--alt\n"
    "Content-Type: text/plain; charset=iso-8859-1\n"
    "Content-Transfer-Encoding: quoted-printable\n\n"
    "Gr=FC=DFe aus K=F6ln, caf=E9=\n"
    " ist offen.\n"
    "--alt\n"
    "Content-Type: text/html; charset=utf-8\n"
    "Content-Transfer-Encoding: base64\n\n"
    "PHA+R3LDvMOfZSBhdXMgS8O2bG48L3A+\n"
    "--alt--\n"
)
