"""The admin console: domains and DKIM records, users, aliases, the outbound queue, recent
deliveries and failures, listener and session status, storage use, and charts of mail per hour
and the queue's length.

Admin accounts only (`tidings user add --admin`, `tidings user admin`): every endpoint checks the
admin flag read with the session on every request and answers 404 otherwise, exactly as for a
page that does not exist, so the console is not even visible to others (the navigation hides it
too). Actions are the same store calls the `tidings` command makes, with the same checks (the
password rule, address and domain validation); CSRF as for every other action.
"""

from __future__ import annotations

import asyncio
import functools
import time

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from tidings.auth.passwords import WeakPassword
from tidings.config import ConfigError, parse_size
from tidings.mail.address import BadAddress
from tidings.mail.dkim import dns_record, make_key
from tidings.status import port_open, read_status
from tidings.store import NotFound, StoreError
from tidings.store.traffic import HOUR
from tidings.store.web_sessions import WebSession
from tidings.web import charts
from tidings.web.session import action, page, tidings
from tidings.web.templating import render

CHART_HOURS = 48
MAX_USERS_SHOWN = 500
DONE = {
    "domain": "Domain added.",
    "domain-removed": "Domain removed.",
    "dkim": "New DKIM key made: publish its record below before mail is signed with it.",
    "user": "User added.",
    "user-changed": "User changed.",
    "user-removed": "User removed.",
    "alias": "Alias added.",
    "alias-removed": "Alias removed.",
    "retry": "The message(s) will be retried now.",
    "deleted": "Queue entry deleted.",
}
FAILURES = (StoreError, BadAddress, WeakPassword, ConfigError)
TABS = [
    ("overview", "Overview", "/admin"),
    ("domains", "Domains", "/admin/domains"),
    ("users", "Users", "/admin/users"),
    ("aliases", "Aliases", "/admin/aliases"),
    ("queue", "Queue", "/admin/queue"),
    ("deliveries", "Deliveries", "/admin/deliveries"),
    ("status", "Status", "/admin/status"),
]


def admin_only(fn):
    """Run `fn` only for an admin account; anyone else gets the 404 of a missing page. The flag
    comes with the session, which is read from the store on every request (a disabled account has
    no session at all), so a revoked admin is refused at the next page."""

    @functools.wraps(fn)
    async def guarded(request: Request, session: WebSession, *rest):
        if not session.admin:
            raise NotFound("not an admin")
        return await fn(request, session, *rest)

    return guarded


def admin_page(fn):
    return page(admin_only(fn))


def admin_action(fn):
    return action(admin_only(fn))


def show(request: Request, template: str, tab: str, status_code: int = 200, **context) -> Response:
    return render(
        request,
        f"admin/{template}",
        status_code=status_code,
        area="admin",
        tab=tab,
        tabs=TABS,
        title="Admin",
        notice=DONE.get(request.query_params.get("done", ""), ""),
        **context,
    )


