"""Charts drawn on the server, so dashboard pages need no JavaScript at all.

pygal draws SVG, but by default it embeds a `<script>` that loads its tooltips from a CDN
plus an inline configuration script. Both are switched off or stripped here: a page must
never run third-party code, and the dashboard's Content-Security-Policy allows no scripts.
Hover text comes from plain SVG `<title>` elements instead, which browsers show natively.
The team heatmap is an HTML table with a colour scale, which reads well, copies into a
spreadsheet and is accessible to screen readers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree

import pygal  # type: ignore[import-untyped]
from markupsafe import Markup
from pygal.style import Style  # type: ignore[import-untyped]

FONT = '-apple-system, "Segoe UI", Helvetica, Arial, sans-serif'
BLUE = "#1264a3"
GREEN = "#2eb67d"
ORANGE = "#e8912d"

STYLE = Style(
    background="transparent",
    plot_background="transparent",
    foreground="#1d1c1d",
    foreground_strong="#1d1c1d",
    foreground_subtle="#e3e6ea",
    guide_stroke_color="#e3e6ea",
    major_guide_stroke_color="#cfd4da",
    guide_stroke_dasharray="0",
    major_guide_stroke_dasharray="0",
    opacity=".92",
    opacity_hover="1",
    transition="0ms",
    colors=(BLUE, GREEN, ORANGE, "#7c5cc4", "#c0392b"),
    font_family=FONT,
    label_font_family=FONT,
    major_label_font_family=FONT,
    value_font_family=FONT,
    value_label_font_family=FONT,
    title_font_family=FONT,
    legend_font_family=FONT,
    tooltip_font_family=FONT,
    no_data_font_family=FONT,
    label_font_size=14,
    major_label_font_size=14,
    value_font_size=13,
    title_font_size=15,
    legend_font_size=14,
    no_data_font_size=18,
)


def percent(value: float | None) -> str:
    return "\u2013" if value is None else f"{value:.0%}"


def _local(tag: Any) -> str:
    return str(tag).rsplit("}", 1)[-1]


def _without_scripts(root: Any) -> Any:
    """Drop every `<script>` pygal wrote, whatever `js` says, and give each data point a
    `<title>` (its label and value) so hovering shows it without JavaScript."""
    for parent in list(root.iter()):
        for child in list(parent):
            if _local(child.tag) == "script":
                parent.remove(child)
    for parent in list(root.iter()):
        descs = {
            str(child.get("class", "")).split(" ")[0]: child.text or ""
            for child in parent
            if _local(child.tag) == "desc"
        }
        if "value" in descs:
            label = descs.get("label") or descs.get("x_label") or ""
            title = ElementTree.Element("title")
            title.text = f"{label}: {descs['value']}" if label else descs["value"]
            parent.insert(0, title)
    return root


def _config(**options: Any) -> dict[str, Any]:
    """Options every chart shares: no scripts, no XML prologue (inlined in HTML), our look."""
    return {
        "js": [],
        "css": ["file://style.css", "file://graph.css"],
        "disable_xml_declaration": True,
        "style": STYLE,
        "show_legend": False,
        "explicit_size": False,
        "margin": 12,
        "spacing": 10,
        "no_data_text": "Nothing to show yet",
        "truncate_label": 40,
        **options,
    }


def _svg(chart: Any, description: str) -> Markup:
    def titled(root: Any) -> Any:
        """Name the chart for screen readers instead of pygal's default "Pygal"."""
        for child in root:
            if _local(child.tag) == "title":
                child.text = description
        return root

    chart.add_xml_filter(_without_scripts)
    chart.add_xml_filter(titled)
    svg: str = chart.render(is_unicode=True)
    return Markup(svg)


@dataclass(frozen=True)
class TimeAxis:
    """A time axis in one unit that suits the span it shows, with round ticks."""

    unit: str  # "minutes", "hours" or "days"
    seconds: int  # seconds in one unit
    ticks: list[float]  # in units, from 0 to at least the span
    abbreviation: str

    def label(self, value: float) -> str:
        return f"{value:g} {self.abbreviation}"


# Round steps per unit, smallest first; the first that keeps the ticks at about eight or
# fewer is used.
_STEPS: dict[str, tuple[float, ...]] = {
    "minutes": (1, 2, 5, 10, 15, 20, 30),
    "hours": (1, 2, 3, 4, 6, 12, 24),
    "days": (1, 2, 7, 14, 28, 56, 91, 182, 364),
}
_UNITS = (("minutes", 60, "min"), ("hours", 3_600, "h"), ("days", 86_400, "d"))


def time_axis(span_seconds: float, *, most_ticks: int = 8) -> TimeAxis:
    """Minutes up to two hours, hours up to three days, days beyond: the unit in which the
    span reads as a handful of round numbers."""
    span = max(0.0, span_seconds)
    if span <= 2 * 3_600:
        unit, size, short = _UNITS[0]
    elif span <= 3 * 86_400:
        unit, size, short = _UNITS[1]
    else:
        unit, size, short = _UNITS[2]
    length = max(span / size, 1.0)
    steps = _STEPS[unit]
    step = next((s for s in steps if length / s <= most_ticks), steps[-1])
    while length / step > most_ticks:
        step *= 2
    count = math.ceil(length / step - 1e-9)
    return TimeAxis(unit, size, [round(i * step, 6) for i in range(count + 1)], short)


