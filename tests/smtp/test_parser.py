"""SMTP command-line parsing and input framing: pure functions, no server."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from tidings.smtp.parser import (
    Auth,
    Bdat,
    CommandError,
    Data,
    Hello,
    MailFrom,
    Noop,
    RcptTo,
    decode_xtext,
    encode_xtext,
    parse_command,
)
from tidings.smtp.reader import TOO_BIG, InputBuffer, LineTooLong


def error_of(line: bytes) -> tuple[int, str]:
    with pytest.raises(CommandError) as caught:
        parse_command(line)
    return caught.value.reply.code, caught.value.reply.status


def test_verbs_are_case_insensitive_and_greetings_keep_the_domain():
    assert parse_command(b"ehlo client.example") == Hello("client.example", True)
    assert parse_command(b"HELO [192.0.2.1]") == Hello("[192.0.2.1]", False)
    assert parse_command(b"data") == Data()
    assert parse_command(b"NOOP anything") == Noop()


def test_mail_from_with_every_supported_parameter():
    cmd = parse_command(
        b"MAIL FROM:<a@b.test> SIZE=1000 BODY=8bitmime SMTPUTF8 RET=HDRS ENVID=QQ+2B1 AUTH=<> HOLDFOR=60"
    )
    assert isinstance(cmd, MailFrom)
    assert cmd.address == "a@b.test"
    p = cmd.params
    assert (p.size, p.body, p.smtputf8, p.ret, p.envid, p.auth, p.hold_for) == (
        1000,
        "8BITMIME",
        True,
        "HDRS",
        "QQ+1",
        "",
        60,
    )


def test_null_reverse_path_source_routes_and_a_space_after_the_colon_are_accepted():
    assert parse_command(b"MAIL FROM:<>").address == ""
    assert parse_command(b"MAIL FROM: <a@b.test>").address == "a@b.test"
    assert parse_command(b"RCPT TO:<@relay.test,@x.test:user@d.test>").address == "user@d.test"
    assert parse_command(b'RCPT TO:<"john doe"@d.test>').address == '"john doe"@d.test'
    assert parse_command(b"RCPT TO:<Postmaster>").address == "Postmaster"


def test_holduntil_takes_an_rfc3339_time():
    cmd = parse_command(b"MAIL FROM:<a@b.test> HOLDUNTIL=2030-01-02T03:04:05Z")
    assert cmd.params.hold_until == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_rcpt_dsn_parameters_are_normalised_and_xtext_decoded():
    cmd = parse_command(b"RCPT TO:<u@d.test> NOTIFY=success,delay ORCPT=rfc822;u+40d.test")
    assert isinstance(cmd, RcptTo)
    assert cmd.params.notify == "SUCCESS,DELAY"
    assert cmd.params.orcpt == "rfc822;u@d.test"


@pytest.mark.parametrize(
    "line, expected",
    [
        (b"FOO bar", (500, "5.5.1")),
        (b"MAIL TO:<a@b.test>", (501, "5.5.4")),
        (b"MAIL FROM:<a@b.test", (501, "5.5.4")),
        (b"MAIL FROM:<a@b.test>x", (501, "5.5.4")),
        (b"MAIL FROM:<a@b.test> SIZE=big", (501, "5.5.4")),
        (b"MAIL FROM:<a@b.test> BODY=BINARYMIME", (555, "5.5.4")),
        (b"MAIL FROM:<a@b.test> FROB=1", (555, "5.5.4")),
        (b"MAIL FROM:<a@b.test> SIZE=1 SIZE=2", (501, "5.5.4")),
        (b"MAIL FROM:<a@b.test> HOLDFOR=1 HOLDUNTIL=2030-01-02T03:04:05Z", (501, "5.5.4")),
        (b"MAIL FROM:<a@b.test> HOLDUNTIL=tomorrow", (501, "5.5.4")),
        (b"MAIL FROM:<\xc3\xa9@b.test>", (553, "5.6.7")),
        (b"RCPT TO:<>", (501, "5.5.4")),
        (b"RCPT TO:<nodomain>", (501, "5.5.4")),
        (b"RCPT TO:<u@d.test> NOTIFY=NEVER,SUCCESS", (501, "5.5.4")),
        (b"RCPT TO:<u@d.test> ORCPT=nosemicolon", (501, "5.5.4")),
        (b"DATA now", (501, "5.5.4")),
        (b"EHLO", (501, "5.5.4")),
        (b"BDAT x", (501, "5.5.4")),
        (b"MAIL FROM:<a\x00@b.test>", (500, "5.5.2")),
        (b"MAIL FROM:<\xff\xfe@b.test>", (500, "5.5.2")),
        (b"AUTH", (501, "5.5.4")),
    ],
)
def test_malformed_commands_get_a_precise_reply(line, expected):
    assert error_of(line) == expected


def test_utf8_address_is_accepted_with_smtputf8():
    cmd = parse_command("MAIL FROM:<é@b.test> SMTPUTF8".encode())
    assert cmd.address == "é@b.test"


def test_bdat_and_auth():
    assert parse_command(b"BDAT 100 last") == Bdat(100, True)
    assert parse_command(b"AUTH plain AGEAYg==") == Auth("PLAIN", "AGEAYg==")


def test_xtext_round_trip():
    assert decode_xtext(encode_xtext("a+b=c d")) == "a+b=c d"
    with pytest.raises(CommandError):
        decode_xtext("a+zz")


# --- framing ---------------------------------------------------------------------------------


def test_pipelined_lines_come_out_one_by_one_and_bare_lf_ends_a_line():
    buf = InputBuffer(100)
    buf.feed(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\nDA")
    assert buf.take_line() == b"MAIL FROM:<a@b>"
    assert buf.take_line() == b"RCPT TO:<c@d>"
    assert buf.take_line() is None
    buf.feed(b"TA\r\n")
    assert buf.take_line() == b"DATA"


def test_an_overlong_line_is_detected_before_its_end_arrives():
    buf = InputBuffer(100)
    buf.feed(b"x" * 200)
    with pytest.raises(LineTooLong):
        buf.take_line()


def test_data_is_dot_unstuffed_and_ends_only_at_crlf_dot_crlf():
    buf = InputBuffer(100)
    buf.feed(b"Subject: x\r\n\r\n..leading dot\r\nsmuggle\n.\nstill body\r\n.\n")
    assert buf.take_data(10_000) is None  # neither LF.LF nor CRLF.LF ends DATA
    buf.feed(b"tail\r\n.\r\nQUIT\r\n")
    body = buf.take_data(10_000)
    assert body == b"Subject: x\r\n\r\n.leading dot\r\nsmuggle\r\n.\r\nstill body\r\n\r\ntail\r\n"
    assert buf.take_line() == b"QUIT"


def test_empty_data_and_a_terminator_split_across_reads():
    buf = InputBuffer(100)
    buf.feed(b".")
    assert buf.take_data(100) is None
    buf.feed(b"\r\n")
    assert buf.take_data(100) == b""
    buf.feed(b"body\r\n.\r")
    assert buf.take_data(100) is None
    buf.feed(b"\n")
    assert buf.take_data(100) == b"body\r\n"


def test_oversized_data_is_discarded_while_reading_and_reported_at_the_end():
    buf = InputBuffer(100)
    for _ in range(100):
        buf.feed(b"y" * 10_000)
        assert buf.take_data(50_000) is None
        assert len(buf) < 70_000  # memory stays bounded
    buf.feed(b"\r\n.\r\nRSET\r\n")
    assert buf.take_data(50_000) is TOO_BIG
    assert buf.take_line() == b"RSET"


def test_bdat_chunks_are_exact_and_refused_chunks_are_skipped():
    buf = InputBuffer(100)
    buf.feed(b"12345")
    assert buf.take_chunk(6) is None
    buf.feed(b"6NOOP\r\n")
    assert buf.take_chunk(6) == b"123456"
    assert buf.take_line() == b"NOOP"
    buf.feed(b"abc")
    assert buf.skip_chunk(5) is False
    buf.feed(b"deQUIT\r\n")
    assert buf.skip_chunk(5) is True
    assert buf.take_line() == b"QUIT"


def _whole_body_reading(wire: bytes) -> bytes:
    """DATA as RFC 5321 describes it, in one piece: unstuff every line, then bare LF -> CRLF."""
    body = wire[1:] if wire.startswith(b".") else wire
    body = body.replace(b"\r\n.", b"\r\n")
    return re.sub(rb"(?<!\r)\n", b"\r\n", body)


@pytest.mark.parametrize("seed", range(20))
def test_a_big_data_body_finished_piece_by_piece_reads_as_if_whole(monkeypatch, seed):
    import random

    from tidings.smtp import reader

    monkeypatch.setattr(reader, "PIECE", 7)  # many pieces, cut at every awkward place
    rng = random.Random(seed)
    wire = b"".join(rng.choice([b".", b"\r\n", b"\n", b"\r", b"x", b"..", b"\r\n."]) for _ in range(300))
    wire += b"\r\n"
    while b"\r\n.\r\n" in b"\r\n" + wire:  # stuffed, as a client sends it: no early end
        wire = (b"\r\n" + wire).replace(b"\r\n.\r\n", b"\r\n..\r\n")[2:]
    buffer = InputBuffer(1000)
    buffer.feed(wire + b".\r\nQUIT\r\n")
    taken = buffer.take_wire_data(10_000)
    assert reader.finish_data(*taken, 10_000) == _whole_body_reading(wire)
    assert buffer.take_line() == b"QUIT"  # what followed the body stays for the session
