"""The charts of the single-run report page, one function per chart, each a ``chart-box`` div.

Every function takes the report's targets (mappings as in report.json) and tolerates missing
fields: a chart with nothing to show says so, or (server search, sustained load) is left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from edgefleet.bench._html_page import badge
from edgefleet.bench._html_values import mapping, maps, num, points, text
from edgefleet.bench.svg import PALETTE, Bar, RefLine, Series, bar_chart, esc, fmt_num, line_chart

__all__ = [
    "energy_chart",
    "latency_distribution_chart",
    "latency_over_time_chart",
    "server_search_chart",
    "sustained_chart",
    "throughput_and_temperature_charts",
]

Target = Mapping[str, Any]
_PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9))


def colour(index: int) -> str:
    """The colour of the ``index``-th target, the same in every chart."""
    return PALETTE[index % len(PALETTE)]


def _box(svg: str, caption: str = "") -> str:
    note = f"<p>{caption}</p>" if caption else ""
    return f'<div class="chart-box">{svg}{note}</div>'


def _slo_p99(slo: Mapping[str, Any]) -> list[RefLine]:
    value = num(slo, "p99")
    return [] if value is None else [RefLine(value, f"SLO p99 {fmt_num(value)} ms", "y", "#c9302c")]


def _cdf(target: Target) -> list[tuple[float, float]]:
    hist = mapping(target, "histogram")
    edges = [e for e in hist.get("edges_ms", []) or [] if isinstance(e, int | float)]
    counts = [c for c in hist.get("counts", []) or [] if isinstance(c, int | float)]
    total = sum(counts)
    if len(edges) == len(counts) + 1 and total > 0:
        out, running = [(float(edges[0]), 0.0)], 0.0
        for edge, count in zip(edges[1:], counts, strict=True):
            running += count
            out.append((float(edge), 100.0 * running / total))
        return out
    lat = mapping(target, "latency_ms")
    return [(v, q) for key, q in _PERCENTILES if (v := num(lat, key)) is not None]


def latency_distribution_chart(targets: Sequence[Target], slo: Mapping[str, Any]) -> str:
    """(a) Cumulative latency distribution per target on a log latency axis."""
    series = [
        Series(text(t, "name", f"target {i + 1}"), colour(i), _cdf(t), unit=" %")
        for i, t in enumerate(targets)
    ]
    refs = [RefLine(v, f"SLO p99 {fmt_num(v)} ms", "x", "#c9302c") for v in [num(slo, "p99")] if v]
    refs += [RefLine(q, f"p{fmt_num(q)}", "y", "#8a93a3") for q in (50.0, 99.0)]
    svg = line_chart(
        "Latency distribution (cumulative)",
        series,
        x_label="latency (ms, log scale)",
        y_label="queries at or below (%)",
        x_log=True,
        y_log=False,
        refs=refs,
    )
    return _box(svg, "Read across at 50 % or 99 % to find each target's p50 or p99.")


def latency_over_time_chart(targets: Sequence[Target], slo: Mapping[str, Any]) -> str:
    """(b) p50 (solid) and p99 (dashed) per measurement window, per target."""
    series: list[Series] = []
    for i, t in enumerate(targets):
        rows, name = maps(t, "timeline"), text(t, "name", f"target {i + 1}")
        series.append(Series(f"{name} p50", colour(i), points(rows, "t_s", "p50_ms"), unit=" ms"))
        series.append(
            Series(f"{name} p99", colour(i), points(rows, "t_s", "p99_ms"), dashed=True, unit=" ms")
        )
    svg = line_chart(
        "Latency over time",
        series,
        x_label="time (s)",
        y_label="latency (ms)",
        refs=_slo_p99(slo),
    )
    return _box(svg, "Solid: p50 per window; dashed: p99 per window.")


def throughput_and_temperature_charts(targets: Sequence[Target]) -> str:
    """(c) Throughput per window, and device temperature when any sensor reading exists."""
    qps = [
        Series(
            text(t, "name", f"target {i + 1}"), colour(i), points(maps(t, "timeline"), "t_s", "qps")
        )
        for i, t in enumerate(targets)
    ]
    chart = line_chart("Throughput over time", qps, x_label="time (s)", y_label="queries/s")
    temps = [
        Series(s.label, s.colour, pts, unit=" °C")
        for s, t in zip(qps, targets, strict=True)
        if (pts := points(maps(t, "timeline"), "t_s", "temp_c"))
    ]
    if not temps:
        return _box(chart, "No temperature readings: this device exposes no thermal sensor.")
    svg = line_chart("Temperature over time", temps, x_label="time (s)", y_label="°C", y_zero=False)
    return _box(chart) + _box(svg)


def energy_chart(targets: Sequence[Target]) -> str:
    """(d) Energy per inference per target; estimated values are faded and labelled."""
    bars = []
    for i, t in enumerate(targets):
        energy, name = mapping(t, "energy"), text(t, "name", f"target {i + 1}")
        estimated = bool(energy.get("estimated"))
        bars.append(
            Bar(
                name,
                num(energy, "mj_per_inference"),
                colour(i),
                "(estimate)" if estimated else "",
                estimated,
            )
        )
    svg = bar_chart("Energy per inference", bars, y_label="mJ per inference")
    caption = "Faded bars are estimates, not measurements: see each target's energy note above."
    return _box(svg, caption)


def server_search_chart(targets: Sequence[Target], slo: Mapping[str, Any]) -> str:
    """(e) The server scenario's QPS search: p99 at each offered load, with the SLO line."""
    series: list[Series] = []
    refs = _slo_p99(slo)
    for i, t in enumerate(targets):
        server, name = mapping(t, "server"), text(t, "name", f"target {i + 1}")
        rows = sorted(maps(server, "search"), key=lambda r: num(r, "qps") or 0.0)
        if not rows:
            continue
        met = [r for r in rows if r.get("met") is True]
        missed = [r for r in rows if r.get("met") is not True]
        series.append(Series(name, colour(i), points(rows, "qps", "p99_ms")))
        for part, hollow in ((met, False), (missed, True)):
            label = f"{name} {'missed' if hollow else 'met'}"
            pts = points(part, "qps", "p99_ms")
            series.append(
                Series(
                    label,
                    colour(i),
                    pts,
                    line=False,
                    markers=True,
                    hollow=hollow,
                    unit=" ms",
                    in_legend=False,
                )
            )
        best = num(server, "max_qps_at_slo")
        if best is not None:
            refs.append(RefLine(best, f"{name} max {fmt_num(best)} QPS", "x", colour(i)))
    if not series:
        return ""
    svg = line_chart(
        "Server scenario: p99 at each offered load",
        series,
        x_label="offered load (queries/s)",
        y_label="p99 latency (ms)",
        refs=refs,
    )
    return _box(svg, "Filled points met the SLO, hollow points missed it.")


