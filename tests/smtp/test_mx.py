"""The MX listener over real sockets: who gets mail, what is refused, what is stored."""

from __future__ import annotations

import base64
import contextlib
import logging
import shutil
import smtplib
import socket
import subprocess
import time

import pytest

from tests.smtp.conftest import ALICE, BOB, PASSWORD, SmtpServer, message
from tests.support.pressure import LoopLag, memory_kib
from tidings.config import AuthSettings
from tidings.store import Envelope


def test_mail_to_a_local_user_lands_in_inbox_with_a_received_header(smtp):
    with smtp.mx() as client:
        client.ehlo("client.remote.test")
        refused = client.sendmail("carol@remote.test", [ALICE], message("first"))
    assert refused == {}
    [stored] = smtp.inbox(ALICE)
    assert stored.startswith(b"Received: from client.remote.test ([127.0.0.1])\r\n\tby mail.example.test")
    assert b"with ESMTP\r\n" in stored and f"for <{ALICE}>;".encode() in stored
    assert stored.endswith(message("first"))


def test_ehlo_advertises_the_extensions(smtp):
    with smtp.mx() as client:
        code, _ = client.ehlo("c.test")
    assert code == 250
    for keyword in (
        "pipelining",
        "size",
        "8bitmime",
        "smtputf8",
        "enhancedstatuscodes",
        "dsn",
        "chunking",
        "starttls",
    ):
        assert client.has_extn(keyword), keyword
    assert client.esmtp_features["size"] == str(50 * 1024 * 1024)
    assert not client.has_extn("auth")  # only after STARTTLS


def test_alias_catch_all_and_plus_address_deliver_to_the_account(smtp):
    smtp.call(smtp.store.accounts.add_alias("sales@example.test", [ALICE, BOB]))
    with smtp.mx() as client:
        client.sendmail("carol@remote.test", ["alice+news@example.test"], message("plus"))
        client.sendmail("carol@remote.test", ["sales@example.test"], message("alias"))
    smtp.call(smtp.store.accounts.add_alias("@example.test", [BOB]))
    with smtp.mx() as client:
        client.sendmail("carol@remote.test", ["whoever@example.test"], message("catchall"))
    alice_subjects = [m.split(b"Subject: ")[1].split(b"\r\n")[0] for m in smtp.inbox(ALICE)]
    bob_subjects = [m.split(b"Subject: ")[1].split(b"\r\n")[0] for m in smtp.inbox(BOB)]
    assert alice_subjects == [b"plus", b"alias"]
    assert bob_subjects == [b"alias", b"catchall"]


def test_relaying_to_a_foreign_domain_without_auth_is_refused(smtp):
    with smtp.mx() as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
            client.sendmail("carol@remote.test", ["dave@elsewhere.test"], message())
    code, text = caught.value.recipients["dave@elsewhere.test"]
    assert code == 554 and text.startswith(b"5.7.1")
    assert smtp.queue() == []


def test_unknown_local_user_is_refused_at_rcpt(smtp):
    client = smtp.raw()
    client.command("EHLO c.test")
    client.command("MAIL FROM:<carol@remote.test>")
    assert client.command("RCPT TO:<nobody@example.test>") == (
        550,
        "5.1.1 <nobody@example.test>: no such user here",
    )
    assert client.command(f"RCPT TO:<{ALICE}>")[0] == 250


def test_commands_out_of_sequence_get_503(smtp):
    client = smtp.raw()
    assert client.command("MAIL FROM:<a@remote.test>")[1].startswith("5.5.1")
    client.command("EHLO c.test")
    assert client.command("RCPT TO:<alice@example.test>")[0] == 503
    assert client.command("DATA")[0] == 503
    client.command("MAIL FROM:<a@remote.test>")
    assert client.command("MAIL FROM:<a@remote.test>")[0] == 503
    assert client.command("DATA") == (554, "5.5.1 No valid recipients")
    assert client.command("RSET") == (250, "2.0.0 OK")
    assert client.command("VRFY alice")[0] == 252
    assert client.command("NOOP")[1].startswith("2.0.0")
    assert client.command("QUIT")[0] == 221


def test_pipelined_transactions_get_their_replies_in_order(smtp):
    client = smtp.raw()
    client.command("EHLO c.test")
    client.send(
        b"MAIL FROM:<carol@remote.test>\r\nRCPT TO:<nobody@example.test>\r\n"
        b"RCPT TO:<alice@example.test>\r\nDATA\r\n"
    )
    assert [client.reply()[0] for _ in range(4)] == [250, 550, 250, 354]
    client.send(
        b"Subject: one\r\n\r\nbody\r\n.\r\n"
        b"MAIL FROM:<c@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
    )
    assert [client.reply()[0] for _ in range(4)] == [250, 250, 250, 354]
    client.send(b"Subject: two\r\n\r\n..dot\r\n.\r\nQUIT\r\n")
    assert client.reply()[0] == 250
    assert client.reply()[0] == 221
    assert smtp.inbox(ALICE)[0].endswith(b"Subject: one\r\n\r\nbody\r\n")
    assert smtp.inbox(BOB)[0].endswith(b"Subject: two\r\n\r\n.dot\r\n")


