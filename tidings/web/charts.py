"""Charts for the admin console, drawn on the server as inline SVG.

No JavaScript library and no CDN: the Content-Security-Policy allows neither, and a chart of 48
bars needs none. Colours are SVG presentation attributes (not `style`, which the policy forbids).
Every number and label goes through markupsafe's escaping; the result is Markup for the template.
Each chart carries a <title> and an aria-label that says what it shows, for screen readers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 52, 14, 14, 34
FONT = 16  # the chart is drawn at half size on a phone: still readable there
TICKS_EVERY = 12 * 3600

COLOURS = {
    "received": "#2f5fd0",
    "delivered": "#2e9d57",
    "deferred": "#d68a00",
    "failed": "#b42318",
    "queue": "#6b4fc8",
}
GRID = "#dfe4ec"
TEXT = "#5b6678"


@dataclass(frozen=True)
class Series:
    name: str
    values: list[int]


def nice_ceiling(value: float) -> int:
    """A round axis maximum at or above `value` that four grid lines divide into whole numbers
    (4, 8, 12, 20, 40, 60, 80, 120, 200 ...)."""
    magnitude = 1
    while True:
        for step in (4, 8, 12, 20, 40, 60, 80):
            if step * magnitude >= value:
                return step * magnitude
        magnitude *= 10


def _frame(label: str, top: int, start: float, seconds: float, ticks_every: float) -> list[str]:
    """Background, horizontal grid with values, time labels along the bottom (UTC)."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(label)}"><title>{escape(label)}</title>'
    ]
    for i in range(5):
        y = TOP + plot_h - plot_h * i / 4
        value = top * i / 4
        text = f"{value:g}"
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 5:.1f}" text-anchor="end" font-size="{FONT}" fill="{TEXT}">'
            f"{escape(text)}</text>"
        )
    first_tick = (int(start) // int(ticks_every) + 1) * int(ticks_every)
    tick = first_tick
    while tick < start + seconds:
        x = LEFT + plot_w * (tick - start) / seconds
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + plot_h}" stroke="{GRID}"/>')
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle" font-size="{FONT}" fill="{TEXT}">'
            f"{time.strftime('%H:%M', time.gmtime(tick))}</text>"
        )
        tick += int(ticks_every)
    return parts


def stacked_bars(label: str, start: float, step: float, series: list[Series]) -> Markup:
    """Bars per time slot (`step` seconds from `start`), the series stacked bottom-up."""
    slots = max((len(s.values) for s in series), default=0)
    totals = [sum(s.values[i] for s in series if i < len(s.values)) for i in range(slots)]
    top = nice_ceiling(max(totals, default=0))
    parts = _frame(label, top, start, step * max(slots, 1), TICKS_EVERY)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    bar_w = plot_w / max(slots, 1)
    for i in range(slots):
        base = TOP + plot_h
        for s in series:
            value = s.values[i] if i < len(s.values) else 0
            if not value:
                continue
            h = plot_h * value / top
            base -= h
            x = LEFT + i * bar_w + bar_w * 0.12
            parts.append(
                f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar_w * 0.76:.1f}" height="{h:.1f}" '
                f'fill="{COLOURS.get(s.name, TEXT)}"><title>{escape(s.name)}: {value}</title></rect>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def line(label: str, start: float, seconds: float, points: list[tuple[float, int]], name: str) -> Markup:
    """A line with the area under it, for samples (time, value) between `start` and start+seconds."""
    top = nice_ceiling(max((v for _, v in points), default=0))
    parts = _frame(label, top, start, seconds, TICKS_EVERY)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    colour = COLOURS.get(name, TEXT)
    coords = [
        (LEFT + plot_w * min(max(at - start, 0), seconds) / seconds, TOP + plot_h - plot_h * value / top)
        for at, value in points
    ]
    if coords:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        floor = TOP + plot_h
        area = f"{coords[0][0]:.1f},{floor} {path} {coords[-1][0]:.1f},{floor}"
        parts.append(f'<polygon points="{area}" fill="{colour}" fill-opacity="0.15"/>')
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        if len(coords) <= 60:  # few samples yet: show each one
            parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>' for x, y in coords]
    else:
        parts.append(
            f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" font-size="{FONT}" fill="{TEXT}">'
            "no samples yet</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))
