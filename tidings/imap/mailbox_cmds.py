"""Mailbox-level commands: LIST, LSUB, NAMESPACE, STATUS, CREATE, DELETE, RENAME, (UN)SUBSCRIBE,
APPEND and QUOTA.

RFC 9051 6.3 (RFC 3501 6.3), LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819), CHILDREN
(RFC 3348), SPECIAL-USE / CREATE-SPECIAL-USE (RFC 6154), STATUS=SIZE (RFC 8438), MULTIAPPEND
(RFC 3502), UIDPLUS APPENDUID (RFC 4315), OBJECTID MAILBOXID (RFC 8474), QUOTA (RFC 9208).

There is one personal namespace per account with "/" as hierarchy delimiter and no shared or
other-users namespace, so another user's mailboxes cannot be named at all.
"""

from __future__ import annotations

from tidings.imap import commands as c
from tidings.imap import mutf7
from tidings.imap.mailbox_pattern import MailboxPattern
from tidings.imap.sequence import format_uid_set
from tidings.imap.states import AUTHENTICATED, Bad, No, command
from tidings.mail.imapurl import BadUrl, parse_imap_url
from tidings.store import AlreadyExists, NotFound, StoreError
from tidings.store.mailboxes import DELIMITER, SPECIAL_USES, Mailbox

_DELIM = DELIMITER.encode()


# ---------------------------------------------------------------------------- LIST / LSUB


def _matcher(session, reference: str, pattern: str):
    """A predicate on our UTF-8 names for a reference + pattern sent on the wire, or None if the
    pattern cannot match anything (invalid encoding)."""
    # RFC 3501 6.3.8 leaves a reference without a trailing delimiter to the server; like Dovecot and
    # Cyrus we read reference + pattern as one name, so LIST "Base" "*" lists Base and its children.
    full = reference + pattern
    if not session.utf8:
        try:
            full = mutf7.decode(full)
        except mutf7.ModifiedUtf7Error:
            return None
    pattern = MailboxPattern.compile(full, DELIMITER)  # never backtracks: see mailbox_pattern.py
    # INBOX is case-insensitive: compare the first five characters of the pattern in upper case.
    inbox_pattern = (
        MailboxPattern.compile("INBOX" + full[5:], DELIMITER) if full[:5].upper() == "INBOX" else None
    )

    def matches(name: str) -> bool:
        if pattern.matches(name):
            return True
        return (
            inbox_pattern is not None
            and (name == "INBOX" or name.startswith("INBOX/"))
            and inbox_pattern.matches(name)
        )

    return matches


def _hierarchy(boxes: list[Mailbox]) -> tuple[dict[str, Mailbox], set[str], set[str]]:
    """(existing names, names that have children, missing parents of existing names)."""
    by_name = {box.name: box for box in boxes}
    parents: set[str] = set()
    missing: set[str] = set()
    for name in by_name:
        parts = name.split(DELIMITER)
        for depth in range(1, len(parts)):
            parent = DELIMITER.join(parts[:depth])
            parents.add(parent)
            if parent not in by_name:
                missing.add(parent)
    return by_name, parents, missing


def _sort_key(name: str) -> tuple[int, str]:
    return (0 if name == "INBOX" else 1, name)


