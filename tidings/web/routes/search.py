"""Search: the search box of the mail pages and its advanced fields (from, to, subject, body,
dates, attachments, one folder or all), answered by the store's full-text index
(tidings/store/search.py): a page of results, newest first, each linking to its message.

Words match the beginnings of words ("inv" finds "invoice"), every word needed. Pages go on by
keyset (`after`), so new mail arriving meanwhile does not shift them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tidings.store.search import SearchQuery
from tidings.store.web_sessions import WebSession
from tidings.web.routes.mail import folder_list, int_param
from tidings.web.session import page, tidings
from tidings.web.templating import render

PAGE = 50
FIELDS = ("q", "from", "to", "subject", "body", "since", "until", "attachment", "unread", "flagged", "in")


def _day(value: str) -> float | None:
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def query_from(params) -> SearchQuery:
    get = lambda name: str(params.get(name, ""))[:500].strip()  # noqa: E731
    until = _day(get("until"))
    return SearchQuery(
        text=get("q"),
        from_=get("from"),
        to=get("to"),
        subject=get("subject"),
        body=get("body"),
        since=_day(get("since")),
        before=until + timedelta(days=1).total_seconds() if until is not None else None,
        has_attachment=True if get("attachment") == "1" else None,
        without_flags=frozenset({"\\Seen"}) if get("unread") == "1" else frozenset(),
        flags=frozenset({"\\Flagged"}) if get("flagged") == "1" else frozenset(),
        mailbox_id=int_param(get("in"), 0) or None,
    )


def _after(value: str) -> tuple[float, int] | None:
    date, _, entry = value.partition("_")
    try:
        return float(date), int(entry)
    except ValueError:
        return None


@page
async def search(request: Request, session: WebSession) -> Response:
    store = tidings(request).store
    params = request.query_params
    query = query_from(params)
    asked = any(str(params.get(name, "")).strip() for name in FIELDS if name != "in")
    results = None
    if asked:
        after = _after(params.get("after", ""))
        results = await store.search.search(session.account_id, query, limit=PAGE, after=after)
    folders = await folder_list(store, session.account_id)
    kept = {name: params.get(name, "") for name in FIELDS if params.get(name)}
    next_link = None
    if results is not None and results.next_after is not None:
        date, entry = results.next_after
        next_link = "/mail/search?" + urlencode({**kept, "after": f"{date!r}_{entry}"})
    return render(
        request,
        "mail/search.html",
        area="mail",
        title="Search",
        folders=folders,
        form=kept,
        advanced=any(name in kept for name in FIELDS if name != "q"),
        results=results,
        next_link=next_link,
        back="/mail/search?" + urlencode(kept),
    )


routes = [Route("/mail/search", search, methods=["GET"])]
