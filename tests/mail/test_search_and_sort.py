"""SEARCH text helpers and SORT keys."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.mail.samples import ALTERNATIVE_MESSAGE, RFC3501_ENVELOPE_MESSAGE, RFC3501_SECTIONS_MESSAGE
from tidings.mail.message import analyse
from tidings.mail.search_text import body_contains, header_contains, text_contains
from tidings.mail.sorting import sort_key

ALT = analyse(ALTERNATIVE_MESSAGE)


def test_header_search_decodes_rfc2047_and_ignores_case():
    assert header_contains(ALTERNATIVE_MESSAGE, ALT, "subject", "READ THIS YOU UNDERSTAND")
    assert header_contains(ALTERNATIVE_MESSAGE, ALT, "From", "jørn")
    assert header_contains(ALTERNATIVE_MESSAGE, ALT, "from", "keld@dkuug")
    assert not header_contains(ALTERNATIVE_MESSAGE, ALT, "To", "keld")


def test_empty_header_needle_matches_messages_having_the_field():
    assert header_contains(ALTERNATIVE_MESSAGE, ALT, "In-Reply-To", "")
    assert not header_contains(ALTERNATIVE_MESSAGE, ALT, "Cc", "")


def test_body_search_decodes_quoted_printable_base64_and_charsets():
    assert body_contains(ALTERNATIVE_MESSAGE, ALT, "CAFÉ IST")  # QP + ISO-8859-1, soft line break
    assert body_contains(ALTERNATIVE_MESSAGE, ALT, "<p>grüße")  # base64 + UTF-8
    assert not body_contains(ALTERNATIVE_MESSAGE, ALT, "Keld")  # header only


def test_body_search_covers_nested_messages_but_not_binary_parts():
    summary = analyse(RFC3501_SECTIONS_MESSAGE)
    assert body_contains(RFC3501_SECTIONS_MESSAGE, summary, "plain alt")
    assert not body_contains(RFC3501_SECTIONS_MESSAGE, summary, "R0lGODlh")


def test_text_search_covers_header_and_body():
    assert text_contains(ALTERNATIVE_MESSAGE, ALT, "keith moore")
    assert text_contains(ALTERNATIVE_MESSAGE, ALT, "köln")
    assert not text_contains(ALTERNATIVE_MESSAGE, ALT, "nowhere to be found")


def test_sort_keys_follow_rfc5256_and_rfc5957():
    summary = analyse(RFC3501_ENVELOPE_MESSAGE)
    internal = datetime(2000, 1, 1, tzinfo=UTC)
    assert sort_key(summary, "ARRIVAL", internal) == internal
    assert sort_key(summary, "DATE", internal) == datetime(1996, 7, 17, 9, 23, 25, tzinfo=UTC)
    assert sort_key(summary, "FROM") == "GRAY"
    assert sort_key(summary, "TO") == "IMAP"
    assert sort_key(summary, "CC") == "MINUTES"
    assert sort_key(summary, "SIZE") == len(RFC3501_ENVELOPE_MESSAGE)
    assert sort_key(summary, "SUBJECT") == "IMAP4REV1 WG MTG SUMMARY AND MINUTES"
    assert sort_key(summary, "DISPLAYFROM") == "TERRY GRAY"  # i;unicode-casemap: titlecase, then NFKD
    assert sort_key(summary, "DISPLAYTO") == "IMAP@CAC.WASHINGTON.EDU"


def test_sort_date_falls_back_to_internal_date():
    summary = analyse(b"Subject: x\r\n\r\n")
    internal = datetime(2000, 1, 1, tzinfo=UTC)
    assert sort_key(summary, "DATE", internal) == internal
    assert sort_key(summary, "FROM") == "" and sort_key(summary, "DISPLAYTO") == ""


def test_body_search_piece_by_piece_finds_words_cut_between_pieces(monkeypatch):
    """Text parts are decoded and searched a CHUNK at a time (so a worker thread searching 50 MB
    lets the event loop have the GIL in between): a word, an =XX escape, a base64 quantum or a
    multi-byte character cut between two pieces must still be found."""
    import base64

    from tidings.mail import search_text

    text = "Grüße aus Köln, ÇA VA très bien; the needle is here.\r\n" * 3
    qp = text.replace("ü", "=C3=BC").replace("ß", "=C3=9F").replace("ö", "=C3=B6").replace("Ç", "=C3=87")
    qp = qp.replace("è", "=C3=A8").replace("needle", "nee=\r\ndle")  # a soft line break in the word
    b64 = base64.b64encode(text.encode()).decode()
    b64 = "\r\n".join(b64[i : i + 7] for i in range(0, len(b64), 7))  # lines of odd lengths
    head = "Subject: pieces\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: "
    messages = [f"{head}quoted-printable\r\n\r\n{qp}".encode(), f"{head}base64\r\n\r\n{b64}\r\n".encode()]
    needles = ["grüsse aus köln", "ça va très", "the needle is here", "needle is here.\r\ngrüße"]
    for raw in messages:
        summary = analyse(raw)
        for chunk in (1, 2, 3, 5, 64, 1 << 20):
            monkeypatch.setattr(search_text, "CHUNK", chunk)
            assert all(body_contains(raw, summary, needle) for needle in needles), (chunk, raw[:80])
            assert not body_contains(raw, summary, "needle is there"), chunk