@command("LIST", AUTHENTICATED)
async def list_mailboxes(session, cmd: c.List) -> None:
    """RFC 9051 6.3.9 with LIST-EXTENDED selection and return options."""
    if not cmd.extended and cmd.patterns == ("",):
        # RFC 9051 6.3.9: an empty pattern asks for the delimiter and the root of the reference.
        session.untagged(b'LIST (\\Noselect) "/" ""')
        return
    boxes = await session.store.mailboxes.list(session.account.id)
    by_name, parents, missing = _hierarchy(boxes)
    matchers = [m for m in (_matcher(session, cmd.reference, p) for p in cmd.patterns) if m is not None]
    selection = cmd.selection
    want_subscribed = "SUBSCRIBED" in selection or "SUBSCRIBED" in cmd.return_options
    subscribed = {name for name, box in by_name.items() if box.subscribed}
    candidates = set(by_name) | missing
    if want_subscribed:
        # Subscriptions outlive their mailboxes: LIST (SUBSCRIBED) shows them \NonExistent
        # (RFC 5258 section 3.1 and its example 2, "Fruit/peach").
        dangling = set(await session.store.mailboxes.dangling_subscriptions(session.account.id))
        subscribed |= dangling
        if "SUBSCRIBED" in selection:
            candidates |= dangling

    results: list[tuple[str, list[str], bytes]] = []
    for name in sorted(candidates, key=_sort_key):
        await session.pace()  # many patterns times many mailboxes: let the others run meanwhile
        if not any(match(name) for match in matchers):
            continue
        box = by_name.get(name)
        attributes: list[str] = []
        extra = b""
        if box is None:
            attributes.append("\\NonExistent")
            if not session.rev2:
                attributes.append("\\Noselect")
        if "SUBSCRIBED" in selection and name not in subscribed:
            has_subscribed_child = any(s.startswith(name + DELIMITER) for s in subscribed)
            if not ("RECURSIVEMATCH" in selection and has_subscribed_child):
                continue
            extra = b' ("CHILDINFO" ("SUBSCRIBED"))'
        if "SPECIAL-USE" in selection and (box is None or not box.special_use):
            continue
        attributes.append("\\HasChildren" if name in parents else "\\HasNoChildren")
        if box is not None and box.special_use:
            attributes.append(box.special_use)
        if want_subscribed and name in subscribed:
            attributes.append("\\Subscribed")
        results.append((name, attributes, extra))

    for name, attributes, extra in results:
        encoded = session.encode_name(name)
        session.untagged(b"LIST (" + " ".join(attributes).encode() + b') "/" ' + encoded + extra)
        await session.pace()  # written as produced, waiting for a client slow to read
        if "STATUS" in cmd.return_options and name in by_name:
            session.untagged(await status_response(session, by_name[name], cmd.status_items))


@command("LSUB", AUTHENTICATED)
async def lsub(session, cmd: c.Lsub) -> None:
    """RFC 3501 6.3.9 (deprecated by RFC 9051 but still used by rev1 clients).

    When "%" stops above a subscribed name whose parent is not subscribed ("foo/bar" subscribed,
    "foo" not), the parent is returned with ``\\Noselect`` instead, as RFC 3501 6.3.9 requires.
    """
    boxes = await session.store.mailboxes.list(session.account.id)
    match = _matcher(session, cmd.reference, cmd.pattern)
    if match is None:
        return
    subscribed = {box.name for box in boxes if box.subscribed}
    subscribed |= set(await session.store.mailboxes.dangling_subscriptions(session.account.id))
    answers: dict[str, bool] = {}  # name -> subscribed itself
    for name in subscribed:
        if match(name):
            answers[name] = True
        parts = name.split(DELIMITER)
        for depth in range(1, len(parts)):
            parent = DELIMITER.join(parts[:depth])
            if parent not in subscribed and parent not in answers and match(parent):
                answers[parent] = False
        await session.pace()
    for name in sorted(answers, key=_sort_key):
        attributes = b"()" if answers[name] else b"(\\Noselect)"
        session.untagged(b"LSUB " + attributes + b' "/" ' + session.encode_name(name))
        await session.pace()


@command("NAMESPACE", AUTHENTICATED)
async def namespace(session, cmd: c.Namespace) -> None:
    """RFC 2342 / RFC 9051 6.3.10: one personal namespace, no others."""
    session.untagged(b'NAMESPACE (("" "/")) NIL NIL')


# ---------------------------------------------------------------------------- STATUS


async def status_response(session, box: Mailbox, items: tuple[str, ...]) -> bytes:
    status = await session.store.mailboxes.status(session.account.id, box.id)
    values = {
        "MESSAGES": status.messages,
        "RECENT": status.recent,  # above the recent cut: what the next SELECT will claim
        "UIDNEXT": status.uidnext,
        "UIDVALIDITY": status.uidvalidity,
        "UNSEEN": status.unseen,
        "DELETED": status.deleted,
        "SIZE": status.size,
        "HIGHESTMODSEQ": status.highestmodseq,
        "APPENDLIMIT": session.append_limit,
    }
    values["MAILBOXID"] = f"({box.object_id})"  # RFC 8474 4.2
    body = " ".join(f"{item} {values[item]}" for item in items)
    return b"STATUS " + session.encode_name(box.name) + b" (" + body.encode() + b")"


