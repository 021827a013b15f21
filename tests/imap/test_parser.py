"""IMAP command parser: real command lines in, typed commands and errors out."""

from __future__ import annotations

import datetime

import pytest

from tidings.imap import commands as c
from tidings.imap.parser import ContinuationNeeded, ImapParser, ParseError, RawLine
from tidings.imap.sequence import SequenceRange, SequenceSet


def parse_all(data: bytes, **limits: int) -> list:
    return ImapParser(**limits).feed(data)


def parse_one(line: bytes) -> c.Command:
    events = parse_all(line)
    assert len(events) == 1, events
    assert isinstance(events[0], c.Command), events
    return events[0]


def error_of(line: bytes) -> ParseError:
    events = parse_all(line)
    assert len(events) == 1 and isinstance(events[0], ParseError), events
    return events[0]


def seqset(text: str) -> SequenceSet:
    return SequenceSet.parse(text)


# --------------------------------------------------------------------------- simple commands


@pytest.mark.parametrize(
    ("line", "cls"),
    [
        (b"a CAPABILITY\r\n", c.Capability),
        (b"a noop\r\n", c.Noop),
        (b"A023 LOGOUT\r\n", c.Logout),
        (b"a1 StartTLS\r\n", c.StartTls),
        (b"a CHECK\r\n", c.Check),
        (b"a CLOSE\r\n", c.Close),
        (b"a UNSELECT\r\n", c.Unselect),
        (b"a EXPUNGE\r\n", c.Expunge),
        (b"a NAMESPACE\r\n", c.Namespace),
        (b"a IDLE\r\n", c.Idle),
    ],
)
def test_commands_without_arguments_are_case_insensitive(line: bytes, cls: type) -> None:
    command = parse_one(line)
    assert type(command) is cls
    assert command.tag == line.split()[0].decode()


def test_command_name_classvar_is_canonical() -> None:
    assert c.Fetch.name == "FETCH"
    assert c.Examine.name == "EXAMINE"
    assert parse_one(b"x uid fetch 1 flags\r\n").name == "FETCH"


def test_bare_lf_line_ending_is_accepted() -> None:
    assert isinstance(parse_one(b"a NOOP\n"), c.Noop)


def test_arguments_after_argumentless_command_are_rejected() -> None:
    error = error_of(b"a NOOP now\r\n")
    assert error.tag == "a" and not error.fatal


def test_unknown_command_is_reported_with_its_tag() -> None:
    assert error_of(b"t1 FROBNICATE x\r\n") == ParseError("t1", "Unknown command")


def test_unknown_uid_subcommand_is_unknown_command() -> None:
    assert error_of(b"t1 UID NOOP\r\n").text == "Unknown command"


def test_empty_lines_between_commands_are_ignored() -> None:
    assert parse_all(b"\r\n\r\na NOOP\r\n") == [c.Noop(tag="a")]


# --------------------------------------------------------------------------- authentication


def test_login_with_atoms_quoted_and_literal() -> None:
    parser = ImapParser()
    assert parser.feed(b'a001 LOGIN SMITH "sesame \\"x\\""\r\n') == [
        c.Login(tag="a001", username="SMITH", password='sesame "x"')
    ]
    assert parser.paused  # the session raises the literal limits after a successful login
    parser.resume()
    events = parser.feed(b"a002 LOGIN {5}\r\n")
    assert events == [ContinuationNeeded()]
    assert parser.feed(b"fred\xc3 {4+}\r\npass\r\n") == [ParseError("a002", "Invalid UTF-8 in user name")]


def test_literal_limits_can_be_raised_for_the_commands_that_follow() -> None:
    parser = ImapParser(max_literal=100, max_command=150)
    assert parser.feed(b"a LOGIN {200+}\r\n") == [
        ParseError("a", "Literal too large", code="TOOBIG", fatal=True, status="BAD")
    ]
    parser = ImapParser(max_literal=100, max_command=150)
    assert parser.feed(b"a LOGIN {80+}\r\n" + b"u" * 80 + b" {80+}\r\n") == [
        ParseError("a", "Literal too large", code="TOOBIG", status="BAD")
    ]
    parser.feed(b"p" * 80 + b"\r\n")
    parser.set_literal_limits(1000)
    assert parser.feed(b"b LOGIN {300+}\r\n" + b"u" * 300 + b" {300+}\r\n" + b"p" * 300 + b"\r\n") == [
        c.Login(tag="b", username="u" * 300, password="p" * 300)
    ]


def test_login_password_with_utf8() -> None:
    command = parse_one('a LOGIN "jörg" "pässwörd"\r\n'.encode())
    assert command == c.Login(tag="a", username="jörg", password="pässwörd")


def test_login_password_is_hidden_from_repr() -> None:
    assert "sesame" not in repr(parse_one(b"a LOGIN smith sesame\r\n"))


def test_authenticate_without_initial_response() -> None:
    assert parse_one(b"a AUTHENTICATE plain\r\n") == c.Authenticate(tag="a", mechanism="PLAIN")


def test_authenticate_with_sasl_ir() -> None:
    command = parse_one(b"a AUTHENTICATE PLAIN AGZyZWQAc2VjcmV0\r\n")
    assert command == c.Authenticate(tag="a", mechanism="PLAIN", initial_response=b"\x00fred\x00secret")


def test_authenticate_with_empty_initial_response() -> None:
    command = parse_one(b"a AUTHENTICATE EXTERNAL =\r\n")
    assert command == c.Authenticate(tag="a", mechanism="EXTERNAL", initial_response=b"")


def test_authenticate_with_invalid_base64_is_bad() -> None:
    assert error_of(b"a AUTHENTICATE PLAIN AGZy!ZWQ\r\n").tag == "a"


