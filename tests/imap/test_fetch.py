"""FETCH response bytes for every data item (RFC 9051 6.4.5 / 7.5.2, RFC 3516, RFC 7162, RFC 8474,
RFC 8514), built from real messages through an in-memory loader."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from tests.imap.message_samples import (
    ATTACHMENT_BYTES,
    LATIN1,
    MIXED,
    NESTED,
    PLAIN,
    Mailbox,
    parse,
    ref,
    run,
)
from tidings.imap.fetch import encode_body, fetch_needs, fetch_responses, seen_targets
from tidings.imap.message_data import StoreMessageLoader, contexts_for, email_id
from tidings.imap.states import No

PLAIN_ENVELOPE = (
    b'ENVELOPE ("Mon, 7 Feb 1994 21:52:25 -0800" "afternoon meeting" '
    b'(("Fred Foobar" NIL "foobar" "Blurdybloop.example")) '
    b'(("Fred Foobar" NIL "foobar" "Blurdybloop.example")) '
    b'(("Fred Foobar" NIL "foobar" "Blurdybloop.example")) '
    b'((NIL NIL "mooch" "owatagu.siam.edu.example")) NIL NIL NIL '
    b'"<B27397-0100000@Blurdybloop.example>")'
)


def fetch(mailbox: Mailbox, line: str, **options) -> list[bytes]:
    command = parse(line)

    async def collect() -> list[bytes]:
        return [
            b"".join(response)
            async for response in fetch_responses(
                command.items,
                mailbox.contexts,
                mailbox.loader,
                uid=command.uid,
                changed_since=command.changed_since,
                **options,
            )
        ]

    return run(collect())


def one(raw: bytes, line: str, **ref_options) -> bytes:
    [response] = fetch(Mailbox([(ref(1, raw, **ref_options), raw)]), line)
    return response


# --------------------------------------------------------------------------- simple attributes


def test_all_macro_answers_flags_internaldate_size_and_the_rfc3501_envelope():
    response = one(PLAIN, "a FETCH 1 ALL", flags=["\\Seen", "$Important"], internal="1994-02-08 05:52:25")
    assert response == (
        b'* 1 FETCH (FLAGS ($Important \\Seen) INTERNALDATE "08-Feb-1994 05:52:25 +0000" '
        b"RFC822.SIZE %d " % len(PLAIN) + PLAIN_ENVELOPE + b")\r\n"
    )


def test_uid_modseq_emailid_threadid_and_savedate():
    response = one(
        PLAIN,
        "a FETCH 1 (UID MODSEQ EMAILID THREADID SAVEDATE)",
        modseq=917162500,
        message_id=0x2A,
        saved="2024-03-01 10:11:12",
    )
    assert response == (
        b"* 1 FETCH (UID 1 MODSEQ (917162500) EMAILID (E2a) THREADID NIL "
        b'SAVEDATE "01-Mar-2024 10:11:12 +0000")\r\n'
    )


def test_emailid_is_the_same_for_the_same_stored_message_in_two_mailboxes():
    first = ref(4, PLAIN, message_id=77)
    copy = ref(90, PLAIN, message_id=77)
    assert email_id(first) == email_id(copy) == "E4d"
    assert email_id(ref(5, PLAIN, message_id=78)) != email_id(first)


def test_flags_omit_recent_and_an_unflagged_message_has_an_empty_list():
    assert one(PLAIN, "a FETCH 1 FLAGS") == b"* 1 FETCH (FLAGS ())\r\n"
    assert (
        one(PLAIN, "a FETCH 1 FLAGS", flags=["\\Recent", "\\Answered"])
        == b"* 1 FETCH (FLAGS (\\Answered))\r\n"
    )


def test_items_answer_in_the_order_requested_and_duplicates_once():
    response = one(PLAIN, "a FETCH 1 (RFC822.SIZE FLAGS UID RFC822.SIZE)", flags=["\\Draft"])
    assert response == b"* 1 FETCH (RFC822.SIZE %d FLAGS (\\Draft) UID 1)\r\n" % len(PLAIN)


def test_uid_fetch_always_includes_uid_first_when_not_requested():
    mailbox = Mailbox([(ref(7, PLAIN), PLAIN), (ref(9, PLAIN, flags=["\\Seen"]), PLAIN)])
    assert fetch(mailbox, "a UID FETCH 1:* FLAGS") == [
        b"* 1 FETCH (UID 7 FLAGS ())\r\n",
        b"* 2 FETCH (UID 9 FLAGS (\\Seen))\r\n",
    ]


def test_uid_fetch_keeps_a_requested_uid_where_it_was_asked_for():
    mailbox = Mailbox([(ref(7, PLAIN), PLAIN)])
    assert fetch(mailbox, "a UID FETCH 7 (FLAGS UID)") == [b"* 1 FETCH (FLAGS () UID 7)\r\n"]


# --------------------------------------------------------------------------- structure


def test_body_and_bodystructure_of_a_multipart_write_parts_side_by_side():
    response = one(MIXED, "a FETCH 1 (BODY BODYSTRUCTURE)")
    assert response == (
        b'* 1 FETCH (BODY (("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 42 1)'
        b'("APPLICATION" "OCTET-STREAM" ("NAME" "data.bin") NIL NIL "BASE64" 8)'
        b'("TEXT" "PLAIN" NIL NIL NIL "X-UUENCODE" 11 1) "MIXED") '
        b'BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 42 1 NIL NIL NIL NIL)'
        b'("APPLICATION" "OCTET-STREAM" ("NAME" "data.bin") NIL NIL "BASE64" 8 NIL '
        b'("ATTACHMENT" ("FILENAME" "data.bin")) NIL NIL)'
        b'("TEXT" "PLAIN" NIL NIL NIL "X-UUENCODE" 11 1 NIL NIL NIL NIL) '
        b'"MIXED" ("BOUNDARY" "b1") NIL NIL NIL))\r\n'
    )


def test_body_of_a_message_rfc822_part_nests_its_envelope_and_body():
    response = one(NESTED, "a FETCH 1 BODY")
    assert response == (
        b'* 1 FETCH (BODY (("TEXT" "PLAIN" NIL NIL NIL "7BIT" 10 1)'
        b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 279 '
        b'("Tue, 02 Jan 2024 09:00:00 +0000" "plans" (("Zed" NIL "zed" "example.net")) '
        b'(("Zed" NIL "zed" "example.net")) (("Zed" NIL "zed" "example.net")) NIL NIL NIL NIL NIL) '
        b'(("TEXT" "PLAIN" NIL NIL NIL "7BIT" 20 1)("TEXT" "HTML" NIL NIL NIL "7BIT" 34 1) "ALTERNATIVE") '
        b"14) "
        b'"MIXED"))\r\n'
    )


def test_encode_body_handles_a_bare_single_part_and_a_multipart_without_extension_data():
    assert (
        encode_body(["TEXT", "PLAIN", None, None, None, "7BIT", 0, 0])
        == b'("TEXT" "PLAIN" NIL NIL NIL "7BIT" 0 0)'
    )
    single = ["TEXT", "PLAIN", None, None, None, "7BIT", 1, 1]
    assert encode_body([single, single, "MIXED"]) == (
        b'(("TEXT" "PLAIN" NIL NIL NIL "7BIT" 1 1)("TEXT" "PLAIN" NIL NIL NIL "7BIT" 1 1) "MIXED")'
    )


def test_envelope_with_8bit_header_goes_out_as_utf8_literal_or_utf8_quoted_when_enabled():
    mailbox = Mailbox([(ref(1, LATIN1), LATIN1)])
    [plain_client] = fetch(mailbox, "a FETCH 1 ENVELOPE")
    replacement = "\ufffd".encode()
    subject = b"Gr" + replacement * 2 + b"e"
    assert b" {%d}\r\n%s (({" % (len(subject), subject) in plain_client
    [utf8_client] = fetch(mailbox, "a FETCH 1 ENVELOPE", utf8=True)
    assert b' "%s" (("J%srg" NIL "joerg" "example.de"))' % (subject, replacement) in utf8_client


def test_envelope_keeps_rfc2047_encoded_words_for_the_client_to_decode():
    from tests.imap.message_samples import ENCODED

    response = one(ENCODED, "a FETCH 1 ENVELOPE")
    assert response.startswith(b'* 1 FETCH (ENVELOPE (NIL "=?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?=" ')
    assert b'(("=?ISO-8859-1?Q?J=F6rg_M=FCller?=" NIL "mueller" "example.de"))' in response


# --------------------------------------------------------------------------- body sections


def test_rfc822_items_are_the_whole_message_its_header_and_its_text():
    header_end = PLAIN.index(b"\r\n\r\n") + 4
    response = one(PLAIN, "a FETCH 1 (RFC822.HEADER RFC822.TEXT RFC822)")
    header, text = PLAIN[:header_end], PLAIN[header_end:]
    assert response == (
        b"* 1 FETCH (RFC822.HEADER {%d}\r\n%s RFC822.TEXT {%d}\r\n%s RFC822 {%d}\r\n%s)\r\n"
        % (len(header), header, len(text), text, len(PLAIN), PLAIN)
    )


def test_body_peek_answers_with_the_body_label_and_header_fields_keep_their_spelling():
    response = one(PLAIN, "a FETCH 1 (BODY.PEEK[HEADER.FIELDS (From subject)])")
    expected = b"From: Fred Foobar <foobar@Blurdybloop.example>\r\nSubject: afternoon meeting\r\n\r\n"
    assert response == b"* 1 FETCH (BODY[HEADER.FIELDS (From subject)] {%d}\r\n%s)\r\n" % (
        len(expected),
        expected,
    )


def test_header_fields_not_leaves_out_the_named_fields():
    response = one(
        MIXED, "a FETCH 1 BODY.PEEK[HEADER.FIELDS.NOT (X-Priority Received References In-Reply-To)]"
    )
    data = response[response.index(b"}\r\n") :]
    assert b"X-Priority" not in data and b"References" not in data and b"In-Reply-To" not in data
    assert b"Message-ID: <mixed@example.org>\r\n" in data
    assert response.startswith(
        b"* 1 FETCH (BODY[HEADER.FIELDS.NOT (X-Priority Received References In-Reply-To)] {"
    )
    assert response.endswith(b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n)\r\n')


def test_partial_fetch_answers_with_the_origin_only_and_truncates():
    response = one(PLAIN, "a FETCH 1 (BODY.PEEK[]<0.10> BODY.PEEK[TEXT]<6.3> BODY.PEEK[]<100000.5>)")
    assert (
        response == b'* 1 FETCH (BODY[]<0> {10}\r\nDate: Mon, BODY[TEXT]<6> {3}\r\nJoe BODY[]<100000> "")\r\n'
    )


def test_partial_fetch_past_the_end_of_a_short_text_returns_what_there_is():
    text = PLAIN[PLAIN.index(b"\r\n\r\n") + 4 :]
    response = one(PLAIN, "a FETCH 1 BODY.PEEK[TEXT]<50.2048>")
    assert response == b"* 1 FETCH (BODY[TEXT]<50> {%d}\r\n%s)\r\n" % (len(text) - 50, text[50:])


def test_part_sections_of_a_multipart_and_their_mime_headers():
    response = one(MIXED, "a FETCH 1 (BODY.PEEK[1.MIME] BODY.PEEK[2])")
    assert response == (
        b"* 1 FETCH (BODY[1.MIME] {88}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n BODY[2] {8}\r\nAAECAwD/)\r\n"
    )


def test_sections_inside_an_attached_message():
    response = one(
        NESTED, "a FETCH 1 (BODY.PEEK[2.HEADER.FIELDS (Subject)] BODY.PEEK[2.1] BODY.PEEK[2.2.MIME])"
    )
    assert response == (
        b"* 1 FETCH (BODY[2.HEADER.FIELDS (Subject)] {18}\r\nSubject: plans\r\n\r\n "
        b"BODY[2.1] {20}\r\nlunch at the harbour BODY[2.2.MIME] {27}\r\nContent-Type: text/html\r\n\r\n)\r\n"
    )


def test_attached_message_text_is_its_body_without_its_header():
    response = one(NESTED, "a FETCH 1 BODY.PEEK[2.TEXT]")
    assert response.startswith(b"* 1 FETCH (BODY[2.TEXT] {140}\r\n--inner\r\nContent-Type: text/plain\r\n")
    assert response.endswith(b"--inner--)\r\n")


def test_sections_that_do_not_exist_or_mean_nothing_are_empty_strings():
    response = one(NESTED, "a FETCH 1 (BODY.PEEK[9] BODY.PEEK[1.HEADER] BODY.PEEK[3.1.MIME])")
    assert response == b'* 1 FETCH (BODY[9] "" BODY[1.HEADER] "" BODY[3.1.MIME] "")\r\n'


# --------------------------------------------------------------------------- BINARY (RFC 3516)


def test_binary_decodes_the_transfer_encoding_and_uses_literal8_for_nul():
    response = one(MIXED, "a FETCH 1 (BINARY.PEEK[1] BINARY.PEEK[2] BINARY.SIZE[2] BINARY.SIZE[1])")
    text = "The report is attached. Café at noon?".encode()
    assert response == (
        b"* 1 FETCH (BINARY[1] {%d}\r\n%s BINARY[2] ~{6}\r\n%s BINARY.SIZE[2] 6 BINARY.SIZE[1] %d)\r\n"
        % (len(text), text, ATTACHMENT_BYTES, len(text))
    )


def test_binary_partial_counts_decoded_octets():
    response = one(MIXED, "a FETCH 1 BINARY.PEEK[2]<3.2>")
    assert response == b"* 1 FETCH (BINARY[2]<3> ~{2}\r\n\x03\x00)\r\n"
    assert one(MIXED, "a FETCH 1 BINARY.PEEK[2]<5.10>") == b"* 1 FETCH (BINARY[2]<5> {1}\r\n\xff)\r\n"


def test_binary_of_the_whole_message_needs_no_decoding():
    assert one(PLAIN, "a FETCH 1 BINARY.SIZE[]") == b"* 1 FETCH (BINARY.SIZE[] %d)\r\n" % len(PLAIN)


def test_binary_of_an_unknown_encoding_fails_with_unknown_cte():
    with pytest.raises(No) as failure:
        one(MIXED, "a FETCH 1 BINARY.PEEK[3]")
    assert failure.value.code == "UNKNOWN-CTE"
    with pytest.raises(No) as failure:
        one(MIXED, "a FETCH 1 BINARY.SIZE[3]")
    assert failure.value.code == "UNKNOWN-CTE"


# --------------------------------------------------------------------------- \Seen, CONDSTORE


def test_non_peek_body_fetches_set_seen_on_unseen_messages_of_a_writable_mailbox():
    mailbox = Mailbox(
        [(ref(1, PLAIN), PLAIN), (ref(2, PLAIN, flags=["\\Seen"]), PLAIN), (ref(3, PLAIN), PLAIN)]
    )
    contexts = mailbox.contexts

    def targets(line: str, read_only: bool = False) -> list[int]:
        return [c.uid for c in seen_targets(parse(line).items, contexts, read_only=read_only)]

    assert targets("a FETCH 1:3 BODY[]") == [1, 3]
    assert targets("a FETCH 1:3 BINARY[1]") == [1, 3]
    assert targets("a FETCH 1:3 RFC822") == [1, 3]
    assert targets("a FETCH 1:3 RFC822.TEXT") == [1, 3]
    assert targets("a FETCH 1:3 (FLAGS BODY.PEEK[] BINARY.PEEK[1] RFC822.HEADER ENVELOPE)") == []
    assert targets("a FETCH 1:3 BODY[]", read_only=True) == []


def test_messages_whose_seen_flag_was_just_set_report_flags_and_under_condstore_modseq():
    seen = ref(1, PLAIN, flags=["\\Seen"], modseq=12)
    mailbox = Mailbox([(seen, PLAIN), (ref(2, PLAIN, flags=["\\Seen"], modseq=3), PLAIN)])
    responses = fetch(mailbox, "a FETCH 1:2 BODY[TEXT]<0.5>", flags_changed={1}, condstore=True)
    assert responses == [
        b"* 1 FETCH (BODY[TEXT]<0> {5}\r\nHello FLAGS (\\Seen) MODSEQ (12))\r\n",
        b"* 2 FETCH (BODY[TEXT]<0> {5}\r\nHello)\r\n",
    ]
    [without_condstore] = fetch(
        Mailbox([(seen, PLAIN)]), "a FETCH 1 (FLAGS BODY[TEXT]<0.5>)", flags_changed={1}
    )
    assert without_condstore == b"* 1 FETCH (FLAGS (\\Seen) BODY[TEXT]<0> {5}\r\nHello)\r\n"


def test_changedsince_keeps_only_newer_messages_and_adds_modseq():
    mailbox = Mailbox([(ref(1, PLAIN, modseq=5), PLAIN), (ref(2, PLAIN, modseq=9), PLAIN)])
    assert fetch(mailbox, "a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 5)") == [
        b"* 2 FETCH (UID 2 FLAGS () MODSEQ (9))\r\n"
    ]


# --------------------------------------------------------------------------- loading


@pytest.mark.parametrize(
    ("items", "summary", "blob"),
    [
        ("(FLAGS UID MODSEQ INTERNALDATE RFC822.SIZE EMAILID SAVEDATE)", False, False),
        ("(ENVELOPE BODYSTRUCTURE)", True, False),
        ("BODY.PEEK[]", False, True),
        ("RFC822", False, True),
        ("BODY.PEEK[1]", True, True),
        ("RFC822.HEADER", True, True),
        ("BINARY.SIZE[1]", True, True),
    ],
)
def test_only_what_the_items_need_is_loaded(items, summary, blob):
    mailbox = Mailbox([(ref(1, MIXED), MIXED), (ref(2, MIXED), MIXED)])
    fetch(mailbox, f"a FETCH 1:2 {items}")
    assert (mailbox.loader.summary_loads > 0, mailbox.loader.blob_loads > 0) == (summary, blob)
    needs = fetch_needs(parse(f"a FETCH 1 {items}").items)
    assert (needs.summary, needs.blob) == (summary, blob)


def test_a_message_gone_from_the_store_is_skipped_and_reported_as_expungeissued():
    gone = dataclasses.replace(ref(2, PLAIN), blob_hash="missing")
    mailbox = Mailbox([(ref(1, PLAIN), PLAIN), (ref(3, PLAIN), PLAIN)])
    mailbox.contexts.insert(1, dataclasses.replace(mailbox.contexts[0], seq=2, ref=gone))
    mailbox.contexts[2] = dataclasses.replace(mailbox.contexts[2], seq=3)
    seen: list[bytes] = []

    async def collect() -> None:
        async for response in fetch_responses(
            parse("a FETCH 1:3 BODY.PEEK[]<0.4>").items, mailbox.contexts, mailbox.loader
        ):
            seen.append(b"".join(response))

    with pytest.raises(No) as failure:
        run(collect())
    assert failure.value.code == "EXPUNGEISSUED"
    assert seen == [b"* 1 FETCH (BODY[]<0> {4}\r\nDate)\r\n", b"* 3 FETCH (BODY[]<0> {4}\r\nDate)\r\n"]


# --------------------------------------------------------------------------- the store loader


@pytest.fixture
def stored_mailbox(tmp_path):
    """A store opened directly with one account holding MIXED and PLAIN in its INBOX."""
    from tests.support.running import fresh_database_url
    from tidings.config import Config
    from tidings.store import Store

    loop = asyncio.new_event_loop()
    store = Store.open(Config(data_dir=tmp_path / "data", database=fresh_database_url(), listen={"smtp": []}))

    async def fill():
        await store.accounts.add_domain("example.org")
        account = await store.accounts.add_user("bob@example.org", "secret pass 1")
        inbox = await store.mailboxes.get(account.id, "INBOX")
        await store.mailboxes.append(account.id, inbox.id, MIXED, ["\\Seen"])
        await store.mailboxes.append(account.id, inbox.id, PLAIN)
        _, refs = await store.mailboxes.messages(account.id, inbox.id)
        return account.id, refs

    account_id, refs = loop.run_until_complete(fill())
    yield store, account_id, refs, loop.run_until_complete
    store.close()
    loop.close()


def test_store_loader_serves_summaries_and_bytes_and_fetch_works_on_them(stored_mailbox):
    store, account_id, refs, run_on_loop = stored_mailbox
    loader = StoreMessageLoader(store.mailboxes, account_id)
    contexts = contexts_for(refs)

    async def go():
        command = parse("a UID FETCH 1:* (FLAGS BODYSTRUCTURE BINARY.PEEK[2])")
        return [b"".join(r) async for r in fetch_responses(command.items, contexts[:1], loader, uid=True)]

    [response] = run_on_loop(go())
    assert response.startswith(
        b'* 1 FETCH (UID 1 FLAGS (\\Seen) BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "utf-8")'
    )
    assert response.endswith(b"BINARY[2] ~{6}\r\n" + ATTACHMENT_BYTES + b")\r\n")
    summaries = run_on_loop(loader.summaries(refs))
    assert summaries[refs[1].message_id].subject == "afternoon meeting"
    assert run_on_loop(loader.blob(refs[1])) == PLAIN


def test_store_loader_leaves_out_messages_that_no_longer_exist(stored_mailbox):
    store, account_id, refs, run_on_loop = stored_mailbox
    loader = StoreMessageLoader(store.mailboxes, account_id)
    ghost = dataclasses.replace(refs[0], message_id=999_999, blob_hash="0" * 64)
    assert dict(run_on_loop(loader.summaries([ghost]))) == {}
    assert run_on_loop(loader.blob(ghost)) is None