@command("STATUS", AUTHENTICATED)
async def status(session, cmd: c.Status) -> None:
    """RFC 9051 6.3.11, STATUS=SIZE (RFC 8438), HIGHESTMODSEQ (RFC 7162 3.1.6)."""
    box = await session.mailbox(cmd.mailbox)
    if "HIGHESTMODSEQ" in cmd.items:
        session.enable_condstore()
    session.untagged(await status_response(session, box, cmd.items))


# ---------------------------------------------------------------------------- CREATE & co


@command("CREATE", AUTHENTICATED)
async def create(session, cmd: c.Create):
    """RFC 9051 6.3.4; CREATE-SPECIAL-USE (RFC 6154 3); MAILBOXID in the OK (RFC 8474 4.1)."""
    name = session.decode_name(cmd.mailbox)
    if name.endswith(DELIMITER):
        name = name.rstrip(DELIMITER)  # "foo/" means "foo, intended to hold children"
    if name == "INBOX":
        raise No("INBOX always exists", "ALREADYEXISTS")
    special_use = None
    if cmd.special_use:
        uses = {_canonical_use(use) for use in cmd.special_use}
        if len(uses) > 1:
            raise No("Only one special-use attribute per mailbox", "USEATTR")
        special_use = uses.pop()
        if special_use not in SPECIAL_USES:
            raise No(f"Unsupported special-use attribute {special_use}", "USEATTR")
    try:
        box = await session.store.mailboxes.create(session.account.id, name, special_use)
    except AlreadyExists:
        raise No("Mailbox already exists", "ALREADYEXISTS") from None
    except StoreError as exc:
        raise No(f"Cannot create mailbox: {exc}", "CANNOT") from None
    return f"MAILBOXID ({box.object_id})", "CREATE completed"


def _canonical_use(use: str) -> str:
    lowered = {u.lower(): u for u in SPECIAL_USES}
    return lowered.get(use.lower(), use)


@command("DELETE", AUTHENTICATED)
async def delete(session, cmd: c.Delete) -> None:
    """RFC 9051 6.3.5: INBOX cannot be deleted; children survive their parent."""
    name = session.decode_name(cmd.mailbox)
    if name == "INBOX":
        raise No("INBOX cannot be deleted", "CANNOT")
    try:
        await session.store.mailboxes.delete(session.account.id, name)
    except NotFound:
        raise No("Mailbox does not exist", "NONEXISTENT") from None


@command("RENAME", AUTHENTICATED)
async def rename(session, cmd: c.Rename) -> None:
    """RFC 9051 6.3.6: children move along; renaming INBOX moves its messages out."""
    old = session.decode_name(cmd.mailbox)
    new = session.decode_name(cmd.new_name).rstrip(DELIMITER)
    if new == "INBOX":
        raise No("INBOX already exists", "ALREADYEXISTS")
    try:
        await session.store.mailboxes.rename(session.account.id, old, new)
    except NotFound:
        raise No("Mailbox does not exist", "NONEXISTENT") from None
    except AlreadyExists:
        raise No("Target mailbox already exists", "ALREADYEXISTS") from None
    except StoreError as exc:
        raise No(f"Cannot rename: {exc}", "CANNOT") from None


@command("SUBSCRIBE", AUTHENTICATED)
async def subscribe(session, cmd: c.Subscribe) -> None:
    """RFC 9051 6.3.7; only existing mailboxes can be subscribed here."""
    await _set_subscribed(session, cmd.mailbox, True)


@command("UNSUBSCRIBE", AUTHENTICATED)
async def unsubscribe(session, cmd: c.Unsubscribe) -> None:
    """RFC 9051 6.3.8."""
    await _set_subscribed(session, cmd.mailbox, False)


async def _set_subscribed(session, wire_name: str, subscribed: bool) -> None:
    name = session.decode_name(wire_name)
    try:
        await session.store.mailboxes.set_subscribed(session.account.id, name, subscribed)
    except NotFound:
        raise No("Mailbox does not exist", "NONEXISTENT") from None


# ---------------------------------------------------------------------------- APPEND


