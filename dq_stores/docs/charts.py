"""Inline SVG charts for the data-docs site, rendered in Python: trend lines over run history
(with anomaly bands and contract version markers) and histogram bars.

Pure functions from numbers to SVG text; nothing here reads a store or writes a file. Every drawn
figure carries its number in a ``data-*`` attribute and a ``<title>`` tooltip, so a page is
readable without JavaScript and the browser tests can check the numbers the DOM shows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

__all__ = ["Band", "Point", "Series", "VersionMark", "bar_chart", "format_number", "line_chart"]

WIDTH = 560
HEIGHT = 190
PAD_LEFT = 56
PAD_RIGHT = 12
PAD_TOP = 14
PAD_BOTTOM = 28
PALETTE = ("#2563eb", "#d97706", "#059669", "#9333ea", "#dc2626", "#0891b2", "#4b5563", "#be185d")


@dataclass(frozen=True)
class Band:
    """The expected band a point was checked against (anomaly detection), and its verdict."""

    low: float | None
    high: float | None
    anomalous: bool = False


@dataclass(frozen=True)
class Point:
    x: int
    """Position on the run axis (0 = oldest run shown)."""
    value: float
    label: str
    """Tooltip: which run, when."""
    href: str | None = None
    band: Band | None = None


@dataclass
class Series:
    name: str
    points: list[Point] = field(default_factory=list)


@dataclass(frozen=True)
class VersionMark:
    x: int
    version: str


def format_number(value: float | int | None) -> str:
    """Numbers as people read them: integers with separators, ratios with up to 4 digits."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int) or (float(value).is_integer() and abs(value) >= 1):
        return f"{int(value):,}"
    return f"{value:.4g}"


def _nice_range(low: float, high: float) -> tuple[float, float]:
    if low == high:
        pad = abs(low) * 0.1 or 1.0
        return low - pad, high + pad
    pad = (high - low) * 0.08
    return (0.0 if low >= 0 and low - pad < 0 else low - pad), high + pad