def test_authenticate_pauses_until_session_asks_for_raw_lines() -> None:
    parser = ImapParser()
    events = parser.feed(b"a AUTHENTICATE PLAIN\r\nAGZyZWQAc2VjcmV0\r\nb NOOP\r\n")
    assert events == [c.Authenticate(tag="a", mechanism="PLAIN")]
    assert parser.paused
    parser.expect_raw_line()
    assert parser.feed(b"") == [RawLine(b"AGZyZWQAc2VjcmV0")]
    assert parser.feed(b"") == []  # still paused after the raw line
    parser.resume()
    assert parser.feed(b"") == [c.Noop(tag="b")]


def test_sasl_cancel_line_is_returned_raw() -> None:
    parser = ImapParser()
    parser.feed(b"a AUTHENTICATE LOGIN\r\n")
    parser.expect_raw_line()
    assert parser.feed(b"*\r\n") == [RawLine(b"*")]


def test_raw_line_ignores_literal_markers() -> None:
    parser = ImapParser()
    parser.feed(b"a AUTHENTICATE X\r\n")
    parser.expect_raw_line()
    assert parser.feed(b"abc {5}\r\n") == [RawLine(b"abc {5}")]


def test_idle_done_is_read_as_raw_line() -> None:
    parser = ImapParser()
    assert parser.feed(b"a IDLE\r\n") == [c.Idle(tag="a")]
    parser.expect_raw_line()
    assert parser.feed(b"DO") == []
    assert parser.feed(b"NE\r\nb NOOP\r\n") == [RawLine(b"DONE")]
    parser.resume()
    assert parser.feed(b"") == [c.Noop(tag="b")]


def test_starttls_pauses_and_discards_injected_plaintext() -> None:
    parser = ImapParser()
    events = parser.feed(b"a STARTTLS\r\nb LOGIN evil evil\r\n")
    assert events == [c.StartTls(tag="a")]
    assert parser.discard_buffered() == len(b"b LOGIN evil evil\r\n")
    parser.resume()
    assert parser.feed(b"c NOOP\r\n") == [c.Noop(tag="c")]


def test_flood_while_paused_is_fatal() -> None:
    parser = ImapParser(max_line=100)
    parser.feed(b"a IDLE\r\n")
    assert parser.feed(b"x" * 60) == []
    events = parser.feed(b"x" * 60)
    assert len(events) == 1 and events[0].fatal
    assert parser.closed
    assert parser.feed(b"b NOOP\r\n") == []


def test_commands_pipelined_after_idle_done_are_kept_for_after_resume() -> None:
    parser = ImapParser(max_line=100)
    parser.feed(b"a IDLE\r\n")
    parser.expect_raw_line()
    events = parser.feed(b"DONE\r\n" + b"b APPEND INBOX {500+}\r\n" + b"x" * 500 + b"\r\n")
    assert events == [RawLine(b"DONE")]
    parser.resume()
    assert isinstance(parser.feed(b"")[0], c.Append)


def test_overlong_raw_line_is_an_error_and_is_discarded() -> None:
    parser = ImapParser(max_line=50)
    parser.feed(b"a AUTHENTICATE PLAIN\r\n")
    parser.expect_raw_line()
    events = parser.feed(b"A" * 80 + b"\r\n")
    assert events == [ParseError(None, "Line too long")]
    parser.resume()
    assert parser.feed(b"b NOOP\r\n") == [c.Noop(tag="b")]


def test_enable_lists_capabilities_upper_case() -> None:
    assert parse_one(b"a ENABLE condstore qresync UTF8=ACCEPT\r\n") == c.Enable(
        tag="a", capabilities=("CONDSTORE", "QRESYNC", "UTF8=ACCEPT")
    )


# --------------------------------------------------------------------------- mailboxes


def test_select_plain_and_examine_is_read_only() -> None:
    select = parse_one(b"A142 SELECT INBOX\r\n")
    examine = parse_one(b'A932 EXAMINE "blurdybloop"\r\n')
    assert select == c.Select(tag="A142", mailbox="INBOX")
    assert isinstance(examine, c.Examine) and examine.mailbox == "blurdybloop"
    assert examine.read_only and not select.read_only


def test_select_condstore() -> None:
    assert parse_one(b"a SELECT INBOX (CONDSTORE)\r\n") == c.Select(tag="a", mailbox="INBOX", condstore=True)


def test_select_qresync_from_rfc7162() -> None:
    command = parse_one(b"A02 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\r\n")
    assert command.qresync == c.QresyncParameters(
        uidvalidity=67890007, modseq=20050715194045000, known_uids=seqset("41,43:211,214:541")
    )


def test_select_qresync_with_sequence_match_data() -> None:
    command = parse_one(
        b"B04 SELECT INBOX (QRESYNC (67890007 90060115194045000 1:29997 "
        b"(5000,7500,9000 7000,12000,15000)))\r\n"
    )
    assert command.qresync.known_uids == seqset("1:29997")
    assert command.qresync.sequence_match == (seqset("5000,7500,9000"), seqset("7000,12000,15000"))


def test_select_qresync_with_only_sequence_match_data() -> None:
    command = parse_one(b"a SELECT INBOX (QRESYNC (1 2 (1:3 5:7)))\r\n")
    assert command.qresync == c.QresyncParameters(1, 2, None, (seqset("1:3"), seqset("5:7")))


@pytest.mark.parametrize(
    "line",
    [
        b"a SELECT INBOX (FOO)\r\n",
        b"a SELECT INBOX ()\r\n",
        b"a SELECT INBOX (QRESYNC (0 5))\r\n",
        b"a SELECT INBOX (QRESYNC (1))\r\n",
        b"a SELECT\r\n",
        b"a SELECT INBOX (CONDSTORE\r\n",
    ],
)
def test_bad_select_parameters(line: bytes) -> None:
    assert error_of(line).tag == "a"


