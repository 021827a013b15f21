"""Client autoconfiguration documents, made from the listeners this server really runs.

Mail clients configure themselves from one of three documents; all three are generated here from
the same `ClientSettings` (host name, the ports actually bound, TLS mode per listener), so what a
client is told is what the server serves:

- Thunderbird autoconfig, clientConfig version 1.1 (served at
  /.well-known/autoconfig/mail/config-v1.1.xml and /mail/config-v1.1.xml on the `autoconfig.` host);
- Microsoft Autodiscover "POX" (MS-OXDSCLI / MS-OXDISCO, POST /autodiscover/autodiscover.xml):
  `parse_autodiscover_request` reads the request's EMailAddress with expat, refusing any DOCTYPE,
  so no entity (internal or external) is ever expanded;
- an Apple configuration profile (.mobileconfig): an IMAP+SMTP mail account and CalDAV/CardDAV
  accounts. It is unsigned: iOS and macOS install it after showing "Unverified".

The TLS mode comes from the listener, never from the port number: `imaps`, `pop3s` and
`submissions` are implicit TLS (993/995/465 when standard), `imap`, `pop3` and `submission` use
STARTTLS (143/110/587). The MX listener (`smtp`, 25) is not for clients and is never offered.

This module is pure: no I/O, no store. Whether an address belongs to a local domain is the caller's
question (tidings/web/routes/autoconfig.py): nothing here echoes an address it was not given.
"""

from __future__ import annotations

import plistlib
import uuid
import xml.parsers.expat
from dataclasses import dataclass
from xml.sax.saxutils import escape

# listener name -> (protocol, security); in the order clients should prefer them.
CLIENT_LISTENERS = {
    "imaps": ("imap", "SSL"),
    "imap": ("imap", "STARTTLS"),
    "pop3s": ("pop3", "SSL"),
    "pop3": ("pop3", "STARTTLS"),
    "submissions": ("smtp", "SSL"),
    "submission": ("smtp", "STARTTLS"),
}

# A placeholder Thunderbird fills in itself when no address was given.
EMAIL_PLACEHOLDER = "%EMAILADDRESS%"

# Namespaces of Autodiscover POX (MS-OXDSCLI 2.2.4, MS-OXDISCO).
AUTODISCOVER_REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
AUTODISCOVER_RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
AUTODISCOVER_OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
MAX_AUTODISCOVER_REQUEST = 16 * 1024


@dataclass(frozen=True)
class MailServer:
    """One way in: `protocol` imap/pop3/smtp on `port`, `security` "SSL" (implicit) or "STARTTLS"."""

    protocol: str
    port: int
    security: str
    listener: str

    @property
    def implicit_tls(self) -> bool:
        return self.security == "SSL"


@dataclass(frozen=True)
class WebServer:
    """Where the web client (and CalDAV/CardDAV) answers: `tls` for the https listener."""

    port: int
    tls: bool

    def url(self, hostname: str, path: str = "/") -> str:
        scheme = "https" if self.tls else "http"
        default = 443 if self.tls else 80
        port = "" if self.port == default else f":{self.port}"
        return f"{scheme}://{hostname}{port}{path}"


@dataclass(frozen=True)
class ClientSettings:
    hostname: str
    servers: tuple[MailServer, ...]
    web: WebServer | None = None

    def of(self, protocol: str) -> list[MailServer]:
        return [s for s in self.servers if s.protocol == protocol]

    def best(self, protocol: str) -> MailServer | None:
        """The one to configure when a format has room for one: implicit TLS first."""
        found = self.of(protocol)
        return found[0] if found else None


def client_settings(hostname: str, listening: dict[str, list[tuple[str, int]]]) -> ClientSettings:
    """Settings from the listeners actually bound (`tidings.server.Server.bound_ports`, or the
    configured `listen` table when nothing is bound yet); a listener with port 0 is left out."""
    servers: list[MailServer] = []
    for name, (protocol, security) in CLIENT_LISTENERS.items():
        ports = dict.fromkeys(port for _, port in listening.get(name, ()) if port)
        servers.extend(MailServer(protocol, port, security, name) for port in ports)
    web = None
    for name, tls in (("https", True), ("http", False)):
        ports = [port for _, port in listening.get(name, ()) if port]
        if ports:
            web = WebServer(ports[0], tls)
            break
    return ClientSettings(hostname, tuple(servers), web)


# -- Thunderbird -----------------------------------------------------------------------------------


