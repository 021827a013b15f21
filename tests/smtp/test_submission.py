"""Submission (587 STARTTLS, 465 implicit TLS): authentication, sender ownership, relaying, scheduling."""

from __future__ import annotations

import base64
import email.utils
import smtplib
import time

import pytest

from tests.smtp.conftest import ALICE, BOB, PASSWORD, SMTP_LISTENERS, SmtpServer, client_tls, message


def test_starttls_then_auth_then_local_delivery(smtp):
    with smtp.submission() as client:
        refused = client.sendmail(ALICE, [BOB], message("sub", sender=ALICE, to=BOB))
    assert refused == {}
    [stored] = smtp.inbox(BOB)
    assert b"with ESMTPSA (TLSv1." in stored


def test_implicit_tls_on_submissions(smtp):
    with smtplib.SMTP_SSL("127.0.0.1", smtp.ports["submissions"], context=client_tls(), timeout=10) as client:
        client.login(ALICE, PASSWORD)
        client.sendmail(ALICE, [BOB], message("implicit", sender=ALICE, to=BOB))
    assert b"Subject: implicit" in smtp.inbox(BOB)[0]


def test_auth_is_not_offered_before_tls_and_mail_needs_auth(smtp):
    client = smtp.raw("submission")
    _, features = client.command("EHLO c.test")
    assert "AUTH" not in features and "STARTTLS" in features
    assert client.command("AUTH PLAIN " + base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode()).decode()) == (
        538,
        "5.7.11 Encryption required for requested authentication mechanism",
    )
    assert client.command(f"MAIL FROM:<{ALICE}>") == (530, "5.7.0 Authentication required")


def test_auth_login_mechanism(smtp):
    client = smtplib.SMTP("127.0.0.1", smtp.ports["submission"], timeout=10)
    client.starttls(context=client_tls())
    client.ehlo()
    assert "LOGIN" in client.esmtp_features["auth"]
    client.user, client.password = ALICE, PASSWORD
    assert client.auth("LOGIN", client.auth_login, initial_response_ok=False)[0] == 235
    client.quit()


def login_plain(client: smtplib.SMTP, user: str, password: str) -> None:
    """One AUTH PLAIN attempt (smtplib's login() would retry with other mechanisms)."""
    client.ehlo()
    client.user, client.password = user, password
    client.auth("PLAIN", client.auth_plain)


def test_wrong_password_gets_535_and_repeated_failures_are_throttled(make_server):
    from tidings.config import AuthSettings

    smtp = SmtpServer(
        make_server("throttle", listeners=SMTP_LISTENERS, auth=AuthSettings(max_failures_per_account=3))
    )
    for _ in range(3):
        with smtp.submission(login=None) as client:
            with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
                login_plain(client, ALICE, "wrong password 1")
            assert caught.value.smtp_code == 535 and caught.value.smtp_error.startswith(b"5.7.8")
    with smtp.submission(login=None) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
            login_plain(client, ALICE, PASSWORD)  # even the right password waits out the window
        assert caught.value.smtp_code == 454 and caught.value.smtp_error.startswith(b"4.7.0")
    with smtp.submission(login=BOB):  # another account is not affected
        pass


def test_sending_as_someone_else_is_refused(smtp):
    with smtp.submission() as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as caught:
            client.sendmail(BOB, [BOB], message(sender=BOB, to=BOB))
        assert caught.value.smtp_code == 553 and caught.value.smtp_error.startswith(b"5.7.1")
        with pytest.raises(smtplib.SMTPDataError) as header:
            client.sendmail(ALICE, [BOB], message("spoof", sender=f"Bob <{BOB}>", to=BOB))
        assert header.value.smtp_code == 550 and header.value.smtp_error.startswith(b"5.7.1")
    assert smtp.inbox(BOB) == []


