"""Inline SVG chart primitives for the bench reports: scales, axes, lines, bars and legends.

Everything returns a string of SVG markup meant to be embedded directly in an HTML page: no
``xmlns`` URL, no scripts, no external references, every piece of text escaped. Hover details
use SVG ``<title>`` elements, which browsers show as native tooltips without JavaScript.

Examples
--------
>>> svg = line_chart("Demo", [Series("a<b", "#123456", [(1.0, 2.0), (2.0, 3.0)])],
...                  x_label="t (s)", y_label="ms")
>>> svg.startswith("<svg") and "a&lt;b" in svg and "http" not in svg
True
>>> fmt_num(3100.0), fmt_num(0.6), fmt_num(12.34), fmt_num(None)
('3,100', '0.6', '12.3', 'n/a')
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from edgefleet.bench._svg_scale import Scale as _Scale

__all__ = [
    "PALETTE",
    "Bar",
    "RefLine",
    "Series",
    "bar_chart",
    "empty_chart",
    "esc",
    "fmt_num",
    "line_chart",
]

#: Colour-blind friendly colours (Okabe-Ito), one per target or candidate, in order.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")

_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 30, 50, 46


def esc(value: object) -> str:
    """Text made safe for HTML and SVG content and attribute values."""
    return html.escape(str(value), quote=True)


def fmt_num(value: float | None, digits: int = 3) -> str:
    """A number for humans: thousands separators, about ``digits`` significant digits."""
    if value is None or not math.isfinite(value):
        return "n/a"
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    if size == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(size)))
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True)
class Series:
    """One named curve (or set of points) in a :func:`line_chart`."""

    label: str
    colour: str
    points: Sequence[tuple[float, float]]
    dashed: bool = False
    line: bool = True
    markers: bool = False
    hollow: bool = False
    unit: str = ""
    in_legend: bool = True


@dataclass(frozen=True)
class RefLine:
    """A labelled reference line across the plot (an SLO, a maximum), at ``value`` on ``axis``."""

    value: float
    label: str
    axis: str = "y"
    colour: str = "#444444"


@dataclass(frozen=True)
class Bar:
    """One bar of a :func:`bar_chart`; ``value`` None draws a "not measured" placeholder."""

    label: str
    value: float | None
    colour: str
    note: str = ""
    faded: bool = False


def _svg_open(title: str, width: int, height: int) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{esc(title)}"><title>{esc(title)}</title>'
        f'<text class="chart-title" x="{_LEFT}" y="18">{esc(title)}</text>'
    )


def empty_chart(title: str, message: str, width: int = 640, height: int = 120) -> str:
    """A chart-sized box saying why there is nothing to plot."""
    return (
        _svg_open(title, width, height)
        + f'<text class="chart-empty" x="{width / 2:.0f}" y="{height / 2 + 10:.0f}" '
        f'text-anchor="middle">{esc(message)}</text></svg>'
    )


def _legend(entries: Sequence[tuple[str, str, bool]]) -> str:
    """One row under the title, left to right (about 7 px per character of label)."""
    parts, x = [], float(_LEFT)
    for label, colour, dashed in entries:
        dash = ' stroke-dasharray="5 3"' if dashed else ""
        parts.append(
            f'<line x1="{x:.0f}" y1="32" x2="{x + 20:.0f}" y2="32" stroke="{colour}" '
            f'stroke-width="3"{dash}/><text class="legend" x="{x + 25:.0f}" y="36">{esc(label)}'
            "</text>"
        )
        x += 7 * len(label) + 42
    return '<g class="legend">' + "".join(parts) + "</g>"


def _axes(xs: _Scale, ys: _Scale, x_label: str, y_label: str, width: int, height: int) -> str:
    bottom, parts = height - _BOTTOM, []
    for tick in ys.ticks():
        y = ys(tick)
        parts.append(
            f'<line class="grid" x1="{_LEFT}" y1="{y:.1f}" x2="{width - _RIGHT}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{esc(fmt_num(tick))}</text>"
        )
    for tick in xs.ticks():
        x = xs(tick)
        parts.append(
            f'<line class="grid" x1="{x:.1f}" y1="{_TOP}" x2="{x:.1f}" y2="{bottom}"/>'
            f'<text class="tick" x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">'
            f"{esc(fmt_num(tick))}</text>"
        )
    parts.append(
        f'<line class="axis" x1="{_LEFT}" y1="{bottom}" x2="{width - _RIGHT}" y2="{bottom}"/>'
        f'<line class="axis" x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{bottom}"/>'
        f'<text class="axis-label" x="{(_LEFT + width - _RIGHT) / 2:.0f}" y="{height - 8}" '
        f'text-anchor="middle">{esc(x_label)}</text>'
        f'<text class="axis-label" transform="translate(14 {(_TOP + bottom) / 2:.0f}) '
        f'rotate(-90)" text-anchor="middle">{esc(y_label)}</text>'
    )
    return "".join(parts)


def _series(s: Series, xs: _Scale, ys: _Scale) -> str:
    pts = [(xs(x), ys(y)) for x, y in s.points]
    out = [f'<g class="series" data-label="{esc(s.label)}">']
    if s.line and len(pts) > 1:
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        out.append(
            f'<polyline points="{coords}" fill="none" stroke="{s.colour}" stroke-width="2"{dash}/>'
        )
    if s.markers or len(pts) == 1:
        fill = "#ffffff" if s.hollow else s.colour
        for (px, py), (x, y) in zip(pts, s.points, strict=True):
            out.append(
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="4" fill="{fill}" stroke="{s.colour}" '
                f'stroke-width="2"><title>{esc(s.label)}: {esc(fmt_num(x))}, '
                f"{esc(fmt_num(y))}{esc(s.unit)}</title></circle>"
            )
    return "".join(out) + "</g>"


def _ref(ref: RefLine, xs: _Scale, ys: _Scale, width: int, height: int) -> str:
    if ref.axis == "x":
        x = xs(ref.value)
        right_half = x > (_LEFT + width - _RIGHT) / 2
        anchor, tx = ("end", x - 4) if right_half else ("start", x + 4)
        return (
            f'<line class="ref" x1="{x:.1f}" y1="{_TOP}" x2="{x:.1f}" y2="{height - _BOTTOM}" '
            f'stroke="{ref.colour}" stroke-dasharray="2 3"/><text class="ref-label" '
            f'x="{tx:.1f}" y="{height - _BOTTOM - 6}" text-anchor="{anchor}" '
            f'fill="{ref.colour}">{esc(ref.label)}</text>'
        )
    y = ys(ref.value)
    return (
        f'<line class="ref" x1="{_LEFT}" y1="{y:.1f}" x2="{width - _RIGHT}" y2="{y:.1f}" '
        f'stroke="{ref.colour}" stroke-dasharray="2 3"/><text class="ref-label" '
        f'x="{width - _RIGHT - 4}" y="{y - 4:.1f}" text-anchor="end" fill="{ref.colour}">'
        f"{esc(ref.label)}</text>"
    )


def line_chart(
    title: str,
    series: Sequence[Series],
    *,
    x_label: str,
    y_label: str,
    x_log: bool = False,
    y_log: bool | None = None,
    refs: Sequence[RefLine] = (),
    y_zero: bool = True,
    width: int = 640,
    height: int = 300,
) -> str:
    """Lines and/or markers on shared axes, with a legend and optional reference lines.

    ``y_log=None`` picks a log y axis when the positive values span more than a factor of 30
    (an edge device at 0.3 ms next to a cloud endpoint at 50 ms). Points that cannot be drawn
    (non-finite, or not positive on a log axis) are dropped; with none left the chart says so.
    """
    xs_all = [x for s in series for x, _ in s.points] + [r.value for r in refs if r.axis == "x"]
    ys_all = [y for s in series for _, y in s.points] + [r.value for r in refs if r.axis == "y"]
    finite_y = [y for y in ys_all if math.isfinite(y)]
    if y_log is None:
        pos = [y for y in finite_y if y > 0]
        y_log = bool(pos) and max(pos) / min(pos) > 30

    def keep(x: float, y: float) -> bool:
        ok = math.isfinite(x) and math.isfinite(y)
        return ok and (not x_log or x > 0) and (not y_log or y > 0)

    drawable = [replace(s, points=[(x, y) for x, y in s.points if keep(x, y)]) for s in series]
    px = [x for s in drawable for x, _ in s.points]
    py = [y for s in drawable for _, y in s.points]
    if not px:
        return empty_chart(title, "no data to plot", width)
    px += [x for x in xs_all if math.isfinite(x) and (not x_log or x > 0)]
    py += [y for y in finite_y if not y_log or y > 0]
    y_lo = min(py) if y_log or not y_zero else min(0.0, min(py))
    xs = _Scale(min(px), max(px), _LEFT, width - _RIGHT, x_log)
    ys = _Scale(y_lo, max(py), height - _BOTTOM, _TOP, y_log)
    parts = [_svg_open(title, width, height), _axes(xs, ys, x_label, y_label, width, height)]
    parts += [_ref(r, xs, ys, width, height) for r in refs]
    parts += [_series(s, xs, ys) for s in drawable]
    parts.append(_legend([(s.label, s.colour, s.dashed) for s in series if s.in_legend]))
    return "".join(parts) + "</svg>"


def bar_chart(
    title: str,
    bars: Sequence[Bar],
    *,
    y_label: str,
    refs: Sequence[RefLine] = (),
    width: int = 640,
    height: int = 280,
) -> str:
    """Vertical bars from zero, each labelled with its value and note; faded bars are lighter."""
    values = [b.value for b in bars if b.value is not None and math.isfinite(b.value)]
    if not bars:
        return empty_chart(title, "no data to plot", width)
    top = max([*values, *(r.value for r in refs), 0.0]) or 1.0
    ys = _Scale(0.0, top * 1.15, height - _BOTTOM, _TOP, False)
    slot = (width - _LEFT - _RIGHT) / len(bars)
    bottom, parts = height - _BOTTOM, [_svg_open(title, width, height)]
    for tick in ys.ticks():
        y = ys(tick)
        parts.append(
            f'<line class="grid" x1="{_LEFT}" y1="{y:.1f}" x2="{width - _RIGHT}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{esc(fmt_num(tick))}</text>"
        )
    for i, bar in enumerate(bars):
        cx, bw = _LEFT + slot * (i + 0.5), min(slot * 0.6, 90.0)
        name = f'<text class="tick" x="{cx:.1f}" y="{bottom + 16}" text-anchor="middle">'
        parts.append(name + f"{esc(bar.label)}</text>")
        if bar.value is None or not math.isfinite(bar.value):
            parts.append(
                f'<text class="chart-empty" x="{cx:.1f}" y="{bottom - 8}" '
                f'text-anchor="middle">not measured</text>'
            )
            continue
        y = ys(bar.value)
        opacity = "0.45" if bar.faded else "0.9"
        note = f" {bar.note}" if bar.note else ""
        parts.append(
            f'<rect class="bar" x="{cx - bw / 2:.1f}" y="{y:.1f}" width="{bw:.1f}" '
            f'height="{max(bottom - y, 0.5):.1f}" fill="{bar.colour}" fill-opacity="{opacity}">'
            f"<title>{esc(bar.label)}: {esc(fmt_num(bar.value))}{esc(note)}</title></rect>"
            f'<text class="bar-value" x="{cx:.1f}" y="{y - 5:.1f}" text-anchor="middle">'
            f"{esc(fmt_num(bar.value) + note)}</text>"
        )
    parts += [_ref(r, ys, ys, width, height) for r in refs if r.axis == "y"]
    parts.append(
        f'<line class="axis" x1="{_LEFT}" y1="{bottom}" x2="{width - _RIGHT}" y2="{bottom}"/>'
        f'<text class="axis-label" transform="translate(14 {(_TOP + bottom) / 2:.0f}) '
        f'rotate(-90)" text-anchor="middle">{esc(y_label)}</text>'
    )
    return "".join(parts) + "</svg>"
