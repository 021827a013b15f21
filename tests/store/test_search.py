"""The full-text search store part (store/search.py), on SQLite FTS5 and PostgreSQL tsvector alike:
the background indexer's pass fills it from the same decoding IMAP SEARCH uses (RFC 2047 headers,
base64 and quoted-printable bodies, charsets, HTML), and searches find exactly the account's own
messages matching every criterion, sorted and paged."""

from __future__ import annotations

import base64
import smtplib
import time

import pytest

from tidings.mail.message import analyse
from tidings.mail.search_text import search_document, search_words
from tidings.store import Envelope
from tidings.store.compaction import compact
from tidings.store.search import SearchQuery

DAY = 86400.0
T0 = 1_700_000_000.0


def _mail(
    subject: str,
    body: str,
    *,
    sender="Carol Example <carol@remote.test>",
    to="bob@example.org",
    cc: str | None = None,
    extra: str = "",
) -> bytes:
    head = f"From: {sender}\r\nTo: {to}\r\n" + (f"Cc: {cc}\r\n" if cc else "")
    return (head + f"Subject: {subject}\r\n{extra}\r\n{body}\r\n").encode()


QP = (
    b"From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <juergen@remote.test>\r\nTo: bob@example.org\r\n"
    b"Subject: =?iso-8859-1?q?Gr=FC=DFe_aus_K=F6ln?=\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"Sch=F6ne Gr=FC=DFe vom Rhein, die Stra=DFenbahn f=E4hrt wieder.\r\n"
)
BASE64_WITH_ATTACHMENT = (
    b"From: dmitri@remote.test\r\nTo: bob@example.org\r\nSubject: report\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\n'
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    + base64.encodebytes("Привет! Квартальный отчёт во вложении.".encode())
    + b"\r\n--b1\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=q3.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b1--\r\n"
)
HTML = (
    b"From: news@remote.test\r\nTo: list@remote.test\r\nCc: Bob <bob@example.org>\r\nSubject: letter\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b"<html><head><style>.invisibleword{}</style></head><body><p>Caf&eacute; <b>opening</b> hours"
    b"</p><script>var scriptword;</script></body></html>\r\n"
)


@pytest.fixture
def bob(store, run):
    run(store.accounts.add_domain("example.org"))
    return run(store.accounts.add_user("bob@example.org", "secret pass 1"))


@pytest.fixture
def eve(store, run, bob):
    return run(store.accounts.add_user("eve@example.org", "secret pass 2"))


def _index_all(store, run) -> None:
    while run(store.mailboxes.index_pending(50)):
        pass
    while run(store.search.index_pending(50)):
        pass


def _append(store, run, account, raw: bytes, *, mailbox="INBOX", flags=(), when=T0) -> int:
    box = run(store.mailboxes.get(account.id, mailbox))
    return run(store.mailboxes.append(account.id, box.id, raw, flags, when))[1]


def _subjects(page) -> list[str]:
    return [hit.subject for hit in page.hits]


def test_words_are_case_folded_without_diacritics_and_split_at_punctuation():
    assert search_words("Jürgen MÜLLER <juergen.m@Remote-Test.org>, x_y") == [
        "jurgen",
        "muller",
        "juergen",
        "m",
        "remote",
        "test",
        "org",
        "x",
        "y",
    ]
    assert search_words("Straße ﬁnal") == ["strasse", "final"]
    assert search_words("a" * 65 + " ok") == ["ok"]


def test_the_document_reads_headers_and_bodies_as_imap_search_decodes_them():
    qp = search_document(QP, analyse(QP))
    assert qp.subject == "grusse aus koln"
    assert qp.sender == "jurgen muller juergen remote test"
    assert "strassenbahn" in qp.body.split() and "fahrt" in qp.body.split()
    b64 = search_document(BASE64_WITH_ATTACHMENT, analyse(BASE64_WITH_ATTACHMENT))
    assert b64.body.split()[:2] == ["привет", "квартальныи"]
    assert b64.has_attachment and not qp.has_attachment
    html = search_document(HTML, analyse(HTML))
    assert html.body.split() == ["cafe", "opening", "hours"]
    assert html.recipients == "list remote test bob bob example org"