def test_mailbox_name_as_literal_and_utf8() -> None:
    parser = ImapParser()
    assert parser.feed(b"a SELECT {9}\r\n") == [ContinuationNeeded()]
    assert parser.feed("Entwürfe".encode()) == []
    assert parser.feed(b"\r\n") == [c.Select(tag="a", mailbox="Entwürfe")]


def test_mailbox_names_are_not_mutf7_decoded() -> None:
    assert parse_one(b"a DELETE Entw&APw-rfe\r\n") == c.Delete(tag="a", mailbox="Entw&APw-rfe")


def test_create_with_special_use() -> None:
    command = parse_one(b"t1 CREATE MySpecialArchive (USE (\\Archive \\drafts))\r\n")
    assert command == c.Create(tag="t1", mailbox="MySpecialArchive", special_use=("\\Archive", "\\drafts"))


def test_create_rename_subscribe() -> None:
    assert parse_one(b"a CREATE owatagusiam/\r\n") == c.Create(tag="a", mailbox="owatagusiam/")
    assert parse_one(b'a RENAME "a b" c\r\n') == c.Rename(tag="a", mailbox="a b", new_name="c")
    assert parse_one(b"a SUBSCRIBE #news.x\r\n") == c.Subscribe(tag="a", mailbox="#news.x")
    assert parse_one(b"a UNSUBSCRIBE x\r\n") == c.Unsubscribe(tag="a", mailbox="x")


def test_list_classic() -> None:
    assert parse_one(b'A101 LIST "" ""\r\n') == c.List(tag="A101", reference="", patterns=("",))
    command = parse_one(b"A202 LIST ~/Mail/ %\r\n")
    assert command == c.List(tag="A202", reference="~/Mail/", patterns=("%",))
    assert not command.extended


def test_list_pattern_may_contain_wildcards_and_brackets() -> None:
    assert parse_one(b'a LIST "" INBOX.*]x\r\n').patterns == ("INBOX.*]x",)


def test_list_extended_from_rfc5258() -> None:
    command = parse_one(b'A04 LIST (SUBSCRIBED RECURSIVEMATCH) "" % RETURN (CHILDREN)\r\n')
    assert command == c.List(
        tag="A04",
        reference="",
        patterns=("%",),
        selection=frozenset({"SUBSCRIBED", "RECURSIVEMATCH"}),
        return_options=frozenset({"CHILDREN"}),
        extended=True,
    )


def test_list_with_several_patterns_and_status() -> None:
    command = parse_one(b'a LIST "" (INBOX "Sent Items") RETURN (SPECIAL-USE STATUS (MESSAGES UNSEEN))\r\n')
    assert command.patterns == ("INBOX", "Sent Items")
    assert command.return_options == {"SPECIAL-USE", "STATUS"}
    assert command.status_items == ("MESSAGES", "UNSEEN")
    assert command.extended


def test_list_with_empty_selection_is_extended() -> None:
    command = parse_one(b'a LIST () "" *\r\n')
    assert command.extended and command.selection == frozenset()


@pytest.mark.parametrize(
    "line",
    [
        b'a LIST (RECURSIVEMATCH) "" %\r\n',
        b'a LIST (BOGUS) "" %\r\n',
        b'a LIST "" % RETURN (BOGUS)\r\n',
        b'a LIST "" % FOO (CHILDREN)\r\n',
        b'a LIST ""\r\n',
    ],
)
def test_bad_list(line: bytes) -> None:
    assert error_of(line).tag == "a"


def test_lsub_and_namespace_and_status() -> None:
    assert parse_one(b'A002 LSUB "#news." "comp.mail.*"\r\n') == c.Lsub(
        tag="A002", reference="#news.", pattern="comp.mail.*"
    )
    assert parse_one(b"A042 STATUS blurdybloop (UIDNEXT MESSAGES size highestmodseq appendlimit)\r\n") == (
        c.Status(
            tag="A042",
            mailbox="blurdybloop",
            items=("UIDNEXT", "MESSAGES", "SIZE", "HIGHESTMODSEQ", "APPENDLIMIT"),
        )
    )


def test_status_unknown_item_or_empty_list_is_bad() -> None:
    assert error_of(b"a STATUS x (FOO)\r\n").tag == "a"
    assert error_of(b"a STATUS x ()\r\n").tag == "a"


# --------------------------------------------------------------------------- append


def test_append_from_rfc3501_example() -> None:
    message = (
        b"Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\nFrom: Fred Foobar <foobar@Blurdybloop.example>\r\n"
        b"Subject: afternoon meeting\r\n\r\nHello Joe, do you think we can meet at 3:30 tomorrow?\r\n"
    )
    parser = ImapParser()
    head = b"A003 APPEND saved-messages (\\Seen) {%d}\r\n" % len(message)
    assert parser.feed(head) == [ContinuationNeeded()]
    assert parser.feed(message + b"\r\n") == [
        c.Append(
            tag="A003", mailbox="saved-messages", messages=(c.AppendMessage(data=message, flags=("\\Seen",)),)
        )
    ]


def test_append_with_date_time_and_literal_plus() -> None:
    command = parse_one(b'a APPEND INBOX (\\Flagged $Label1) " 7-Feb-1994 21:52:25 -0800" {5+}\r\nhello\r\n')
    (message,) = command.messages
    assert message.flags == ("\\Flagged", "$Label1")
    assert message.internal_date == datetime.datetime(
        1994, 2, 7, 21, 52, 25, tzinfo=datetime.timezone(-datetime.timedelta(hours=8))
    )
    assert message.data == b"hello" and not message.binary


def test_append_without_flags_or_date() -> None:
    assert parse_one(b"a APPEND INBOX {3+}\r\nabc\r\n").messages == (c.AppendMessage(data=b"abc"),)