def test_bdat_chunks_make_one_message(smtp):
    client = smtp.raw()
    client.command("EHLO c.test")
    client.command("MAIL FROM:<carol@remote.test>")
    client.command(f"RCPT TO:<{ALICE}>")
    client.send(b"BDAT 16\r\nSubject: chunk\r\n")
    assert client.reply() == (250, "2.0.0 16 octets received")
    client.send(b"BDAT 6 LAST\r\n\r\nbody")
    assert client.reply()[0] == 250
    assert smtp.inbox(ALICE)[0].endswith(b"Subject: chunk\r\n\r\nbody")


def test_a_non_utf8_header_and_malformed_mime_are_still_accepted(smtp):
    broken = (
        b'Subject: caf\xe9 \xff\xfe\r\nContent-Type: multipart/mixed; boundary="never-closed"\r\n\r\n'
        b"--never-closed\r\nContent-Type: text/plain; charset=bogus\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        b"!!!not base64!!!\r\n"
    )
    with smtp.mx() as client:
        client.sendmail("carol@remote.test", [ALICE], broken)
    assert smtp.inbox(ALICE)[0].endswith(broken)


def test_bad_bytes_in_commands_are_refused_without_harming_the_session(smtp):
    client = smtp.raw()
    client.command("EHLO c.test")
    assert client.command(b"MAIL FROM:<a\x00b@remote.test>")[0] == 500
    assert client.command(b"MAIL FROM:<\xff@remote.test>")[0] == 500
    assert client.command(b"\x00\x01\x02")[0] == 500
    assert client.command("MAIL FROM:<carol@remote.test>")[0] == 250


def test_too_many_bad_commands_drop_the_connection(smtp):
    client = smtp.raw()
    replies = [client.command("XYZZY")[0] for _ in range(19)]
    assert set(replies) == {500}
    code, text = client.command("XYZZY")
    assert code == 500
    assert client.reply()[0] == 421
    assert client.closed()


def test_size_is_refused_at_mail_from_and_at_end_of_data(make_server):
    from tests.smtp.conftest import SMTP_LISTENERS, SmtpServer
    from tidings.config import Limits

    smtp = SmtpServer(make_server("small", listeners=SMTP_LISTENERS, limits=Limits(message_size=10_000)))
    client = smtp.raw()
    client.command("EHLO c.test")
    assert client.command("MAIL FROM:<c@remote.test> SIZE=20000") == (
        552,
        "5.3.4 Message size exceeds fixed maximum message size",
    )
    client.command("MAIL FROM:<c@remote.test>")
    client.command(f"RCPT TO:<{ALICE}>")
    client.command("DATA")
    client.send(b"Subject: big\r\n\r\n")
    client.send((b"x" * 78 + b"\r\n") * 500 + b".\r\n")
    assert client.reply()[1].startswith("5.3.4")
    assert client.command("NOOP")[0] == 250  # the session carries on
    assert smtp.inbox(ALICE) == []


def test_the_recipient_limit_answers_452(make_server):
    from tests.smtp.conftest import SMTP_LISTENERS, SmtpServer
    from tidings.config import Limits

    smtp = SmtpServer(make_server("few", listeners=SMTP_LISTENERS, limits=Limits(recipients=2)))
    client = smtp.raw()
    client.command("EHLO c.test")
    client.command("MAIL FROM:<c@remote.test>")
    assert client.command(f"RCPT TO:<{ALICE}>")[0] == 250
    assert client.command(f"RCPT TO:<{BOB}>")[0] == 250
    assert client.command("RCPT TO:<alice+x@example.test>") == (452, "4.5.3 Too many recipients")


def test_a_20_megabyte_line_gets_500_and_the_server_carries_on(smtp):
    import threading

    client = smtp.raw()
    client.command("EHLO c.test")

    def flood():
        # The server may stop reading once it has answered.
        with contextlib.suppress(OSError):
            client.sock.sendall(b"NOOP " + b"x" * (20 * 1024 * 1024) + b"\r\n")

    sender = threading.Thread(target=flood)
    sender.start()
    assert client.reply() == (500, "5.5.2 Line too long, closing connection")
    sender.join(20)
    with smtp.mx() as other:
        assert other.noop()[0] == 250


