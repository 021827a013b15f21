"""Which part of a message is shown as its body, and which are attachments (pure)."""

from __future__ import annotations

from email.message import EmailMessage

from tidings.mail.message import analyse
from tidings.web.mailview import safe_filename, view


def shown(message: EmailMessage):
    raw = message.as_bytes()
    return view(raw, analyse(raw))


def base() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "a@example.test"
    message["Subject"] = "s"
    return message


def test_text_only():
    message = base()
    message.set_content("Just text.\n")
    result = shown(message)
    assert result.text == "Just text.\n" and result.html_section is None and result.attachments == []


def test_alternative_shows_the_html_version():
    message = base()
    message.set_content("Text version.")
    message.add_alternative("<p>HTML version</p>", subtype="html")
    result = shown(message)
    assert result.html_section == "2" and result.text is None and result.attachments == []


def test_html_with_inline_images_inside_an_alternative():
    message = base()
    message.set_content("Text version.")
    message.add_alternative('<img src="cid:logo@x">', subtype="html")
    message.get_payload()[1].add_related(b"GIF89a", "image", "gif", cid="<logo@x>")
    result = shown(message)
    assert result.html_section == "2.1"
    assert result.content_ids == {"logo@x": "2.2"} and result.attachments == []


def test_text_body_with_an_html_file_attached_shows_the_text():
    message = base()
    message.set_content("See the attached page.")
    message.add_attachment("<p>page</p>", subtype="html", filename="page.html")
    result = shown(message)
    assert result.text == "See the attached page.\n" and result.html_section is None
    assert [(a.filename, a.content_type) for a in result.attachments] == [("page.html", "text/html")]


def test_attachments_and_a_forwarded_message():
    forwarded = base()
    forwarded.set_content("inner text")
    message = base()
    message.set_content("Outer text.")
    message.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="a.pdf")
    message.add_attachment(forwarded)
    result = shown(message)
    assert result.text == "Outer text.\n"
    kinds = [(a.content_type, a.previewable) for a in result.attachments]
    assert kinds == [("application/pdf", "pdf"), ("message/rfc822", None)]
    assert result.attachments[1].filename == "message.eml"


def test_safe_filenames():
    assert safe_filename("../../etc/passwd") == "_.._etc_passwd"
    assert safe_filename('a"b;c\r\nd.txt') == "a_b_c_d.txt"
    assert safe_filename("...") == "attachment"
    assert safe_filename("Résumé.pdf") == "Résumé.pdf"
    assert len(safe_filename("x" * 500)) == 150