def test_multiappend_with_binary_literal() -> None:
    command = parse_one(b"a APPEND Drafts {3+}\r\nabc ~{4+}\r\n\x00\x01\xff\n () {0+}\r\n\r\n")
    assert command.messages == (
        c.AppendMessage(data=b"abc"),
        c.AppendMessage(data=b"\x00\x01\xff\n", binary=True),
        c.AppendMessage(data=b""),
    )


def test_append_utf8_extension() -> None:
    command = parse_one("a APPEND INBOX UTF8 (~{3+}\r\nüb)\r\n".encode())
    assert command.messages == (c.AppendMessage(data="üb".encode(), binary=True),)


def test_append_zero_length_synchronising_literal_still_needs_continuation() -> None:
    parser = ImapParser()
    assert parser.feed(b"a APPEND INBOX {0}\r\n") == [ContinuationNeeded()]
    assert parser.feed(b"\r\n") == [c.Append(tag="a", mailbox="INBOX", messages=(c.AppendMessage(data=b""),))]


def test_append_with_invalid_date_is_refused_before_the_literal() -> None:
    parser = ImapParser()
    events = parser.feed(b'a APPEND INBOX "31-Foo-2020 00:00:00 +0000" {5}\r\n')
    assert events == [ParseError("a", "Invalid date-time")]
    assert parser.feed(b"b NOOP\r\n") == [c.Noop(tag="b")]


def test_binary_literal_is_only_allowed_in_append() -> None:
    parser = ImapParser()
    events = parser.feed(b"a LOGIN ~{3}\r\n")
    assert len(events) == 1 and isinstance(events[0], ParseError)


def test_literal_after_which_the_line_continues() -> None:
    parser = ImapParser()
    assert parser.feed(b"a LOGIN {5}\r\n") == [ContinuationNeeded()]
    assert parser.feed(b"alice {6}\r\n") == [ContinuationNeeded()]
    assert parser.feed(b"secret\r\n") == [c.Login(tag="a", username="alice", password="secret")]


# --------------------------------------------------------------------------- literal limits


def test_oversize_synchronising_literal_is_refused_without_reading_it() -> None:
    parser = ImapParser(max_literal=10)
    events = parser.feed(b"a APPEND INBOX {11}\r\n")
    assert events == [ParseError("a", "Literal too large", code="TOOBIG")]
    assert events[0].reply_status == "NO" and not events[0].fatal
    assert parser.feed(b"b NOOP\r\n") == [c.Noop(tag="b")]


def test_oversize_non_synchronising_literal_is_fatal() -> None:
    parser = ImapParser(max_literal=10)
    events = parser.feed(b"a APPEND INBOX {11+}\r\n01234567890\r\n")
    assert events == [ParseError("a", "Literal too large", code="TOOBIG", fatal=True, status="BAD")]
    assert events[0].reply_status == "BAD"  # RFC 7888 section 4
    assert parser.closed


def test_literal_count_overflow_is_too_big() -> None:
    events = parse_all(b"a APPEND INBOX {99999999999999999999999999999}\r\n")
    assert events == [ParseError("a", "Literal too large", code="TOOBIG")]


def test_command_size_limit_covers_several_literals() -> None:
    # 22 bytes of line + 10 of literal + 7 of line + 10 of literal > 40: the second literal
    # counts the first one's bytes too.
    parser = ImapParser(max_literal=10, max_command=40)
    assert parser.feed(b"a APPEND INBOX {10+}\r\n0123456789 {10}\r\n") == [
        ParseError("a", "Literal too large", code="TOOBIG")
    ]
    assert parser.feed(b"b NOOP\r\n") == [c.Noop(tag="b")]


def test_too_many_literals_in_one_command_is_refused() -> None:
    parser = ImapParser(max_literals_per_command=2)
    events = parser.feed(b"a APPEND INBOX {1+}\r\nx {1+}\r\ny {1}\r\n")
    assert events[-1] == ParseError("a", "Literal too large", code="TOOBIG")


def test_rejected_non_synchronising_literal_is_skipped_and_parsing_resumes() -> None:
    events = parse_all(b"a FROB {5+}\r\n{9+}\n rest {3+}\r\nxyz\r\nb NOOP\r\n")
    assert events == [ParseError("a", "Unknown command"), c.Noop(tag="b")]


def test_unknown_command_with_literal_gets_no_continuation() -> None:
    assert parse_all(b"a FROB {5}\r\n") == [ParseError("a", "Unknown command")]


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "line",
    [
        b"a SELECT (INBOX\r\n",
        b"a FETCH 1 (FLAGS\r\n",
        b"a FETCH 1 FLAGS)\r\n",
        b"a SEARCH (ALL\r\n",
        b"a SEARCH ALL)\r\n",
        b"a LOGIN onlyuser\r\n",
        b"a LOGIN\r\n",
        b"a COPY 1\r\n",
        b"a RENAME x\r\n",
        b'a LOGIN "unterminated\r\n',
        b'a LOGIN "bad \\x escape" p\r\n',
        b"a NO\x00OP\r\n",
        b"a LOGIN us\x00er pw\r\n",
        b"a SELECT \xff\xfe\r\n",
        b"a FETCH 0 FLAGS\r\n",
        b"a FETCH 1:0 FLAGS\r\n",
        b"a FETCH 4294967296 FLAGS\r\n",
        b"a FETCH 1,,2 FLAGS\r\n",
        b"a STORE 1 FLAGS\r\n",
        b"a STORE 1 +LABELS foo\r\n",
        b"a APPEND INBOX\r\n",
        b"a APPEND INBOX (\\Seen)\r\n",
    ],
)
def test_malformed_commands_are_bad_and_keep_their_tag(line: bytes) -> None:
    parser = ImapParser()
    events = parser.feed(line + b"next NOOP\r\n")
    assert len(events) == 2, events
    assert isinstance(events[0], ParseError) and events[0].tag == "a" and not events[0].fatal
    assert events[0].reply_status == "BAD"
    assert events[1] == c.Noop(tag="next")


