"""The autoconfiguration documents themselves (tidings/web/autoconfig.py): well-formed, and saying
exactly what the listeners serve. The HTTP side is in test_autoconfig_http.py."""

from __future__ import annotations

import plistlib
import xml.etree.ElementTree as ET

import pytest

from tidings.web.autoconfig import (
    AUTODISCOVER_OUTLOOK_NS,
    AUTODISCOVER_RESPONSE_NS,
    BadAutodiscoverRequest,
    autodiscover_response,
    client_settings,
    mobileconfig,
    parse_autodiscover_request,
    thunderbird_config,
)

STANDARD = {
    "smtp": [("0.0.0.0", 25)],
    "submission": [("0.0.0.0", 587)],
    "submissions": [("0.0.0.0", 465)],
    "pop3": [("0.0.0.0", 110)],
    "pop3s": [("0.0.0.0", 995)],
    "imap": [("0.0.0.0", 143)],
    "imaps": [("0.0.0.0", 993), ("::", 993)],
    "https": [("0.0.0.0", 443)],
    "http": [("0.0.0.0", 80)],
}


def test_tls_mode_follows_the_listener_and_the_mx_port_is_never_offered():
    settings = client_settings("mail.example.org", STANDARD)
    modes = {(s.protocol, s.port, s.security) for s in settings.servers}
    assert modes == {
        ("imap", 993, "SSL"),
        ("imap", 143, "STARTTLS"),
        ("pop3", 995, "SSL"),
        ("pop3", 110, "STARTTLS"),
        ("smtp", 465, "SSL"),
        ("smtp", 587, "STARTTLS"),
    }
    assert settings.best("imap").port == 993 and settings.best("smtp").port == 465
    assert settings.web.port == 443 and settings.web.tls


def test_unusual_ports_keep_the_listeners_tls_mode():
    settings = client_settings("h", {"imap": [("127.0.0.1", 10993)], "submission": [("127.0.0.1", 10465)]})
    assert [(s.protocol, s.port, s.security) for s in settings.servers] == [
        ("imap", 10993, "STARTTLS"),
        ("smtp", 10465, "STARTTLS"),
    ]
    assert settings.web is None


def test_thunderbird_config_is_well_formed_and_lists_every_client_listener():
    settings = client_settings("mail.example.org", STANDARD)
    root = ET.fromstring(thunderbird_config(settings, ["example.org", "example.net"], "ann@example.org"))
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    provider = root.find("emailProvider")
    assert provider.get("id") == "example.org"
    assert [d.text for d in provider.findall("domain")] == ["example.org", "example.net"]
    incoming = [
        (s.get("type"), s.findtext("hostname"), s.findtext("port"), s.findtext("socketType"))
        for s in provider.findall("incomingServer")
    ]
    assert incoming == [
        ("imap", "mail.example.org", "993", "SSL"),
        ("imap", "mail.example.org", "143", "STARTTLS"),
        ("pop3", "mail.example.org", "995", "SSL"),
        ("pop3", "mail.example.org", "110", "STARTTLS"),
    ]
    outgoing = [(s.findtext("port"), s.findtext("socketType")) for s in provider.findall("outgoingServer")]
    assert outgoing == [("465", "SSL"), ("587", "STARTTLS")]
    assert {s.findtext("username") for s in provider.iter() if s.find("username") is not None} == {
        "ann@example.org"
    }
    assert {s.findtext("authentication") for s in provider.findall("incomingServer")} == {
        "password-cleartext"
    }


def test_thunderbird_config_without_an_address_uses_the_placeholder():
    text = thunderbird_config(client_settings("h.example", STANDARD), ["example.org"])
    root = ET.fromstring(text)
    assert {e.text for e in root.iter("username")} == {"%EMAILADDRESS%"}


