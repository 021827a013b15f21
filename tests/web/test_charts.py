"""Server-drawn SVG charts (tidings/web/charts.py): well-formed, escaped, one bar per non-empty
slot and series, whole-number grid values."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from tidings.web.charts import Series, line, nice_ceiling, stacked_bars

SVG = "{http://www.w3.org/2000/svg}"


def test_axis_maximum_is_round_and_divides_into_four_whole_steps():
    cases = (0, 1, 4, 5, 9, 21, 75, 81, 101, 999)
    assert [nice_ceiling(v) for v in cases] == [4, 4, 4, 8, 12, 40, 80, 120, 120, 1200]
    assert all(nice_ceiling(v) % 4 == 0 for v in range(0, 5000, 7))


def test_stacked_bars_draw_each_value_and_escape_the_label():
    svg = stacked_bars(
        "<b>per hour</b> & more", 0, 3600, [Series("received", [1, 0, 3]), Series("failed", [0, 2, 1])]
    )
    root = ET.fromstring(str(svg))
    assert root.get("aria-label") == "<b>per hour</b> & more"
    bars = root.findall(f"{SVG}rect")
    assert [b.findtext(f"{SVG}title") for b in bars] == [
        "received: 1",
        "failed: 2",
        "received: 3",
        "failed: 1",
    ]
    assert "<b>" not in str(svg)
    grid = [t.text for t in root.findall(f"{SVG}text") if t.get("text-anchor") == "end"]
    assert grid == ["0", "1", "2", "3", "4"]


def test_line_chart_with_and_without_samples():
    root = ET.fromstring(str(line("queue", 0, 7200, [(0, 2), (3600, 5), (7200, 1)], "queue")))
    assert len(root.findall(f"{SVG}polyline")) == 1 and len(root.findall(f"{SVG}circle")) == 3
    empty = ET.fromstring(str(line("queue", 0, 7200, [], "queue")))
    assert "no samples yet" in [t.text for t in empty.findall(f"{SVG}text")]