@pytest.mark.parametrize(
    "line",
    [
        b"+ NOOP\r\n",
        b"* NOOP\r\n",
        b"a+b NOOP\r\n",
        b"(a) NOOP\r\n",
        b'"a" NOOP\r\n',
        b"\xc3\xa4 NOOP\r\n",
        b"{3} NOOP\r\n",
        b" NOOP\r\n",
        b"a%b NOOP\r\n",
        b"\x00\x01\x02\r\n",
    ],
)
def test_invalid_tags_give_untagged_errors(line: bytes) -> None:
    events = parse_all(line + b"ok NOOP\r\n")
    assert events[0].tag is None and isinstance(events[0], ParseError)
    assert events[-1] == c.Noop(tag="ok")


def test_tag_may_contain_brackets_and_dots() -> None:
    assert parse_one(b"a]1.x NOOP\r\n").tag == "a]1.x"


def test_eight_bit_in_atom_is_bad() -> None:
    assert error_of(b"a FETCH 1 FL\xc3\xa4GS\r\n").tag == "a"
    assert error_of(b"a ENABLE \xff\r\n").tag == "a"


def test_overlong_line_is_reported_and_parsing_resumes() -> None:
    parser = ImapParser(max_line=100)
    events = parser.feed(b"a LOGIN " + b"x" * 200 + b" y\r\nb NOOP\r\n")
    assert events == [ParseError("a", "Line too long"), c.Noop(tag="b")]


def test_overlong_line_is_reported_before_its_end_arrives() -> None:
    parser = ImapParser(max_line=100)
    assert parser.feed(b"a LOGIN " + b"x" * 200) == [ParseError("a", "Line too long")]
    assert parser.buffered == 0  # memory stays bounded
    assert parser.feed(b"x" * 10_000) == []
    assert parser.buffered == 0
    assert parser.feed(b"\r\nb NOOP\r\n") == [c.Noop(tag="b")]


def test_overlong_line_ending_in_non_synchronising_literal_skips_the_literal() -> None:
    parser = ImapParser(max_line=50)
    events = parser.feed(b"a APPEND " + b"x" * 100 + b" {6+}\r\nb NOOP\r\nc NOOP\r\n")
    assert events == [ParseError("a", "Line too long"), c.Noop(tag="c")]


def test_overlong_line_ending_in_huge_non_synchronising_literal_is_fatal() -> None:
    parser = ImapParser(max_line=50, max_literal=1000)
    events = parser.feed(b"a APPEND " + b"x" * 100 + b" {5000+}\r\n")
    assert events[-1].fatal and parser.closed


def test_overlong_continuation_line_after_literal_uses_command_tag() -> None:
    parser = ImapParser(max_line=30)
    assert parser.feed(b"t7 LOGIN {3}\r\n") == [ContinuationNeeded()]
    assert parser.feed(b"bob " + b"p" * 40 + b"\r\nt8 NOOP\r\n") == [
        ParseError("t7", "Line too long"),
        c.Noop(tag="t8"),
    ]


def test_line_exactly_at_the_limit_is_accepted() -> None:
    line = b"a LOGIN u " + b"p" * 90
    assert len(line) == 100
    assert isinstance(parse_all(line + b"\r\n", max_line=100)[0], c.Login)


def test_pipelined_commands_in_one_feed() -> None:
    events = parse_all(b"a NOOP\r\nb FETCH 1 UID\r\nc LOGOUT\r\n")
    assert [type(event) for event in events] == [c.Noop, c.Fetch, c.Logout]


def test_deep_search_nesting_is_refused_not_crashing() -> None:
    events = parse_all(b"a SEARCH " + b"NOT " * 5000 + b"ALL\r\n")
    assert events == [ParseError("a", "Search criteria nested too deeply")]
    events = parse_all(b"a SEARCH " + b"(" * 5000 + b"ALL" + b")" * 5000 + b"\r\n")
    assert isinstance(events[0], ParseError)


# --------------------------------------------------------------------------- search


def search(line: bytes) -> c.Search:
    command = parse_one(line)
    assert isinstance(command, c.Search)
    return command


def test_search_from_rfc3501_examples() -> None:
    command = search(b'A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"\r\n')
    assert command.criteria == c.And(
        (
            c.SearchKey("FLAGGED"),
            c.SearchKey("SINCE", (datetime.date(1994, 2, 1),)),
            c.Not(c.SearchKey("FROM", ("Smith",))),
        )
    )
    assert command.charset is None and command.return_options is None and not command.uid


def test_search_or_and_parentheses() -> None:
    command = search(b"a SEARCH OR (SEEN FLAGGED) UNANSWERED\r\n")
    assert command.criteria == c.And(
        (c.Or(c.And((c.SearchKey("SEEN"), c.SearchKey("FLAGGED"))), c.SearchKey("UNANSWERED")),)
    )


def test_search_with_charset_literal_from_rfc3501() -> None:
    parser = ImapParser()
    assert parser.feed(b"A284 SEARCH CHARSET UTF-8 TEXT {12}\r\n") == [ContinuationNeeded()]
    events = parser.feed("кириллица".encode()[:12] + b"\r\n")
    assert events[0].criteria == c.And((c.SearchKey("TEXT", ("кирилл",)),))
    assert events[0].charset == "UTF-8"


def test_search_with_legacy_charset_decodes_strings() -> None:
    command = search(b'a SEARCH CHARSET ISO-8859-1 SUBJECT "caf\xe9"\r\n')
    assert command.criteria.keys[0] == c.SearchKey("SUBJECT", ("café",))


def test_search_with_unknown_charset_is_badcharset() -> None:
    error = error_of(b"a SEARCH CHARSET X-NOPE ALL\r\n")
    assert error.code == "BADCHARSET" and error.reply_status == "NO"


