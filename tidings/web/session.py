"""Who is logged in, and the guards every endpoint of the web client wears.

A logged-in browser holds the cookie `tidings_session` (HttpOnly, SameSite=Lax, Secure under TLS)
with a random token; tidings.store.web_sessions keeps only its hash, with the account and the
session's CSRF token. Each endpoint is wrapped by exactly one guard, and `tidings.web.app` refuses
to start with a route that has none:

- `public`        GET, no login (the login page, static pages);
- `public_action` POST without a session (the login form): CSRF by double submit, a random
                  cookie `tidings_login` that the form must repeat;
- `public_query`  POST that changes nothing and ignores cookies (Autodiscover's POST);
- `page`          GET, logged in: `fn(request, session)`; logged out -> redirect to /login;
- `action`        a state change (POST), logged in and carrying the session's CSRF token as the
                  form field `csrf` or the header `X-CSRF-Token`: `fn(request, session, form)`;
- `socket`        a WebSocket, logged in and opened by one of our own pages (Origin checked).

Handlers get the session (`WebSession`: id, account_id, address, csrf_token) and pass
`session.account_id` to every store call: the store checks ownership, and a NotFound becomes 404,
so another account's ids look exactly like ids that do not exist.
"""

from __future__ import annotations

import functools
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import quote, urlsplit

from starlette.datastructures import FormData
from starlette.requests import HTTPConnection, Request
from starlette.responses import RedirectResponse, Response
from starlette.websockets import WebSocket

from tidings.store.web_sessions import WebSession
from tidings.web.templating import render

log = logging.getLogger(__name__)

SESSION_COOKIE = "tidings_session"
LOGIN_COOKIE = "tidings_login"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = ("GET", "HEAD")
# What a guarded form may hold: plenty for every form but uploads (which set their own limits).
MAX_FORM_FIELDS = 2000
MAX_FORM_PART = 1024 * 1024


def tidings(request: HTTPConnection):
    """The server's `App` (config, store, authenticator) the request is served by."""
    return request.app.state.tidings


def client_ip(request: HTTPConnection) -> str:
    return request.client.host if request.client else "unknown"


def is_tls(request: HTTPConnection) -> bool:
    return request.url.scheme in ("https", "wss")


async def current_session(request: HTTPConnection) -> WebSession | None:
    """The valid session of the request's cookie (read once per request), or None."""
    if "session" in request.state._state:
        return request.state.session
    token = request.cookies.get(SESSION_COOKIE, "")
    session = await tidings(request).store.web_sessions.find(token) if token else None
    request.state.session = session
    return session


