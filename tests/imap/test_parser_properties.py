"""Property tests for the IMAP parser: no input crashes it, and framing never depends on how the
bytes were split into reads."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tidings.imap import commands as c
from tidings.imap.parser import ContinuationNeeded, ImapParser, ParseError, RawLine
from tidings.imap.sequence import SequenceSet, format_uid_set
from tidings.imap.wire import astring, literal

EVENT_TYPES = (c.Command, ContinuationNeeded, ParseError, RawLine)

# Fragments from which client streams are built: valid commands, literals, and nasty bytes.
FRAGMENTS = [
    b"a NOOP\r\n",
    b"b LOGIN {3}\r\nbob {3+}\r\npw1\r\n",
    b"c APPEND INBOX (\\Seen) {5+}\r\nhello ~{2}\r\n\x00\x01\r\n",
    b"d UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (Subject)]<0.10>) (CHANGEDSINCE 5 VANISHED)\r\n",
    b'e SEARCH RETURN (MIN) CHARSET UTF-8 OR (FROM "x" SINCE 1-Jan-2020) NOT UID 1:5,$\r\n',
    b"f IDLE\r\n",
    b"DONE\r\n",
    b"g AUTHENTICATE PLAIN\r\n",
    b"h STARTTLS\r\n",
    b"{5}\r\n",
    b"{3+}\r\n",
    b"{99999999999999999999}\r\n",
    b"~{1+}\r\n",
    b"(((",
    b")",
    b'"',
    b"\\",
    b"\r",
    b"\n",
    b"\x00",
    b"\xff\xfe",
    b" ",
    b"x" * 70,
    b"i SELECT INBOX (QRESYNC (1 2 1:3 (1 2)))\r\n",
    b"j STORE 1 +FLAGS.SILENT (\\Deleted)\r\n",
]

stream = st.lists(st.sampled_from(FRAGMENTS) | st.binary(max_size=20), max_size=12).map(b"".join)
limits = st.fixed_dictionaries(
    {
        "max_line": st.integers(min_value=8, max_value=200),
        "max_literal": st.integers(min_value=0, max_value=50),
    }
)


def session_feed(parser: ImapParser, data: bytes) -> list:
    """Feed like a session that finishes IDLE, AUTHENTICATE and STARTTLS at once (resume())."""
    events = parser.feed(data)
    collected = list(events)
    while parser.paused and not parser.closed:
        parser.resume()
        events = parser.feed(b"")
        collected.extend(events)
    return collected


def feed_in_pieces(parser: ImapParser, data: bytes, cuts: list[int]) -> list:
    events: list = []
    start = 0
    for cut in sorted(set(cuts)) + [len(data)]:
        events.extend(session_feed(parser, data[start:cut]))
        start = cut
    return events


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400), limits)
def test_arbitrary_bytes_never_raise(data: bytes, limit: dict[str, int]) -> None:
    events = ImapParser(**limit).feed(data)
    assert all(isinstance(event, EVENT_TYPES) for event in events)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(stream, limits)
def test_generated_streams_never_raise(data: bytes, limit: dict[str, int]) -> None:
    events = ImapParser(**limit).feed(data)
    assert all(isinstance(event, EVENT_TYPES) for event in events)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(stream, limits, st.lists(st.integers(min_value=0, max_value=2000), max_size=10))
def test_splitting_the_input_never_changes_the_events(
    data: bytes, limit: dict[str, int], cuts: list[int]
) -> None:
    whole = session_feed(ImapParser(**limit), data)
    assert feed_in_pieces(ImapParser(**limit), data, [cut for cut in cuts if cut < len(data)]) == whole


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(stream, limits)
def test_feeding_byte_by_byte_gives_the_same_events(data: bytes, limit: dict[str, int]) -> None:
    whole = session_feed(ImapParser(**limit), data)
    parser = ImapParser(**limit)
    assert [event for byte in data for event in session_feed(parser, bytes([byte]))] == whole


@settings(max_examples=100)
@given(stream)
def test_raw_line_mode_is_split_invariant(data: bytes) -> None:
    def run(pieces: list[bytes]) -> list:
        """A session that keeps asking for raw lines, as during a long SASL exchange."""
        parser = ImapParser(max_line=60)
        parser.feed(b"t AUTHENTICATE PLAIN\r\n")
        parser.expect_raw_line()
        events: list = []
        for piece in pieces:
            new = parser.feed(piece)
            while new:
                events.extend(new)
                parser.expect_raw_line()
                new = parser.feed(b"")
        return events

    assert run([data]) == run([bytes([b]) for b in data])


text_without_nul = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r\n"), max_size=30
)


@given(text_without_nul, st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30))
def test_login_round_trips_through_server_string_encoding(username: str, password: str) -> None:
    # The server's own encoder produces atoms, quoted strings or literals; the parser reads them back.
    line = b"a LOGIN " + astring(username, utf8=True) + b" " + astring(password, utf8=True) + b"\r\n"
    events = [event for event in ImapParser().feed(line) if not isinstance(event, ContinuationNeeded)]
    assert events == [c.Login(tag="a", username=username, password=password)]


@given(st.binary(max_size=200))
def test_append_carries_any_bytes_in_a_literal(message: bytes) -> None:
    line = b"a APPEND INBOX " + literal(message) + b"\r\n"
    events = ImapParser().feed(line)
    assert events[-1] == c.Append(tag="a", mailbox="INBOX", messages=(c.AppendMessage(data=message),))


@given(st.lists(st.integers(min_value=1, max_value=2**32 - 1), min_size=1, max_size=50))
def test_uid_set_formatting_round_trips(numbers: list[int]) -> None:
    text = format_uid_set(numbers)
    parsed = SequenceSet.parse(text)
    assert list(parsed.iter_numbers(max(numbers))) == sorted(set(numbers))
    assert str(parsed) == text


bound = st.one_of(st.none(), st.integers(min_value=1, max_value=2**32 - 1))


@given(st.lists(st.tuples(bound, bound), min_size=1, max_size=8), st.booleans())
def test_sequence_set_text_round_trips(pairs: list[tuple[int | None, int | None]], saved: bool) -> None:
    from tidings.imap.sequence import SequenceRange

    original = SequenceSet(tuple(SequenceRange(a, b) for a, b in pairs), includes_saved=saved)
    assert SequenceSet.parse(str(original)) == original


@given(
    st.lists(st.tuples(bound, bound), min_size=1, max_size=6).map(
        lambda pairs: ",".join(f"{a or '*'}:{b or '*'}" for a, b in pairs)
    ),
    st.integers(min_value=0, max_value=300),
)
def test_resolve_agrees_with_contains(text: str, largest: int) -> None:
    parsed = SequenceSet.parse(text)
    resolved = set(parsed.iter_numbers(largest))
    assert resolved == {n for n in range(1, largest + 1) if parsed.contains(n, largest)}
