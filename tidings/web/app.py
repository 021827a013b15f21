"""Build the web client's ASGI app for one server `App`.

Every route must wear a guard from tidings.web.session; `build` raises at start-up for a route
that does not (or whose guard does not fit its methods), so an endpoint cannot be added that
forgets the login check or the CSRF check.
"""

from __future__ import annotations

from importlib.resources import files

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from tidings.store import NotFound, StoreError
from tidings.web.routes import all_routes
from tidings.web.security import SecurityHeaders
from tidings.web.session import current_session
from tidings.web.templating import render

SAFE_GUARDS = {"public", "page"}
CHANGING_GUARDS = {"action", "public_action"}
QUERY_GUARDS = {"public_query"}  # POST only, changing nothing (tidings.web.session.public_query)


class UnguardedRoute(RuntimeError):
    """A route whose endpoint wears no guard, or one that does not fit its methods."""


def check_guards(routes) -> None:
    for route in routes:
        if isinstance(route, Mount):
            continue  # static files only (see build)
        guard = getattr(route.endpoint, "tidings_guard", None)
        if isinstance(route, WebSocketRoute):
            ok = guard == "socket"
        elif isinstance(route, Route):
            methods = set(route.methods or ()) - {"HEAD"}
            ok = (
                (methods <= {"GET"} and guard in SAFE_GUARDS)
                or ("GET" not in methods and guard in CHANGING_GUARDS)
                or (methods == {"POST"} and guard in QUERY_GUARDS)
            )
        else:
            ok = False
        if not ok:
            raise UnguardedRoute(f"route {getattr(route, 'path', route)!r} has guard {guard!r}")


async def not_found(request: Request, exc: Exception):
    await current_session(request)
    return render(request, "error.html", status_code=404, title="Not found", message="There is nothing here.")


async def refused(request: Request, exc: StoreError):
    await current_session(request)
    return render(request, "error.html", status_code=400, title="Not done", message=str(exc))


def build(app) -> Starlette:
    """The ASGI app serving `app` (tidings.server.App)."""
    routes = all_routes()
    check_guards(routes)
    static = StaticFiles(directory=str(files("tidings.web") / "static"))
    web = Starlette(
        routes=[*routes, Mount("/static", app=static, name="static")],
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={404: not_found, NotFound: not_found, StoreError: refused},
    )
    web.state.tidings = app
    return web
