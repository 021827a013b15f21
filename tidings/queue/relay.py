"""The SMTP client side: hand one message to the next hops of one domain, per-recipient results.

RFC 5321 sections 3.3 and 4.2: a 5yz reply to one RCPT fails only that recipient, a 4yz defers it;
the DATA reply applies to every recipient that was accepted. Problems before any recipient was
answered (no connection, greeting or EHLO refused, MAIL deferred) move on to the next host.

TLS is opportunistic and unauthenticated (RFC 7435, RFC 3207): STARTTLS when offered, falling back to
plain text if the handshake fails, unless `queue.require_tls` makes encryption mandatory.
Extensions are used only when advertised: SIZE (RFC 1870), 8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531),
DSN (RFC 3461: RET, ENVID, NOTIFY, ORCPT).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass, replace

import aiosmtplib

from tidings.config import QueueSettings
from tidings.queue.mx import NextHop
from tidings.queue.outcome import Attempt, deferred, failed, from_reply

log = logging.getLogger(__name__)

COMMAND_TIMEOUT = 300.0  # RFC 5321 section 4.5.3.2 suggests minutes for MAIL/RCPT/DATA replies


@dataclass(frozen=True)
class RelayRecipient:
    id: int
    address: str
    notify: str | None = None  # "NEVER" or a comma list of SUCCESS, FAILURE, DELAY
    orcpt: str | None = None  # "rfc822;user@example.org" (decoded, not xtext)


@dataclass
class RelayJob:
    """One SMTP transaction's worth of work: the envelope and the exact bytes to send."""

    sender: str
    recipients: list[RelayRecipient]
    message: bytes
    envid: str | None = None
    ret: str | None = None
    smtputf8: bool = False
    body_8bit: bool = False


@dataclass
class HopFailure(Exception):
    """This host could not take the message; the next one may. `attempt` is what recipients get if
    no host does."""

    attempt: Attempt
    tls_failed: bool = False


def xtext(value: str) -> str:
    """RFC 3461 section 4: "+" and "=" and characters outside 33..126 become "+HH"."""
    out = []
    for byte in value.encode("utf-8"):
        if 33 <= byte <= 126 and byte not in (0x2B, 0x3D):
            out.append(chr(byte))
        else:
            out.append(f"+{byte:02X}")
    return "".join(out)


async def relay(
    job: RelayJob, hops: list[NextHop], *, helo: str, settings: QueueSettings, tls_context: ssl.SSLContext
) -> dict[int, Attempt]:
    """Try `hops` in order until one gives answers for the recipients; results by recipient id."""
    job.message = _with_final_crlf(job.message)
    last = deferred("4.4.1", "no mail exchanger could be reached")
    for hop in hops:
        try:
            return await _transaction(job, hop, helo, settings, tls_context, allow_tls=True)
        except HopFailure as failure:
            if failure.tls_failed and not settings.require_tls:
                # RFC 7435: a failed opportunistic handshake falls back to a cleartext session.
                try:
                    return await _transaction(job, hop, helo, settings, tls_context, allow_tls=False)
                except HopFailure as again:
                    failure = again
            log.info("relay to %s (%s:%s) failed: %s", hop.host, hop.address, hop.port, failure.attempt.reply)
            last = failure.attempt
            if last.state == "failed":
                break  # a permanent answer about the transaction itself: other hosts would say the same
    return {r.id: last for r in job.recipients}


async def _transaction(
    job: RelayJob,
    hop: NextHop,
    helo: str,
    settings: QueueSettings,
    tls_context: ssl.SSLContext,
    *,
    allow_tls: bool,
) -> dict[int, Attempt]:
    client = aiosmtplib.SMTP(
        hostname=hop.address,
        port=hop.port,
        local_hostname=helo,
        timeout=COMMAND_TIMEOUT,
        start_tls=False,
        validate_certs=False,
    )
    where = f"{hop.host}[{hop.address}]:{hop.port}"
    try:
        try:
            await client.connect(timeout=settings.connect_timeout)
        except aiosmtplib.SMTPConnectResponseError as exc:
            raise HopFailure(_deferred_reply(exc.code, exc.message, hop.host)) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise HopFailure(deferred("4.4.1", f"cannot connect to {where}: {exc}")) from None
        try:
            return await _converse(client, job, hop, settings, tls_context, allow_tls)
        except aiosmtplib.SMTPResponseException as exc:
            raise HopFailure(_deferred_reply(exc.code, exc.message, hop.host)) from None
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
            raise HopFailure(deferred("4.4.2", f"connection to {where} broke: {exc}")) from None
    except asyncio.CancelledError:
        client.close()  # shutting down: no polite QUIT to a server that may be slow to answer
        raise
    finally:
        if client.is_connected:
            try:
                await client.quit(timeout=5)
            except (aiosmtplib.SMTPException, OSError):
                client.close()


