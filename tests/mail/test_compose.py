"""tidings/mail/compose.py: what compose builds reads back, through our own parser, as it was
written (non-ASCII names and subject, Bcc only where kept, attachments and a forwarded message),
and replies and forwards start with the right recipients, subject and threading fields."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tidings.mail.compose import (
    Attachment,
    BadAddresses,
    Draft,
    build_message,
    envelope_recipients,
    forward_draft,
    parse_recipients,
    reply_draft,
)
from tidings.mail.message import analyse
from tidings.mail.sections import decode_section_binary

DRAFT = Draft(
    from_addr="alice@example.test",
    from_name="Alice Ångström",
    to="Bob <bob@example.test>, carol@elsewhere.test",
    cc="Dörte <doerte@example.test>",
    bcc="secret@example.test",
    subject="Grüße — plans",
    text="Hello,\nsee the attachment.\n",
    attachments=(
        Attachment("notes.txt", "text/plain", b"line one\n"),
        Attachment("a.bin", "application/pdf", bytes(range(256))),
    ),
)


def test_a_built_message_reads_back_as_written():
    raw = build_message(DRAFT, message_id="<m1@example.test>", date=0, include_bcc=False)
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    summary = analyse(raw)
    assert summary.subject == "Grüße — plans"
    assert [(a.name, a.addr_spec) for a in summary.from_addrs] == [("Alice Ångström", "alice@example.test")]
    assert [a.addr_spec for a in summary.to_addrs] == ["bob@example.test", "carol@elsewhere.test"]
    assert [a.name for a in summary.cc_addrs] == ["Dörte"]
    assert summary.bcc_addrs == [] and b"secret@" not in raw
    assert summary.message_id == "<m1@example.test>"
    assert summary.has_attachments
    pdf = next(s for s, p in summary.parts.items() if p.filename == "a.bin")
    assert decode_section_binary(raw, summary, pdf) == bytes(range(256))
    kept = analyse(build_message(DRAFT, message_id="<m1@example.test>", date=0, include_bcc=True))
    assert [a.addr_spec for a in kept.bcc_addrs] == ["secret@example.test"]
    assert envelope_recipients(DRAFT) == [
        "bob@example.test",
        "carol@elsewhere.test",
        "doerte@example.test",
        "secret@example.test",
    ]


def test_recipient_fields_refuse_what_is_not_an_address():
    assert parse_recipients("") == []
    with pytest.raises(BadAddresses):
        parse_recipients("bob")
    with pytest.raises(BadAddresses):
        parse_recipients("bob@example.test, nonsense")


ORIGINAL = (
    b"From: Carol <carol@elsewhere.test>\r\nTo: alice@example.test, Bob <bob@example.test>\r\n"
    b"Cc: dave@elsewhere.test\r\nSubject: Lunch\r\nMessage-ID: <orig@elsewhere.test>\r\n"
    b"References: <older@elsewhere.test>\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\n\r\nNoon?\r\n"
)


def test_reply_and_reply_all():
    summary = analyse(ORIGINAL)
    me = {"alice@example.test"}
    one = reply_draft(summary, "Noon?", me=me, from_addr="alice@example.test", reply_all=False)
    assert (one.to, one.cc, one.subject) == ("Carol <carol@elsewhere.test>", "", "Re: Lunch")
    assert one.in_reply_to == "<orig@elsewhere.test>"
    assert one.references == "<older@elsewhere.test> <orig@elsewhere.test>"
    assert "> Noon?" in one.text and "Carol wrote:" in one.text
    everyone = reply_draft(summary, "Noon?", me=me, from_addr="alice@example.test", reply_all=True)
    assert everyone.cc == "Bob <bob@example.test>, dave@elsewhere.test"  # not alice herself
    assert (
        reply_draft(
            analyse(build_message(one, message_id="<r@x>", date=0, include_bcc=False)),
            "",
            me=me,
            from_addr="alice@example.test",
            reply_all=False,
        ).subject
        == "Re: Lunch"
    )


def test_forward_inline_and_as_attachment():
    summary = analyse(ORIGINAL)
    inline = forward_draft(summary, "Noon?", ORIGINAL, from_addr="alice@example.test", as_attachment=False)
    assert inline.subject == "Fwd: Lunch" and "From: Carol <carol@elsewhere.test>" in inline.text
    attached = forward_draft(summary, "Noon?", ORIGINAL, from_addr="alice@example.test", as_attachment=True)
    raw = build_message(
        replace(attached, to="bob@example.test"), message_id="<f@x>", date=0, include_bcc=False
    )
    outer = analyse(raw)
    part = next(p for p in outer.parts.values() if p.content_type == "message/rfc822")
    assert (
        raw[part.body_start : part.end].replace(b"\r\n", b"\n").strip()
        == ORIGINAL.replace(b"\r\n", b"\n").strip()
    )
