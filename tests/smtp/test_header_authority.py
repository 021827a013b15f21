"""Who a message says it is from, and how big its header may be: one header reading for all checks.

An authenticated user may claim only their own addresses in From: (every field, every address) and
Sender:; a header block too large to read whole, or one that a different parser would read further
than ours, is refused at the end of DATA/BDAT instead of being half-checked.
"""

from __future__ import annotations

import smtplib

import pytest

from tests.smtp.conftest import ALICE, BOB, SMTP_LISTENERS, SmtpServer, message
from tidings.config import ConfigError, Limits, load_config
from tidings.mail.authorship import DEFAULT_MAX_HEADER_FIELDS

CEO = "ceo@bank.test"


def filler_fields(count: int) -> str:
    return "".join(f"X-Filler-{i}: x\r\n" for i in range(count))


def refused_at_data(client: smtplib.SMTP, raw: bytes, sender: str = ALICE) -> tuple[int, bytes]:
    with pytest.raises(smtplib.SMTPDataError) as caught:
        client.sendmail(sender, [BOB], raw)
    return caught.value.smtp_code, caught.value.smtp_error


def test_from_hidden_behind_ten_thousand_fields_is_refused(smtp):
    """The parser used to stop after 10,000 fields, so a From: after them went unchecked."""
    raw = (f"To: {BOB}\r\nSubject: hidden\r\n{filler_fields(10_001)}From: {CEO}\r\n\r\npay now\r\n").encode()
    with smtp.submission() as client:
        code, text = refused_at_data(client, raw)
    assert code == 552 and text.startswith(b"5.3.4 Message header too large")
    assert smtp.inbox(BOB) == []


def test_header_field_limit_applies_on_the_mx_too(smtp):
    at_limit = message("many", sender="carol@remote.test", extra=filler_fields(DEFAULT_MAX_HEADER_FIELDS - 5))
    over = message("too many", sender="carol@remote.test", extra=filler_fields(DEFAULT_MAX_HEADER_FIELDS))
    with smtp.mx() as client:
        client.sendmail("carol@remote.test", [ALICE], at_limit)  # 1,000 fields exactly: fine
        with pytest.raises(smtplib.SMTPDataError) as caught:
            client.sendmail("carol@remote.test", [ALICE], over)
        assert caught.value.smtp_code == 552
        assert caught.value.smtp_error == b"5.3.4 Message header too large: more than 1000 header fields"
        client.noop()  # the session goes on
    assert len(smtp.inbox(ALICE)) == 1


def test_header_byte_limit_is_configurable_and_checked_after_bdat(make_server):
    smtp = SmtpServer(
        make_server("small", listeners=SMTP_LISTENERS, limits=Limits(header_fields=50, header_bytes=4096))
    )
    big = message("big", extra=f"X-Big: {'y' * 5000}\r\n")
    raw = smtp.raw()
    raw.command("EHLO client.test")
    assert raw.command("MAIL FROM:<carol@remote.test>")[0] == 250
    assert raw.command(f"RCPT TO:<{ALICE}>")[0] == 250
    raw.send(f"BDAT {len(big)} LAST\r\n".encode() + big)
    assert raw.reply() == (552, "5.3.4 Message header too large: header section larger than 4096 octets")
    with smtp.mx() as client:
        with pytest.raises(smtplib.SMTPDataError) as caught:
            client.sendmail("carol@remote.test", [ALICE], message("fields", extra=filler_fields(51)))
        assert caught.value.smtp_error == b"5.3.4 Message header too large: more than 50 header fields"
        client.sendmail("carol@remote.test", [ALICE], message("fine", extra=filler_fields(40)))
    assert len(smtp.inbox(ALICE)) == 1


