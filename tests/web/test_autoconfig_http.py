"""Client autoconfiguration as mail clients fetch it: Thunderbird's two URL forms, Outlook's
Autodiscover POST, the Apple profile; every document names the ports the server really listens on,
and no address outside our domains is ever written back."""

from __future__ import annotations

import http.client
import plistlib
import xml.etree.ElementTree as ET

import pytest

from tidings.web.autoconfig import AUTODISCOVER_OUTLOOK_NS

OUTLOOK_REQUEST = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">'
    "<Request><EMailAddress>{}</EMailAddress>"
    "<AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
    "</AcceptableResponseSchema></Request></Autodiscover>"
)


def post_xml(web, path: str, body: str | bytes, host: str | None = None) -> tuple[int, str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=30)
    try:
        headers = {"Content-Type": "text/xml"}
        if host:
            headers["Host"] = host
        conn.request("POST", path, body=body if isinstance(body, bytes) else body.encode(), headers=headers)
        reply = conn.getresponse()
        return reply.status, reply.getheader("content-type"), reply.read().decode()
    finally:
        conn.close()


@pytest.mark.parametrize(
    "path",
    [
        "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=alice%40example.test",
        "/mail/config-v1.1.xml?emailaddress=alice@example.test",
    ],
)
def test_thunderbird_gets_the_real_ports_at_both_of_its_urls(web, path):
    reply = web.client().get(path, headers={"Host": "autoconfig.example.test"})
    assert reply.status == 200 and reply.header("content-type").startswith("application/xml")
    root = ET.fromstring(reply.body)
    provider = root.find("emailProvider")
    assert provider.findtext("domain") == "example.test"
    ports = web.running.ports
    servers = {
        (s.get("type"), int(s.findtext("port")), s.findtext("socketType"))
        for s in provider.findall("incomingServer") + provider.findall("outgoingServer")
    }
    assert servers == {
        ("imap", ports["imaps"], "SSL"),
        ("imap", ports["imap"], "STARTTLS"),
        ("pop3", ports["pop3s"], "SSL"),
        ("pop3", ports["pop3"], "STARTTLS"),
        ("smtp", ports["submissions"], "SSL"),
        ("smtp", ports["submission"], "STARTTLS"),
    }
    assert ports["smtp"] not in {port for _, port, _ in servers}
    assert {e.text for e in provider.iter("username")} == {"alice@example.test"}
    assert {e.text for e in provider.iter("hostname")} == {"mail.example.test"}


def test_thunderbird_without_an_address_gets_the_placeholder(web):
    reply = web.client().get("/.well-known/autoconfig/mail/config-v1.1.xml")
    assert reply.status == 200
    assert {e.text for e in ET.fromstring(reply.body).iter("username")} == {"%EMAILADDRESS%"}


@pytest.mark.parametrize(
    "address", ["mallory@evil.test", "<script>@example.test", "not an address", "x@example.test.evil.test"]
)
def test_an_address_outside_our_domains_is_never_echoed(web, address):
    from urllib.parse import quote

    reply = web.client().get(f"/mail/config-v1.1.xml?emailaddress={quote(address)}")
    assert reply.status == 404
    assert address.encode() not in reply.body and b"evil" not in reply.body
    status, _, text = post_xml(web, "/autodiscover/autodiscover.xml", OUTLOOK_REQUEST.format(address))
    assert "evil" not in text and "script" not in text
    assert "<ErrorCode>" in text and "LoginName" not in text


@pytest.mark.parametrize("path", ["/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"])
def test_outlook_autodiscover_answers_with_the_real_ports(web, path):
    status, content_type, text = post_xml(
        web, path, OUTLOOK_REQUEST.format("Alice@Example.test"), host="autodiscover.example.test"
    )
    assert status == 200 and content_type.startswith("application/xml")
    ns = {"o": AUTODISCOVER_OUTLOOK_NS}
    protocols = ET.fromstring(text).findall("o:Response/o:Account/o:Protocol", ns)
    got = {
        p.findtext("o:Type", namespaces=ns): (
            int(p.findtext("o:Port", namespaces=ns)),
            p.findtext("o:Encryption", namespaces=ns),
        )
        for p in protocols
    }
    ports = web.running.ports
    assert got == {
        "IMAP": (ports["imaps"], "SSL"),
        "POP3": (ports["pop3s"], "SSL"),
        "SMTP": (ports["submissions"], "SSL"),
    }
    assert {p.findtext("o:LoginName", namespaces=ns) for p in protocols} == {"alice@example.test"}


def test_autodiscover_refuses_entities_without_expanding_them(web):
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY f SYSTEM "file:///etc/hostname">]>'
        "<Autodiscover><Request><EMailAddress>&f;@example.test</EMailAddress></Request></Autodiscover>"
    )
    status, _, text = post_xml(web, "/autodiscover/autodiscover.xml", bomb)
    assert status == 400 and "<ErrorCode>600</ErrorCode>" in text
    status, _, _ = post_xml(web, "/autodiscover/autodiscover.xml", b"<a>" * 20000)
    assert status == 400


def test_the_apple_profile_is_for_the_logged_in_account_only(web):
    anonymous = web.client().get("/settings/clients/tidings.mobileconfig")
    assert anonymous.status == 303 and anonymous.header("location").startswith("/login")
    reply = web.client("bob@example.test").get("/settings/clients/tidings.mobileconfig")
    assert reply.status == 200
    assert reply.header("content-type") == "application/x-apple-aspen-config"
    assert "attachment" in reply.header("content-disposition")
    profile = plistlib.loads(reply.body)
    mail = next(p for p in profile["PayloadContent"] if p["PayloadType"] == "com.apple.mail.managed")
    assert mail["EmailAddress"] == "bob@example.test"
    assert mail["IncomingMailServerPortNumber"] == web.running.ports["imaps"]
    assert mail["IncomingMailServerUseSSL"] is True
    kinds = {p["PayloadType"] for p in profile["PayloadContent"]}
    assert {"com.apple.caldav.account", "com.apple.carddav.account"} <= kinds
    assert b"alice" not in reply.body
