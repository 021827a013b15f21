"""analyse(): envelope, BODY/BODYSTRUCTURE, the part table and the decoded fields."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from tests.mail.samples import (
    ALTERNATIVE_MESSAGE,
    PART_ONE_BODY,
    PART_TWO_BODY,
    RFC3501_ENVELOPE_MESSAGE,
    RFC3501_MIXED_MESSAGE,
    RFC3501_SECTIONS_MESSAGE,
    crlf,
)
from tidings.mail.address_list import MailAddress, parse_address_list
from tidings.mail.message import MessageSummary, analyse


def test_envelope_matches_the_rfc3501_fetch_example():
    summary = analyse(RFC3501_ENVELOPE_MESSAGE)
    gray = [["Terry Gray", None, "gray", "cac.washington.edu"]]
    assert summary.envelope == [
        "Wed, 17 Jul 1996 02:23:25 -0700 (PDT)",
        "IMAP4rev1 WG mtg summary and minutes",
        gray,
        gray,
        gray,
        [[None, None, "imap", "cac.washington.edu"]],
        [[None, None, "minutes", "CNRI.Reston.VA.US"], ["John Klensin", None, "KLENSIN", "MIT.EDU"]],
        None,
        None,
        "<B27397-0100000@cac.washington.edu>",
    ]


def test_text_message_body_counts_octets_and_lines():
    summary = analyse(RFC3501_ENVELOPE_MESSAGE)
    body = b"Minutes of the meeting.\r\nSecond line.\r\n"
    assert summary.body == ["TEXT", "PLAIN", ["CHARSET", "US-ASCII"], None, None, "7BIT", len(body), 2]
    assert summary.bodystructure == [*summary.body, None, None, None, None]


def test_message_without_content_type_is_text_plain_us_ascii():
    summary = analyse(b"Subject: hi\r\n\r\none\r\ntwo\r\nthree")
    assert summary.body == ["TEXT", "PLAIN", ["CHARSET", "US-ASCII"], None, None, "7BIT", 15, 3]


def test_multipart_body_matches_the_rfc3501_example():
    summary = analyse(RFC3501_MIXED_MESSAGE)
    assert len(PART_ONE_BODY) == 1152 and len(PART_TWO_BODY) == 4554
    assert summary.body == [
        ["TEXT", "PLAIN", ["CHARSET", "US-ASCII"], None, None, "7BIT", 1152, 23],
        [
            "TEXT",
            "PLAIN",
            ["CHARSET", "US-ASCII", "NAME", "cc.diff"],
            "<960723163407.20117h@cac.washington.edu>",
            "Compiler diff",
            "BASE64",
            4554,
            73,
        ],
        "MIXED",
    ]


def test_bodystructure_adds_extension_data_to_parts_and_multiparts():
    summary = analyse(RFC3501_MIXED_MESSAGE)
    first, second, subtype, params, disposition, language, location = summary.bodystructure
    assert first[-4:] == [None, None, None, None]
    assert subtype == "MIXED"
    assert params == ["BOUNDARY", "--=_b"]
    assert (disposition, language, location) == (None, None, None)


def test_disposition_language_and_location_are_reported():
    raw = crlf(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n"
        'Content-Type: application/pdf; name="r.pdf"\n'
        'Content-Disposition: attachment; filename="r.pdf"; size=3\n'
        "Content-Language: en, de\n"
        "Content-Location: http://example.com/r.pdf\n"
        "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n"
        "Content-Transfer-Encoding: base64\n\nAAAA\n--b--\n"
    )
    summary = analyse(raw)
    part = summary.bodystructure[0]
    assert part == [
        "APPLICATION",
        "PDF",
        ["NAME", "r.pdf"],
        None,
        None,
        "BASE64",
        4,
        "Q2hlY2sgSW50ZWdyaXR5IQ==",
        ["ATTACHMENT", ["FILENAME", "r.pdf", "SIZE", "3"]],
        ["en", "de"],
        "http://example.com/r.pdf",
    ]
    assert summary.has_attachments
    assert summary.parts["1"].filename == "r.pdf"


def test_encapsulated_message_carries_envelope_body_and_lines():
    summary = analyse(RFC3501_SECTIONS_MESSAGE)
    message_part = summary.body[2]
    assert message_part[:2] == ["MESSAGE", "RFC822"]
    envelope, inner_body, lines = message_part[7:10]
    assert envelope[1] == "inner three"
    assert envelope[2] == [[None, None, "c", "example.com"]]
    assert inner_body[-1] == "MIXED"
    assert inner_body[0][:2] == ["TEXT", "PLAIN"]
    part = summary.parts["3"]
    inner = RFC3501_SECTIONS_MESSAGE[part.body_start : part.end]
    assert inner.endswith(b"--m3--\r\n")
    assert lines == inner.count(b"\r\n")


def test_section_table_numbers_parts_as_rfc3501_section_6_4_5():
    summary = analyse(RFC3501_SECTIONS_MESSAGE)
    types = {section: info.content_type for section, info in summary.parts.items()}
    assert types == {
        "1": "text/plain",
        "2": "application/octet-stream",
        "3": "message/rfc822",
        "3.1": "text/plain",
        "3.2": "application/octet-stream",
        "4": "multipart/mixed",
        "4.1": "image/gif",
        "4.2": "message/rfc822",
        "4.2.1": "text/plain",
        "4.2.2": "multipart/alternative",
        "4.2.2.1": "text/plain",
        "4.2.2.2": "text/richtext",
    }
    assert summary.parts["3"].message_body_start is not None
    assert summary.parts["1"].message_body_start is None


def test_non_multipart_message_has_one_part_whose_header_is_the_message_header():
    summary = analyse(RFC3501_ENVELOPE_MESSAGE)
    assert list(summary.parts) == ["1"]
    part = summary.parts["1"]
    assert (part.header_start, part.body_start, part.end) == (0, summary.header_size, summary.size)
    assert part.charset == "US-ASCII"


def test_rfc2047_subject_and_names_are_decoded_for_search_and_display():
    summary = analyse(ALTERNATIVE_MESSAGE)
    assert summary.subject == "If you can read this you understand the example."
    assert summary.from_addrs == [MailAddress("Keld Jørn Simonsen", "keld", "dkuug.dk")]
    assert summary.to_addrs == [MailAddress("Keith Moore", "moore", "cs.utk.edu")]
    # ...while the envelope keeps the encoded words, as IMAP requires.
    assert summary.envelope[1].startswith("=?ISO-8859-1?B?")
    assert summary.envelope[2][0][0] == "=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?="


def test_ids_and_dates_are_extracted():
    summary = analyse(ALTERNATIVE_MESSAGE)
    assert summary.message_id == "<alt@example.org>"
    assert summary.in_reply_to == "<parent@example.org>"
    assert summary.references == ["<root@example.org>", "<parent@example.org>"]
    assert summary.sent_date == datetime(2022, 3, 1, 10, 0, tzinfo=timezone(timedelta(hours=1)))
    assert summary.envelope[8] == "<parent@example.org>"


def test_missing_date_gives_none_and_nil():
    summary = analyse(b"Subject: no date\r\n\r\nbody\r\n")
    assert summary.sent_date is None
    assert summary.envelope[0] is None
    assert summary.envelope[2:5] == [None, None, None]


def test_date_without_zone_is_utc():
    summary = analyse(b"Date: 1 Jan 2020 00:00:00 -0000\r\n\r\n")
    assert summary.sent_date == datetime(2020, 1, 1, tzinfo=UTC)


def test_sender_and_reply_to_default_to_from_but_are_used_when_present():
    raw = crlf("From: a@x.org\nSender: s@x.org\nReply-To:\nTo: b@y.org\n\nhi\n")
    envelope = analyse(raw).envelope
    assert envelope[3] == [[None, None, "s", "x.org"]]
    assert envelope[4] == envelope[2] == [[None, None, "a", "x.org"]]


def test_group_syntax_produces_group_markers():
    assert parse_address_list('Friends: "Doe, J." <j@x.org>, k@y.org;, undisclosed-recipients:;') == [
        [None, None, "Friends", None],
        ["Doe, J.", None, "j", "x.org"],
        [None, None, "k", "y.org"],
        [None, None, None, None],
        [None, None, "undisclosed-recipients", None],
        [None, None, None, None],
    ]


def test_address_variants_source_route_comment_name_and_missing_domain():
    assert parse_address_list("<@relay.org,@b.org:joe@x.org>") == [
        [None, "@relay.org,@b.org", "joe", "x.org"]
    ]
    assert parse_address_list("joe@x.org (Joe Bloggs)") == [["Joe Bloggs", None, "joe", "x.org"]]
    assert parse_address_list("John Q. Public <jqp@x.org>") == [["John Q. Public", None, "jqp", "x.org"]]
    assert parse_address_list("postmaster") == [[None, None, "postmaster", ""]]
    assert parse_address_list('"john doe"@x.org') == [[None, None, '"john doe"', "x.org"]]


def test_bare_lf_message_sizes_are_octets_of_stored_bytes():
    raw = b"From: a@x.org\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\nline one\nline two\n--b--\n"
    summary = analyse(raw)
    assert summary.size == len(raw)
    assert summary.header_size == raw.index(b"\n\n") + 2
    part = summary.parts["1"]
    assert raw[part.body_start : part.end] == b"line one\nline two"
    assert summary.body[0][6:8] == [17, 2]


def test_eight_bit_headers_are_decoded_as_utf8_with_replacement():
    raw = "Subject: Grüße\r\nFrom: Jörg <j@x.org>\r\n\r\n".encode() + b"X-Bad: \xff\r\n"
    summary = analyse(raw.replace(b"Subject: ", b"Subject: \xfe"))
    assert summary.subject == "\ufffdGrüße"
    assert summary.envelope[2] == [["Jörg", None, "j", "x.org"]]
    MessageSummary.from_json(summary.to_json())  # still valid JSON


def test_json_round_trip_keeps_everything():
    for raw in (RFC3501_SECTIONS_MESSAGE, ALTERNATIVE_MESSAGE, RFC3501_MIXED_MESSAGE):
        summary = analyse(raw)
        assert MessageSummary.from_json(summary.to_json()) == summary


def test_attachment_detection_ignores_plain_alternatives():
    assert not analyse(ALTERNATIVE_MESSAGE).has_attachments
    assert analyse(RFC3501_SECTIONS_MESSAGE).has_attachments  # forwarded messages
    forwarded_first = crlf(
        "Content-Type: multipart/mixed; boundary=b\n\n"
        "--b\nContent-Type: message/rfc822\n\nSubject: s\n\nx\n--b--\n"
    )
    assert analyse(forwarded_first).has_attachments
    assert not analyse(crlf("Content-Type: message/rfc822\n\nSubject: s\n\nx\n")).has_attachments


def test_big_parts_scanned_a_piece_at_a_time_give_the_same_summary(monkeypatch):
    """Delimiters and lines are looked for a SCAN_PIECE at a time (so a worker thread analysing
    a 50 MB message lets the event loop have the GIL in between); where the pieces are cut must
    not change a thing, delimiters split between two pieces included."""
    from tidings.mail import bodystructure, mime

    nested = crlf(
        "Content-Type: multipart/mixed; boundary=outer\n\n"
        "--outer\nContent-Type: text/plain\n\nline one\n--outerX is not a delimiter\n--outer \n"
        "Content-Type: multipart/alternative; boundary=inner\n\n--inner\n\nshort\n--inner--\n"
        "--outer\nContent-Type: message/rfc822\n\nSubject: inside\n\nbody\n--outer--\nepilogue\n"
    )
    samples = [RFC3501_MIXED_MESSAGE, RFC3501_SECTIONS_MESSAGE, ALTERNATIVE_MESSAGE, nested]
    expected = [analyse(raw).to_json() for raw in samples]
    for piece in (1, 2, 3, 5, 8, 13):
        monkeypatch.setattr(mime, "SCAN_PIECE", piece)
        monkeypatch.setattr(bodystructure, "SCAN_PIECE", piece)
        assert [analyse(raw).to_json() for raw in samples] == expected, piece