def line_chart(
    chart_id: str,
    title: str,
    series: Sequence[Series],
    *,
    x_count: int,
    x_labels: tuple[str, str] = ("", ""),
    versions: Sequence[VersionMark] = (),
    y_range: tuple[float, float] | None = None,
) -> str:
    """A line chart over ``x_count`` run positions; empty series are left out. Points whose
    ``band`` is set get the band shaded behind them and, when anomalous, a red ring.
    """
    drawn = [s for s in series if s.points]
    values = [p.value for s in drawn for p in s.points]
    values += [
        b for s in drawn for p in s.points if p.band for b in (p.band.low, p.band.high) if b is not None
    ]
    values = [v for v in values if math.isfinite(v)]
    if values:
        y0, y1 = _nice_range(min(values), max(values))
    else:
        y0, y1 = 0.0, 1.0
    if y_range is not None:  # a ratio: auto-scaled to show small changes, never past its bounds
        y0, y1 = max(y0, y_range[0]), min(y1, y_range[1])
        if y1 <= y0:
            y0, y1 = y_range
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    span = max(x_count - 1, 1)

    def px(x: int) -> float:
        return PAD_LEFT + (plot_w * x / span if x_count > 1 else plot_w / 2)

    def py(v: float) -> float:
        return PAD_TOP + plot_h * (1 - (v - y0) / (y1 - y0))

    out: list[str] = [
        f'<figure class="chart" id="{escape(chart_id)}" data-chart="{escape(chart_id)}">',
        f"<figcaption>{escape(title)}</figcaption>",
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
    ]
    for i in range(5):  # horizontal grid with the y-axis labels
        v = y0 + (y1 - y0) * i / 4
        y = py(v)
        out.append(f'<line class="grid" x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(
            f'<text class="tick" x="{PAD_LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{format_number(v)}</text>'
        )
    out.append(f'<text class="tick" x="{PAD_LEFT}" y="{HEIGHT - 8}">{escape(x_labels[0])}</text>')
    out.append(
        f'<text class="tick" x="{WIDTH - PAD_RIGHT}" y="{HEIGHT - 8}" text-anchor="end">{escape(x_labels[1])}</text>'
    )
    for mark in versions:
        x = px(mark.x)
        out.append(
            f'<line class="version-change" data-version="{escape(mark.version)}" x1="{x:.1f}" x2="{x:.1f}" '
            f'y1="{PAD_TOP}" y2="{HEIGHT - PAD_BOTTOM}"><title>contract version {escape(mark.version)}</title></line>'
        )
        out.append(
            f'<text class="version-label" x="{x + 3:.1f}" y="{PAD_TOP + 9}">v{escape(mark.version)}</text>'
        )
    for index, s in enumerate(drawn):
        colour = PALETTE[index % len(PALETTE)]
        banded = [p for p in s.points if p.band and p.band.low is not None and p.band.high is not None]
        if banded:
            upper = " ".join(
                f"{px(p.x):.1f},{py(p.band.high):.1f}" for p in banded if p.band and p.band.high is not None
            )
            lower = " ".join(
                f"{px(p.x):.1f},{py(p.band.low):.1f}"
                for p in reversed(banded)
                if p.band and p.band.low is not None
            )
            if len(banded) == 1:  # one checked run: a short vertical bar shows its band
                p = banded[0]
                assert p.band is not None
                assert p.band.low is not None
                assert p.band.high is not None
                x = px(p.x)
                upper = f"{x - 4:.1f},{py(p.band.high):.1f} {x + 4:.1f},{py(p.band.high):.1f}"
                lower = f"{x + 4:.1f},{py(p.band.low):.1f} {x - 4:.1f},{py(p.band.low):.1f}"
            out.append(f'<polygon class="band" data-series="{escape(s.name)}" points="{upper} {lower}"/>')
        line = " ".join(f"{px(p.x):.1f},{py(p.value):.1f}" for p in s.points)
        out.append(
            f'<polyline class="line" data-series="{escape(s.name)}" fill="none" stroke="{colour}" points="{line}"/>'
        )
        for p in s.points:
            attrs = (
                f'class="pt" data-series="{escape(s.name)}" data-x="{p.x}" data-value="{p.value!r}" '
                f'cx="{px(p.x):.1f}" cy="{py(p.value):.1f}" r="3" fill="{colour}"'
            )
            circle = f"<circle {attrs}><title>{escape(s.name)}: {format_number(p.value)} ({escape(p.label)})</title></circle>"
            out.append(f'<a href="{escape(p.href)}">{circle}</a>' if p.href else circle)
            if p.band is not None and p.band.anomalous:
                band = f"{format_number(p.band.low)} - {format_number(p.band.high)}"
                out.append(
                    f'<circle class="anomaly" data-series="{escape(s.name)}" data-x="{p.x}" '
                    f'data-observed="{p.value!r}" cx="{px(p.x):.1f}" cy="{py(p.value):.1f}" r="7">'
                    f"<title>anomaly: {format_number(p.value)} outside {band} ({escape(p.label)})</title></circle>"
                )
    out.append("</svg>")
    if len(drawn) > 1:
        legend = "".join(
            f'<span class="key"><i style="background:{PALETTE[i % len(PALETTE)]}"></i>{escape(s.name)}</span>'
            for i, s in enumerate(drawn)
        )
        out.append(f'<div class="legend">{legend}</div>')
    out.append("</figure>")
    return "".join(out)


def bar_chart(chart_id: str, title: str, edges: Sequence[float], counts: Sequence[int]) -> str:
    """A histogram: one bar per bin between consecutive ``edges``."""
    width, height, pad = 320, 120, 18
    top = max(counts, default=0) or 1
    n = max(len(counts), 1)
    bar_w = (width - 2 * pad) / n
    out = [
        f'<figure class="chart histogram" id="{escape(chart_id)}" data-chart="{escape(chart_id)}">',
        f"<figcaption>{escape(title)}</figcaption>",
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
    ]
    for i, count in enumerate(counts):
        h = (height - 2 * pad) * count / top
        lo = edges[i] if i < len(edges) else float("nan")
        hi = edges[i + 1] if i + 1 < len(edges) else float("nan")
        out.append(
            f'<rect class="bar" data-count="{count}" data-low="{lo!r}" data-high="{hi!r}" '
            f'x="{pad + i * bar_w + 1:.1f}" y="{height - pad - h:.1f}" width="{max(bar_w - 2, 1):.1f}" '
            f'height="{h:.1f}"><title>[{format_number(lo)}, {format_number(hi)}): {count:,}</title></rect>'
        )
    if edges:
        out.append(f'<text class="tick" x="{pad}" y="{height - 4}">{format_number(edges[0])}</text>')
        out.append(
            f'<text class="tick" x="{width - pad}" y="{height - 4}" text-anchor="end">{format_number(edges[-1])}</text>'
        )
    out.append("</svg></figure>")
    return "".join(out)
