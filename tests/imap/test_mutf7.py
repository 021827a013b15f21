"""Modified UTF-7 mailbox names (RFC 3501 section 5.1.3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.imap.mutf7 import ModifiedUtf7Error, decode, encode


@pytest.mark.parametrize(
    ("text", "encoded"),
    [
        ("INBOX", "INBOX"),
        ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),  # RFC 3501 5.1.3
        ("&", "&-"),
        ("Tom & Jerry", "Tom &- Jerry"),
        ("Entwürfe", "Entw&APw-rfe"),
        ("Gelöschte Elemente", "Gel&APY-schte Elemente"),
        ("😀", "&2D3eAA-"),  # outside the BMP: a UTF-16 surrogate pair
        ("", ""),
    ],
)
def test_known_encodings(text: str, encoded: str) -> None:
    assert encode(text) == encoded
    assert decode(encoded) == text
    assert decode(encoded.encode()) == text


@pytest.mark.parametrize(
    "encoded",
    [
        "&Jjo",  # unterminated shift
        "&AGE-",  # encodes printable ASCII "a"
        "&U,BTFw-&ZeVnLIqe-",  # two adjacent shifts must be one
        "&U,BTF2-",  # non-zero padding bits
        "&ZeVnLIqe=-",  # padding is not allowed
        "&ZeVn/Iqe-",  # "/" instead of ","
        "ü",  # 8-bit must be encoded
        "a\tb",  # control characters must be encoded
        "&2D0-",  # lone surrogate
        "&A-",  # not a whole byte
    ],
)
def test_invalid_encodings_are_rejected(encoded: str) -> None:
    with pytest.raises(ModifiedUtf7Error):
        decode(encoded)


def test_non_ascii_bytes_are_rejected() -> None:
    with pytest.raises(ModifiedUtf7Error):
        decode(b"\xc3\xbc")


@given(st.text())
def test_round_trip(text: str) -> None:
    encoded = encode(text)
    assert encoded.isascii()
    assert decode(encoded) == text


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E)))
def test_printable_ascii_other_than_ampersand_is_unchanged(text: str) -> None:
    assert encode(text) == text.replace("&", "&-")