def test_idle_clients_get_421(make_server):
    from tests.smtp.conftest import SMTP_LISTENERS, SmtpServer
    from tidings.config import Limits

    smtp = SmtpServer(make_server("idle", listeners=SMTP_LISTENERS, limits=Limits(idle_timeout=0.5)))
    client = smtp.raw()
    client.command("EHLO c.test")
    assert client.reply()[0:1] == (421,)
    assert client.closed()


def test_over_quota_is_refused_at_rcpt_and_at_data(make_server):
    from tests.smtp.conftest import SMTP_LISTENERS, SmtpServer

    smtp = SmtpServer(make_server("quota", listeners=SMTP_LISTENERS))
    smtp.call(smtp.store.accounts.set_quota(ALICE, 3000))
    client = smtp.raw()
    client.command("EHLO c.test")
    client.command("MAIL FROM:<c@remote.test> SIZE=5000")
    assert client.command(f"RCPT TO:<{ALICE}>") == (
        552,
        f"5.2.2 <{ALICE}>: message is larger than the mailbox quota",
    )
    client.command("RSET")
    client.command("MAIL FROM:<c@remote.test>")
    assert client.command(f"RCPT TO:<{ALICE}>")[0] == 250  # no SIZE declared: may still fit
    client.command("DATA")
    client.send(b"Subject: big\r\n\r\n" + (b"y" * 98 + b"\r\n") * 40 + b".\r\n")
    assert client.reply() == (552, f"5.2.2 <{ALICE}>: message is larger than the mailbox quota")
    assert smtp.inbox(ALICE) == []