def thunderbird_config(settings: ClientSettings, domains: list[str], address: str | None = None) -> str:
    """clientConfig 1.1 (https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat).

    `domains` are the local domains, the one of `address` first; `address` (already known to be
    local) is written as the user name, else Thunderbird's %EMAILADDRESS% placeholder."""
    username = escape(address) if address else EMAIL_PLACEHOLDER
    first = escape(domains[0]) if domains else escape(settings.hostname)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<clientConfig version="1.1">',
        f'  <emailProvider id="{first}">',
        *(f"    <domain>{escape(d)}</domain>" for d in domains),
        f"    <displayName>{first} mail</displayName>",
        f"    <displayShortName>{first}</displayShortName>",
    ]

    def server(tag: str, kind: str, entry: MailServer) -> list[str]:
        return [
            f'    <{tag} type="{kind}">',
            f"      <hostname>{escape(settings.hostname)}</hostname>",
            f"      <port>{entry.port}</port>",
            f"      <socketType>{entry.security}</socketType>",
            "      <authentication>password-cleartext</authentication>",
            f"      <username>{username}</username>",
            f"    </{tag}>",
        ]

    for entry in settings.of("imap") + settings.of("pop3"):
        lines += server("incomingServer", entry.protocol, entry)
    for entry in settings.of("smtp"):
        lines += server("outgoingServer", "smtp", entry)
    if settings.web is not None:
        lines.append(
            f'    <documentation url="{escape(settings.web.url(settings.hostname, "/settings/clients"))}">'
        )
        lines.append('      <descr lang="en">Server settings for other mail clients</descr>')
        lines.append("    </documentation>")
    lines += ["  </emailProvider>", "</clientConfig>", ""]
    return "\n".join(lines)


# -- Autodiscover (POX) ----------------------------------------------------------------------------


class BadAutodiscoverRequest(ValueError):
    """Not an Autodiscover POX request we will read (malformed, a DOCTYPE, too large)."""


def parse_autodiscover_request(body: bytes) -> str:
    """The EMailAddress of an Autodiscover POX request (MS-OXDSCLI 2.2.3), as sent (not validated).

    Read with expat directly: a DOCTYPE is refused outright, so neither internal entities (the
    "billion laughs") nor external ones (file or network reads) can be declared, let alone expanded.
    """
    if len(body) > MAX_AUTODISCOVER_REQUEST:
        raise BadAutodiscoverRequest("request too large")
    parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")
    path: list[str] = []
    found: list[str] = []

    def refuse_doctype(*_args) -> None:
        raise BadAutodiscoverRequest("a DOCTYPE is not allowed")

    def start(name: str, _attrs) -> None:
        path.append(name.rpartition(" ")[2])

    def end(_name: str) -> None:
        path.pop()

    def text(data: str) -> None:
        if path[-3:] == ["Autodiscover", "Request", "EMailAddress"]:
            found.append(data)

    parser.StartDoctypeDeclHandler = refuse_doctype
    parser.EntityDeclHandler = refuse_doctype
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    try:
        parser.Parse(body, True)
    except xml.parsers.expat.ExpatError as exc:
        raise BadAutodiscoverRequest(f"not well-formed XML: {exc}") from None
    address = "".join(found).strip()
    if not address:
        raise BadAutodiscoverRequest("no EMailAddress in the request")
    return address


def autodiscover_response(settings: ClientSettings, address: str, display_name: str = "") -> str:
    """The POX response for `address` (already known to be local): IMAP, POP3 and SMTP protocols.

    SSL on + Encryption SSL is implicit TLS; Encryption TLS is STARTTLS (MS-OXDSCLI 2.2.4.1.1.2.2:
    Encryption, when present, overrides SSL)."""
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        f'<Autodiscover xmlns="{AUTODISCOVER_RESPONSE_NS}">',
        f'  <Response xmlns="{AUTODISCOVER_OUTLOOK_NS}">',
        "    <User>",
        f"      <DisplayName>{escape(display_name or address)}</DisplayName>",
        f"      <AutoDiscoverSMTPAddress>{escape(address)}</AutoDiscoverSMTPAddress>",
        "    </User>",
        "    <Account>",
        "      <AccountType>email</AccountType>",
        "      <Action>settings</Action>",
    ]
    for protocol in ("imap", "pop3", "smtp"):
        entry = settings.best(protocol)
        if entry is None:
            continue
        lines += [
            "      <Protocol>",
            f"        <Type>{protocol.upper()}</Type>",
            f"        <Server>{escape(settings.hostname)}</Server>",
            f"        <Port>{entry.port}</Port>",
            f"        <LoginName>{escape(address)}</LoginName>",
            "        <DomainRequired>off</DomainRequired>",
            "        <SPA>off</SPA>",
            "        <SSL>on</SSL>",
            f"        <Encryption>{'SSL' if entry.implicit_tls else 'TLS'}</Encryption>",
            "        <AuthRequired>on</AuthRequired>",
        ]
        if protocol == "smtp":
            lines += ["        <UsePOPAuth>on</UsePOPAuth>", "        <SMTPLast>off</SMTPLast>"]
        lines.append("      </Protocol>")
    lines += ["    </Account>", "  </Response>", "</Autodiscover>", ""]
    return "\n".join(lines)


