"""The web client's areas, one module each. Every module exports `routes`, a list of Starlette
routes whose endpoints wear a guard from tidings.web.session (`page`, `action`, `public`,
`public_action`, `socket`); tidings.web.app refuses to start otherwise.

To add an area: write `routes/<area>.py` with its `routes`, add it to ROUTE_MODULES, put its
templates under `templates/<area>/` extending "base.html" with `area="<area>"`.
"""

from __future__ import annotations

import importlib

ROUTE_MODULES = [
    "tidings.web.routes.login",
    # Before mail: /mail/config-v1.1.xml is Thunderbird's autoconfig, not a folder.
    "tidings.web.routes.autoconfig",
    "tidings.web.routes.settings",
    "tidings.web.routes.admin",
    "tidings.web.routes.mail",
    "tidings.web.routes.search",
    "tidings.web.routes.compose",
    "tidings.web.routes.message",
    "tidings.web.routes.live",
    "tidings.web.routes.contacts",
    "tidings.web.routes.calendar",
    "tidings.web.routes.journal",
    "tidings.web.routes.invitations",
    "tidings.web.routes.soon",
]


def all_routes() -> list:
    routes: list = []
    for name in ROUTE_MODULES:
        routes.extend(importlib.import_module(name).routes)
    return routes
