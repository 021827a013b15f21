"""HTML mail made harmless for display: nh3 (ammonia) keeps a list of known-safe tags, attributes
and style properties and drops everything else.

What a message must never do when shown, and what stops it here (the sandboxed frame and its
Content-Security-Policy, tidings/web/routes/message.py, are the second line):
- run script: <script>, event handlers (onerror=...), `javascript:` and `data:` URLs are dropped;
- load anything remote before the reader allows it: <img src="http..."> is replaced by a local
  placeholder (its address kept in data-remote-src for "show images"), and style properties
  that take a URL (background, list-style-image, ...) are not kept at all;
- reach the web client: links open in a new browsing context with no opener and no referrer.

`cid:` images (parts of the same message) become what `inline_url` makes of them (data: URLs).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import nh3

BLOCKED_IMAGE = "/static/remote-image.svg"

TAGS = set(nh3.ALLOWED_TAGS) | {"font"}
ATTRIBUTES: dict[str, set[str]] = {tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()}
GENERIC = {"style", "title", "dir", "lang", "class", "align", "valign", "width", "height", "bgcolor"}
for tag in TAGS:
    ATTRIBUTES.setdefault(tag, set()).update(GENERIC)
ATTRIBUTES["font"] |= {"color", "face", "size"}
ATTRIBUTES["table"] |= {"border", "cellpadding", "cellspacing"}
ATTRIBUTES["img"] |= {"alt", "src"}
# No property that takes a URL (background, background-image, list-style, content, cursor...).
STYLE_PROPERTIES = {
    "color",
    "background-color",
    "font",
    "font-family",
    "font-size",
    "font-style",
    "font-weight",
    "font-variant",
    "text-align",
    "text-decoration",
    "text-indent",
    "text-transform",
    "line-height",
    "letter-spacing",
    "word-spacing",
    "white-space",
    "vertical-align",
    "margin",
    "margin-top",
    "margin-right",
    "margin-bottom",
    "margin-left",
    "padding",
    "padding-top",
    "padding-right",
    "padding-bottom",
    "padding-left",
    "border",
    "border-top",
    "border-right",
    "border-bottom",
    "border-left",
    "border-color",
    "border-style",
    "border-width",
    "border-collapse",
    "border-spacing",
    "border-radius",
    "width",
    "max-width",
    "min-width",
    "height",
    "max-height",
    "min-height",
    "display",
    "table-layout",
    "direction",
}
URL_SCHEMES = {"http", "https", "mailto", "cid"}


def is_remote(url: str) -> bool:
    url = url.strip().lower()
    return url.startswith(("http:", "https:", "//"))


_UNSAFE_STYLE_VALUE = re.compile(r"url\s*\(|expression\s*\(|\\|@|javascript:|image-set|-moz-binding", re.I)


def safe_style(value: str) -> str | None:
    """Declarations whose value could fetch or run anything are dropped (whatever the property:
    escapes and old IE's expression() hide inside allowed ones)."""
    kept = [d.strip() for d in value.split(";") if d.strip() and not _UNSAFE_STYLE_VALUE.search(d)]
    return "; ".join(kept) or None


def sanitise(
    html: str, *, images: bool = False, inline_url: Callable[[str], str | None] | None = None
) -> tuple[str, int]:
    """`html` with only safe markup left, and how many remote images it referred to (shown only
    when `images`). `inline_url(content_id)` gives the URL of a `cid:` part, or None."""
    remote = 0

    def attribute_filter(tag: str, attribute: str, value: str) -> str | None:
        nonlocal remote
        if tag == "img" and attribute == "src":
            stripped = value.strip()
            if stripped.lower().startswith("cid:"):
                return (inline_url(stripped[4:]) if inline_url else None) or BLOCKED_IMAGE
            if is_remote(stripped):
                remote += 1
                return stripped if images else BLOCKED_IMAGE
            return None  # data:, relative or anything else: dropped
        if attribute == "href" and tag == "a" and value.strip().lower().startswith("cid:"):
            return None
        if attribute == "style":
            return safe_style(value)
        return value

    clean = nh3.clean(
        html,
        tags=TAGS,
        attributes=ATTRIBUTES,
        attribute_filter=attribute_filter,
        url_schemes=URL_SCHEMES,
        filter_style_properties=STYLE_PROPERTIES,
        link_rel="noopener noreferrer",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        strip_comments=True,
    )
    return clean, remote
