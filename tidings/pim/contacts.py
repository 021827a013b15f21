"""A contact as a person edits it (name, addresses, phones, organisation, notes, photo, group
members) and its vCard.

`Contact.from_card` reads the fields a form shows; `Contact.to_card` writes them into a card,
keeping every property the form does not show (a DAV client's X- properties, addresses, birthdays)
and the card's version. New cards are vCard 3.0, the version every CardDAV client reads
(RFC 6352 5.1.1); groups are written the way the card's version spells them (4.0 KIND/MEMBER,
3.0 X-ADDRESSBOOKSERVER-KIND/-MEMBER as Apple's and most other clients do).
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field

import vobject

from tidings.pim import InvalidObject
from tidings.pim.vcard import card_kind, display_name, members, parse_card, serialise

MAX_PHOTO_BYTES = 1024 * 1024
PHOTO_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF", "image/webp": "WEBP"}


@dataclass
class Contact:
    name: str = ""
    given: str = ""
    family: str = ""
    emails: list[tuple[str, str]] = field(default_factory=list)  # (type, address)
    phones: list[tuple[str, str]] = field(default_factory=list)  # (type, number)
    organisation: str = ""
    job_title: str = ""
    note: str = ""
    photo: tuple[str, bytes] | None = None  # (media type, bytes)
    is_group: bool = False
    members: list[str] = field(default_factory=list)  # member UIDs ("urn:uuid:..." as stored)
    categories: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return (
            self.name
            or " ".join(p for p in (self.given, self.family) if p)
            or next((e for _, e in self.emails), "")
        )

    @classmethod
    def from_card(cls, text: str) -> Contact:
        card = parse_card(text)
        found = cls(name=display_name(card), is_group=card_kind(card) == "group", members=list(members(card)))
        if "n" in card.contents:
            n = card.n.value
            found.given, found.family = _joined(n.given), _joined(n.family)
        found.emails = [(_type(line), str(line.value)) for line in card.contents.get("email", [])]
        found.phones = [(_type(line), _tel(line.value)) for line in card.contents.get("tel", [])]
        if "org" in card.contents:
            found.organisation = _joined(card.org.value, "; ")
        if "title" in card.contents:
            found.job_title = str(card.title.value)
        if "note" in card.contents:
            found.note = str(card.note.value)
        for line in card.contents.get("categories", []):
            found.categories += [
                c for c in (line.value if isinstance(line.value, list) else [line.value]) if c
            ]
        found.photo = _photo(card)
        return found

    def to_card(self, existing: str | None = None, uid: str | None = None) -> str:
        """The card: `existing` with the form's fields replaced, or a new vCard 3.0."""
        if not self.label.strip():
            raise InvalidObject("a contact needs a name or an address")
        if existing is not None:
            card = parse_card(existing)
        else:
            card = vobject.vCard()
            card.add("version").value = "3.0"
            card.add("uid").value = uid or str(uuid.uuid4())
        v4 = str(card.version.value) == "4.0"
        for name in ("fn", "n", "email", "tel", "org", "title", "note", "photo", "categories"):
            card.contents.pop(name, None)
        for name in ("kind", "member", "x-addressbookserver-kind", "x-addressbookserver-member"):
            card.contents.pop(name, None)
        card.add("fn").value = self.label.strip()
        card.add("n").value = vobject.vcard.Name(family=self.family.strip(), given=self.given.strip())
        for kind, address in self.emails:
            if address.strip():
                line = card.add("email")
                line.value = address.strip()
                line.params["TYPE"] = [kind.lower()] if v4 else ["INTERNET", kind.upper()]
        for kind, number in self.phones:
            if number.strip():
                line = card.add("tel")
                line.value = number.strip()
                line.params["TYPE"] = [kind.lower() if v4 else kind.upper()]
        if self.organisation.strip():
            card.add("org").value = [p.strip() for p in self.organisation.split(";")]
        if self.job_title.strip():
            card.add("title").value = self.job_title.strip()
        if self.note.strip():
            card.add("note").value = self.note.strip()
        if self.categories:
            card.add("categories").value = self.categories
        if self.is_group:
            card.add("kind" if v4 else "x-addressbookserver-kind").value = "group"
            for member in self.members:
                card.add("member" if v4 else "x-addressbookserver-member").value = member
        if self.photo is not None:
            mime, data = self.photo
            if len(data) > MAX_PHOTO_BYTES:
                raise InvalidObject(f"a photo is at most {MAX_PHOTO_BYTES // 1024} KiB")
            if mime not in PHOTO_TYPES:
                raise InvalidObject("a photo is a JPEG, PNG, GIF or WebP picture")
            line = card.add("photo")
            if v4:
                line.value = f"data:{mime};base64," + base64.b64encode(data).decode()
            else:
                line.value = data
                line.params["ENCODING"] = ["b"]
                line.params["TYPE"] = [PHOTO_TYPES[mime]]
        return serialise(card)


def member_ref(uid: str) -> str:
    """How a group names a member card: urn:uuid:<uid> (RFC 6350 6.6.5)."""
    return uid if uid.lower().startswith(("urn:", "mailto:")) else f"urn:uuid:{uid}"


def _joined(value, sep: str = " ") -> str:
    if isinstance(value, list | tuple):
        return sep.join(str(v) for v in value if str(v))
    return str(value or "")


def _type(line) -> str:
    types = [t.lower() for t in line.params.get("TYPE", []) for t in t.split(",")]
    for kind in ("work", "home", "cell", "mobile", "fax", "other"):
        if kind in types:
            return "cell" if kind == "mobile" else kind
    return "other"


def _tel(value) -> str:
    value = str(value)
    return value[4:] if value.lower().startswith("tel:") else value


def _photo(card) -> tuple[str, bytes] | None:
    for line in card.contents.get("photo", []):
        value = line.value
        if isinstance(value, bytes):
            subtype = (line.params.get("TYPE") or ["jpeg"])[0].lower()
            return f"image/{subtype}", value
        if isinstance(value, str) and value.startswith("data:") and ";base64," in value:
            mime, _, data = value[5:].partition(";base64,")
            try:
                return mime or "image/jpeg", base64.b64decode(data)
            except ValueError:
                return None
    return None
