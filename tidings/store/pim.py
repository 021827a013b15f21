"""Contacts, calendars and journals: collections of vCard and iCalendar objects.

The web client and CalDAV/CardDAV serve the same rows (tables pim_* in store/schema.py): an
account's collections are address books and calendars (a journal is a calendar of VJOURNALs);
an object is one vCard or one iCalendar resource, its text the source of truth and its ETag the
digest of that text; every change to a collection raises its `sync_seq` by one and records the
resource name in the change log, so a sync token (RFC 6578) is a collection's sync_seq.

Every call names the acting account and is checked here, where the data is: an account reaches
its own collections and those shared with it (with it, or with its whole domain); anything else
is NotFound, as if it did not exist. A read-only share refuses writes (ReadOnly); only the owner
renames, deletes or shares a collection. Conditional writes (`if_match`, `if_none_match`) are
decided inside the write transaction, so of two edits made from the same ETag one wins and the
other gets PreconditionFailed — never lost silently.

This module never parses by hand: tidings.pim checks and indexes objects (vobject, icalendar).
It knows nothing of HTTP, DAV XML or HTML.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, delete, func, insert, or_, select, update

from tidings.pim import InvalidObject, ical, vcard
from tidings.store import schema as s
from tidings.store.database import Database, NotFound, StoreError, Tx

ADDRESSBOOK = "addressbook"
CALENDAR = "calendar"
READ = "read"
READ_WRITE = "read-write"
OWNER = "owner"

# Made for each account on first use: (kind, name, display name, components).
DEFAULT_COLLECTIONS = (
    (ADDRESSBOOK, "contacts", "Contacts", ""),
    (CALENDAR, "calendar", "Calendar", "VEVENT VTODO"),
    (CALENDAR, "journal", "Journal", "VJOURNAL"),
)
# CardDAV max-resource-size / CalDAV max-resource-size: a photo fits, a film does not.
MAX_OBJECT_BYTES = 4 * 1024 * 1024
MAX_COLLECTIONS = 200
MAX_NAME = 255
_SAFE_NAME = re.compile(r"^[A-Za-z0-9@._~+=-][A-Za-z0-9@._~+=,%-]*$")


class PreconditionFailed(StoreError):
    """If-Match or If-None-Match did not hold: someone else changed (or made) the object."""


class UidConflict(StoreError):
    """Another object of the collection already has this UID (CalDAV/CardDAV no-uid-conflict)."""

    def __init__(self, text: str, href: str) -> None:
        super().__init__(text)
        self.href = href


class NotAllowed(StoreError):
    """The account can see the collection but may not do this to it."""


class ReadOnly(NotAllowed):
    """The collection is shared with the account read-only."""


class InvalidSyncToken(StoreError):
    """A sync token this collection never gave out (RFC 6578 3.2 valid-sync-token)."""


class TooLarge(StoreError):
    pass


@dataclass(frozen=True)
class Collection:
    id: int
    owner_id: int
    owner_address: str
    kind: str
    name: str
    display_name: str
    colour: str | None
    description: str | None
    components: tuple[str, ...]
    timezone: str | None
    properties: dict[str, str]
    sync_seq: int
    access: str  # OWNER, READ_WRITE or READ: what the acting account may do

    @property
    def writable(self) -> bool:
        return self.access != READ

    @property
    def is_journal(self) -> bool:
        return self.components == ("VJOURNAL",)


@dataclass(frozen=True)
class PimObject:
    id: int
    collection_id: int
    href: str
    uid: str
    etag: str
    component: str
    card_kind: str | None
    modseq: int
    title: str
    emails: tuple[str, ...]
    categories: tuple[str, ...]
    first_start: float | None
    last_end: float | None
    recurs: bool
    all_day: bool
    updated_at: float
    data: str | None = None  # None when listed without data


@dataclass(frozen=True)
class SyncChanges:
    """RFC 6578: what changed after a token; `seq` is the token to give out next."""

    seq: int
    changed: list[str]
    deleted: list[str]


@dataclass(frozen=True)
class Share:
    id: int
    collection_id: int
    access: str
    grantee_account_id: int | None = None
    grantee_address: str | None = None
    grantee_domain_id: int | None = None
    grantee_domain: str | None = None


@dataclass(frozen=True)
class Suggestion:
    """A recipient for compose autocomplete: a contact's address, a group, or a directory entry."""

    name: str
    email: str  # "" for a group; its members are `members`
    source: str  # "contact" | "group" | "directory"
    object_id: int | None = None
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class DirectoryEntry:
    account_id: int
    address: str
    name: str
    uid: str
    etag: str
    data: str


@dataclass(frozen=True)
class Instance:
    """One occurrence in a calendar view, with the object it comes from."""

    collection_id: int
    object_id: int
    href: str
    etag: str
    occurrence: ical.Occurrence


@dataclass
class ImportResult:
    added: int = 0
    updated: int = 0
    failed: list[str] = field(default_factory=list)