def test_sender_field_must_be_the_users_too(smtp):
    with smtp.submission() as client:
        code, text = refused_at_data(
            client, message("sender", sender=ALICE, to=BOB, extra=f"Sender: {CEO}\r\n")
        )
        assert code == 550 and text == f"5.7.1 Sender: <{CEO}> is not an address of {ALICE}".encode()
        client.sendmail(
            ALICE, [BOB], message("own sender", sender=ALICE, to=BOB, extra=f"Sender: {ALICE}\r\n")
        )
    assert len(smtp.inbox(BOB)) == 1


def test_every_from_field_and_every_address_in_it_must_be_the_users(smtp):
    with smtp.submission() as client:
        second_field = message("two froms", sender=ALICE, to=BOB, extra=f"From: {CEO}\r\n")
        code, text = refused_at_data(client, second_field)
        assert code == 550 and text.startswith(f"5.7.1 From: <{CEO}>".encode())
        two_addresses = message("list", sender=f"Alice <{ALICE}>, The CEO <{CEO}>", to=BOB)
        code, text = refused_at_data(client, two_addresses)
        assert code == 550 and text.startswith(f"5.7.1 From: <{CEO}>".encode())
        spoofed_display = message("display", sender=f'"{ALICE}" <{CEO}>', to=BOB)
        assert refused_at_data(client, spoofed_display)[0] == 550
        client.sendmail(
            ALICE, [BOB], message("both mine", sender=f"{ALICE}, alice+news@example.test", to=BOB)
        )
    assert len(smtp.inbox(BOB)) == 1


def test_a_from_that_cannot_be_read_is_refused(smtp):
    with smtp.submission() as client:
        for bad in ("", "undisclosed-recipients:;", "alice at example"):
            code, text = refused_at_data(client, message("unreadable", sender=bad, to=BOB))
            assert code == 550 and text.endswith(b"cannot be read as a mail address"), bad
        padded = f"{ALICE} ({'x' * 140_000}), {CEO}"  # the CEO is past the address parser's reach
        code, text = refused_at_data(client, message("long", sender=padded, to=BOB))
        assert code == 550 and b"longer than" in text
    assert smtp.inbox(BOB) == []


def test_a_line_that_ends_the_header_early_is_refused_on_submission(smtp):
    """Our parser ends the header at a line that is no field; dkimpy skips "From " lines and reads on."""
    raw = f"From: {ALICE}\r\nTo: {BOB}\r\nFrom nobody Mon Jan 1 2024\r\nFrom: {CEO}\r\n\r\nbody\r\n".encode()
    with smtp.submission() as client:
        code, text = refused_at_data(client, raw)
    assert code == 554 and text.startswith(b"5.6.0 Malformed header")
    with smtp.mx() as client:  # from outside such mail is accepted as it always was (nothing is signed)
        client.sendmail("carol@remote.test", [BOB], raw)
    assert len(smtp.inbox(BOB)) == 1


def test_plus_addresses_are_one_rule_for_sender_and_recipient(smtp):
    with smtp.submission() as client:
        client.sendmail(
            "alice+a@example.test", ["bob+b@example.test"], message(sender="alice+c@example.test")
        )
        code, _ = refused_at_data(client, message("plus spoof", sender="bob+x@example.test"))
        assert code == 550
    [stored] = smtp.inbox(BOB)
    assert b"for <bob+b@example.test>" in stored


def test_header_limits_and_srs_settings_come_from_the_config_file(tmp_path):
    path = tmp_path / "tidings.toml"
    path.write_text(
        '[limits]\nheader_fields = 200\nheader_bytes = "64k"\n'
        '[srs]\ndomain = "fwd.example"\nsecret = "s3cret"\nmax_age = "7d"\n'
    )
    config = load_config(path)
    assert (config.limits.header_fields, config.limits.header_bytes) == (200, 64 * 1024)
    assert (config.srs.domain, config.srs.secret, config.srs.max_age) == ("fwd.example", "s3cret", 7 * 86400)
    assert Limits().header_fields == 1000 and Limits().header_bytes == 256 * 1024
    path.write_text("[limits]\nheader_fields = 20000\n")
    with pytest.raises(ConfigError, match="header_fields"):
        load_config(path)