def test_autodiscover_request_is_read_with_namespaces():
    body = (
        b'<?xml version="1.0" encoding="utf-8"?>'
        b'<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">'
        b"<Request><EMailAddress> ann@example.org </EMailAddress>"
        b"<AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/"
        b"responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>"
    )
    assert parse_autodiscover_request(body) == "ann@example.org"


@pytest.mark.parametrize(
    "body",
    [
        # billion laughs: an internal entity
        b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxx"><!ENTITY y "&x;&x;&x;&x;">]>'
        b"<Autodiscover><Request><EMailAddress>&y;</EMailAddress></Request></Autodiscover>",
        # an external entity: a local file
        b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY f SYSTEM "file:///etc/passwd">]>'
        b"<Autodiscover><Request><EMailAddress>&f;</EMailAddress></Request></Autodiscover>",
        # a DOCTYPE alone
        b'<!DOCTYPE Autodiscover SYSTEM "http://127.0.0.1:9/x.dtd"><Autodiscover/>',
        b"<Autodiscover><Request><EMailAddress>a@b</Request></Autodiscover>",
        b"<Autodiscover><Request></Request></Autodiscover>",
        b"<x>" * 10000,
    ],
)
def test_autodiscover_refuses_entities_doctypes_and_malformed_requests(body):
    with pytest.raises(BadAutodiscoverRequest):
        parse_autodiscover_request(body)


def test_autodiscover_response_names_the_tls_mode():
    settings = client_settings("mail.example.org", {**STANDARD, "imaps": [], "submissions": []})
    ns = {"o": AUTODISCOVER_OUTLOOK_NS}
    root = ET.fromstring(autodiscover_response(settings, "ann@example.org"))
    assert root.tag == f"{{{AUTODISCOVER_RESPONSE_NS}}}Autodiscover"
    protocols = root.findall("o:Response/o:Account/o:Protocol", ns)
    got = {
        p.findtext("o:Type", namespaces=ns): (
            p.findtext("o:Port", namespaces=ns),
            p.findtext("o:Encryption", namespaces=ns),
            p.findtext("o:LoginName", namespaces=ns),
            p.findtext("o:Server", namespaces=ns),
        )
        for p in protocols
    }
    assert got == {
        "IMAP": ("143", "TLS", "ann@example.org", "mail.example.org"),
        "POP3": ("995", "SSL", "ann@example.org", "mail.example.org"),
        "SMTP": ("587", "TLS", "ann@example.org", "mail.example.org"),
    }


def test_mobileconfig_has_mail_caldav_and_carddav_accounts():
    settings = client_settings("mail.example.org", STANDARD)
    profile = plistlib.loads(mobileconfig(settings, "ann@example.org", "Ann"))
    assert profile["PayloadType"] == "Configuration"
    kinds = {p["PayloadType"]: p for p in profile["PayloadContent"]}
    assert set(kinds) == {"com.apple.mail.managed", "com.apple.caldav.account", "com.apple.carddav.account"}
    mail = kinds["com.apple.mail.managed"]
    assert (mail["IncomingMailServerPortNumber"], mail["IncomingMailServerUseSSL"]) == (993, True)
    assert (mail["OutgoingMailServerPortNumber"], mail["OutgoingMailServerUseSSL"]) == (465, True)
    assert mail["EmailAddress"] == mail["IncomingMailServerUsername"] == "ann@example.org"
    assert "IncomingPassword" not in mail
    caldav = kinds["com.apple.caldav.account"]
    assert caldav["CalDAVPrincipalURL"] == "https://mail.example.org/.well-known/caldav"
    assert caldav["CalDAVUseSSL"] is True and caldav["CalDAVPort"] == 443
    uuids = [p["PayloadUUID"] for p in profile["PayloadContent"]] + [profile["PayloadUUID"]]
    assert len(set(uuids)) == 4
    # the same account gets the same identifiers again: installing it twice replaces, not duplicates
    assert (
        plistlib.loads(mobileconfig(settings, "ann@example.org", "Ann"))["PayloadUUID"]
        == profile["PayloadUUID"]
    )