def etag_of(data: str) -> str:
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class _Indexed:
    """An object checked and indexed, ready to write."""

    data: str
    uid: str
    component: str
    card_kind: str | None
    title: str
    emails: str
    categories: str
    search_text: str
    first_start: float | None
    last_end: float | None
    recurs: bool
    all_day: bool


def index_object(collection: Collection, data: str) -> _Indexed:
    """Check `data` for `collection` (a vCard for an address book, a calendar object of its
    supported components for a calendar) and derive the indexed columns."""
    if len(data.encode("utf-8")) > MAX_OBJECT_BYTES:
        raise TooLarge(f"an object is at most {MAX_OBJECT_BYTES} bytes")
    if collection.kind == ADDRESSBOOK:
        _, card = vcard.index_card(data)
        return _Indexed(
            data,
            card.uid,
            "VCARD",
            card.kind,
            card.title,
            "\n".join(card.emails),
            "\n".join(card.categories),
            card.search_text,
            None,
            None,
            False,
            False,
        )
    _, event = ical.index_calendar(data, collection.components)
    return _Indexed(
        data,
        event.uid,
        event.component,
        None,
        event.title,
        "",
        "\n".join(event.categories),
        event.search_text,
        event.first_start,
        event.last_end,
        event.recurs,
        event.all_day,
    )


def check_href(href: str) -> str:
    """A resource or collection name: one path segment, no tricks."""
    if not href or len(href) > MAX_NAME or href in (".", "..") or not _SAFE_NAME.match(href):
        raise InvalidObject(f"not an acceptable resource name: {href!r}")
    return href


def href_for(uid: str, kind: str) -> str:
    """The resource name the server picks for a new object: its UID when that is a safe name."""
    suffix = ".vcf" if kind == ADDRESSBOOK else ".ics"
    base = uid if _SAFE_NAME.match(uid) and len(uid) <= MAX_NAME - 4 else uuid.uuid4().hex
    return base + suffix


# -- SQL helpers (run inside a transaction) ---------------------------------------------------

_C, _O, _A = s.pim_collections, s.pim_objects, s.accounts


def _collection(row, access: str) -> Collection:
    return Collection(
        id=row.id,
        owner_id=row.account_id,
        owner_address=row.address,
        kind=row.kind,
        name=row.name,
        display_name=row.display_name,
        colour=row.colour,
        description=row.description,
        components=tuple(row.components.split()),
        timezone=row.timezone,
        properties=json.loads(row.properties) if row.properties else {},
        sync_seq=row.sync_seq,
        access=access,
    )


_COLLECTION_COLUMNS = (*_C.c, _A.c.address)


def _shared_access(tx: Tx, account_id: int, collection_ids: Sequence[int] | None) -> dict[int, str]:
    """collection id -> the best access shares give `account_id` (to it, or to its domain)."""
    sh = s.pim_shares
    domain = select(_A.c.domain_id).where(_A.c.id == account_id).scalar_subquery()
    query = select(sh.c.collection_id, sh.c.access).where(
        or_(sh.c.grantee_account_id == account_id, sh.c.grantee_domain_id == domain)
    )
    if collection_ids is not None:
        query = query.where(sh.c.collection_id.in_(collection_ids))
    best: dict[int, str] = {}
    for row in tx.conn.execute(query):
        if best.get(row.collection_id) != READ_WRITE:
            best[row.collection_id] = row.access
    return best


def resolve(tx: Tx, account_id: int, collection_id: int, *, write: bool = False) -> Collection:
    """The collection as `account_id` may use it, or NotFound / ReadOnly."""
    row = tx.conn.execute(
        select(*_COLLECTION_COLUMNS).join(_A, _A.c.id == _C.c.account_id).where(_C.c.id == collection_id)
    ).first()
    if row is None:
        raise NotFound("no such collection")
    if row.account_id == account_id:
        access = OWNER
    else:
        access = _shared_access(tx, account_id, [collection_id]).get(collection_id)
        if access is None:
            raise NotFound("no such collection")
    if write and access == READ:
        raise ReadOnly("this collection is shared with you read-only")
    return _collection(row, access)


def _owned(tx: Tx, account_id: int, collection_id: int) -> Collection:
    collection = resolve(tx, account_id, collection_id)
    if collection.access != OWNER:
        raise NotAllowed("only the owner may change or share the collection itself")
    return collection


def _object(row, with_data: bool) -> PimObject:
    return PimObject(
        id=row.id,
        collection_id=row.collection_id,
        href=row.href,
        uid=row.uid,
        etag=row.etag,
        component=row.component,
        card_kind=row.card_kind,
        modseq=row.modseq,
        title=row.title,
        emails=tuple(filter(None, row.emails.split("\n"))),
        categories=tuple(filter(None, row.categories.split("\n"))),
        first_start=row.first_start,
        last_end=row.last_end,
        recurs=bool(row.recurs),
        all_day=bool(row.all_day),
        updated_at=row.updated_at,
        data=row.data if with_data else None,
    )