def test_search_finds_by_each_field_on_both_databases(store, run, bob):
    _append(store, run, bob, QP, when=T0)
    _append(store, run, bob, BASE64_WITH_ATTACHMENT, when=T0 + DAY)
    _append(store, run, bob, HTML, when=T0 + 2 * DAY)
    _append(
        store,
        run,
        bob,
        _mail("lunch", "see you at noon", cc="Alice Liddell <alice@wonder.test>"),
        when=T0 + 3 * DAY,
    )
    page = run(store.search.search(bob.id, SearchQuery(text="müller")))
    assert page.hits == [] and page.pending == 4  # not indexed yet: and the page says so
    _index_all(store, run)

    def find(**criteria) -> list[str]:
        page = run(store.search.search(bob.id, SearchQuery(**criteria)))
        assert page.pending == 0
        return _subjects(page)

    assert find(from_="muller") == ["Grüße aus Köln"]
    assert find(from_="JÜRG rem") == ["Grüße aus Köln"]  # word prefixes, every one needed
    assert find(from_="jürgen carol") == []
    assert find(subject="köln") == ["Grüße aus Köln"]
    assert find(subject="rhein") == []  # a body word, not in the subject
    assert find(body="rhein") == ["Grüße aus Köln"]
    assert find(body="квартальный") == ["report"]
    assert find(to="alice") == ["lunch"]  # Cc counts as a recipient
    assert find(to="wonder.test") == ["lunch"]
    assert find(text="bob") == ["lunch", "letter", "report", "Grüße aus Köln"]  # newest first
    assert find(text="invisibleword") == [] and find(text="scriptword") == []
    assert find(text="café opening") == ["letter"]
    assert find(has_attachment=True) == ["report"]
    assert find(has_attachment=False, text="bob", oldest_first=True) == ["Grüße aus Köln", "letter", "lunch"]
    assert find(since=T0 + DAY, before=T0 + 3 * DAY) == ["letter", "report"]
    assert find(text="noon", since=T0 + 4 * DAY) == []


def test_flags_and_mailbox_scope(store, run, bob):
    _append(store, run, bob, _mail("one", "alpha"), flags=["\\Seen"], when=T0)
    _append(store, run, bob, _mail("two", "alpha"), flags=["\\Seen", "\\Flagged"], when=T0 + 1)
    _append(store, run, bob, _mail("three", "alpha"), mailbox="Archive", flags=["$Work_1"], when=T0 + 2)
    _append(store, run, bob, _mail("four", "alpha"), mailbox="Archive", flags=["$Work11"], when=T0 + 3)
    _index_all(store, run)
    archive = run(store.mailboxes.get(bob.id, "Archive"))

    def find(**criteria) -> list[str]:
        return _subjects(run(store.search.search(bob.id, SearchQuery(**criteria))))

    assert find(body="alpha") == ["four", "three", "two", "one"]
    assert find(body="alpha", mailbox_id=archive.id) == ["four", "three"]
    assert find(flags=frozenset({"\\Seen"})) == ["two", "one"]
    assert find(flags=frozenset({"\\Seen"}), without_flags=frozenset({"\\Flagged"})) == ["one"]
    assert find(without_flags=frozenset({"\\Seen"})) == ["four", "three"]
    assert find(flags=frozenset({"$Work_1"})) == ["three"]  # "_" is no wildcard
    hit = run(store.search.search(bob.id, SearchQuery(subject="three"))).hits[0]
    assert (hit.mailbox, hit.mailbox_id, hit.flags) == ("Archive", archive.id, frozenset({"$Work_1"}))