def test_search_all_argument_kinds() -> None:
    command = search(
        b"a UID SEARCH 1:5,7 UID 3:* $ HEADER X-Spam yes KEYWORD $Junk UNKEYWORD foo LARGER 100 SMALLER 5 "
        b'BEFORE 01-Jan-2020 ON "2-Mar-2021" SENTBEFORE 1-jan-2000 SENTON 1-Jan-2000 SENTSINCE 1-Jan-2000 '
        b"OLDER 3600 YOUNGER 60 NEW OLD RECENT ALL ANSWERED DELETED DRAFT UNDRAFT UNDELETED UNFLAGGED UNSEEN "
        b"BCC b CC c TO t BODY x TEXT y\r\n"
    )
    keys = command.criteria.keys
    assert command.uid
    assert keys[0] == c.SearchKey("SEQSET", (seqset("1:5,7"),))
    assert keys[1] == c.SearchKey("UID", (seqset("3:*"),))
    assert keys[2] == c.SearchKey("SEQSET", (SequenceSet((), includes_saved=True),))
    assert keys[3] == c.SearchKey("HEADER", ("X-Spam", "yes"))
    assert keys[4] == c.SearchKey("KEYWORD", ("$Junk",))
    assert keys[6] == c.SearchKey("LARGER", (100,))
    assert keys[9] == c.SearchKey("ON", (datetime.date(2021, 3, 2),))
    assert keys[13] == c.SearchKey("OLDER", (3600,))
    assert [k.name for k in keys[-5:]] == ["BCC", "CC", "TO", "BODY", "TEXT"]


def test_search_rfc8514_savedate_and_rfc8474_objectid() -> None:
    command = search(
        b"a SEARCH SAVEDATESUPPORTED SAVEDBEFORE 1-Jan-2024 SAVEDON 2-Jan-2024 SAVEDSINCE 3-Jan-2024 "
        b"EMAILID M6d99ac3275bb4e THREADID T64b478a75b7ea9\r\n"
    )
    assert command.criteria.keys == (
        c.SearchKey("SAVEDATESUPPORTED"),
        c.SearchKey("SAVEDBEFORE", (datetime.date(2024, 1, 1),)),
        c.SearchKey("SAVEDON", (datetime.date(2024, 1, 2),)),
        c.SearchKey("SAVEDSINCE", (datetime.date(2024, 1, 3),)),
        c.SearchKey("EMAILID", ("M6d99ac3275bb4e",)),
        c.SearchKey("THREADID", ("T64b478a75b7ea9",)),
    )


def test_search_modseq_with_and_without_entry() -> None:
    assert search(b"a SEARCH MODSEQ 620162338\r\n").criteria.keys == (
        c.SearchKey("MODSEQ", (620162338, None, None)),
    )
    command = search(b'a SEARCH MODSEQ "/flags/\\\\draft" all 620162338\r\n')
    assert command.criteria.keys == (c.SearchKey("MODSEQ", (620162338, "/flags/\\draft", "ALL")),)


def test_search_return_options_esearch_and_searchres() -> None:
    assert search(b"a SEARCH RETURN (MIN MAX COUNT) UNSEEN\r\n").return_options == ("MIN", "MAX", "COUNT")
    assert search(b"a UID SEARCH RETURN () ALL\r\n").return_options == ()
    command = search(b"a SEARCH RETURN (SAVE) CHARSET us-ascii FLAGGED\r\n")
    assert command.return_options == ("SAVE",) and command.charset == "US-ASCII"


@pytest.mark.parametrize(
    "line",
    [
        b"a SEARCH\r\n",
        b"a SEARCH FOO\r\n",
        b"a SEARCH SINCE 31-Feb-2020\r\n",
        b"a SEARCH SINCE 1-Foo-2020\r\n",
        b"a SEARCH SINCE yesterday\r\n",
        b"a SEARCH OR SEEN\r\n",
        b"a SEARCH NOT\r\n",
        b"a SEARCH HEADER X\r\n",
        b"a SEARCH LARGER x\r\n",
        b"a SEARCH RETURN (FOO) ALL\r\n",
        b"a SEARCH ALL  SEEN\r\n",
        b"a SEARCH ()\r\n",
        b'a SEARCH MODSEQ "/flags/x" bogus 5\r\n',
    ],
)
def test_bad_search(line: bytes) -> None:
    assert error_of(line).tag == "a"


def test_sort_from_rfc5256() -> None:
    command = parse_one(b"A283 SORT (SUBJECT REVERSE DATE) UTF-8 ALL\r\n")
    assert command == c.Sort(
        tag="A283",
        criteria=(c.SortCriterion("SUBJECT"), c.SortCriterion("DATE", reverse=True)),
        charset="UTF-8",
        search=c.And((c.SearchKey("ALL"),)),
    )


def test_uid_sort_with_esort_return() -> None:
    command = parse_one(b'a UID SORT RETURN (MIN COUNT) (reverse arrival) US-ASCII SUBJECT "x" SEEN\r\n')
    assert command.uid and command.return_options == ("MIN", "COUNT")
    assert command.criteria == (c.SortCriterion("ARRIVAL", reverse=True),)
    assert len(command.search.keys) == 2


def test_sort_bad_key_or_missing_charset() -> None:
    assert error_of(b"a SORT (COLOUR) UTF-8 ALL\r\n").tag == "a"
    assert error_of(b"a SORT (DATE) ALL\r\n").tag == "a"  # ALL is not a known charset


def test_thread_from_rfc5256() -> None:
    command = parse_one(b"A283 THREAD ORDEREDSUBJECT UTF-8 SINCE 5-MAR-2000\r\n")
    assert command == c.Thread(
        tag="A283",
        algorithm="ORDEREDSUBJECT",
        charset="UTF-8",
        search=c.And((c.SearchKey("SINCE", (datetime.date(2000, 3, 5),)),)),
    )
    assert parse_one(b"a UID THREAD references us-ascii ALL\r\n").uid


