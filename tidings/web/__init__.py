"""The web client: a Starlette + Jinja2 ASGI app served by uvicorn inside every `tidings serve`
worker, on the "http" and "https" listeners (tidings/web/listener.py).

Layout (docs/web.md says how to add an area):

- `listener.py`   the listeners: uvicorn's protocol machinery on the sockets the supervisor bound.
- `app.py`        builds the ASGI app from the route modules and checks every route is guarded.
- `session.py`    who is logged in (cookie -> store.web_sessions), the `page` / `action` /
                  `public` guards every endpoint wears, CSRF checks, login and logout.
- `security.py`   response headers every page gets (Content-Security-Policy and friends).
- `templating.py` the Jinja2 environment and `render()`.
- `routes/`       one module per area (login, mail, live, ...); each exports `routes`.
- `mailview.py`, `sanitise.py`   reading a stored message for display; HTML mail made harmless.
- `templates/`, `static/`        our own templates, CSS and JavaScript (no CDN, no build step).

Like every protocol package it never touches SQL or blob files (everything goes through
tidings.store with the acting account) and never imports another protocol package.
"""
