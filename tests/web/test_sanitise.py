"""The HTML sanitiser on a corpus of hostile mail: nothing that runs, nothing that loads."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from tidings.web.sanitise import BLOCKED_IMAGE, sanitise

HOSTILE = [
    "<script>alert(1)</script><p>text</p>",
    "<SCRIPT SRC=http://evil.test/x.js></SCRIPT>",
    '<img src="x" onerror="alert(1)">',
    '<body onload="alert(1)"><p>x</p></body>',
    '<a href="javascript:alert(1)">x</a>',
    '<a href="  JaVaScRiPt:alert(1)">x</a>',
    '<a href="java&#x09;script:alert(1)">x</a>',
    '<a href="javascript&#58;alert(1)">x</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
    '<a href="vbscript:msgbox(1)">x</a>',
    '<img src="http://evil.test/pixel.gif">',
    '<img src="//evil.test/pixel.gif">',
    '<img srcset="http://evil.test/a.png 1x">',
    '<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">',
    '<p style="background:url(http://evil.test/bg.png)">x</p>',
    "<p style=\"background-image: url('http://evil.test/bg.png')\">x</p>",
    '<p style="list-style-image:url(http://evil.test/l.png)">x</p>',
    '<p style="width: expression(alert(1))">x</p>',
    '<p style="behavior: url(http://evil.test/x.htc)">x</p>',
    "<style>@import url(http://evil.test/s.css); body{background:url(http://evil.test/b)}</style>",
    '<link rel="stylesheet" href="http://evil.test/s.css">',
    '<meta http-equiv="refresh" content="0;url=http://evil.test/">',
    '<base href="http://evil.test/">',
    '<iframe src="http://evil.test/"></iframe>',
    '<frameset><frame src="http://evil.test/"></frameset>',
    '<object data="http://evil.test/x.swf"></object><embed src="http://evil.test/x.swf">',
    '<svg onload="alert(1)"><image href="http://evil.test/i.png"/></svg>',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<form action="http://evil.test/"><input type="image" src="http://evil.test/i.png"></form>',
    '<video poster="http://evil.test/p.png" src="http://evil.test/v.mp4"></video>',
    '<audio src="http://evil.test/a.mp3"></audio>',
    '<table background="http://evil.test/t.png"><tr><td background="http://evil.test/c.png">x</td></tr></table>',
    '<body background="http://evil.test/b.png">x</body>',
    '<div style="position:fixed;top:0;left:0;width:100%;height:100%">overlay</div>',
    '<a href="http://evil.test/" ping="http://evil.test/ping">x</a>',
    '<!--[if gte mso 9]><img src="http://evil.test/c.png"><![endif]-->',
    '<noscript><img src="http://evil.test/n.png"></noscript>',
    '<template><img src="http://evil.test/t.png"></template>',
    '<img src="cid:logo@x" onload="alert(1)">',
]


def attributes(html: str) -> list[tuple[str, str]]:
    """Every (attribute, value) of the elements in `html` (not text that looks like markup)."""
    found = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.extend((name, value or "") for name, value in attrs)

    Collector().feed(html)
    return found


@pytest.mark.parametrize("html", HOSTILE)
def test_hostile_html_keeps_nothing_that_runs_or_loads(html):
    clean, _ = sanitise(html)
    lowered = clean.lower()
    assert "<script" not in lowered and "javascript:" not in lowered and "vbscript:" not in lowered
    assert not re.search(r"\son[a-z]+\s*=", lowered), clean
    for tag in ("iframe", "frame", "object", "embed", "svg", "math", "style", "link", "meta", "base", "form"):
        assert f"<{tag}" not in lowered, clean
    assert "url(" not in lowered and "expression(" not in lowered, clean
    assert "position:fixed" not in lowered.replace(" ", ""), clean
    # Whatever still names another site may only be a link's target (never loaded by itself).
    for attribute, value in attributes(clean):
        if "evil.test" in value:
            assert attribute == "href", clean
        if attribute == "src":
            assert value == BLOCKED_IMAGE, clean
        assert not value.lower().startswith("data:"), clean


def test_remote_images_are_counted_and_shown_only_when_allowed():
    html = '<p>hi</p><img src="https://news.test/a.png"><img src="http://news.test/b.png">'
    blocked, remote = sanitise(html)
    assert remote == 2 and blocked.count(BLOCKED_IMAGE) == 2 and "news.test" not in blocked
    shown, _ = sanitise(html, images=True)
    assert 'src="https://news.test/a.png"' in shown and 'src="http://news.test/b.png"' in shown


def test_inline_cid_images_use_what_the_caller_makes_of_them():
    clean, remote = sanitise('<img src="cid:logo@x">', inline_url=lambda cid: f"data:image/png;base64,{cid}")
    assert clean == '<img src="data:image/png;base64,logo@x">' and remote == 0


def test_ordinary_mail_keeps_its_look():
    html = (
        '<table width="600" cellpadding="4" style="border-collapse:collapse"><tr>'
        '<td style="color:#333;font-size:14px;padding:8px" bgcolor="#eeeeee"><b>Hello</b> '
        '<a href="https://shop.test/offer">offer</a></td></tr></table>'
    )
    clean, _ = sanitise(html)
    assert 'style="color:#333;font-size:14px;padding:8px"' in clean
    assert 'href="https://shop.test/offer"' in clean and 'target="_blank"' in clean
    assert 'rel="noopener noreferrer"' in clean and 'width="600"' in clean
