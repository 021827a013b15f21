"""TLS as clients see it: versions and suites offered, the self-signed certificate, and a configured
certificate followed on disk without a restart."""

from __future__ import annotations

import datetime
import smtplib
import socket
import ssl
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.running import RunningServer
from tidings.net.tls import CHECK_INTERVAL

CBC_SUITES = "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384:ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA"
NO_FORWARD_SECRECY = "AES128-GCM-SHA256:AES256-GCM-SHA384"


def client(maximum=None, minimum=None, ciphers=None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if ciphers:
        context.set_ciphers(ciphers + ":@SECLEVEL=0")
    elif maximum is not None and maximum < ssl.TLSVersion.TLSv1_2:
        context.set_ciphers("ALL:@SECLEVEL=0")  # let the client offer TLS 1.1 at all
    if minimum is not None:
        context.minimum_version = minimum
    if maximum is not None:
        context.maximum_version = maximum
    return context


def handshake(port: int, context: ssl.SSLContext) -> tuple[str, str, x509.Certificate]:
    """(version, cipher, server certificate) of one implicit-TLS connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw) as tls:
            der = tls.getpeercert(binary_form=True)
            return tls.version(), tls.cipher()[0], x509.load_der_x509_certificate(der)


@pytest.fixture
def imaps(make_server):
    return make_server(listeners=("imaps", "submission")).ports["imaps"]


def test_tls13_and_tls12_with_ecdhe_and_aead_are_offered(imaps):
    version, _, _ = handshake(imaps, client())
    assert version == "TLSv1.3"
    version, cipher, _ = handshake(imaps, client(maximum=ssl.TLSVersion.TLSv1_2))
    assert version == "TLSv1.2"
    assert cipher.startswith("ECDHE-") and ("GCM" in cipher or "CHACHA20" in cipher)


@pytest.mark.parametrize(
    "context",
    [
        pytest.param(client(maximum=ssl.TLSVersion.TLSv1_1, minimum=ssl.TLSVersion.TLSv1), id="tls1.1"),
        pytest.param(client(maximum=ssl.TLSVersion.TLSv1_2, ciphers=CBC_SUITES), id="cbc-suites"),
        pytest.param(
            client(maximum=ssl.TLSVersion.TLSv1_2, ciphers=NO_FORWARD_SECRECY), id="rsa-key-exchange"
        ),
    ],
)
def test_old_versions_cbc_suites_and_static_key_exchange_are_refused(imaps, context):
    with pytest.raises((ssl.SSLError, ConnectionError)):
        handshake(imaps, context)


def test_the_self_signed_certificate_is_a_one_year_server_leaf_for_the_hostname(make_server):
    running = make_server(listeners=("imaps",), hostname="mail.example.test")
    _, _, served = handshake(running.ports["imaps"], client())
    on_disk = x509.load_pem_x509_certificate(running.config.self_signed_cert_path.read_bytes())
    assert served == on_disk
    cert = served
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["mail.example.test", "localhost"]
    assert len(list(names)) == len(set(names))
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert datetime.timedelta(days=360) < lifetime < datetime.timedelta(days=400)
    assert cert.serial_number.bit_length() > 64


def test_the_self_signed_certificate_names_the_hostname_once(make_server):
    running = make_server(listeners=("imaps",), hostname="localhost")
    _, _, cert = handshake(running.ports["imaps"], client())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert len(list(names)) == len(set(names)) == 3  # localhost, 127.0.0.1, ::1


def test_an_expiring_self_signed_certificate_is_made_again_at_start(make_server, tmp_path):
    first = RunningServer(tmp_path / "a", listeners=("imaps",)).start()
    cert_path, key_path = first.config.self_signed_cert_path, first.config.self_signed_key_path
    first.stop()
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    old = sign(key, "mail.example.test", days=10)
    cert_path.write_bytes(old.public_bytes(serialization.Encoding.PEM))
    again = make_server("a", listeners=("imaps",))
    _, _, served = handshake(again.ports["imaps"], client())
    assert served != old and served.not_valid_after_utc > old.not_valid_after_utc


def sign(key, name: str, days: int = 90) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )


def write_certificate(cert_path: Path, key_path: Path, name: str, rsa_key: bool = False) -> x509.Certificate:
    """A certificate for `name` the way certbot leaves one: new files put in place by rename."""
    key = rsa.generate_private_key(65537, 2048) if rsa_key else ec.generate_private_key(ec.SECP256R1())
    cert = sign(key, name)
    for path, data in (
        (
            key_path,
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        ),
        (cert_path, cert.public_bytes(serialization.Encoding.PEM)),
    ):
        tmp = path.with_name(path.name + ".new")
        tmp.write_bytes(data)
        tmp.replace(path)
    return cert


def served_name(port: int) -> str:
    _, _, cert = handshake(port, client())
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def starttls_name(port: int) -> str:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.starttls(context=client())
        der = smtp.sock.getpeercert(binary_form=True)
    cert = x509.load_der_x509_certificate(der)
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def wait_for_name(read, expected: str) -> str:
    deadline = time.monotonic() + 10 * CHECK_INTERVAL + 5
    while True:
        name = read()
        if name == expected or time.monotonic() > deadline:
            return name
        time.sleep(CHECK_INTERVAL / 2)


def test_a_configured_certificate_replaces_the_self_signed_one_when_it_appears_and_when_renewed(
    make_server, tmp_path
):
    cert_path, key_path = tmp_path / "live" / "fullchain.pem", tmp_path / "live" / "privkey.pem"
    cert_path.parent.mkdir()
    running = make_server(listeners=("imaps", "submission"), tls_cert=cert_path, tls_key=key_path)
    imaps, submission = running.ports["imaps"], running.ports["submission"]
    assert served_name(imaps) == "mail.example.test"  # self-signed while nothing is configured
    assert not cert_path.exists()  # and never written where the configured one belongs

    write_certificate(cert_path, key_path, "first.example.test")
    assert wait_for_name(lambda: served_name(imaps), "first.example.test") == "first.example.test"
    assert starttls_name(submission) == "first.example.test"

    # Renewal with another key type; a connection open before keeps its certificate.
    with socket.create_connection(("127.0.0.1", imaps), timeout=10) as raw:
        with client().wrap_socket(raw) as open_before:
            write_certificate(cert_path, key_path, "second.example.test", rsa_key=True)
            assert wait_for_name(lambda: served_name(imaps), "second.example.test") == "second.example.test"
            assert open_before.recv(100).startswith(b"* OK")
    assert starttls_name(submission) == "second.example.test"


def test_a_half_written_renewal_keeps_the_working_certificate(make_server, tmp_path):
    cert_path, key_path = tmp_path / "c.pem", tmp_path / "k.pem"
    write_certificate(cert_path, key_path, "good.example.test")
    running = make_server(listeners=("imaps",), tls_cert=cert_path, tls_key=key_path)
    port = running.ports["imaps"]
    assert served_name(port) == "good.example.test"
    # The new certificate is in place but its key is not yet: keep serving the old pair.
    other = ec.generate_private_key(ec.SECP256R1())
    cert_path.write_bytes(sign(other, "next.example.test").public_bytes(serialization.Encoding.PEM))
    time.sleep(CHECK_INTERVAL * 1.5)
    assert served_name(port) == "good.example.test"
    assert served_name(port) == "good.example.test"
    key_path.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    assert wait_for_name(lambda: served_name(port), "next.example.test") == "next.example.test"
