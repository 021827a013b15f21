"""Hostile and malformed messages: analyse() never raises, caps structure, stays in bounds."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.mail.samples import ALTERNATIVE_MESSAGE, RFC3501_SECTIONS_MESSAGE
from tidings.mail.message import MessageSummary, analyse
from tidings.mail.mime import MAX_DEPTH, MAX_PARTS
from tidings.mail.sections import decode_section_binary, extract_section


def check_bounds(raw: bytes, summary: MessageSummary) -> None:
    assert summary.size == len(raw)
    assert 0 <= summary.header_size <= len(raw)
    for section, part in summary.parts.items():
        assert 0 <= part.header_start <= part.body_start <= part.end <= len(raw), section
        if part.message_body_start is not None:
            assert part.body_start <= part.message_body_start <= part.end
        assert extract_section(raw, summary, section) == raw[part.body_start : part.end]
        for kind in ("MIME", "HEADER", "TEXT"):
            extract_section(raw, summary, section, kind)
        decode_section_binary(raw, summary, section)
    assert MessageSummary.from_json(summary.to_json()) == summary


def structure_depth(structure) -> int:
    depth, node = 0, structure
    while isinstance(node, list) and node and isinstance(node[0], list):
        depth, node = depth + 1, node[0]
    return depth


def test_ten_thousand_nested_multiparts_are_cut_at_max_depth():
    n = 10_000
    head = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(n)
    )
    tail = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(n)))
    raw = b"Subject: deep\r\n" + head + b"Content-Type: text/plain\r\n\r\nhi" + tail
    summary = analyse(raw)
    assert summary.truncated
    assert structure_depth(summary.bodystructure) == MAX_DEPTH
    assert max(section.count(".") for section in summary.parts) == MAX_DEPTH - 1
    check_bounds(raw, summary)


def test_hundred_thousand_parts_are_cut_at_max_parts():
    raw = b"Content-Type: multipart/mixed; boundary=z\r\n\r\n" + b"".join(
        b"--z\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i for i in range(100_000)
    )
    summary = analyse(raw + b"--z--\r\n")
    assert summary.truncated
    assert len(summary.parts) == MAX_PARTS - 1  # the root multipart is the last of the budget
    assert extract_section(raw, summary, "7") == b"part 6"


def test_nested_message_rfc822_chain_is_capped():
    raw = b"Subject: bottom\r\n\r\nbody"
    for _ in range(300):
        raw = b"Content-Type: message/rfc822\r\n\r\n" + raw
    summary = analyse(raw)
    assert summary.truncated
    check_bounds(raw, summary)


def test_multipart_without_boundary_or_delimiters_becomes_a_single_opaque_part():
    for raw in (
        b"Content-Type: multipart/mixed\r\n\r\nno boundary here",
        b"Content-Type: multipart/mixed; boundary=q\r\n\r\nthe delimiter never comes\r\n--qq\r\n",
    ):
        summary = analyse(raw)
        assert list(summary.parts) == ["1"]
        assert summary.body[:2] == ["TEXT", "PLAIN"]


def test_missing_close_delimiter_ends_the_last_part_at_the_end():
    raw = b"Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n\r\none\r\n--q\r\n\r\ntwo\r\n"
    summary = analyse(raw)
    assert extract_section(raw, summary, "1") == b"one"
    assert extract_section(raw, summary, "2") == b"two\r\n"


def test_giant_header_lines_are_cut_in_text_but_exact_in_sections():
    raw = b"Subject: " + b"x" * 5_000_000 + b"\r\nTo: " + b"a@b.c, " * 300_000 + b"\r\n\r\nbody"
    summary = analyse(raw)
    assert len(summary.envelope[1]) <= 64 * 1024
    assert len(summary.to_json()) < 2_000_000
    assert extract_section(raw, summary, "", "HEADER") == raw[:-4]


def test_malformed_content_type_params_nuls_and_eight_bit_bytes():
    raw = (
        b'Content-Type: text/plain; charset="unterminated; name*0*=bad%; name*1=\x00; ===; ;\r\n'
        b"Content-Transfer-Encoding: \xff\xfe\r\n"
        b'From: \x00 <\x00@\xff>, ((((( ,,, <<<>>> :;:; "\r\n'
        b"Subject: =?bogus-charset?q?x=ZZ?= =?utf-8?b?####?=\r\n"
        b"\r\n\x00\x01\xff"
    )
    summary = analyse(raw)
    check_bounds(raw, summary)
    assert "\\u0000" not in summary.to_json()  # NULs never reach the envelope or structure
    assert decode_section_binary(raw, summary, "1") is None  # unknown encoding


def test_message_without_blank_line_or_with_only_header():
    for raw in (b"", b"\r\n", b"Subject: x", b"Subject: x\r\n", b"not a header\r\nbody", b"\n\n\n"):
        check_bounds(raw, analyse(raw))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(raw):
    check_bounds(raw, analyse(raw))


_pieces = st.sampled_from(
    [
        b"\r\n",
        b"\n",
        b"--top\r\n",
        b"--top--\r\n",
        b"--m42\n",
        b"Content-Type: multipart/mixed; boundary=top\r\n",
        b"Content-Type: message/rfc822\r\n",
        b"Content-Transfer-Encoding: base64\r\n",
        b": ",
        b" folded\r\n",
        b"\x00\xff",
        b"=?utf-8?q?x?=",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from([RFC3501_SECTIONS_MESSAGE, ALTERNATIVE_MESSAGE]),
    st.lists(st.tuples(st.integers(min_value=0), _pieces), max_size=8),
    st.integers(min_value=0),
)
def test_mutated_real_messages_stay_within_bounds(base, insertions, cut):
    raw = base
    for position, piece in insertions:
        position %= len(raw) + 1
        raw = raw[:position] + piece + raw[position:]
    raw = raw[: len(raw) - cut % 50]
    check_bounds(raw, analyse(raw))
