"""vCards (RFC 2426 version 3.0, RFC 6350 version 4.0) as CardDAV stores them (RFC 6352 5.1).

One address object resource is one vCard with a UID. `index_card` checks a card and derives what
the store indexes (formatted name, e-mail addresses, group members); `split_vcards` turns an
import into single cards, keeping each card's own text; `convert` rewrites a card for the other
version (export as 3.0 or 4.0), including the two spellings of groups (4.0 KIND/MEMBER, Apple's
X-ADDRESSBOOKSERVER-KIND/-MEMBER in 3.0) and of photos (4.0 data: URIs, 3.0 ENCODING=b).

vobject parses and serialises; one of its habits is mended here: it cuts a 4.0 PHOTO data: URI
at its comma (losing the picture), so lines with data: URIs are kept from it when parsing
(`parse_card` adds them back as plain values) and written by `serialise` itself.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import vobject

from tidings.pim import InvalidObject

VERSIONS = ("3.0", "4.0")
KINDS = ("individual", "group", "org", "location")
# Properties whose 4.0 value may be a data: URI that vobject would cut at its comma.
_URI_PROPERTIES = ("photo", "logo", "sound", "key")


@dataclass(frozen=True)
class CardIndex:
    """What the store keeps beside a card's text (see store/schema.py pim_objects)."""

    uid: str
    kind: str
    title: str
    emails: tuple[str, ...]
    categories: tuple[str, ...]
    search_text: str
    members: tuple[str, ...]  # a group's members: "urn:uuid:..." or "mailto:..."


_DATA_URI_LINE = re.compile(r"^(PHOTO|LOGO|SOUND|KEY)((?:;[^:]*)?):(data:.*)$", re.IGNORECASE | re.MULTILINE)


def parse_card(text: str):
    """Exactly one VCARD (vobject component), or InvalidObject."""
    unfolded = re.sub(r"\r?\n[ \t]", "", text)
    uris = _DATA_URI_LINE.findall(unfolded)
    if uris:
        text = _DATA_URI_LINE.sub("", unfolded)
        text = re.sub(r"(\r?\n)+", "\r\n", text)
    try:
        cards = list(vobject.readComponents(text, validate=False))
    except Exception as error:  # vobject raises ParseError and friends
        raise InvalidObject(f"not a vCard: {error}") from None
    if len(cards) != 1 or cards[0].name != "VCARD":
        raise InvalidObject("an address object holds exactly one vCard")
    card = cards[0]
    if card.contents.get("version") is None:
        raise InvalidObject("the vCard has no VERSION")
    for name, params, value in uris:
        line = card.add(name.lower())
        line.value = value.strip()
        for param in filter(None, params.split(";")):
            key, _, values = param.partition("=")
            line.params[key.upper()] = values.strip('"').split(",") if values else []
    return card


def _fold(line: str) -> str:
    """One content line folded at 75 octets (RFC 6350 3.2); data: URIs are ASCII."""
    chunks = [line[:75]] + [" " + line[i : i + 74] for i in range(75, len(line), 74)]
    return "\r\n".join(chunks) + "\r\n"


def _values(card, name: str) -> list:
    return [line.value for line in card.contents.get(name, [])]


def _text(value) -> str:
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value if str(v))
    return str(value)


def card_kind(card) -> str:
    kind = (_values(card, "kind") or _values(card, "x-addressbookserver-kind") or ["individual"])[0]
    kind = str(kind).strip().lower()
    return kind if kind in KINDS else "individual"


def members(card) -> tuple[str, ...]:
    return tuple(
        str(v).strip() for v in _values(card, "member") + _values(card, "x-addressbookserver-member")
    )


def display_name(card) -> str:
    """FN, or what a person would call the card without one."""
    for value in _values(card, "fn"):
        if str(value).strip():
            return str(value).strip()
    for value in _values(card, "n"):
        name = " ".join(p for p in (value.prefix, value.given, value.additional, value.family) if p)
        if name.strip():
            return name.strip() if isinstance(name, str) else _text(name)
    for name in ("org", "email"):
        for value in _values(card, name):
            if _text(value).strip():
                return _text(value).strip(" ;")
    return ""


def index_card(text: str) -> tuple[object, CardIndex]:
    card = parse_card(text)
    uid = str((_values(card, "uid") or [""])[0]).strip()
    if not uid:
        raise InvalidObject("the vCard has no UID")
    emails = tuple(dict.fromkeys(str(v).strip().lower() for v in _values(card, "email") if str(v).strip()))
    categories = tuple(
        dict.fromkeys(
            c.strip()
            for v in _values(card, "categories")
            for c in (v if isinstance(v, list) else [v])
            if c.strip()
        )
    )
    title = display_name(card)
    if not title and "fn" not in card.contents:
        raise InvalidObject("the vCard has no FN (formatted name)")
    words = [
        title,
        *emails,
        *(_text(v) for v in _values(card, "org")),
        *(str(v) for v in _values(card, "tel")),
    ]
    words += [str(v) for v in _values(card, "nickname")] + [str(v) for v in _values(card, "note")]
    return card, CardIndex(
        uid=uid,
        kind=card_kind(card),
        title=title,
        emails=emails,
        categories=categories,
        search_text="\n".join(w for w in words if w).lower(),
        members=members(card),
    )


# -- whole files -----------------------------------------------------------------------------

_BEGIN = re.compile(r"^BEGIN:VCARD\s*$", re.IGNORECASE)
_END = re.compile(r"^END:VCARD\s*$", re.IGNORECASE)