def safe_next(target: str | None, default: str = "/mail") -> str:
    """A local path to go to after login: never another site (`//evil`, `https://evil`)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def login_redirect(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(here, safe='/')}", status_code=303)


def forbidden(request: Request, text: str) -> Response:
    return render(request, "error.html", status_code=403, title="Refused", message=text)


def tokens_match(given: str | None, expected: str) -> bool:
    return bool(given) and bool(expected) and hmac.compare_digest(str(given), expected)


async def read_form(request: Request) -> FormData:
    return await request.form(max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FORM_PART)


# -- the guards ------------------------------------------------------------------------------------

Handler = Callable[..., Awaitable[Response]]


def _mark(endpoint, guard: str):
    endpoint.tidings_guard = guard
    return endpoint


def public(fn: Callable[[Request], Awaitable[Response]]):
    """A GET endpoint anybody may load (it still learns the session, for the layout)."""

    @functools.wraps(fn)
    async def endpoint(request: Request) -> Response:
        await current_session(request)
        return await fn(request)

    return _mark(endpoint, "public")


def public_action(fn: Callable[[Request, FormData], Awaitable[Response]]):
    """A POST without a session (logging in): the form must repeat the `tidings_login` cookie."""

    @functools.wraps(fn)
    async def endpoint(request: Request) -> Response:
        await current_session(request)
        form = await read_form(request)
        if not tokens_match(form.get(CSRF_FIELD), request.cookies.get(LOGIN_COOKIE, "")):
            return forbidden(request, "This form has expired. Load the page again and retry.")
        return await fn(request, form)

    return _mark(endpoint, "public_action")


def public_query(fn: Callable[[Request], Awaitable[Response]]):
    """A POST that changes nothing and reads no cookie (Microsoft Autodiscover asks with a POST):
    with no session and no state change there is nothing for a forged request to gain."""

    @functools.wraps(fn)
    async def endpoint(request: Request) -> Response:
        return await fn(request)

    return _mark(endpoint, "public_query")


def page(fn: Callable[[Request, WebSession], Awaitable[Response]]):
    """A GET endpoint for a logged-in account; others are sent to the login page."""

    @functools.wraps(fn)
    async def endpoint(request: Request) -> Response:
        session = await current_session(request)
        if session is None:
            return login_redirect(request)
        return await fn(request, session)

    return _mark(endpoint, "page")


def action(
    fn: Callable[[Request, WebSession, FormData], Awaitable[Response]] | None = None,
    *,
    form=True,
    max_body: Callable[[Request], int] | None = None,
):
    """A state-changing endpoint (POST) for a logged-in account with the session's CSRF token.

    `form=False` leaves the body unread (uploads stream it themselves): the token must then come
    in the X-CSRF-Token header, and the handler gets an empty form. `max_body(request)`: the
    largest body accepted (file uploads, whose parts the form parser does not bound), told by
    Content-Length before anything is read (413 above it; a body without a length is refused)."""

    def wrap(fn):
        @functools.wraps(fn)
        async def endpoint(request: Request) -> Response:
            session = await current_session(request)
            if session is None:
                return forbidden(request, "You are not logged in (any more). Log in and try again.")
            given = request.headers.get(CSRF_HEADER)
            data = FormData()
            if max_body is not None:
                length = request.headers.get("content-length", "")
                limit = max_body(request)
                if not length.isdigit() or int(length) > limit:
                    return render(
                        request,
                        "error.html",
                        status_code=413 if length.isdigit() else 411,
                        title="Too large",
                        message=f"At most {limit // (1024 * 1024)} MB can be sent at once.",
                    )
            if form:
                data = await read_form(request)
                given = data.get(CSRF_FIELD) or given
            if not tokens_match(given, session.csrf_token):
                log.warning("web: refused a request without the CSRF token: %s", request.url.path)
                return forbidden(request, "This form has expired. Load the page again and retry.")
            return await fn(request, session, data)

        return _mark(endpoint, "action")

    return wrap(fn) if fn is not None else wrap


def same_origin(connection: HTTPConnection) -> bool:
    """A WebSocket must be opened by a page of ours: browsers send cookies with any site's
    WebSocket, so the Origin header is the CSRF check here."""
    origin = connection.headers.get("origin")
    host = connection.headers.get("host")
    if not origin or not host:
        return False
    parts = urlsplit(origin)
    return parts.netloc.lower() == host.lower() and parts.scheme in ("http", "https")


def socket(fn: Callable[[WebSocket, WebSession], Awaitable[None]]):
    """A WebSocket endpoint for a logged-in account, opened from our own origin."""

    @functools.wraps(fn)
    async def endpoint(websocket: WebSocket) -> None:
        session = await current_session(websocket)
        if session is None or not same_origin(websocket):
            await websocket.close(code=1008)
            return
        await fn(websocket, session)

    return _mark(endpoint, "socket")


# -- cookies ---------------------------------------------------------------------------------------


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(tidings(request).config.web.session_max_age),
        path="/",
        httponly=True,
        samesite="lax",
        secure=is_tls(request),
    )


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=is_tls(request))


def login_form_token(request: Request) -> str:
    """The double-submit token of the login form: the one in the cookie, or a new one."""
    token = request.cookies.get(LOGIN_COOKIE, "")
    return token if len(token) >= 20 else secrets.token_urlsafe(24)


def set_login_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        LOGIN_COOKIE, token, path="/", httponly=True, samesite="strict", secure=is_tls(request)
    )