# --------------------------------------------------------------------------- fetch


def fetch(line: bytes) -> c.Fetch:
    command = parse_one(line)
    assert isinstance(command, c.Fetch)
    return command


def names(command: c.Fetch) -> list[str]:
    return [item.response_name() for item in command.items]


def test_fetch_macros_are_expanded() -> None:
    assert names(fetch(b"a FETCH 1 ALL\r\n")) == ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"]
    assert names(fetch(b"a FETCH 1 fast\r\n")) == ["FLAGS", "INTERNALDATE", "RFC822.SIZE"]
    assert names(fetch(b"a FETCH 1 FULL\r\n"))[-1] == "BODY"


def test_fetch_macro_inside_a_list_is_bad() -> None:
    assert error_of(b"a FETCH 1 (ALL)\r\n").tag == "a"


def test_fetch_from_rfc3501_example() -> None:
    command = fetch(b"A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])\r\n")
    assert command.sequence_set == SequenceSet((SequenceRange(2, 4),))
    assert command.items == (
        c.FetchAttribute("FLAGS"),
        c.BodySection(section=c.Section(text="HEADER.FIELDS", fields=("DATE", "FROM"))),
    )
    assert names(command) == ["FLAGS", "BODY[HEADER.FIELDS (DATE FROM)]"]


def test_fetch_simple_attributes() -> None:
    line = (
        b"a UID FETCH 1:* (ENVELOPE FLAGS INTERNALDATE RFC822 RFC822.HEADER RFC822.SIZE RFC822.TEXT BODY "
        b"BODYSTRUCTURE UID MODSEQ EMAILID THREADID SAVEDATE)\r\n"
    )
    assert names(fetch(line)) == line.split(b"(")[1].split(b")")[0].decode().split()


def test_fetch_body_peek_response_name_drops_peek_and_keeps_spelling() -> None:
    command = fetch(b'a FETCH 1 (BODY.PEEK[HEADER.FIELDS (Subject "X-Odd Name")])\r\n')
    (item,) = command.items
    assert item.peek and not item.sets_seen
    assert item.response_name() == 'BODY[HEADER.FIELDS (Subject "X-Odd Name")]'


def test_fetch_partial_response_name_has_only_origin() -> None:
    (item,) = fetch(b"a FETCH 1 BODY[]<0.2048>\r\n").items
    assert item == c.BodySection(section=c.Section(), partial=(0, 2048))
    assert item.response_name() == "BODY[]<0>"
    (item,) = fetch(b"a FETCH 1 body.peek[1.2.TEXT]<100.5>\r\n").items
    assert item.response_name() == "BODY[1.2.TEXT]<100>"


@pytest.mark.parametrize(
    ("spec", "section"),
    [
        ("", c.Section()),
        ("HEADER", c.Section(text="HEADER")),
        ("TEXT", c.Section(text="TEXT")),
        ("1", c.Section(part=(1,))),
        ("1.2.3", c.Section(part=(1, 2, 3))),
        ("3.MIME", c.Section(part=(3,), text="MIME")),
        ("4.2.header", c.Section(part=(4, 2), text="HEADER")),
        (
            "2.HEADER.FIELDS.NOT (Received)",
            c.Section(part=(2,), text="HEADER.FIELDS.NOT", fields=("Received",)),
        ),
    ],
)
def test_fetch_sections(spec: str, section: c.Section) -> None:
    (item,) = fetch(f"a FETCH 1 BODY[{spec}]\r\n".encode()).items
    assert item.section == section
    assert item.response_name() == f"BODY[{section}]"


@pytest.mark.parametrize(
    "spec",
    ["MIME", "0", "1.0", "1..2", "1.", "FOO", "HEADER.FIELDS", "HEADER.FIELDS ()", "TEXT.1", "01"],
)
def test_bad_fetch_sections(spec: str) -> None:
    assert error_of(f"a FETCH 1 BODY[{spec}]\r\n".encode()).tag == "a"


def test_fetch_binary_items() -> None:
    command = fetch(b"a FETCH 1 (BINARY[1.2] BINARY.PEEK[]<0.10> BINARY.SIZE[3])\r\n")
    assert command.items == (
        c.BodySection(section=c.Section(part=(1, 2)), binary=True),
        c.BodySection(section=c.Section(), peek=True, binary=True, partial=(0, 10)),
        c.BinarySize(part=(3,)),
    )
    assert names(command) == ["BINARY[1.2]", "BINARY[]<0>", "BINARY.SIZE[3]"]


def test_fetch_binary_section_must_be_part_numbers() -> None:
    assert error_of(b"a FETCH 1 BINARY[HEADER]\r\n").tag == "a"


def test_fetch_changedsince_and_vanished_from_rfc7162() -> None:
    command = fetch(b"s100 UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)\r\n")
    assert command.uid and command.changed_since == 12345 and command.vanished
    assert fetch(b"a FETCH 1:* (UID FLAGS) (CHANGEDSINCE 0)\r\n").changed_since == 0


def test_fetch_vanished_needs_uid_and_changedsince() -> None:
    assert error_of(b"a FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED)\r\n").tag == "a"
    assert error_of(b"a UID FETCH 1 FLAGS (VANISHED)\r\n").tag == "a"


@pytest.mark.parametrize(
    "line",
    [
        b"a FETCH 1 BODY.PEEK\r\n",
        b"a FETCH 1 BOGUS\r\n",
        b"a FETCH 1 BODY[]<0>\r\n",
        b"a FETCH 1 BODY[]<0.0>\r\n",
        b"a FETCH 1 BODY[\r\n",
        b"a FETCH 1 FLAGS (CHANGEDSINCE)\r\n",
        b"a FETCH 1 FLAGS (FOO)\r\n",
        b"a FETCH FLAGS\r\n",
    ],
)
def test_bad_fetch(line: bytes) -> None:
    assert error_of(line).tag == "a"


