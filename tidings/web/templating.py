"""The Jinja2 environment of the web client and `render()`, which every page goes through.

Templates live in tidings/web/templates (package data, so `pip install` ships them); autoescaping
is on for every template. `render` gives each template what the base layout needs: the session
(None when logged out), its CSRF token, the navigation with the current area marked.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

# The navigation bar: (area, label, path). An area's pages pass `area=` to render() to be marked.
NAVIGATION = [
    ("mail", "Mail", "/mail"),
    ("contacts", "Contacts", "/contacts"),
    ("calendar", "Calendar", "/calendar"),
    ("journal", "Journal", "/journal"),
    ("settings", "Settings", "/settings"),
    ("admin", "Admin", "/admin"),
]


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    for unit in ("KB", "MB", "GB"):
        size /= 1024
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if size >= 10 else f"{size:.1f} {unit}"
    return f"{size} B"


def short_date(value: datetime | float | None) -> str:
    """Today: the time; this year: day and month; else the date (UTC until settings have a zone)."""
    if value is None:
        return ""
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(value, UTC)
    now = datetime.fromtimestamp(time.time(), value.tzinfo or UTC)
    if value.date() == now.date():
        return value.strftime("%H:%M")
    if value.year == now.year:
        return value.strftime("%d %b")
    return value.strftime("%Y-%m-%d")


def long_date(value: datetime | float | None) -> str:
    if value is None:
        return ""
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(value, UTC)
    return value.strftime("%a, %d %b %Y %H:%M %z")


environment = Environment(
    loader=PackageLoader("tidings.web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters["size"] = human_size
environment.filters["short_date"] = short_date
environment.filters["long_date"] = long_date


def render(request: Request, template: str, status_code: int = 200, **context) -> HTMLResponse:
    """The page `template` with the layout's context; `context` may override any of it."""
    session = getattr(request.state, "session", None)
    values = {
        "request": request,
        "session": session,
        "csrf_token": session.csrf_token if session is not None else "",
        "navigation": NAVIGATION,
        "area": None,
    }
    values.update(context)
    html = environment.get_template(template).render(values)
    return HTMLResponse(html, status_code=status_code)
