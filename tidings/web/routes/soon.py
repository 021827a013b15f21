"""Placeholder pages for the areas of the navigation bar that are not built yet. An area's own
module replaces its entry here (remove it from AREAS when you add routes/<area>.py)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tidings.store.web_sessions import WebSession
from tidings.web.session import page
from tidings.web.templating import NAVIGATION, render

AREAS: list[str] = []  # every area has its own module now
LABELS = {area: label for area, label, _ in NAVIGATION}


def placeholder(area: str):
    @page
    async def show(request: Request, session: WebSession) -> Response:
        return render(request, "soon.html", area=area, title=LABELS[area])

    return show


routes = [Route(f"/{area}", placeholder(area), methods=["GET"]) for area in AREAS]