_LIST_COLUMNS = [c for c in _O.c if c.name != "data"]


def _bump(tx: Tx, collection_id: int) -> int:
    """The collection's next sync_seq (a row lock on PostgreSQL keeps it strictly increasing)."""
    tx.conn.execute(update(_C).where(_C.c.id == collection_id).values(sync_seq=_C.c.sync_seq + 1))
    return tx.conn.execute(select(_C.c.sync_seq).where(_C.c.id == collection_id)).scalar_one()


def _log_change(tx: Tx, collection_id: int, href: str, seq: int, deleted: bool) -> None:
    ch = s.pim_changes
    where = and_(ch.c.collection_id == collection_id, ch.c.href == href)
    if tx.conn.execute(update(ch).where(where).values(seq=seq, deleted=deleted)).rowcount == 0:
        tx.conn.execute(insert(ch).values(collection_id=collection_id, href=href, seq=seq, deleted=deleted))


def _write_object(tx: Tx, collection: Collection, href: str, obj: _Indexed, existing) -> PimObject:
    """Insert or replace the object at `href` (existing: its current row or None)."""
    clash = tx.conn.execute(
        select(_O.c.href).where(_O.c.collection_id == collection.id, _O.c.uid == obj.uid, _O.c.href != href)
    ).first()
    if clash is not None:
        raise UidConflict(f"UID {obj.uid} is already used by {clash.href}", clash.href)
    seq = _bump(tx, collection.id)
    now = time.time()
    values = {
        "uid": obj.uid,
        "etag": etag_of(obj.data),
        "data": obj.data,
        "size": len(obj.data.encode("utf-8")),
        "component": obj.component,
        "card_kind": obj.card_kind,
        "modseq": seq,
        "updated_at": now,
        "title": obj.title,
        "emails": obj.emails,
        "categories": obj.categories,
        "search_text": obj.search_text,
        "first_start": obj.first_start,
        "last_end": obj.last_end,
        "recurs": obj.recurs,
        "all_day": obj.all_day,
    }
    if existing is None:
        values |= {"collection_id": collection.id, "href": href, "created_at": now}
        object_id = tx.conn.execute(insert(_O).values(**values)).inserted_primary_key[0]
    else:
        object_id = existing.id
        tx.conn.execute(update(_O).where(_O.c.id == object_id).values(**values))
    _log_change(tx, collection.id, href, seq, False)
    row = tx.conn.execute(select(*_O.c).where(_O.c.id == object_id)).one()
    return _object(row, True)