def test_aliases_and_plus_addresses_of_the_user_may_be_used_as_sender(smtp):
    smtp.call(smtp.store.accounts.add_alias("info@example.test", [ALICE]))
    with smtp.submission() as client:
        client.sendmail(
            "info@example.test", [BOB], message("alias", sender="Info <info@example.test>", to=BOB)
        )
        client.sendmail("alice+x@example.test", [BOB], message("plus", sender="alice+x@example.test", to=BOB))
    assert len(smtp.inbox(BOB)) == 2


def test_authenticated_users_relay_with_dsn_parameters_kept_on_the_queue_entry(smtp):
    with smtp.submission() as client:
        client.ehlo()
        client.mail(ALICE, ["RET=HDRS", "ENVID=abc+2Bdef", "BODY=8BITMIME"])
        assert (
            client.rcpt("dave@elsewhere.test", ["NOTIFY=FAILURE,DELAY", "ORCPT=rfc822;dave@elsewhere.test"])[
                0
            ]
            == 250
        )
        assert client.data(message("relay", sender=ALICE, to="dave@elsewhere.test"))[0] == 250
    [entry] = smtp.queue()
    assert (entry.sender, entry.ret, entry.envid, entry.body_8bit) == (ALICE, "HDRS", "abc+def", True)
    [recipient] = entry.recipients
    assert (recipient.address, recipient.notify, recipient.orcpt) == (
        "dave@elsewhere.test",
        "FAILURE,DELAY",
        "rfc822;dave@elsewhere.test",
    )


def test_submission_adds_message_id_and_date_when_missing(smtp):
    bare = f"From: {ALICE}\r\nTo: {BOB}\r\nSubject: bare\r\n\r\nno id\r\n".encode()
    with smtp.submission() as client:
        client.sendmail(ALICE, [BOB], bare)
    [stored] = smtp.inbox(BOB)
    header = stored.split(b"\r\n\r\n")[0]
    assert b"\r\nDate: " in header and b"\r\nMessage-ID: <" in header and b"@mail.example.test>" in header
    assert stored.startswith(b"Received: ")


def test_futurerelease_holds_the_message_in_the_queue(smtp):
    with smtp.submission() as client:
        client.ehlo()
        assert client.has_extn("futurerelease")
        client.mail(ALICE, ["HOLDFOR=3600"])
        client.rcpt(BOB)
        assert client.data(message("later", sender=ALICE, to=BOB))[0] == 250
    [entry] = smtp.queue()
    assert entry.release_at > time.time() + 3500
    assert [r.address for r in entry.recipients] == [BOB]
    assert smtp.inbox(BOB) == []


def test_send_at_header_schedules_and_is_stripped(smtp):
    send_at = int(time.time()) + 2 * 86400
    extra = f"X-Tidings-Send-At: {email.utils.formatdate(send_at)}\r\n"
    with smtp.submission() as client:
        client.sendmail(ALICE, [BOB], message("scheduled", sender=ALICE, to=BOB, extra=extra))
    [entry] = smtp.queue()
    assert entry.release_at == pytest.approx(send_at)
    stored = smtp.call(smtp.store.blobs.get(entry.blob_hash))
    assert b"X-Tidings-Send-At" not in stored and b"Subject: scheduled" in stored


def test_holdfor_beyond_the_advertised_maximum_is_refused(smtp):
    with smtp.submission() as client:
        client.ehlo()
        code, text = client.mail(ALICE, ["HOLDFOR=99999999"])
    assert code == 501 and text.startswith(b"5.5.4")


def test_mx_offers_auth_after_starttls_and_then_allows_relay(smtp):
    client = smtplib.SMTP("127.0.0.1", smtp.ports["smtp"], timeout=10)
    client.starttls(context=client_tls())
    client.ehlo()
    assert client.has_extn("auth")
    client.login(ALICE, PASSWORD)
    client.sendmail(ALICE, ["dave@elsewhere.test"], message(sender=ALICE, to="dave@elsewhere.test"))
    client.quit()
    assert [r.address for r in smtp.queue()[0].recipients] == ["dave@elsewhere.test"]