def test_rcpt_to_postmaster_without_domain_is_accepted_when_postmaster_exists(smtp):
    smtp.call(smtp.store.accounts.add_alias("postmaster@example.test", [ALICE]))
    client = smtp.raw()
    client.command("EHLO c.test")
    client.command("MAIL FROM:<>")
    assert client.command("RCPT TO:<Postmaster>")[0] == 250


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks not installed")
def test_swaks_delivers_and_is_refused_as_relay(smtp):
    port = str(smtp.ports["smtp"])
    ok = subprocess.run(
        [
            "swaks",
            "--server",
            "127.0.0.1",
            "--port",
            port,
            "--to",
            ALICE,
            "--from",
            "carol@remote.test",
            "--header",
            "Subject: swaks",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ok.returncode == 0, ok.stdout
    relay = subprocess.run(
        [
            "swaks",
            "--server",
            "127.0.0.1",
            "--port",
            port,
            "--to",
            "x@elsewhere.test",
            "--from",
            "carol@remote.test",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert relay.returncode != 0 and "5.7.1" in relay.stdout
    assert b"Subject: swaks" in smtp.inbox(ALICE)[0]


def test_over_quota_recipient_among_others_waits_in_the_queue_and_no_bounce_is_sent(make_server):
    from tests.smtp.conftest import SMTP_LISTENERS, SmtpServer

    smtp = SmtpServer(make_server("bounce", listeners=SMTP_LISTENERS))
    smtp.call(smtp.store.accounts.set_quota(ALICE, 3000))
    filler = b"Subject: filler\r\n\r\n" + b"f" * 1500
    smtp.call(smtp.store.delivery.accept(Envelope("x@remote.test", [ALICE]), filler))
    big = message("big", sender="carol@remote.test", body="y" * 98 + "\r\n" * 40 + "z" * 2000 + "\r\n")
    with smtp.mx() as client:
        client.ehlo()
        client.mail("carol@remote.test")  # no SIZE: at RCPT time the message may still fit
        assert client.rcpt(ALICE)[0] == 250 and client.rcpt(BOB)[0] == 250
        assert client.data(big)[0] == 250  # fits Alice's quota, not the room she has left
    assert len(smtp.inbox(ALICE)) == 1 and b"Subject: big" in smtp.inbox(BOB)[0]
    [entry] = smtp.queue()
    assert [r.address for r in entry.recipients] == [ALICE] and entry.sender == "carol@remote.test"
    # Alice makes room: the queue delivers her copy; nobody got a bounce.
    smtp.call(smtp.store.accounts.set_quota(ALICE, 100_000))
    smtp.call(smtp.store.queue.retry())
    deadline = time.monotonic() + 10
    while len(smtp.inbox(ALICE)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b"Subject: big" in smtp.inbox(ALICE)[1]
    assert len(smtp.inbox(BOB)) == 1 and smtp.queue() == []


def test_full_mailbox_is_deferred_452_at_rcpt_and_at_data_when_the_message_would_fit_later(make_server):
    from tests.smtp.conftest import SMTP_LISTENERS, SmtpServer

    smtp = SmtpServer(make_server("full", listeners=SMTP_LISTENERS))
    smtp.call(smtp.store.accounts.set_quota(ALICE, 3000))
    smtp.call(
        smtp.store.delivery.accept(Envelope("x@remote.test", [ALICE]), b"Subject: f\r\n\r\n" + b"f" * 2000)
    )
    client = smtp.raw()
    client.command("EHLO c.test")
    client.command("MAIL FROM:<c@remote.test>")
    client.command(f"RCPT TO:<{ALICE}>")  # 1000 octets left: no SIZE, so it may fit
    client.command("DATA")
    client.send(b"Subject: mid\r\n\r\n" + (b"y" * 98 + b"\r\n") * 15 + b".\r\n")
    assert client.reply() == (452, f"4.2.2 <{ALICE}>: mailbox full")
    smtp.call(smtp.store.accounts.set_quota(ALICE, 2000))  # now over quota: full whatever the size
    client.command("MAIL FROM:<c@remote.test>")
    assert client.command(f"RCPT TO:<{ALICE}>") == (452, f"4.2.2 <{ALICE}>: mailbox full")
    assert client.command(f"RCPT TO:<{BOB}>")[0] == 250  # per recipient: the others go on
    assert smtp.queue() == [] and len(smtp.inbox(ALICE)) == 1


def test_message_with_too_many_received_fields_is_refused_5_4_6(smtp):
    def with_hops(count: int) -> bytes:
        hops = "".join(
            f"Received: from r{n}.test by r{n + 1}.test; Mon, 1 Jan 2024\r\n" for n in range(count)
        )
        return hops.encode() + message("hops")

    with smtp.mx() as client:
        assert client.sendmail("c@remote.test", [ALICE], with_hops(49)) == {}
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail("c@remote.test", [ALICE], with_hops(50))
    assert (refused.value.smtp_code, refused.value.smtp_error) == (554, b"5.4.6 Too many hops")
    assert len(smtp.inbox(ALICE)) == 1


def test_rcpt_to_an_alias_loop_is_refused_5_4_6_and_the_session_goes_on(smtp):
    smtp.call(smtp.store.accounts.add_alias("ping@example.test", ["pong@example.test"]))
    smtp.call(smtp.store.accounts.add_alias("pong@example.test", ["ping@example.test"]))
    client = smtp.raw()
    client.command("EHLO c.test")
    client.command("MAIL FROM:<c@remote.test>")
    assert client.command("RCPT TO:<ping@example.test>") == (550, "5.4.6 <ping@example.test>: alias loop")
    assert client.command(f"RCPT TO:<{ALICE}>")[0] == 250


# -- bounded output, odd input answered ------------------------------------------------------------


def test_an_auth_response_line_over_the_limit_gets_500_5_5_6_and_the_session_goes_on(make_server, caplog):
    smtp = SmtpServer(make_server("smtp", listeners=("submission",), auth=AuthSettings(allow_plaintext=True)))
    raw = smtp.raw("submission")
    raw.command("EHLO client.test")
    assert raw.command("AUTH PLAIN")[0] == 334
    code, text = raw.command(b"A" * 5000)
    assert (code, text[:5]) == (500, "5.5.6"), (code, text)
    assert raw.command("NOOP")[0] == 250
    credentials = base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode()).decode()
    assert raw.command(f"AUTH PLAIN {credentials}")[0] == 235
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    raw.close()


def test_pipelined_commands_from_a_client_that_never_reads_are_bounded(smtp):
    flooder = smtp.raw()
    before = memory_kib()
    with LoopLag(smtp.running) as lag:
        flooder.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sent = 0
        flooder.sock.settimeout(0.5)
        with contextlib.suppress(TimeoutError):  # the server stops reading once we stop reading
            for _ in range(200):
                flooder.sock.sendall(b"HELP\r\n" * 10_000)
                sent += 1
        other = smtp.mx()
        assert other.noop()[0] == 250
        grown = memory_kib() - before
    assert sent < 200, "the server kept reading commands whose replies nobody read"
    assert grown < 64 * 1024, f"server grew by {grown} KiB"
    assert lag.max < 0.1, lag.max
    other.close()
    flooder.close()


def test_an_auth_response_line_without_end_closes_the_connection_after_500(make_server):
    smtp = SmtpServer(make_server("smtp", listeners=("submission",), auth=AuthSettings(allow_plaintext=True)))
    raw = smtp.raw("submission")
    raw.command("EHLO client.test")
    assert raw.command("AUTH PLAIN")[0] == 334
    with contextlib.suppress(OSError):  # the server may close while we are still sending
        raw.send(b"A" * 3 * 1024 * 1024)
    code, text = raw.reply()
    assert code == 500 and text.startswith("5.5.6")
    assert raw.closed()