def split_vcards(text: str) -> list[str]:
    """The cards of a .vcf file, each as its own text (lines unfolded only by the parser later),
    a UID added where a card has none. Raises InvalidObject for text outside any card or an
    unterminated card."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cards: list[str] = []
    current: list[str] | None = None
    depth = 0
    for line in lines:
        if _BEGIN.match(line):
            depth += 1
            if depth == 1:
                current = []
        if current is None:
            if line.strip():
                raise InvalidObject("text outside BEGIN:VCARD ... END:VCARD")
            continue
        current.append(line)
        if _END.match(line):
            depth -= 1
            if depth == 0:
                cards.append(_with_uid("\r\n".join(current) + "\r\n"))
                current = None
    if current is not None:
        raise InvalidObject("a vCard has no END:VCARD")
    return cards


def _with_uid(text: str) -> str:
    if re.search(r"^UID[;:]", text, re.IGNORECASE | re.MULTILINE):
        return text
    lines = text.split("\r\n")
    at = next((i + 1 for i, line in enumerate(lines) if line.upper().startswith("VERSION:")), 1)
    lines.insert(at, f"UID:{uuid.uuid4()}")
    return "\r\n".join(lines)


def join_vcards(texts: Iterable[str], version: str | None = None) -> str:
    """Many cards as one .vcf file, each converted to `version` if given."""
    return "".join(convert(t, version) if version else _crlf(t) for t in texts)


def _crlf(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\n", "\r\n")
    return text if text.endswith("\r\n") else text + "\r\n"


# -- writing and converting --------------------------------------------------------------------


def serialise(card) -> str:
    """The card as text; data: URIs (4.0 photos) written whole (see the module docstring)."""
    raw: list[str] = []
    if str(card.version.value) == "4.0":
        for name in _URI_PROPERTIES:
            for line in list(card.contents.get(name, [])):
                if isinstance(line.value, str) and line.value.startswith("data:"):
                    params = "".join(f";{k}={','.join(v)}" for k, v in line.params.items())
                    raw.append(_fold(f"{name.upper()}{params}:{line.value}"))
                    card.remove(line)
    text = card.serialize()
    if raw:
        head, _, _ = text.rpartition("END:VCARD")
        text = head + "".join(raw) + "END:VCARD\r\n"
    return text


def convert(text: str, version: str) -> str:
    """`text` as a vCard of `version` ("3.0" or "4.0"); a card already of it is returned as is."""
    if version not in VERSIONS:
        raise InvalidObject(f"vCard version {version} is not supported")
    card = parse_card(text)
    if str(card.version.value) == version:
        return _crlf(text)
    if version == "4.0":
        _to_v4(card)
    else:
        _to_v3(card)
    card.version.value = version
    return serialise(card)


def _rename(card, old: str, new: str) -> None:
    for line in list(card.contents.get(old, [])):
        card.add(new).value = line.value
        card.remove(line)


def _to_v4(card) -> None:
    _rename(card, "x-addressbookserver-kind", "kind")
    _rename(card, "x-addressbookserver-member", "member")
    if "kind" in card.contents:
        for line in card.contents["kind"]:
            line.value = str(line.value).lower()
    for name in _URI_PROPERTIES:
        for line in list(card.contents.get(name, [])):
            if "ENCODING" in line.params and isinstance(line.value, bytes):
                subtype = (line.params.get("TYPE") or ["jpeg"])[0].lower()
                uri = f"data:image/{subtype};base64," + base64.b64encode(line.value).decode()
                card.remove(line)
                card.add(name).value = uri
    for line in card.lines():
        types = line.params.get("TYPE")
        if types:
            kept = [t.lower() for t in types if t.lower() not in ("internet", "pref", "x400")]
            if any(t.lower() == "pref" for t in types):
                line.params["PREF"] = ["1"]
            if kept:
                line.params["TYPE"] = kept
            else:
                del line.params["TYPE"]


def _to_v3(card) -> None:
    _rename(card, "kind", "x-addressbookserver-kind")
    _rename(card, "member", "x-addressbookserver-member")
    for name in _URI_PROPERTIES:
        for line in list(card.contents.get(name, [])):
            value = line.value
            if isinstance(value, str) and value.startswith("data:") and ";base64," in value:
                mime, _, data = value[5:].partition(";base64,")
                card.remove(line)
                new = card.add(name)
                new.value = base64.b64decode(data)
                new.params["ENCODING"] = ["b"]
                new.params["TYPE"] = [mime.rpartition("/")[2].upper() or "JPEG"]
    for line in card.contents.get("tel", []):
        if "VALUE" in line.params:
            del line.params["VALUE"]
        if isinstance(line.value, str) and line.value.lower().startswith("tel:"):
            line.value = line.value[4:]
    for line in card.lines():
        if "PREF" in line.params:
            del line.params["PREF"]
            line.params.setdefault("TYPE", []).append("pref")
    if "n" not in card.contents:
        card.add("n").value = vobject.vcard.Name(family=display_name(card))


def directory_card(uid: str, name: str, email: str, organisation: str = "") -> str:
    """A read-only vCard 3.0 for an account of the domain directory."""
    card = vobject.vCard()
    card.add("version").value = "3.0"
    card.add("uid").value = uid
    card.add("fn").value = name
    card.add("n").value = vobject.vcard.Name(given=name)
    line = card.add("email")
    line.value = email
    line.params["TYPE"] = ["INTERNET", "WORK"]
    if organisation:
        card.add("org").value = [organisation]
    return card.serialize()