def _by_href(tx: Tx, collection_id: int, href: str):
    return tx.conn.execute(
        select(*_LIST_COLUMNS).where(_O.c.collection_id == collection_id, _O.c.href == href)
    ).first()


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class Pim:
    """Collections and objects of each account; see the module docstring."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- collections -----------------------------------------------------------------------

    async def collections(self, account_id: int, kind: str | None = None) -> list[Collection]:
        """The account's own collections (the defaults made on first use) and those shared with
        it, own first, each group by display name."""
        found = await self.db.read(self._collections, account_id, kind)
        if not any(c.access == OWNER for c in found) and not await self.db.read(self._owns_any, account_id):
            await self.db.write(self._make_defaults, account_id)
            found = await self.db.read(self._collections, account_id, kind)
        return found

    @staticmethod
    def _owns_any(tx: Tx, account_id: int) -> bool:
        return (
            tx.conn.execute(select(_C.c.id).where(_C.c.account_id == account_id).limit(1)).first() is not None
        )

    @staticmethod
    def _make_defaults(tx: Tx, account_id: int) -> None:
        if Pim._owns_any(tx, account_id):
            return
        if tx.conn.execute(select(_A.c.id).where(_A.c.id == account_id)).first() is None:
            raise NotFound("account no longer exists")
        for kind, name, display, components in DEFAULT_COLLECTIONS:
            tx.conn.execute(
                insert(_C).values(
                    account_id=account_id,
                    kind=kind,
                    name=name,
                    display_name=display,
                    components=components,
                    sync_seq=0,
                    created_at=time.time(),
                )
            )

    @staticmethod
    def _collections(tx: Tx, account_id: int, kind: str | None) -> list[Collection]:
        base = select(*_COLLECTION_COLUMNS).join(_A, _A.c.id == _C.c.account_id)
        if kind is not None:
            base = base.where(_C.c.kind == kind)
        own = [_collection(r, OWNER) for r in tx.conn.execute(base.where(_C.c.account_id == account_id))]
        shared_access = _shared_access(tx, account_id, None)
        shared = []
        if shared_access:
            query = base.where(_C.c.id.in_(list(shared_access)), _C.c.account_id != account_id)
            shared = [_collection(r, shared_access[r.id]) for r in tx.conn.execute(query)]
        order = {name: i for i, (_, name, _, _) in enumerate(DEFAULT_COLLECTIONS)}

        def key(c: Collection):
            return (order.get(c.name, len(order)), c.display_name.lower(), c.id)

        return sorted(own, key=key) + sorted(shared, key=lambda c: (c.owner_address, c.display_name.lower()))

    async def collection(self, account_id: int, collection_id: int) -> Collection:
        return await self.db.read(resolve, account_id, collection_id)

    async def collection_by_name(
        self, account_id: int, owner_address: str, kind: str, name: str
    ) -> Collection:
        """A collection by its DAV path (owner, home set kind, name), access-checked."""

        def op(tx: Tx) -> Collection:
            found = tx.conn.execute(
                select(_C.c.id)
                .join(_A, _A.c.id == _C.c.account_id)
                .where(_A.c.address == owner_address.lower(), _C.c.kind == kind, _C.c.name == name)
            ).scalar()
            if found is None:
                raise NotFound("no such collection")
            return resolve(tx, account_id, found)

        return await self.db.read(op)

    async def default_collection(self, account_id: int, name: str) -> Collection:
        """One of the account's default collections ("contacts", "calendar", "journal"), or the
        first it owns of that kind and components if the default was deleted."""
        kind, _, _, components = next(d for d in DEFAULT_COLLECTIONS if d[1] == name)
        own = [c for c in await self.collections(account_id, kind) if c.access == OWNER]
        for candidate in own:
            if candidate.name == name:
                return candidate
        for candidate in own:
            if kind == ADDRESSBOOK or set(components.split()) <= set(candidate.components):
                return candidate
        return await self.create_collection(
            account_id, kind, name.capitalize(), components=components.split()
        )

    async def create_collection(
        self,
        account_id: int,
        kind: str,
        display_name: str,
        *,
        name: str | None = None,
        components: Sequence[str] | None = None,
        colour: str | None = None,
        description: str | None = None,
    ) -> Collection:
        """A new address book or calendar (DAV MKCOL/MKCALENDAR names it; the web client not)."""
        if kind not in (ADDRESSBOOK, CALENDAR):
            raise StoreError(f"unknown collection kind {kind}")
        name = check_href(name) if name is not None else uuid.uuid4().hex
        if kind == CALENDAR:
            components = tuple(components or ("VEVENT", "VTODO"))
            if not components or set(components) - set(ical.COMPONENTS):
                raise StoreError("a calendar holds VEVENT, VTODO and/or VJOURNAL")
        else:
            components = ()
        display_name = display_name.strip() or name

        def op(tx: Tx) -> int:
            count = tx.conn.execute(select(func.count()).where(_C.c.account_id == account_id)).scalar_one()
            if count >= MAX_COLLECTIONS:
                raise StoreError(f"at most {MAX_COLLECTIONS} collections per account")
            clash = tx.conn.execute(
                select(_C.c.id).where(_C.c.account_id == account_id, _C.c.kind == kind, _C.c.name == name)
            ).first()
            if clash is not None:
                from tidings.store.database import AlreadyExists

                raise AlreadyExists(f"a collection named {name} exists")
            return tx.conn.execute(
                insert(_C).values(
                    account_id=account_id,
                    kind=kind,
                    name=name,
                    display_name=display_name[:MAX_NAME],
                    colour=colour,
                    description=description,
                    components=" ".join(components),
                    sync_seq=0,
                    created_at=time.time(),
                )
            ).inserted_primary_key[0]

        collection_id = await self.db.write(op)
        return await self.collection(account_id, collection_id)

    async def update_collection(
        self,
        account_id: int,
        collection_id: int,
        *,
        display_name: str | None = None,
        colour: str | None = None,
        description: str | None = None,
        timezone: str | None = None,
        properties: dict[str, str | None] | None = None,
    ) -> Collection:
        """Change a collection's properties (owner only). A None argument leaves it; "" clears
        colour, description and timezone; a None value in `properties` removes that property."""

        def op(tx: Tx) -> None:
            collection = _owned(tx, account_id, collection_id)
            values: dict = {}
            if display_name is not None:
                values["display_name"] = display_name.strip()[:MAX_NAME] or collection.name
            for key, value in (("colour", colour), ("description", description), ("timezone", timezone)):
                if value is not None:
                    values[key] = value or None
            if properties is not None:
                merged = dict(collection.properties)
                for key, value in properties.items():
                    if value is None:
                        merged.pop(key, None)
                    else:
                        merged[key] = value
                values["properties"] = json.dumps(merged) if merged else None
            if values:
                tx.conn.execute(update(_C).where(_C.c.id == collection_id).values(**values))

        await self.db.write(op)
        return await self.collection(account_id, collection_id)

    async def delete_collection(self, account_id: int, collection_id: int) -> None:
        """Remove a collection with its objects, change log and shares (owner only)."""

        def op(tx: Tx) -> None:
            _owned(tx, account_id, collection_id)
            tx.conn.execute(delete(s.pim_shares).where(s.pim_shares.c.collection_id == collection_id))
            tx.conn.execute(delete(s.pim_changes).where(s.pim_changes.c.collection_id == collection_id))
            tx.conn.execute(delete(_O).where(_O.c.collection_id == collection_id))
            tx.conn.execute(delete(_C).where(_C.c.id == collection_id))

        await self.db.write(op)

    # -- objects -----------------------------------------------------------------------------

    async def objects(
        self,
        account_id: int,
        collection_id: int,
        *,
        component: str | None = None,
        hrefs: Iterable[str] | None = None,
        with_data: bool = False,
    ) -> list[PimObject]:
        """A collection's objects (or those at `hrefs`: a DAV multiget), by title."""
        wanted = list(hrefs) if hrefs is not None else None

        def op(tx: Tx) -> list[PimObject]:
            resolve(tx, account_id, collection_id)
            query = select(*(_O.c if with_data else _LIST_COLUMNS)).where(_O.c.collection_id == collection_id)
            if component is not None:
                query = query.where(_O.c.component == component)
            if wanted is not None:
                query = query.where(_O.c.href.in_(wanted))
            rows = tx.conn.execute(query).all()
            return sorted((_object(r, with_data) for r in rows), key=lambda o: (o.title.lower(), o.id))

        return await self.db.read(op)

    async def object(self, account_id: int, object_id: int) -> PimObject:
        """One object by id, with its text (NotFound unless the account may read its collection)."""

        def op(tx: Tx) -> PimObject:
            row = tx.conn.execute(select(*_O.c).where(_O.c.id == object_id)).first()
            if row is None:
                raise NotFound("no such object")
            try:
                resolve(tx, account_id, row.collection_id)
            except NotFound:
                raise NotFound("no such object") from None
            return _object(row, True)

        return await self.db.read(op)

    async def object_by_href(self, account_id: int, collection_id: int, href: str) -> PimObject:
        def op(tx: Tx) -> PimObject:
            resolve(tx, account_id, collection_id)
            row = tx.conn.execute(
                select(*_O.c).where(_O.c.collection_id == collection_id, _O.c.href == href)
            ).first()
            if row is None:
                raise NotFound("no such object")
            return _object(row, True)

        return await self.db.read(op)

    async def put(
        self,
        account_id: int,
        collection_id: int,
        href: str | None,
        data: str,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> PimObject:
        """Store `data` at `href` (None: a new object, named after its UID).

        `if_match`: only if the object there has this ETag (a missing one fails too);
        `if_none_match`: only if there is none (If-None-Match: *). Either failing raises
        PreconditionFailed and changes nothing. The UID must not be another resource's.
        """
        collection = await self.collection(account_id, collection_id)
        if not collection.writable:
            raise ReadOnly("this collection is shared with you read-only")
        obj = index_object(collection, data)
        if href is None:
            href = href_for(obj.uid, collection.kind)
            if_none_match = if_match is None
        check_href(href)

        def op(tx: Tx) -> PimObject:
            current = resolve(tx, account_id, collection_id, write=True)
            existing = _by_href(tx, collection_id, href)
            if if_none_match and existing is not None:
                raise PreconditionFailed(f"{href} already exists")
            if if_match is not None and (existing is None or existing.etag != if_match.strip('"')):
                raise PreconditionFailed(f"{href} was changed by someone else")
            return _write_object(tx, current, href, obj, existing)

        return await self.db.write(op)

    async def delete(
        self, account_id: int, collection_id: int, href: str, *, if_match: str | None = None
    ) -> None:
        def op(tx: Tx) -> None:
            resolve(tx, account_id, collection_id, write=True)
            existing = _by_href(tx, collection_id, href)
            if existing is None:
                raise NotFound("no such object")
            if if_match is not None and existing.etag != if_match.strip('"'):
                raise PreconditionFailed(f"{href} was changed by someone else")
            seq = _bump(tx, collection_id)
            tx.conn.execute(delete(_O).where(_O.c.id == existing.id))
            _log_change(tx, collection_id, href, seq, True)

        await self.db.write(op)

    async def delete_object(self, account_id: int, object_id: int, *, if_match: str | None = None) -> None:
        found = await self.object(account_id, object_id)
        await self.delete(account_id, found.collection_id, found.href, if_match=if_match)

    async def move(
        self, account_id: int, object_id: int, to_collection_id: int, *, if_match: str | None = None
    ) -> PimObject:
        """Move an object to another collection of the same kind (web "move to", DAV MOVE)."""
        found = await self.object(account_id, object_id)
        target = await self.collection(account_id, to_collection_id)
        obj = index_object(target, found.data or "")

        def op(tx: Tx) -> PimObject:
            source = resolve(tx, account_id, found.collection_id, write=True)
            into = resolve(tx, account_id, to_collection_id, write=True)
            if source.id == into.id:
                return _object(tx.conn.execute(select(*_O.c).where(_O.c.id == object_id)).one(), True)
            row = tx.conn.execute(select(*_LIST_COLUMNS).where(_O.c.id == object_id)).first()
            if row is None or (if_match is not None and row.etag != if_match.strip('"')):
                raise PreconditionFailed("the object was changed by someone else")
            if _by_href(tx, into.id, row.href) is not None:
                raise PreconditionFailed(f"{row.href} already exists there")
            moved = _write_object(tx, into, row.href, obj, None)
            seq = _bump(tx, source.id)
            tx.conn.execute(delete(_O).where(_O.c.id == object_id))
            _log_change(tx, source.id, row.href, seq, True)
            return moved

        return await self.db.write(op)

    async def changes_since(self, account_id: int, collection_id: int, seq: int) -> SyncChanges:
        """RFC 6578 sync-collection: resource names changed or deleted after `seq` (0: all)."""

        def op(tx: Tx) -> SyncChanges:
            collection = resolve(tx, account_id, collection_id)
            if seq < 0 or seq > collection.sync_seq:
                raise InvalidSyncToken("unknown sync token")
            ch = s.pim_changes
            rows = tx.conn.execute(
                select(ch.c.href, ch.c.deleted).where(ch.c.collection_id == collection_id, ch.c.seq > seq)
            ).all()
            changed = sorted(r.href for r in rows if not r.deleted)
            deleted = sorted(r.href for r in rows if r.deleted) if seq > 0 else []
            return SyncChanges(collection.sync_seq, changed, deleted)

        return await self.db.read(op)

    # -- queries -----------------------------------------------------------------------------

    async def instances(
        self,
        account_id: int,
        start: datetime,
        end: datetime,
        *,
        collection_ids: Iterable[int] | None = None,
        components: Sequence[str] = ("VEVENT",),
    ) -> list[Instance]:
        """Every instance in [start, end) of the account's calendars (or of `collection_ids`),
        recurrences expanded with their exceptions, by start. `start`, `end` time-zone aware;
        floating times are read in `start`'s zone."""
        wanted = list(collection_ids) if collection_ids is not None else None
        low = start.timestamp() - ical.FLOATING_SLACK
        high = end.timestamp() + ical.FLOATING_SLACK

        def op(tx: Tx) -> list:
            if wanted is None:
                ids = [c.id for c in Pim._collections(tx, account_id, CALENDAR)]
            else:
                ids = [resolve(tx, account_id, i).id for i in wanted]
            if not ids:
                return []
            query = select(_O.c.id, _O.c.collection_id, _O.c.href, _O.c.etag, _O.c.data).where(
                _O.c.collection_id.in_(ids),
                _O.c.component.in_(list(components)),
                _O.c.first_start < high,
                or_(_O.c.last_end.is_(None), _O.c.last_end >= low),
            )
            return tx.conn.execute(query).all()

        rows = await self.db.read(op)
        found: list[Instance] = []
        for row in rows:
            for occurrence in ical.expand(row.data, start, end, components):
                found.append(Instance(row.collection_id, row.id, row.href, row.etag, occurrence))
        found.sort(key=lambda i: (ical.epoch(i.occurrence.start), not i.occurrence.all_day, i.object_id))
        return found

    async def objects_in_range(
        self,
        account_id: int,
        collection_id: int,
        start: datetime,
        end: datetime,
        components: Sequence[str] = ("VEVENT",),
    ) -> list[PimObject]:
        """The objects (with their text) having an instance that meets [start, end): CalDAV
        calendar-query's time-range filter (RFC 4791 9.9), found through the index and then
        checked by expanding only those rows."""
        low = start.timestamp() - ical.FLOATING_SLACK
        high = end.timestamp() + ical.FLOATING_SLACK

        def op(tx: Tx) -> list:
            resolve(tx, account_id, collection_id)
            query = select(*_O.c).where(
                _O.c.collection_id == collection_id,
                _O.c.component.in_(list(components)),
                _O.c.first_start < high,
                or_(_O.c.last_end.is_(None), _O.c.last_end >= low),
            )
            return tx.conn.execute(query.order_by(_O.c.id)).all()

        rows = await self.db.read(op)
        return [_object(r, True) for r in rows if ical.expand(r.data, start, end, components)]

    async def search(
        self,
        account_id: int,
        collection_id: int,
        text: str = "",
        *,
        category: str | None = None,
        component: str | None = None,
        limit: int = 200,
    ) -> list[PimObject]:
        """Objects of a collection whose text contains `text` (case-insensitive) and, if given,
        that carry `category`; newest first by start, then by title."""

        def op(tx: Tx) -> list[PimObject]:
            resolve(tx, account_id, collection_id)
            query = select(*_LIST_COLUMNS).where(_O.c.collection_id == collection_id)
            if text.strip():
                query = query.where(_O.c.search_text.like(_like(text.strip()), escape="\\"))
            if component is not None:
                query = query.where(_O.c.component == component)
            if category:
                query = query.where(_O.c.categories.like(_like(category), escape="\\"))
            rows = tx.conn.execute(query.order_by(_O.c.first_start.desc(), _O.c.id.desc()).limit(limit * 2))
            found = [_object(r, False) for r in rows]
            if category:
                found = [o for o in found if category.lower() in (c.lower() for c in o.categories)]
            return found[:limit]

        return await self.db.read(op)

    async def suggest(self, account_id: int, text: str, limit: int = 10) -> list[Suggestion]:
        """Recipients for compose autocomplete: contacts and groups of the account's address
        books (own and shared), then accounts of its domain, whose name or address contains
        `text`; names starting with it first."""
        needle = text.strip().lower()
        if not needle:
            return []

        def op(tx: Tx) -> list[Suggestion]:
            ids = [c.id for c in Pim._collections(tx, account_id, ADDRESSBOOK)]
            out: list[Suggestion] = []
            if ids:
                rows = tx.conn.execute(
                    select(_O.c.id, _O.c.title, _O.c.emails, _O.c.card_kind, _O.c.data)
                    .where(
                        _O.c.collection_id.in_(ids),
                        or_(
                            func.lower(_O.c.title).like(_like(needle), escape="\\"),
                            _O.c.emails.like(_like(needle), escape="\\"),
                        ),
                    )
                    .limit(limit * 5)
                )
                for row in rows:
                    if row.card_kind == "group":
                        _, card = vcard.index_card(row.data)
                        out.append(Suggestion(row.title, "", "group", row.id, card.members))
                        continue
                    for email in filter(None, row.emails.split("\n")):
                        if needle in row.title.lower() or needle in email:
                            out.append(Suggestion(row.title, email, "contact", row.id))
            for entry in _directory_rows(tx, account_id):
                if needle in entry.address or needle in entry.name.lower():
                    out.append(Suggestion(entry.name, entry.address, "directory"))
            return out

        found = await self.db.read(op)
        seen: set[tuple[str, str]] = set()
        unique = []
        for suggestion in found:
            key = (suggestion.source == "group" and suggestion.name or "", suggestion.email)
            if key not in seen:
                seen.add(key)
                unique.append(suggestion)

        def rank(sug: Suggestion):
            starts = sug.name.lower().startswith(needle) or sug.email.startswith(needle)
            return (not starts, sug.source == "directory", sug.name.lower(), sug.email)

        return sorted(unique, key=rank)[:limit]

    async def group_addresses(self, account_id: int, object_id: int) -> list[str]:
        """The e-mail addresses a contact group stands for (members by urn:uuid looked up in the
        group's address book, mailto: members as they are): the recipients of a group."""
        group = await self.object(account_id, object_id)
        if group.card_kind != "group" or group.data is None:
            raise NotFound("not a contact group")
        _, card = vcard.index_card(group.data)
        uids = [m[9:] if m.lower().startswith("urn:uuid:") else m for m in card.members]
        mailtos = [m[7:] for m in card.members if m.lower().startswith("mailto:")]

        def op(tx: Tx) -> list[str]:
            resolve(tx, account_id, group.collection_id)
            rows = tx.conn.execute(
                select(_O.c.uid, _O.c.emails).where(
                    _O.c.collection_id == group.collection_id,
                    _O.c.uid.in_(uids + [f"urn:uuid:{u}" for u in uids]),
                )
            )
            return [r.emails.split("\n")[0] for r in rows if r.emails]

        found = await self.db.read(op)
        return list(dict.fromkeys(found + mailtos))

    async def directory(self, account_id: int) -> list[DirectoryEntry]:
        """The domain directory: every enabled account of the acting account's domain, as
        read-only vCards made from the accounts (never stored, so always current)."""
        return await self.db.read(_directory_rows, account_id)

    async def directory_version(self, account_id: int) -> str:
        """A tag that changes whenever the directory does (an account added, removed, disabled
        or renamed): the directory address book's CTag / sync token for DAV."""
        entries = await self.directory(account_id)
        return hashlib.sha256("".join(e.etag for e in entries).encode()).hexdigest()[:32]

    # -- import and export ------------------------------------------------------------------

    async def import_text(self, account_id: int, collection_id: int, text: str) -> ImportResult:
        """Add the objects of a .vcf (3.0 or 4.0) or .ics file; one whose UID the collection
        already holds replaces it. Objects that do not parse are listed in `failed`."""
        collection = await self.collection(account_id, collection_id)
        if not collection.writable:
            raise ReadOnly("this collection is shared with you read-only")
        result = ImportResult()
        pieces = vcard.split_vcards(text) if collection.kind == ADDRESSBOOK else ical.split_calendar(text)
        indexed: list[_Indexed] = []
        for piece in pieces:
            try:
                indexed.append(index_object(collection, piece))
            except (InvalidObject, TooLarge) as error:
                result.failed.append(str(error))

        def op(tx: Tx) -> tuple[int, int]:
            current = resolve(tx, account_id, collection_id, write=True)
            added = updated = 0
            for obj in indexed:
                existing = tx.conn.execute(
                    select(*_LIST_COLUMNS).where(_O.c.collection_id == collection_id, _O.c.uid == obj.uid)
                ).first()
                if existing is not None:
                    _write_object(tx, current, existing.href, obj, existing)
                    updated += 1
                    continue
                href = href_for(obj.uid, current.kind)
                if _by_href(tx, collection_id, href) is not None:
                    href = href_for(uuid.uuid4().hex, current.kind)
                _write_object(tx, current, href, obj, None)
                added += 1
            return added, updated

        if indexed:
            result.added, result.updated = await self.db.write(op)
        return result

    async def export_text(self, account_id: int, collection_id: int, version: str | None = None) -> str:
        """A collection as one .vcf (each card converted to `version` if given) or .ics file."""
        collection = await self.collection(account_id, collection_id)
        found = await self.objects(account_id, collection_id, with_data=True)
        texts = [o.data or "" for o in found]
        if collection.kind == ADDRESSBOOK:
            return vcard.join_vcards(texts, version)
        return ical.join_calendars(texts, collection.display_name)

    # -- sharing -----------------------------------------------------------------------------

    async def share(
        self,
        account_id: int,
        collection_id: int,
        *,
        grantee_address: str | None = None,
        grantee_domain: str | None = None,
        access: str = READ,
    ) -> Share:
        """Share a collection with one account or with every account of a domain (owner only);
        sharing again with the same grantee changes the access."""
        if access not in (READ, READ_WRITE):
            raise StoreError("access is read or read-write")
        if (grantee_address is None) == (grantee_domain is None):
            raise StoreError("share with an account or with a domain")

        def op(tx: Tx) -> int:
            _owned(tx, account_id, collection_id)
            sh = s.pim_shares
            if grantee_address is not None:
                grantee = tx.conn.execute(
                    select(_A.c.id).where(_A.c.address == grantee_address.strip().lower())
                ).scalar()
                if grantee is None:
                    raise NotFound(f"no account {grantee_address}")
                if grantee == account_id:
                    raise StoreError("a collection is its owner's already")
                target = {"grantee_account_id": grantee, "grantee_domain_id": None}
                where = sh.c.grantee_account_id == grantee
            else:
                domain = tx.conn.execute(
                    select(s.domains.c.id).where(s.domains.c.name == grantee_domain.strip().lower())
                ).scalar()
                if domain is None:
                    raise NotFound(f"no domain {grantee_domain}")
                target = {"grantee_account_id": None, "grantee_domain_id": domain}
                where = sh.c.grantee_domain_id == domain
            where = and_(sh.c.collection_id == collection_id, where)
            existing = tx.conn.execute(select(sh.c.id).where(where)).scalar()
            if existing is not None:
                tx.conn.execute(update(sh).where(sh.c.id == existing).values(access=access))
                return existing
            return tx.conn.execute(
                insert(sh).values(
                    collection_id=collection_id, access=access, created_at=time.time(), **target
                )
            ).inserted_primary_key[0]

        share_id = await self.db.write(op)
        return next(x for x in await self.shares(account_id, collection_id) if x.id == share_id)

    async def shares(self, account_id: int, collection_id: int) -> list[Share]:
        def op(tx: Tx) -> list[Share]:
            _owned(tx, account_id, collection_id)
            sh, d = s.pim_shares, s.domains
            rows = tx.conn.execute(
                select(*sh.c, _A.c.address, d.c.name)
                .select_from(sh.outerjoin(_A, _A.c.id == sh.c.grantee_account_id))
                .outerjoin(d, d.c.id == sh.c.grantee_domain_id)
                .where(sh.c.collection_id == collection_id)
                .order_by(sh.c.id)
            )
            return [
                Share(
                    r.id,
                    r.collection_id,
                    r.access,
                    r.grantee_account_id,
                    r.address,
                    r.grantee_domain_id,
                    r.name,
                )
                for r in rows
            ]

        return await self.db.read(op)

    async def unshare(self, account_id: int, collection_id: int, share_id: int) -> None:
        def op(tx: Tx) -> None:
            _owned(tx, account_id, collection_id)
            sh = s.pim_shares
            gone = tx.conn.execute(delete(sh).where(sh.c.id == share_id, sh.c.collection_id == collection_id))
            if gone.rowcount == 0:
                raise NotFound("no such share")

        await self.db.write(op)


def _directory_rows(tx: Tx, account_id: int) -> list[DirectoryEntry]:
    domain = tx.conn.execute(select(_A.c.domain_id).where(_A.c.id == account_id)).scalar()
    if domain is None:
        return []
    rows = tx.conn.execute(
        select(_A.c.id, _A.c.address)
        .where(_A.c.domain_id == domain, _A.c.disabled.is_(False))
        .order_by(_A.c.address)
    )
    out = []
    for row in rows:
        local, _, domain_name = row.address.rpartition("@")
        name = local.replace(".", " ").replace("_", " ").title()
        uid = f"tidings-account-{row.id}@{domain_name}"
        data = vcard.directory_card(uid, name, row.address, domain_name)
        out.append(DirectoryEntry(row.id, row.address, name, uid, etag_of(data), data))
    return out
