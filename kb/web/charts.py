"""Charts for the dashboard, drawn on the server as SVG: no JavaScript, no library, nothing from a CDN.

These functions only compute geometry (plain frozen dataclasses); kb/web/templates/_charts.html draws them with
Jinja, which escapes every text (queries are user text). Each chart carries its title and a description for the
SVG's <title>/<desc>, and its rows for the data table shown with it, so the numbers are readable without the
picture. Two kinds: columns per day, stacked by series (searches by person, bot, anonymous; redactions by kind),
and horizontal bars (top queries).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 36
MAX_DAY_LABELS = 8
MAX_LABEL_CHARS = 48
BAR_HEIGHT, BAR_GAP, LABEL_WIDTH = 18, 6, 300


@dataclass(frozen=True)
class Series:
    """One series: the key in each row, its name in the legend, its colour (contrast 4.5:1 or more on white)."""

    key: str
    label: str
    colour: str


@dataclass(frozen=True)
class Bar:
    """One rectangle, with the text a pointer shows (its <title>)."""

    x: float
    y: float
    width: float
    height: float
    colour: str
    label: str


@dataclass(frozen=True)
class Label:
    """A text on an axis, anchored at (x, y)."""

    x: float
    y: float
    text: str
    anchor: str = "middle"  # SVG text-anchor: start, middle or end


@dataclass(frozen=True)
class Chart:
    """What _charts.html draws: the SVG's size, title, description, bars, axis labels, legend, and the data table."""

    id: str
    title: str
    description: str
    width: int
    height: int
    bars: tuple[Bar, ...]
    x_labels: tuple[Label, ...]
    y_labels: tuple[Label, ...]
    grid: tuple[float, ...]  # y of each horizontal grid line
    legend: tuple[Series, ...]
    columns: tuple[str, ...]
    rows: tuple[tuple, ...]
    plot: tuple[float, float, float, float]  # left, top, right, bottom of the plotting area


def nice_ceiling(value: float) -> int:
    """The smallest of 1, 2, 5 x 10^n at or above value (at least 1): the top of an axis."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return int(step * power)
    return int(10 * power)  # pragma: no cover - the loop always returns


def _short(text: str) -> str:
    return text if len(text) <= MAX_LABEL_CHARS else text[: MAX_LABEL_CHARS - 1] + "…"


def stacked_columns(
    chart_id: str, title: str, description: str, rows: Sequence[dict], series: Sequence[Series]
) -> Chart:
    """One column per day (row["day"]), its series stacked bottom-up; the data table lists every day."""
    plot_left, plot_top, plot_right, plot_bottom = LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM
    top = nice_ceiling(max((sum(row[s.key] for s in series) for row in rows), default=0))
    slot = (plot_right - plot_left) / max(len(rows), 1)
    width = max(slot * 0.7, 1.0)
    scale = (plot_bottom - plot_top) / top
    bars, x_labels = [], []
    every = max(1, math.ceil(len(rows) / MAX_DAY_LABELS))
    for n, row in enumerate(rows):
        x = plot_left + n * slot + (slot - width) / 2
        base = plot_bottom
        for s in series:
            value = row[s.key]
            if value:
                height = value * scale
                base -= height
                bars.append(
                    Bar(
                        round(x, 1),
                        round(base, 1),
                        round(width, 1),
                        round(height, 1),
                        s.colour,
                        f"{row['day']}: {value} {s.label.lower()}",
                    )
                )
        if n % every == 0:
            x_labels.append(Label(round(x + width / 2, 1), plot_bottom + 16, row["day"][5:]))
    ticks = (0, top / 2, top) if top > 1 else (0, top)
    y_labels = tuple(Label(plot_left - 6, round(plot_bottom - t * scale + 4, 1), f"{t:g}", "end") for t in ticks)
    grid = tuple(round(plot_bottom - t * scale, 1) for t in ticks)
    table = tuple((row["day"], *(row[s.key] for s in series), sum(row[s.key] for s in series)) for row in rows)
    return Chart(
        chart_id, title, description, WIDTH, HEIGHT, tuple(bars), tuple(x_labels), y_labels, grid, tuple(series),
        ("Day", *(s.label for s in series), "Total"), table, (plot_left, plot_top, plot_right, plot_bottom),
    )  # fmt: skip


def horizontal_bars(
    chart_id: str, title: str, description: str, items: Sequence[tuple[str, int]], colour: str
) -> Chart:
    """One bar per (label, value), longest first as given; labels (user text) shortened to MAX_LABEL_CHARS."""
    height = TOP + BOTTOM // 2 + max(len(items), 1) * (BAR_HEIGHT + BAR_GAP)
    plot_left, plot_right = LABEL_WIDTH, WIDTH - RIGHT - 40
    top = max((value for _, value in items), default=0) or 1
    scale = (plot_right - plot_left) / top
    bars, labels = [], []
    for n, (text, value) in enumerate(items):
        y = TOP + n * (BAR_HEIGHT + BAR_GAP)
        bars.append(Bar(plot_left, y, round(max(value * scale, 1.0), 1), BAR_HEIGHT, colour, f"{text}: {value}"))
        labels.append(Label(plot_left - 8, y + BAR_HEIGHT - 5, _short(text), "end"))
        labels.append(Label(plot_left + round(value * scale, 1) + 6, y + BAR_HEIGHT - 5, str(value), "start"))
    return Chart(
        chart_id, title, description, WIDTH, height, tuple(bars), (), tuple(labels), (), (),
        ("Query", "Searches"), tuple(items), (plot_left, TOP, plot_right, height - BOTTOM // 2),
    )  # fmt: skip
