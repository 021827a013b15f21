"""Logging in and out of the web client.

The password is checked by the server's `Authenticator` (tidings/auth/login.py): the same login
rule, the same throttle (shared with IMAP, POP3 and SMTP, per client address and per account) and
the same log line (`protocol=web`) as every other protocol.
"""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from tidings.auth.login import LoginRefused, Reason
from tidings.store.web_sessions import WebSession
from tidings.web.session import (
    action,
    clear_session_cookie,
    client_ip,
    current_session,
    login_form_token,
    public,
    public_action,
    safe_next,
    set_login_cookie,
    set_session_cookie,
    tidings,
)
from tidings.web.templating import render

MAX_PASSWORD = 1024


def login_page(request: Request, next_path: str, status_code: int = 200, error: str = "", username: str = ""):
    token = login_form_token(request)
    response = render(
        request,
        "login.html",
        status_code=status_code,
        login_token=token,
        next=next_path,
        error=error,
        username=username,
    )
    set_login_cookie(request, response, token)
    return response


@public
async def show_login(request: Request) -> Response:
    next_path = safe_next(request.query_params.get("next"))
    if await current_session(request) is not None:
        return RedirectResponse(next_path, status_code=303)
    return login_page(request, next_path)


@public_action
async def log_in(request: Request, form: FormData) -> Response:
    server = tidings(request)
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))[:MAX_PASSWORD]
    next_path = safe_next(str(form.get("next", "")))
    try:
        account = await server.authenticator.password(
            "web", client_ip(request), username, password, mechanism="FORM"
        )
    except LoginRefused as refused:
        if refused.reason is Reason.THROTTLED:
            return login_page(
                request, next_path, 429, "Too many failed logins. Wait a few minutes and try again.", username
            )
        return login_page(request, next_path, 401, "Wrong address or password.", username)
    token, _ = await server.store.web_sessions.create(account, request.headers.get("user-agent", ""))
    response = RedirectResponse(next_path, status_code=303)
    set_session_cookie(request, response, token)
    return response


@action
async def log_out(request: Request, session: WebSession, form: FormData) -> Response:
    await tidings(request).store.web_sessions.end(session.account_id, session.id)
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookie(request, response)
    return response


@action
async def log_out_everywhere(request: Request, session: WebSession, form: FormData) -> Response:
    """Every web session of the account ends, this one too (a lost phone, a shared computer)."""
    await tidings(request).store.web_sessions.end_all(session.account_id)
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookie(request, response)
    return response


@public
async def home(request: Request) -> Response:
    return RedirectResponse("/mail" if await current_session(request) else "/login", status_code=303)


routes = [
    Route("/", home, methods=["GET"]),
    Route("/login", show_login, methods=["GET"]),
    Route("/login", log_in, methods=["POST"]),
    Route("/logout", log_out, methods=["POST"]),
    Route("/logout/everywhere", log_out_everywhere, methods=["POST"]),
]