def autodiscover_error(code: int, message: str) -> str:
    """An Error response (MS-OXDSCLI 2.2.4.1.2), e.g. 600 Invalid Request, 500 for an unknown user."""
    return "\n".join(
        [
            '<?xml version="1.0" encoding="utf-8"?>',
            f'<Autodiscover xmlns="{AUTODISCOVER_RESPONSE_NS}">',
            "  <Response>",
            '    <Error Time="00:00:00" Id="0">',
            f"      <ErrorCode>{code}</ErrorCode>",
            f"      <Message>{escape(message)}</Message>",
            "      <DebugData />",
            "    </Error>",
            "  </Response>",
            "</Autodiscover>",
            "",
        ]
    )


# -- Apple configuration profile -------------------------------------------------------------------

PROFILE_NAMESPACE = uuid.UUID("1d6c2f7e-7f0e-4f8e-9d53-3f0a7c1b2a10")


def _payload_uuid(*parts: str) -> str:
    """Stable per (host, address, payload): installing the profile again replaces the old one."""
    return str(uuid.uuid5(PROFILE_NAMESPACE, "\0".join(parts))).upper()


def mobileconfig(settings: ClientSettings, address: str, display_name: str = "") -> bytes:
    """An unsigned configuration profile (Apple's Configuration Profile Reference): the IMAP+SMTP
    account (com.apple.mail.managed), CalDAV and CardDAV accounts for `address` (known local).

    Passwords are never in it: the device asks for them. The DAV accounts point at the web
    listener's /.well-known/caldav and /.well-known/carddav (RFC 6764)."""
    host = settings.hostname
    reverse = ".".join(reversed(host.split(".")))
    name = display_name or address
    payloads: list[dict] = []
    imap, smtp = settings.best("imap"), settings.best("smtp")
    if imap is not None and smtp is not None:
        payloads.append(
            {
                "PayloadType": "com.apple.mail.managed",
                "PayloadVersion": 1,
                "PayloadIdentifier": f"{reverse}.tidings.mail.{address}",
                "PayloadUUID": _payload_uuid(host, address, "mail"),
                "PayloadDisplayName": f"Mail ({address})",
                "EmailAccountDescription": address,
                "EmailAccountName": name,
                "EmailAccountType": "EmailTypeIMAP",
                "EmailAddress": address,
                "IncomingMailServerAuthentication": "EmailAuthPassword",
                "IncomingMailServerHostName": host,
                "IncomingMailServerPortNumber": imap.port,
                # false on a STARTTLS port: the device then upgrades with STARTTLS itself.
                "IncomingMailServerUseSSL": imap.implicit_tls,
                "IncomingMailServerUsername": address,
                "OutgoingMailServerAuthentication": "EmailAuthPassword",
                "OutgoingMailServerHostName": host,
                "OutgoingMailServerPortNumber": smtp.port,
                "OutgoingMailServerUseSSL": smtp.implicit_tls,
                "OutgoingMailServerUsername": address,
                "OutgoingPasswordSameAsIncomingPassword": True,
                "SMIMEEnabled": False,
            }
        )
    if settings.web is not None:
        web = settings.web
        for kind, label in (("caldav", "Calendar"), ("carddav", "Contacts")):
            prefix = "CalDAV" if kind == "caldav" else "CardDAV"
            payloads.append(
                {
                    "PayloadType": f"com.apple.{kind}.account",
                    "PayloadVersion": 1,
                    "PayloadIdentifier": f"{reverse}.tidings.{kind}.{address}",
                    "PayloadUUID": _payload_uuid(host, address, kind),
                    "PayloadDisplayName": f"{label} ({address})",
                    f"{prefix}AccountDescription": f"{label} {address}",
                    f"{prefix}HostName": host,
                    f"{prefix}Port": web.port,
                    f"{prefix}UseSSL": web.tls,
                    f"{prefix}Username": address,
                    f"{prefix}PrincipalURL": web.url(host, f"/.well-known/{kind}"),
                }
            )
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{reverse}.tidings.{address}",
        "PayloadUUID": _payload_uuid(host, address, "profile"),
        "PayloadDisplayName": f"{host}: {address}",
        "PayloadDescription": f"Mail, calendar and contacts of {address} on {host}",
        "PayloadOrganization": host,
        "PayloadRemovalDisallowed": False,
        "PayloadContent": payloads,
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML)