def test_fetch_as_sent_by_imaplib_and_imapclient() -> None:
    # imaplib: M.fetch("1", "(RFC822)"); imapclient: fetch([1, 2], ["BODY.PEEK[]", "FLAGS"])
    assert names(fetch(b"ABCD3 FETCH 1 (RFC822)\r\n")) == ["RFC822"]
    assert names(fetch(b"AAAB UID FETCH 1,2 (BODY.PEEK[] FLAGS)\r\n")) == ["BODY[]", "FLAGS"]


def test_fetch_as_sent_by_mutt() -> None:
    command = fetch(
        b"a0005 FETCH 1:12 (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS "
        b"(DATE FROM SENDER SUBJECT TO CC MESSAGE-ID REFERENCES CONTENT-TYPE CONTENT-DESCRIPTION "
        b"IN-REPLY-TO REPLY-TO LINES LIST-POST X-LABEL X-ORIGINAL-TO)])\r\n"
    )
    assert len(command.items[-1].section.fields) == 16


# --------------------------------------------------------------------------- store, copy, move, expunge


def test_store_from_rfc3501() -> None:
    command = parse_one(b"A003 STORE 2:4 +FLAGS (\\Deleted)\r\n")
    assert command == c.Store(
        tag="A003", sequence_set=seqset("2:4"), mode=c.StoreMode.ADD, flags=("\\Deleted",)
    )


def test_store_variants() -> None:
    command = parse_one(b"a UID STORE 1,3 -flags.silent \\seen $Forwarded\r\n")
    assert command.uid and command.mode is c.StoreMode.REMOVE and command.silent
    assert command.flags == ("\\Seen", "$Forwarded")
    replace = parse_one(b"a STORE 1 FLAGS ()\r\n")
    assert replace.mode is c.StoreMode.REPLACE and replace.flags == ()


def test_store_unchangedsince_from_rfc7162() -> None:
    command = parse_one(b"d105 STORE 7,5,9 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\\Deleted)\r\n")
    assert command.unchanged_since == 320162338 and command.silent


def test_copy_move_and_uid_variants() -> None:
    assert parse_one(b"A003 COPY 2:4 MEETING\r\n") == c.Copy(
        tag="A003", sequence_set=seqset("2:4"), mailbox="MEETING"
    )
    assert parse_one(b'a UID MOVE 42:69 "Trash"\r\n') == c.Move(
        tag="a", uid=True, sequence_set=seqset("42:69"), mailbox="Trash"
    )


def test_uid_expunge() -> None:
    assert parse_one(b"A202 UID EXPUNGE 3000:3002\r\n") == c.Expunge(
        tag="A202", uid=True, uid_set=seqset("3000:3002")
    )
    assert error_of(b"a UID EXPUNGE\r\n").tag == "a"


# --------------------------------------------------------------------------- quota, ID, COMPRESS


def test_quota_commands() -> None:
    assert parse_one(b'G0001 GETQUOTA "!partition/sda4"\r\n') == c.GetQuota(
        tag="G0001", root="!partition/sda4"
    )
    assert parse_one(b"G0002 GETQUOTAROOT INBOX\r\n") == c.GetQuotaRoot(tag="G0002", mailbox="INBOX")
    assert parse_one(b'S0000 SETQUOTA "" (STORAGE 512 message 10)\r\n') == c.SetQuota(
        tag="S0000", root="", limits=(("STORAGE", 512), ("MESSAGE", 10))
    )


def test_id_from_rfc2971() -> None:
    assert parse_one(b"a023 ID NIL\r\n") == c.Id(tag="a023", parameters=None)
    command = parse_one(b'a023 ID ("name" "sodr" "version" "19.34" "vendor" NIL)\r\n')
    assert command.parameters == (("name", "sodr"), ("version", "19.34"), ("vendor", None))
    assert parse_one(b"a ID ()\r\n").parameters == ()


def test_compress() -> None:
    assert parse_one(b"a COMPRESS deflate\r\n") == c.Compress(tag="a", mechanism="DEFLATE")


# --------------------------------------------------------------------------- mailbox name normalisation


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("inbox", "INBOX"),
        ("InBoX", "INBOX"),
        ("INBOX", "INBOX"),
        ("inbox/Work", "INBOX/Work"),
        ("Inbox/inbox", "INBOX/inbox"),
        ("inboxes", "inboxes"),
        ("Sent", "Sent"),
        ("", ""),
    ],
)
def test_normalise_mailbox_name(name: str, expected: str) -> None:
    assert c.normalise_mailbox_name(name) == expected


def test_normalise_mailbox_name_with_other_delimiter() -> None:
    assert c.normalise_mailbox_name("inbox.Work", ".") == "INBOX.Work"
    assert c.normalise_mailbox_name("inbox/Work", ".") == "inbox/Work"


def test_overlong_line_ending_in_two_carriage_returns_is_framed_consistently() -> None:
    # Found by fuzzing: the CR before LF is stripped once, whether the line arrived whole or not.
    data = b"a LOGIN {3}\r\x81(|{3+}\r\r\n\npw1 +\r\n"
    whole = ImapParser(max_line=8, max_literal=5).feed(data)
    parser = ImapParser(max_line=8, max_literal=5)
    assert [event for byte in data for event in parser.feed(bytes([byte]))] == whole
    assert whole == [ParseError("a", "Line too long"), ParseError("pw1", "Unknown command")]


def test_utf8_quoted_mailbox_name_is_accepted() -> None:
    assert parse_one('a SELECT "Entwürfe"\r\n'.encode()) == c.Select(tag="a", mailbox="Entwürfe")


def test_search_string_that_is_not_utf8_without_charset_is_bad() -> None:
    assert error_of(b'a SEARCH SUBJECT "\xff"\r\n').reply_status == "BAD"
