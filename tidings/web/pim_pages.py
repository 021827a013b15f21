"""What the contacts, calendar and journal pages share: the reader's time zone, numeric
parameters, uploaded files, downloads, and the sidebar of collections.

The pages themselves are in routes/contacts.py, routes/calendar.py and routes/journal.py; the data
is the store's (`store.pim`), which checks on every call that the session's account may use the
collection or object named in the URL — another account's ids are NotFound (404).
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response

from tidings.store import NotFound

# tidings.js stores the browser's zone (Intl) here; without JavaScript pages are in UTC.
ZONE_COOKIE = "tidings_tz"
MAX_IMPORT_BYTES = 8 * 1024 * 1024
# Said when a save carried an ETag that no longer holds (the edit is refused, not merged).
CHANGED_ELSEWHERE = "This was changed elsewhere meanwhile; here it is as it is now. Make your change again."
_ZONES: list[str] = []


def zone_names() -> list[str]:
    """Every IANA zone name, for the event form's time-zone menu."""
    if not _ZONES:
        _ZONES.extend(sorted(z for z in available_timezones() if "/" in z or z == "UTC"))
    return _ZONES


def reader_zone(request: Request) -> ZoneInfo:
    name = request.query_params.get("tz") or request.cookies.get(ZONE_COOKIE) or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def int_param(value, default: int = 0) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default


def path_id(request: Request, name: str) -> int:
    """A numeric id from the path (routes declare it `:int`); 0 or less does not exist."""
    value = int_param(request.path_params.get(name), -1)
    if value <= 0:
        raise NotFound("no such page")
    return value


async def uploaded_text(form: FormData, name: str = "file") -> str:
    """The text of an uploaded .vcf/.ics file (UTF-8, or Latin-1 for old exports)."""
    upload = form.get(name)
    if not isinstance(upload, UploadFile):
        return ""
    data = await upload.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        raise ValueError(f"a file to import is at most {MAX_IMPORT_BYTES // (1024 * 1024)} MB")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def download(body: str | bytes, filename: str, media_type: str) -> Response:
    safe = "".join(c if c.isalnum() or c in "-_. " else "_" for c in filename).strip() or "export"
    return Response(
        body,
        media_type=media_type,
        headers={"Content-Disposition": f"attachment; filename=\"{safe}\"; filename*=UTF-8''{quote(safe)}"},
    )


def local_input(value: datetime) -> str:
    """A time for <input type="datetime-local">."""
    return value.strftime("%Y-%m-%dT%H:%M")


def parse_local(value: str | None) -> datetime | None:
    if not value:
        return None
    for pattern in ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"):
        try:
            return datetime.strptime(value.strip(), pattern)
        except ValueError:
            continue
    return None


async def share_collection(store, account_id: int, collection_id: int, form: FormData) -> str | None:
    """Share (or stop sharing) one of the account's collections from a form; the message to show
    if it was refused. Only the owner may (the store says NotAllowed to anyone else)."""
    from tidings.store import StoreError

    pim = store.pim
    await pim.shares(account_id, collection_id)  # the owner's only: NotFound for anyone else's ids
    try:
        if form.get("share_id"):
            await pim.unshare(account_id, collection_id, int_param(form.get("share_id")))
            return None
        access = "read-write" if form.get("access") == "read-write" else "read"
        if form.get("everyone") == "1":
            owner = await pim.collection(account_id, collection_id)
            domain = owner.owner_address.rpartition("@")[2]
            await pim.share(account_id, collection_id, grantee_domain=domain, access=access)
        else:
            address = str(form.get("grantee", "")).strip()
            if not address:
                return "Give the address of the person to share with."
            await pim.share(account_id, collection_id, grantee_address=address, access=access)
    except NotFound as error:
        if "no account" in str(error) or "no domain" in str(error):
            return f"{error}: only people with an account here can be given a share."
        raise
    except StoreError as error:
        return str(error)
    return None