def test_pages_by_keyset_and_offset_cover_every_match_once(store, run, bob):
    for n in range(23):
        # Pairs arriving at the same second: the order within them is the arrival order.
        _append(store, run, bob, _mail(f"m{n}", "common words"), when=T0 + n // 2)
    _index_all(store, run)
    seen, after = [], None
    while True:
        page = run(store.search.search(bob.id, SearchQuery(body="common"), limit=5, after=after))
        seen += _subjects(page)
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == [f"m{n}" for n in reversed(range(23))]
    by_offset = [
        _subjects(run(store.search.search(bob.id, SearchQuery(body="common"), limit=5, offset=o)))
        for o in range(0, 25, 5)
    ]
    assert sum(by_offset, []) == seen
    oldest = run(store.search.search(bob.id, SearchQuery(body="common", oldest_first=True), limit=4))
    later = run(
        store.search.search(
            bob.id, SearchQuery(body="common", oldest_first=True), limit=4, after=oldest.next_after
        )
    )
    assert _subjects(oldest) + _subjects(later) == [f"m{n}" for n in range(8)]


def test_another_accounts_messages_and_mailboxes_are_never_found(store, run, bob, eve):
    shared = _mail("shared secret", "the same content in two accounts")
    _append(store, run, bob, shared)
    _append(store, run, eve, shared)  # one messages row, two owners
    _append(store, run, eve, _mail("eve only", "secret plans"))
    _index_all(store, run)
    bobs = run(store.search.search(bob.id, SearchQuery(text="secret")))
    assert [(hit.subject, hit.mailbox) for hit in bobs.hits] == [("shared secret", "INBOX")]
    eves_inbox = run(store.mailboxes.get(eve.id, "INBOX"))
    assert run(store.search.search(bob.id, SearchQuery(text="secret", mailbox_id=eves_inbox.id))).hits == []
    assert run(store.search.search(bob.id, SearchQuery(mailbox_id=eves_inbox.id))).hits == []


def test_delivered_mail_is_indexed_and_expunged_mail_leaves_the_index(store, run, bob):
    run(
        store.delivery.accept(
            Envelope(sender="a@remote.test", local=["bob@example.org"]), _mail("delivered", "zebra crossing")
        )
    )
    _index_all(store, run)
    assert run(store.search.pending()) == 0
    assert _subjects(run(store.search.search(bob.id, SearchQuery(body="zebra")))) == ["delivered"]
    inbox = run(store.mailboxes.get(bob.id, "INBOX"))
    (hit,) = run(store.search.search(bob.id, SearchQuery(body="zebra"))).hits
    run(store.mailboxes.delete_messages(bob.id, inbox.id, [hit.uid]))
    run(compact(store.db, store.blobs))
    # A new message with the same words: only it is found, the old entry left with its row.
    _append(store, run, bob, _mail("again", "zebra"), when=time.time())
    _index_all(store, run)
    assert _subjects(run(store.search.search(bob.id, SearchQuery(body="zebra")))) == ["again"]
    assert _index_entries(store) == 1


def _index_entries(store) -> int:
    from sqlalchemy import text

    return store.db.read_sync(lambda tx: tx.conn.execute(text("SELECT count(*) FROM message_text")).scalar())


def test_a_running_servers_indexer_makes_mail_from_smtp_searchable(server):
    """Over the wire: SMTP accepts, the background indexer (not the test) fills the index."""
    account = server.add_user("dana@example.test")
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"]) as client:
        client.sendmail(
            "x@remote.test",
            ["dana@example.test"],
            _mail("Über den Fluss", "Die Fähre fährt um acht.", to="dana@example.test"),
        )
    deadline = time.monotonic() + 60
    while True:
        page = server.call(server.store.search.search(account.id, SearchQuery(text="über fahre")))
        if page.hits or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [hit.subject for hit in page.hits] == ["Über den Fluss"]
    assert page.pending == 0