def ack_curve_chart(
    points: Sequence[tuple[float, float]],
    *,
    description: str = "Acknowledgements over time",
) -> Markup:
    """The share of recipients who had acknowledged, by time since they were sent it
    (`points` in seconds), on an axis in the unit that fits the span."""
    axis = time_axis(max((x for x, _ in points), default=0.0))
    chart = pygal.XY(
        **_config(
            width=1100,
            height=340,
            x_title=f"{axis.unit} after being sent it",
            y_title="acknowledged",
            range=(0, 1),
            xrange=(0, axis.ticks[-1]),
            x_labels=axis.ticks,
            value_formatter=percent,
            x_value_formatter=axis.label,
            dots_size=2,
            stroke_style={"width": 3},
            fill=True,
            show_x_guides=False,
            show_y_guides=True,
            y_labels=[0, 0.25, 0.5, 0.75, 1],
        )
    )
    # Straight lines between bucket ends (the answers inside a bucket are spread over it);
    # the last share holds to the end of the axis.
    scaled = [(float(x) / axis.seconds, float(y)) for x, y in points]
    if scaled and scaled[-1][0] < axis.ticks[-1]:
        scaled.append((float(axis.ticks[-1]), scaled[-1][1]))
    chart.add("acknowledged", scaled)
    return _svg(chart, description)


def trend_chart(
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    description: str = "Trend",
) -> Markup:
    """A share over a sequence (such as each repetition of a message), as a line."""
    chart = pygal.Line(
        **_config(
            width=1100,
            height=260,
            range=(0, 1),
            y_labels=[0, 0.25, 0.5, 0.75, 1],
            value_formatter=percent,
            dots_size=4,
            stroke_style={"width": 3},
            show_x_guides=False,
            show_y_guides=True,
            print_values=len(values) <= 16,
            margin_right=36,
            x_labels_major_every=max(1, len(labels) // 12),
            show_minor_x_labels=len(labels) <= 24,
        )
    )
    chart.x_labels = list(labels)
    chart.add("acknowledged", list(values))
    return _svg(chart, description)


def bar_chart(
    labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    formatter: Callable[[float], str] = percent,
    as_share: bool = True,
    description: str = "Bar chart",
) -> Markup:
    """Horizontal bars, one group per label: long message titles stay readable on the axis.

    pygal draws the first label at the bottom; the labels are reversed so the chart reads
    top to bottom in the same order as the table under it.
    """
    chart = pygal.HorizontalBar(
        **_config(
            width=1100,
            height=max(180, 90 + 26 * len(labels) * max(1, len(series))),
            value_formatter=formatter,
            print_values=True,
            print_values_position="top",
            show_legend=len(series) > 1,
            legend_at_bottom=True,
            legend_at_bottom_columns=max(1, len(series)),
            show_x_guides=True,
            show_y_guides=False,
            **({"range": (0, 1), "x_labels_major_count": 5} if as_share else {}),
        )
    )
    chart.x_labels = list(reversed(labels))
    for name, values in series.items():
        chart.add(name, list(reversed(list(values))))
    return _svg(chart, description)


@dataclass(frozen=True)
class HeatCell:
    text: str
    background: str
    color: str
    title: str


@dataclass(frozen=True)
class HeatRow:
    label: str
    cells: list[HeatCell]


@dataclass(frozen=True)
class HeatTable:
    columns: list[str]
    rows: list[HeatRow]
    legend: list[HeatCell]


_LOW = (0xEE, 0xF4, 0xFB)
_HIGH = (0x0B, 0x4F, 0x8A)
_EMPTY = "#f4f5f7"


def scale_colour(value: float) -> str:
    """A single-hue scale (pale to deep blue): readable in colour-blind vision and print."""
    share = min(1.0, max(0.0, value))
    r, g, b = (round(lo + (hi - lo) * share) for lo, hi in zip(_LOW, _HIGH, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def heat_cell(value: float | None, title: str = "", text: str | None = None) -> HeatCell:
    if value is None:
        return HeatCell(text or "\u2013", _EMPTY, "#616061", title or "no deliveries")
    return HeatCell(
        text if text is not None else percent(value),
        scale_colour(value),
        "#ffffff" if value >= 0.55 else "#1d1c1d",
        title,
    )


def heat_table(
    rows: Sequence[str],
    columns: Sequence[str],
    cells: Mapping[tuple[str, str], HeatCell],
) -> HeatTable:
    """Arrange cells (keyed by row and column label) into a table; gaps show as empty."""
    empty = heat_cell(None)
    return HeatTable(
        columns=list(columns),
        rows=[HeatRow(r, [cells.get((r, c), empty) for c in columns]) for r in rows],
        legend=[heat_cell(v / 4) for v in range(5)],
    )