@command("APPEND", AUTHENTICATED)
async def append(session, cmd: c.Append):
    """RFC 9051 6.3.12 with MULTIAPPEND (all or nothing) and APPENDUID (RFC 4315 3)."""
    name = session.decode_name(cmd.mailbox)
    try:
        box = await session.store.mailboxes.get(session.account.id, name)
    except NotFound:
        raise No("Mailbox does not exist", "TRYCREATE") from None
    except StoreError as exc:
        raise No(f"Invalid mailbox name: {exc}", "CANNOT") from None
    items = []
    for message in cmd.messages:
        data = await _catenate(session, message.parts) if message.parts else message.data
        if not data:
            raise No("Empty message")
        if len(data) > session.append_limit:
            raise No(f"Message larger than {session.append_limit} bytes", "TOOBIG")
        flags = [flag for flag in message.flags if flag.lower() != "\\recent"]
        when = message.internal_date.timestamp() if message.internal_date is not None else None
        items.append((data, flags, when))
    results = await session.store.mailboxes.append_many(session.account.id, box.id, items)
    uidvalidity = results[0][0]
    uids = format_uid_set(uid for _, uid in results)
    return f"APPENDUID {uidvalidity} {uids}", "APPEND completed"


async def _catenate(session, parts: tuple[c.CatenatePart, ...]) -> bytes:
    """RFC 4469 section 5: the message is its TEXT parts and the bytes of its URL parts, in
    order.  A URL names a message (or part) in the user's own mailboxes, absolute or relative
    to this server; one that does not resolve fails the APPEND with ``NO [BADURL url]``.  An
    authorised URL (URLAUTH) may name another user's message its access identifier admits."""
    pieces: list[bytes] = []
    size = 0
    for part in parts:
        if part.url is None:
            data = part.text or b""
        else:
            data = await fetch_url(session, part.url, relative=True)
            if data is None:
                raise No(f"Cannot use URL {part.url}", f"BADURL {part.url}")
        size += len(data)
        if size > session.append_limit:
            raise No(f"Message larger than {session.append_limit} bytes", "TOOBIG")
        pieces.append(data)
    return b"".join(pieces)


async def fetch_url(session, text: str, *, relative: bool = False) -> bytes | None:
    """The bytes an IMAP URL names, for this session's user; None when it names nothing the
    user may read (RFC 4469 section 5, RFC 4467 section 6)."""
    try:
        url = parse_imap_url(text, relative=relative)
    except BadUrl:
        return None
    if url.authorized:
        return await session.store.urls.fetch_authorized(url, session.account.address)
    if url.user is not None and url.user.lower() != session.account.address.lower():
        return None  # another user's message needs an authorised URL
    return await session.store.urls.fetch(session.account.id, url)


# ---------------------------------------------------------------------------- QUOTA


def _quota_line(session, account) -> bytes:
    used_kib = (account.used_bytes + 1023) // 1024
    limit_kib = account.quota_bytes // 1024
    return b'QUOTA "" (STORAGE %d %d)' % (used_kib, limit_kib)


@command("GETQUOTAROOT", AUTHENTICATED)
async def get_quota_root(session, cmd: c.GetQuotaRoot) -> None:
    """RFC 9208 4.3.2: every mailbox of the account shares the root ""."""
    box = await session.mailbox(cmd.mailbox)
    account = await session.store.accounts.get_user_by_id(session.account.id)
    if account.quota_bytes is None:
        session.untagged(b"QUOTAROOT " + session.encode_name(box.name))
        return
    session.untagged(b"QUOTAROOT " + session.encode_name(box.name) + b' ""')
    session.untagged(_quota_line(session, account))


@command("GETQUOTA", AUTHENTICATED)
async def get_quota(session, cmd: c.GetQuota) -> None:
    """RFC 9208 4.3.1."""
    account = await session.store.accounts.get_user_by_id(session.account.id)
    if cmd.root != "" or account.quota_bytes is None:
        raise No("No such quota root", "NONEXISTENT")
    session.untagged(_quota_line(session, account))


@command("SETQUOTA", AUTHENTICATED)
async def set_quota(session, cmd: c.SetQuota) -> None:
    """RFC 9208 4.3.3: quotas are set by the administrator, not by users."""
    raise No("Quotas can only be changed by the administrator", "CANNOT")


__all__ = ["status_response", "Bad"]
