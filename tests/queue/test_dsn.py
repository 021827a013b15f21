"""DSN structure (RFC 3464 / RFC 6522), parsed back with the email package, and NOTIFY rules."""

import asyncio
import email
import email.policy
from types import SimpleNamespace

from tidings.queue.dsn import Original, RecipientReport, bounce, build_dsn, notify_allows

ORIGINAL = (
    b"From: Alice <alice@a.test>\r\nTo: bob@b.test\r\nSubject: hello\r\nMessage-ID: <m1@a.test>\r\n\r\n"
    b"line one\r\nline two\r\n"
)


def dsn(reports, ret=None, envid="ENV-1", message=ORIGINAL, account_id=None):
    original = Original("alice@a.test", "hash", 1_700_000_000.0, envid=envid, ret=ret, account_id=account_id)
    raw = build_dsn(reporting_mta="mail.a.test", original=original, reports=reports, message=message)
    return raw, email.message_from_bytes(raw, policy=email.policy.default)


FAILED = RecipientReport(
    "bob@b.test",
    "failed",
    "5.1.1",
    diagnostic="550 5.1.1 no such user",
    remote_mta="mx.b.test",
    orcpt="rfc822;Bob@B.test",
    last_attempt=1_700_000_100.0,
)


def test_bounce_is_multipart_report_with_three_parts():
    raw, msg = dsn([FAILED])
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    types = [part.get_content_type() for part in msg.iter_parts()]
    assert types == ["text/plain", "message/delivery-status", "text/rfc822-headers"]
    assert msg["From"].addresses[0].addr_spec == "MAILER-DAEMON@mail.a.test"
    assert msg["To"].addresses[0].addr_spec == "alice@a.test"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")


def test_delivery_status_fields_per_message_and_per_recipient():
    _, msg = dsn([FAILED, RecipientReport("carol@b.test", "failed", "5.2.2", "552 5.2.2 full", "mx.b.test")])
    status = list(msg.iter_parts())[1]
    groups = status.get_payload()
    per_message, first, second = groups
    assert per_message["Reporting-MTA"] == "dns; mail.a.test"
    assert per_message["Original-Envelope-Id"] == "ENV-1"
    assert per_message["Arrival-Date"]
    assert first["Final-Recipient"] == "rfc822;bob@b.test"
    assert first["Original-Recipient"] == "rfc822;Bob@B.test"
    assert first["Action"] == "failed"
    assert first["Status"] == "5.1.1"
    assert first["Remote-MTA"] == "dns; mx.b.test"
    assert first["Diagnostic-Code"] == "smtp; 550 5.1.1 no such user"
    assert first["Last-Attempt-Date"]
    assert second["Final-Recipient"] == "rfc822;carol@b.test" and second["Status"] == "5.2.2"


def test_only_the_header_section_comes_back_unless_an_authenticated_sender_asked_ret_full():
    for ret in (None, "HDRS", "FULL"):
        raw, msg = dsn([FAILED], ret=ret)
        returned = list(msg.iter_parts())[2]
        assert returned.get_content_type() == "text/rfc822-headers"
        assert "Subject: hello" in returned.get_content()
        assert b"line one" not in raw


def test_ret_full_from_an_authenticated_sender_returns_the_whole_message():
    _, msg = dsn([FAILED], ret="FULL", account_id=7)
    returned = list(msg.iter_parts())[2]
    inner = returned.get_payload()[0]
    assert inner["Subject"] == "hello"
    assert "line two" in inner.get_content()
    _, msg = dsn([FAILED], ret=None, account_id=7)
    assert list(msg.iter_parts())[2].get_content_type() == "text/rfc822-headers"


def test_lost_original_leaves_the_optional_third_part_out():
    _, msg = dsn([FAILED], message=None)
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "message/delivery-status"]
    assert list(msg.iter_parts())[1].get_payload()[1]["Status"] == "5.1.1"


def test_delay_report_has_will_retry_until_and_only_headers():
    report = RecipientReport("bob@b.test", "delayed", "4.4.1", "451 4.4.1 no answer", will_retry_until=1.8e9)
    raw, msg = dsn([report])
    assert msg["Subject"].startswith("Delayed Mail")
    recipient = list(msg.iter_parts())[1].get_payload()[1]
    assert recipient["Action"] == "delayed" and recipient["Will-Retry-Until"]
    assert recipient["Diagnostic-Code"].startswith("X-Tidings;")  # not an SMTP reply: no Remote-MTA
    assert list(msg.iter_parts())[2].get_content_type() == "text/rfc822-headers"


def test_8bit_original_is_declared_8bit():
    raw, msg = dsn([FAILED], message="Subject: grüße\r\n\r\nÄ\r\n".encode())
    returned = list(msg.iter_parts())[2]
    assert returned["Content-Transfer-Encoding"] == "8bit"


def test_notify_rules_follow_rfc_3461():
    assert notify_allows(None, "failed") and notify_allows(None, "delayed")
    assert not notify_allows(None, "delivered")
    assert not notify_allows("NEVER", "failed")
    assert notify_allows("SUCCESS,FAILURE", "failed") and notify_allows("success", "relayed")
    assert not notify_allows("FAILURE", "delayed")


def test_bounce_for_null_sender_is_dropped():
    original = Original("", "hash", 0.0)
    assert asyncio.run(bounce(SimpleNamespace(), original, [FAILED])) is False


def test_bounce_honours_notify_never():
    never = RecipientReport("bob@b.test", "failed", "5.1.1", notify="NEVER")
    assert asyncio.run(bounce(SimpleNamespace(), Original("alice@a.test", "h", 0.0), [never])) is False
