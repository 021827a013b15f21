"""extract_section / decode_section_binary / extract_top: byte-exact FETCH sections."""

from __future__ import annotations

from tests.mail.samples import ALTERNATIVE_MESSAGE, RFC3501_ENVELOPE_MESSAGE, RFC3501_SECTIONS_MESSAGE, crlf
from tidings.mail.message import analyse
from tidings.mail.sections import decode_section_binary, extract_section, extract_top

RAW = RFC3501_SECTIONS_MESSAGE
SUMMARY = analyse(RAW)


def test_whole_message_is_the_stored_bytes_and_its_size():
    assert extract_section(RAW, SUMMARY) == RAW
    assert len(extract_section(RAW, SUMMARY)) == SUMMARY.size


def test_header_includes_the_blank_line_and_text_is_the_rest():
    header = extract_section(RAW, SUMMARY, "", "HEADER")
    assert header == RAW[: RAW.index(b"\r\n\r\n") + 4]
    assert header + extract_section(RAW, SUMMARY, "", "TEXT") == RAW


def test_leaf_part_is_its_body_without_the_crlf_before_the_delimiter():
    assert extract_section(RAW, SUMMARY, "1") == b"part one"
    assert extract_section(RAW, SUMMARY, "1", "MIME") == b"Content-Type: text/plain\r\n\r\n"
    assert extract_section(RAW, SUMMARY, "4.1") == b"R0lGODlh"
    assert extract_section(RAW, SUMMARY, "4.1", "MIME") == (
        b"Content-Type: image/gif\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    )


def test_message_rfc822_part_has_header_text_and_numbered_subparts():
    whole = extract_section(RAW, SUMMARY, "3")
    header = extract_section(RAW, SUMMARY, "3", "HEADER")
    text = extract_section(RAW, SUMMARY, "3", "TEXT")
    assert header.startswith(b"Subject: inner three\r\n") and header.endswith(b"boundary=m3\r\n\r\n")
    assert header + text == whole
    assert extract_section(RAW, SUMMARY, "3.1") == b"three one"
    assert extract_section(RAW, SUMMARY, "4.2.2.2") == b"<bold>rich</bold>"
    assert extract_section(RAW, SUMMARY, "4.2", "HEADER.FIELDS", ["subject"]) == (
        b"Subject: inner four two\r\n\r\n"
    )


def test_header_fields_keep_folding_order_and_ignore_case():
    fields = extract_section(
        RFC3501_ENVELOPE_MESSAGE, analyse(RFC3501_ENVELOPE_MESSAGE), "", "HEADER.FIELDS", ["CC", "from"]
    )
    assert fields == (
        b"From: Terry Gray <gray@cac.washington.edu>\r\n"
        b"cc: minutes@CNRI.Reston.VA.US,\r\n John Klensin <KLENSIN@MIT.EDU>\r\n\r\n"
    )


def test_header_fields_not_returns_every_other_field():
    summary = analyse(RFC3501_ENVELOPE_MESSAGE)
    fields = extract_section(
        RFC3501_ENVELOPE_MESSAGE, summary, "", "HEADER.FIELDS.NOT", ["cc", "date", "from"]
    )
    assert fields.startswith(b"Subject: IMAP4rev1 WG mtg summary and minutes\r\nTo: ")
    assert b"cc:" not in fields and b"Date:" not in fields and fields.endswith(b"CHARSET=US-ASCII\r\n\r\n")


def test_header_fields_with_no_match_is_just_the_blank_line():
    assert extract_section(RAW, SUMMARY, "", "HEADER.FIELDS", ["x-nothing"]) == b"\r\n"


def test_bare_lf_message_keeps_bare_lf_in_header_fields():
    raw = b"Subject: s\nFrom: a@b\n\nbody\n"
    assert extract_section(raw, analyse(raw), "", "HEADER.FIELDS", ["from"]) == b"From: a@b\n\n"


def test_part_one_of_a_single_part_message_is_its_body_and_mime_its_header():
    summary = analyse(RFC3501_ENVELOPE_MESSAGE)
    assert (
        extract_section(RFC3501_ENVELOPE_MESSAGE, summary, "1")
        == b"Minutes of the meeting.\r\nSecond line.\r\n"
    )
    assert extract_section(RFC3501_ENVELOPE_MESSAGE, summary, "1", "MIME") == extract_section(
        RFC3501_ENVELOPE_MESSAGE, summary, "", "HEADER"
    )


def test_missing_sections_are_empty():
    assert extract_section(RAW, SUMMARY, "9") == b""
    assert extract_section(RAW, SUMMARY, "1.1.1") == b""  # "1.1" is part 1 itself (RFC 3501 6.4.5)
    assert extract_section(RAW, SUMMARY, "1", "HEADER") == b""  # not a message/rfc822
    assert extract_section(RAW, SUMMARY, "", "MIME") == b""
    assert decode_section_binary(RAW, SUMMARY, "7") == b""


def test_binary_decodes_base64_and_quoted_printable():
    assert decode_section_binary(RAW, SUMMARY, "2") == b"\x00\x01\x02"
    summary = analyse(ALTERNATIVE_MESSAGE)
    assert decode_section_binary(
        ALTERNATIVE_MESSAGE, summary, "1"
    ) == "Grüße aus Köln, café ist offen.".encode("latin-1")
    assert decode_section_binary(ALTERNATIVE_MESSAGE, summary, "2") == "<p>Grüße aus Köln</p>".encode()


def test_binary_of_unknown_encoding_is_none_and_identity_encodings_pass_through():
    raw = crlf("Content-Type: text/plain\nContent-Transfer-Encoding: x-uuencode\n\nbegin 644 f\n")
    assert decode_section_binary(raw, analyse(raw), "1") is None
    assert decode_section_binary(RAW, SUMMARY, "1") == b"part one"
    assert decode_section_binary(RAW, SUMMARY, "") == RAW


def test_pop3_top_returns_header_and_first_lines():
    raw = b"Subject: s\r\n\r\none\r\ntwo\r\nthree\r\n"
    summary = analyse(raw)
    assert extract_top(raw, summary, 0) == b"Subject: s\r\n\r\n"
    assert extract_top(raw, summary, 2) == b"Subject: s\r\n\r\none\r\ntwo\r\n"
    assert extract_top(raw, summary, 99) == raw
