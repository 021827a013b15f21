"""Sequence sets: parsing, resolution against a mailbox, and compact UID-set formatting."""

from __future__ import annotations

import pytest

from tidings.imap.sequence import MAX_RANGES, SequenceRange, SequenceSet, SequenceSetError, format_uid_set


def test_parse_numbers_ranges_star_and_saved() -> None:
    parsed = SequenceSet.parse("1:3,5,7:*,$")
    assert parsed.ranges == (SequenceRange(1, 3), SequenceRange(5, 5), SequenceRange(7, None))
    assert parsed.includes_saved
    assert str(parsed) == "1:3,5,7:*,$"


@pytest.mark.parametrize(
    "text", ["", "0", "1:0", "a", "1,", ",1", "1::2", "1:2:3", "01", "4294967296", "-1", "1 2"]
)
def test_invalid_sequence_sets(text: str) -> None:
    with pytest.raises(SequenceSetError):
        SequenceSet.parse(text)


def test_largest_number_is_accepted() -> None:
    assert SequenceSet.parse("4294967295").ranges == (SequenceRange(4294967295, 4294967295),)


def test_resolve_merges_sorts_and_clips() -> None:
    assert SequenceSet.parse("7:*,1:3,2:4,10").resolve(8) == [(1, 4), (7, 8)]


def test_reversed_range_means_the_same() -> None:
    assert SequenceSet.parse("4:2").resolve(10) == [(2, 4)]


def test_star_means_largest() -> None:
    assert SequenceSet.parse("*").resolve(42) == [(42, 42)]
    assert list(SequenceSet.parse("3:*").iter_numbers(5)) == [3, 4, 5]


def test_uid_range_beyond_largest_still_includes_largest() -> None:
    # RFC 9051 6.4.8: "n:*" with n greater than the largest UID means "largest:n".
    assert SequenceSet.parse("100:*").resolve(42) == [(42, 42)]
    assert SequenceSet.parse("100:*").contains(42, largest=42)
    assert not SequenceSet.parse("100:*").contains(41, largest=42)


def test_empty_mailbox_resolves_to_nothing() -> None:
    assert SequenceSet.parse("1:*").resolve(0) == []


def test_contains_does_not_clip_explicit_numbers() -> None:
    assert SequenceSet.parse("5:10").contains(8, largest=3)
    assert not SequenceSet.parse("5:10").contains(11, largest=20)


def test_saved_result_is_supplied_by_caller() -> None:
    saved = SequenceSet.parse("$")
    assert saved.resolve(10, saved=[2, 3, 9, 12]) == [(2, 3), (9, 9)]
    assert saved.resolve(10) == []
    assert saved.contains(9, 10, saved=[9])
    assert not saved.contains(9, 10)


def test_mentions_beyond_detects_out_of_range_message_numbers() -> None:
    assert SequenceSet.parse("1:5").mentions_beyond(4)
    assert not SequenceSet.parse("1:*").mentions_beyond(4)
    assert not SequenceSet.parse("4").mentions_beyond(4)


def test_from_numbers_is_compact() -> None:
    assert str(SequenceSet.from_numbers([5, 1, 2, 3, 9, 10])) == "1:3,5,9:10"


@pytest.mark.parametrize(
    ("numbers", "text"),
    [([1, 2, 3, 5], "1:3,5"), ([7], "7"), ([3, 1, 2, 2], "1:3"), ([], ""), ([1, 3, 5], "1,3,5")],
)
def test_format_uid_set(numbers: list[int], text: str) -> None:
    assert format_uid_set(numbers) == text


def test_a_list_of_numbers_parses_like_any_other_set() -> None:
    parsed = SequenceSet.parse("5,3,4294967295")
    assert parsed.ranges == (SequenceRange(5, 5), SequenceRange(3, 3), SequenceRange(4294967295, 4294967295))
    assert parsed == SequenceSet(
        (SequenceRange(5, 5), SequenceRange(3, 3), SequenceRange(4294967295, 4294967295))
    )
    for text in ("1,01", "1,4294967296", "1,,2", "1,2,"):
        with pytest.raises(SequenceSetError):
            SequenceSet.parse(text)


def test_a_set_of_more_than_max_ranges_is_refused() -> None:
    assert len(SequenceSet.parse(",".join(["1"] * MAX_RANGES)).ranges) == MAX_RANGES
    for element in ("1", "1:2", "*"):
        with pytest.raises(SequenceSetError, match="too many ranges"):
            SequenceSet.parse(",".join([element] * (MAX_RANGES + 1)))


@pytest.mark.parametrize("text", ["1:3,5,7:*", "4:2,9", "*", "10:*", "2,2,2,3:1", "6:8,1:2,5"])
def test_select_keeps_what_contains_would(text: str) -> None:
    parsed = SequenceSet.parse(text)
    numbers = list(range(14))
    assert parsed.select(numbers, 8) == [n for n in numbers if parsed.contains(n, 8)]


def test_select_is_one_merge_over_thousands_of_ranges() -> None:
    odd = SequenceSet.parse(",".join(str(2 * i + 1) for i in range(11_000)))
    expunged = list(range(1, 30_001))
    assert odd.select(expunged, 30_000) == [n for n in expunged if n % 2 == 1 and n < 22_000]