def done(path: str, key: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?done={key}", status_code=303)


def text(form: FormData, name: str, limit: int = 1000) -> str:
    return str(form.get(name, ""))[:limit].strip()


# -- overview --------------------------------------------------------------------------------------


@admin_page
async def overview(request: Request, session: WebSession) -> Response:
    store = tidings(request).store
    now = time.time()
    hourly = await store.traffic.per_hour(CHART_HOURS, now)
    samples = await store.traffic.queue_lengths(now - CHART_HOURS * HOUR)
    queue_length = await store.queue.count()
    samples.append((now, queue_length))
    domains, users, aliases = await store.accounts.count()
    kinds = ["received", "delivered", "deferred", "failed"]
    per_hour = charts.stacked_bars(
        f"Messages per hour over the last {CHART_HOURS} hours (UTC)",
        hourly.start,
        HOUR,
        [charts.Series(kind, hourly.series(kind)) for kind in kinds],
    )
    queue_chart = charts.line(
        f"Outbound queue length over the last {CHART_HOURS} hours (UTC)",
        now - CHART_HOURS * HOUR,
        CHART_HOURS * HOUR,
        samples,
        "queue",
    )
    totals = {kind: sum(hourly.series(kind)) for kind in kinds}
    return show(
        request,
        "overview.html",
        "overview",
        per_hour=per_hour,
        queue_chart=queue_chart,
        totals=totals,
        kinds=kinds,
        queue_length=queue_length,
        counts={"domains": domains, "users": users, "aliases": aliases},
        failures=await store.traffic.recent(("failed", "deferred"), 8),
        running=read_status(tidings(request).config),
    )


# -- domains and DKIM ------------------------------------------------------------------------------


async def domains_page(request: Request, status_code: int = 200, error: str = "") -> Response:
    store = tidings(request).store
    storage = {name: (count, used) for name, count, used in await store.accounts.storage_by_domain()}
    rows = []
    for domain in await store.accounts.list_domains():
        record = None
        if domain.dkim_selector and domain.dkim_private_key:
            record = dns_record(domain.name, domain.dkim_selector, domain.dkim_private_key)
        rows.append((domain, record, *storage.get(domain.name, (0, 0))))
    return show(
        request,
        "domains.html",
        "domains",
        status_code=status_code,
        rows=rows,
        hostname=tidings(request).config.hostname,
        error=error,
    )


@admin_page
async def domains(request: Request, session: WebSession) -> Response:
    return await domains_page(request)


@admin_action
async def add_domain(request: Request, session: WebSession, form: FormData) -> Response:
    try:
        await tidings(request).store.accounts.add_domain(text(form, "domain", 253))
    except FAILURES as exc:
        return await domains_page(request, 400, str(exc))
    return done("/admin/domains", "domain")


@admin_action
async def make_dkim(request: Request, session: WebSession, form: FormData) -> Response:
    selector = text(form, "selector", 63) or "tidings"
    if not selector.replace("-", "").isalnum():
        return await domains_page(request, 400, "A selector is letters, digits and hyphens.")
    accounts = tidings(request).store.accounts
    domain = await accounts.get_domain(request.path_params["domain"])
    private_pem, _ = await asyncio.to_thread(make_key)
    await accounts.set_dkim(domain.name, selector, private_pem)
    return done("/admin/domains", "dkim")


@admin_action
async def remove_domain(request: Request, session: WebSession, form: FormData) -> Response:
    try:
        await tidings(request).store.accounts.remove_domain(request.path_params["domain"], force=False)
    except NotFound:
        raise
    except FAILURES as exc:
        return await domains_page(request, 400, str(exc))
    return done("/admin/domains", "domain-removed")


# -- users -----------------------------------------------------------------------------------------


async def users_page(request: Request, status_code: int = 200, error: str = "") -> Response:
    store = tidings(request).store
    domain = request.query_params.get("domain") or None
    try:
        users = await store.accounts.list_users(domain)
    except BadAddress:
        users = []
    return show(
        request,
        "users.html",
        "users",
        status_code=status_code,
        users=users[:MAX_USERS_SHOWN],
        more=max(0, len(users) - MAX_USERS_SHOWN),
        domains=[d.name for d in await store.accounts.list_domains()],
        domain=domain,
        error=error,
    )


@admin_page
async def users(request: Request, session: WebSession) -> Response:
    return await users_page(request)


def quota_of(value: str) -> int | None:
    value = value.strip().lower()
    return None if value in ("", "none", "unlimited") else parse_size(value)


@admin_action
async def add_user(request: Request, session: WebSession, form: FormData) -> Response:
    try:
        await tidings(request).store.accounts.add_user(
            text(form, "address", 320),
            str(form.get("password", ""))[:1024],
            quota_of(text(form, "quota", 40)),
            admin=form.get("admin") == "on",
        )
    except FAILURES as exc:
        return await users_page(request, 400, str(exc))
    return done("/admin/users", "user")


@admin_action
async def change_user(request: Request, session: WebSession, form: FormData) -> Response:
    """One change to one user: disable, enable, password, quota, admin, unadmin, remove."""
    accounts = tidings(request).store.accounts
    address = request.path_params["address"]
    change = request.path_params["change"]
    try:
        await accounts.get_user(address)
        if change in ("disable", "enable"):
            if change == "disable" and address == session.address:
                raise StoreError("You cannot disable your own account here.")
            await accounts.set_disabled(address, change == "disable")
        elif change == "password":
            await accounts.set_password(address, str(form.get("password", ""))[:1024])
        elif change == "quota":
            await accounts.set_quota(address, quota_of(text(form, "quota", 40)))
        elif change in ("admin", "unadmin"):
            if change == "unadmin" and address == session.address:
                raise StoreError("You cannot take the admin console away from yourself.")
            await accounts.set_admin(address, change == "admin")
        elif change == "remove":
            if address == session.address:
                raise StoreError("You cannot remove your own account here.")
            await accounts.remove_user(address)
            return done("/admin/users", "user-removed")
        else:
            raise NotFound(change)
    except NotFound:
        raise
    except FAILURES as exc:
        return await users_page(request, 400, f"{address}: {exc}")
    return done("/admin/users", "user-changed")


# -- aliases ---------------------------------------------------------------------------------------


async def aliases_page(request: Request, status_code: int = 200, error: str = "") -> Response:
    aliases = await tidings(request).store.accounts.list_aliases()
    return show(request, "aliases.html", "aliases", status_code=status_code, aliases=aliases, error=error)


@admin_page
async def aliases(request: Request, session: WebSession) -> Response:
    return await aliases_page(request)


@admin_action
async def add_alias(request: Request, session: WebSession, form: FormData) -> Response:
    targets = text(form, "targets", 4000).replace(",", " ").split()
    try:
        await tidings(request).store.accounts.add_alias(text(form, "alias", 320), targets)
    except FAILURES as exc:
        return await aliases_page(request, 400, str(exc))
    return done("/admin/aliases", "alias")


@admin_action
async def remove_alias(request: Request, session: WebSession, form: FormData) -> Response:
    try:
        accounts = tidings(request).store.accounts
        await accounts.remove_alias(text(form, "alias", 320), text(form, "target", 320) or None)
    except NotFound:
        raise
    except FAILURES as exc:
        return await aliases_page(request, 400, str(exc))
    return done("/admin/aliases", "alias-removed")


# -- the queue -------------------------------------------------------------------------------------


@admin_page
async def queue(request: Request, session: WebSession) -> Response:
    entries = await tidings(request).store.queue.list()
    return show(request, "queue.html", "queue", entries=entries, now=time.time())


@admin_action
async def retry_all(request: Request, session: WebSession, form: FormData) -> Response:
    await tidings(request).store.queue.retry(None)
    return done("/admin/queue", "retry")


@admin_action
async def retry_entry(request: Request, session: WebSession, form: FormData) -> Response:
    await tidings(request).store.queue.retry(request.path_params["id"])
    return done("/admin/queue", "retry")


@admin_action
async def delete_entry(request: Request, session: WebSession, form: FormData) -> Response:
    await tidings(request).store.queue.delete(request.path_params["id"])
    return done("/admin/queue", "deleted")


# -- deliveries and status -------------------------------------------------------------------------

DELIVERY_FILTERS = {
    "all": None,
    "failures": ("failed", "deferred"),
    "received": ("received",),
    "delivered": ("delivered",),
}


@admin_page
async def deliveries(request: Request, session: WebSession) -> Response:
    which = request.query_params.get("show", "all")
    kinds = DELIVERY_FILTERS.get(which)
    entries = await tidings(request).store.traffic.recent(kinds, 200)
    return show(
        request, "deliveries.html", "deliveries", entries=entries, which=which, filters=list(DELIVERY_FILTERS)
    )


@admin_page
async def status(request: Request, session: WebSession) -> Response:
    app = tidings(request)
    running = read_status(app.config)
    listeners = []
    if running is not None:
        for name, addresses in running.listeners.items():
            for host, port in addresses:
                listeners.append((name, host, port, running.sessions.get(name, 0)))
        answering = await asyncio.gather(*(asyncio.to_thread(port_open, h, p) for _, h, p, _ in listeners))
        listeners = [(*row, ok) for row, ok in zip(listeners, answering, strict=True)]
    users = sorted(await app.store.accounts.list_users(), key=lambda a: a.used_bytes, reverse=True)
    return show(
        request,
        "status.html",
        "status",
        running=running,
        listeners=listeners,
        now=time.time(),
        storage=await app.store.accounts.storage_by_domain(),
        biggest=users[:50],
        bodies=await asyncio.to_thread(app.store.blobs.usage_bytes),
    )


routes = [
    Route("/admin", overview, methods=["GET"]),
    Route("/admin/domains", domains, methods=["GET"]),
    Route("/admin/domains", add_domain, methods=["POST"]),
    Route("/admin/domains/{domain}/dkim", make_dkim, methods=["POST"]),
    Route("/admin/domains/{domain}/remove", remove_domain, methods=["POST"]),
    Route("/admin/users", users, methods=["GET"]),
    Route("/admin/users", add_user, methods=["POST"]),
    Route("/admin/users/{address}/{change}", change_user, methods=["POST"]),
    Route("/admin/aliases", aliases, methods=["GET"]),
    Route("/admin/aliases", add_alias, methods=["POST"]),
    Route("/admin/aliases/remove", remove_alias, methods=["POST"]),
    Route("/admin/queue", queue, methods=["GET"]),
    Route("/admin/queue/retry", retry_all, methods=["POST"]),
    Route("/admin/queue/{id:int}/retry", retry_entry, methods=["POST"]),
    Route("/admin/queue/{id:int}/delete", delete_entry, methods=["POST"]),
    Route("/admin/deliveries", deliveries, methods=["GET"]),
    Route("/admin/status", status, methods=["GET"]),
]