async def _converse(
    client: aiosmtplib.SMTP,
    job: RelayJob,
    hop: NextHop,
    settings: QueueSettings,
    tls_context: ssl.SSLContext,
    allow_tls: bool,
) -> dict[int, Attempt]:
    await _greet(client)
    encrypted = False
    if client.supports_extension("starttls") and allow_tls:
        try:
            await client.starttls(
                tls_context=tls_context, server_hostname=hop.host, timeout=settings.connect_timeout
            )
        except (ssl.SSLError, aiosmtplib.SMTPException, OSError) as exc:
            raise HopFailure(
                deferred("4.7.0", f"TLS handshake with {hop.host} failed: {exc}"), tls_failed=True
            ) from None
        encrypted = True
        try:
            await _greet(client)  # RFC 3207 section 4.2: forget what was said before TLS
        except (aiosmtplib.SMTPServerDisconnected, ssl.SSLError, OSError) as exc:
            # With TLS 1.3 a refused handshake (e.g. a demanded client certificate) shows only now.
            raise HopFailure(
                deferred("4.7.0", f"TLS session with {hop.host} failed: {exc}"), tls_failed=True
            ) from None
    if settings.require_tls and not encrypted:
        raise HopFailure(deferred("4.7.10", f"{hop.host} does not offer STARTTLS and TLS is required"))

    size_limit = client.esmtp_extensions.get("size", "")
    if size_limit.isdigit() and int(size_limit) > 0 and len(job.message) > int(size_limit):
        raise HopFailure(
            failed(
                "5.3.4",
                f"message of {len(job.message)} bytes exceeds {hop.host}'s limit of {size_limit}",
                code=552,
            )
        )
    if job.smtputf8 and not client.supports_extension("smtputf8"):
        # RFC 6531 section 3.2: without the extension the message cannot be sent as it is.
        raise HopFailure(failed("5.6.7", f"{hop.host} does not support SMTPUTF8", code=553))

    dsn = client.supports_extension("dsn")
    mail_options = []
    if client.supports_extension("size"):
        mail_options.append(f"SIZE={len(job.message)}")
    if job.body_8bit and client.supports_extension("8bitmime"):
        mail_options.append("BODY=8BITMIME")
    if job.smtputf8:
        mail_options.append("SMTPUTF8")
    if dsn and job.ret:
        mail_options.append(f"RET={job.ret.upper()}")
    if dsn and job.envid:
        mail_options.append(f"ENVID={xtext(job.envid)}")
    encoding = "utf-8" if job.smtputf8 else "ascii"

    try:
        await client.mail(job.sender, options=mail_options, encoding=encoding)
    except aiosmtplib.SMTPSenderRefused as exc:
        attempt = from_reply(exc.code, exc.message, hop.host)
        if attempt.state == "failed":
            return {r.id: attempt for r in job.recipients}
        raise HopFailure(attempt) from None

    results: dict[int, Attempt] = {}
    accepted: list[RelayRecipient] = []
    for recipient in job.recipients:
        options = []
        if dsn and recipient.notify:
            options.append(f"NOTIFY={recipient.notify.upper()}")
        if dsn and recipient.orcpt:
            addr_type, _, original = recipient.orcpt.partition(";")
            if original:
                options.append(f"ORCPT={addr_type};{xtext(original)}")
        try:
            await client.rcpt(recipient.address, options=options, encoding=encoding)
            accepted.append(recipient)
        except aiosmtplib.SMTPRecipientRefused as exc:
            results[recipient.id] = from_reply(exc.code, exc.message, hop.host)
    if not accepted:
        with contextlib.suppress(aiosmtplib.SMTPException):
            await client.rset()
        return results

    try:
        response = await client.data(job.message)
        attempt = from_reply(response.code, response.message, hop.host)
    except aiosmtplib.SMTPDataError as exc:
        attempt = from_reply(exc.code, exc.message, hop.host)
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as exc:
        # The message may or may not have arrived: retry (the duplicate window RFC 5321 6.1 accepts).
        attempt = deferred("4.4.2", f"connection to {hop.host} lost during DATA: {exc}")
    for recipient in accepted:
        wants_success = recipient.notify is not None and "SUCCESS" in recipient.notify.upper()
        if attempt.state == "delivered" and wants_success and not dsn:
            results[recipient.id] = replace(attempt, relayed_without_dsn=True)
        else:
            results[recipient.id] = attempt
    return results


async def _greet(client: aiosmtplib.SMTP) -> None:
    """EHLO, or HELO for a server that does not know EHLO (RFC 5321 section 3.2)."""
    try:
        await client.ehlo()
    except aiosmtplib.SMTPHeloError as exc:
        if not 500 <= exc.code < 600 or not client.is_connected:
            raise
        await client.helo()


def _deferred_reply(code: int, message: str, host: str) -> Attempt:
    """A refusal before the transaction started (greeting, EHLO): this host, not the recipients."""
    attempt = from_reply(code, message, host)
    if attempt.state == "delivered":  # e.g. an unexpected 2yz; treat as a protocol problem
        return deferred("4.5.0", f"unexpected reply from {host}: {code} {message}")
    # Even a 554 greeting only says this host will not talk to us; another MX may (RFC 5321 3.1).
    return Attempt(
        "deferred", attempt.code if attempt.code < 500 else 451, "4" + attempt.status[1:], attempt.text, host
    )


def _with_final_crlf(message: bytes) -> bytes:
    return message if message.endswith(b"\r\n") else message + (b"\n" if message.endswith(b"\r") else b"\r\n")