def sustained_chart(targets: Sequence[Target]) -> str:
    """(f) Sustained-load windows (throughput, temperature) with each target's verdict."""
    qps, temps, notes = [], [], []
    for i, t in enumerate(targets):
        sus, name = mapping(t, "sustained"), text(t, "name", f"target {i + 1}")
        if not sus:
            continue
        rows = maps(sus, "windows")
        qps.append(Series(name, colour(i), points(rows, "t_s", "qps"), markers=True, unit=" QPS"))
        if pts := points(rows, "t_s", "temp_c"):
            temps.append(Series(name, colour(i), pts, markers=True, unit=" °C"))
        verdict = text(sus, "verdict", "unknown")
        kind = "good" if verdict == "stable" else "bad"
        drop = num(sus, "throughput_drop")
        drop_text = f", throughput drop {fmt_num(drop * 100)} %" if drop is not None else ""
        evidence = "".join(f"<li>{esc(e)}</li>" for e in seq_text(sus, "evidence"))
        notes.append(
            f"<p><strong>{esc(name)}</strong> {badge(verdict, kind)}{esc(drop_text)}</p>"
            + (f'<ul class="notes">{evidence}</ul>' if evidence else "")
        )
    if not qps:
        return ""
    svg = line_chart(
        "Sustained load: throughput per window", qps, x_label="time (s)", y_label="queries/s"
    )
    out = [_box(svg, "".join(notes))]
    if temps:
        svg = line_chart(
            "Sustained load: temperature", temps, x_label="time (s)", y_label="°C", y_zero=False
        )
        out.append(_box(svg))
    return "".join(out)


def seq_text(obj: Mapping[str, Any], key: str) -> list[str]:
    """The items of a list field as strings."""
    value = obj.get(key)
    return [str(v) for v in value] if isinstance(value, list) else []
