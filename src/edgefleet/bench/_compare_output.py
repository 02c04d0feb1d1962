"""How a :class:`~edgefleet.bench.compare.Comparison` is shown: terminal table, HTML page."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgefleet.bench._compare_score import slo_name
from edgefleet.bench._html_page import badge, page, table
from edgefleet.bench.svg import PALETTE, Bar, RefLine, bar_chart, esc, fmt_num

if TYPE_CHECKING:
    from edgefleet.bench.compare import Candidate, Comparison

__all__ = ["format_table", "render_compare_html"]


def _slo_text(comparison: Comparison) -> str:
    return ", ".join(f"{slo_name(k)} <= {fmt_num(v)} ms" for k, v in comparison.slo.items())


def _columns(comparison: Comparison) -> list[tuple[str, list[str]]]:
    cands = comparison.candidates
    cols = [
        ("rank", [str(c.rank) for c in cands]),
        ("candidate", [c.label for c in cands]),
        (
            "p99",
            [
                f"{fmt_num(c.scores.p99_ms)} ms" if c.scores.p99_ms is not None else "n/a"
                for c in cands
            ],
        ),
        ("SLO met", ["yes" if c.meets_slo else "no" for c in cands]),
        ("QPS@SLO", [fmt_num(c.scores.qps_at_slo) for c in cands]),
        ("mJ/inf", [_mj(c) for c in cands]),
    ]
    if comparison.battery_wh is not None:
        cols.append(("battery", [_hours(c) for c in cands]))
    cols += [
        (
            "top-1",
            [
                f"{fmt_num(c.scores.accuracy * 100)} %" if c.scores.accuracy is not None else "n/a"
                for c in cands
            ],
        ),
        ("sustained", [c.scores.sustained or "n/a" for c in cands]),
    ]
    if comparison.prices is not None:
        cols.append(("cost/1k QPS", [fmt_num(c.cost_per_1000_qps) for c in cands]))
    cols.append(("verdict", [c.verdict for c in cands]))
    return cols


def _mj(c: Candidate) -> str:
    mj = c.scores.mj_per_inference
    if mj is None:
        return "n/a"
    return fmt_num(mj) + (" (est)" if c.scores.energy_estimated else "")


def _hours(c: Candidate) -> str:
    return "n/a" if c.scores.battery_hours is None else f"{fmt_num(c.scores.battery_hours)} h"


def format_table(comparison: Comparison) -> str:
    """The comparison as plain text: a fixed-width table, then one line per explanation.

    No colours or other terminal markup, so it reads the same piped into a file.
    """
    cols = _columns(comparison)
    widths = [max(len(head), *(len(v) for v in values)) for head, values in cols]
    numeric = {"rank", "p99", "QPS@SLO", "mJ/inf", "battery", "top-1", "cost/1k QPS"}

    def line(cells: list[str]) -> str:
        padded = [
            cell.rjust(w) if head in numeric else cell.ljust(w)
            for (head, _), cell, w in zip(cols, cells, widths, strict=True)
        ]
        return "  ".join(padded).rstrip()

    header = f"SLO: {_slo_text(comparison)}"
    if comparison.battery_wh is not None:
        header += f"   battery: {fmt_num(comparison.battery_wh)} Wh"
    out = [header, "", line([h for h, _ in cols]), line(["-" * w for w in widths])]
    out += [line([values[i] for _, values in cols]) for i in range(len(comparison.candidates))]
    out.append("")
    for c in comparison.candidates:
        out.append(f"{c.rank}. {c.label} ({c.verdict}): {c.reason}")
        out += [f"   {k.name}: {k.explanation}" for k in c.criteria]
    if any(c.scores.energy_estimated for c in comparison.candidates):
        out.append("(est) = estimated energy (see its description), not measured by a power meter")
    out += ["", f"Ranking rule: {comparison.rule}"]
    return "\n".join(out)


def _colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def render_compare_html(comparison: Comparison) -> str:
    """The comparison as one self-contained HTML page: verdict, table, bar charts, reasons."""
    cands = comparison.candidates
    best = comparison.recommended
    parts = [
        "<header><h1>edgefleet bench compare</h1>",
        f'<p class="sub">{len(cands)} candidates · SLO {esc(_slo_text(comparison))}</p></header>',
    ]
    if best is not None:
        parts.append(
            f'<div class="banner ok">Recommended: {esc(best.label)} — {esc(best.reason)}</div>'
        )
    else:
        parts.append('<div class="banner bad">No candidate meets the SLO.</div>')
    if any(c.scores.partial for c in cands):
        parts.append(
            '<div class="banner partial">PARTIAL RESULTS: at least one report comes from an '
            "interrupted run.</div>"
        )
    cols = _columns(comparison)
    rows = []
    for i, _ in enumerate(cands):
        row = []
        for head, values in cols:
            cell = esc(values[i])
            if head == "verdict":
                kind = {"recommended": "good", "fails SLO": "bad"}.get(values[i], "neutral")
                cell = badge(values[i], kind)
            row.append(cell)
        rows.append(row)
    left = [i for i, (h, _) in enumerate(cols) if h in {"candidate", "SLO met", "sustained"}]
    parts += ["<h2>Ranking</h2>", table([h for h, _ in cols], rows, left=[*left, len(cols) - 1])]
    parts.append('<h2>Charts</h2><section class="charts">' + _charts(comparison) + "</section>")
    parts.append("<h2>Why</h2>")
    for c in cands:
        items = "".join(f"<li>{esc(k.name)}: {esc(k.explanation)}</li>" for k in c.criteria)
        parts.append(
            f"<h3>{c.rank}. {esc(c.label)} {badge(c.verdict)}</h3><p>{esc(c.reason)}</p>"
            f'<ul class="notes">{items}</ul>'
        )
    parts.append(f"<h2>Ranking rule</h2><p>{esc(comparison.rule)}</p>")
    parts.append("<footer>Self-contained: this page loads nothing from the network.</footer>")
    return page("edgefleet bench compare", "".join(parts))


def _charts(comparison: Comparison) -> str:
    cands = comparison.candidates
    qps = [
        Bar(
            c.label,
            c.scores.qps_at_slo,
            _colour(i),
            "" if c.meets_slo else "(fails SLO)",
            not c.meets_slo,
        )
        for i, c in enumerate(cands)
    ]
    p99 = [
        Bar(c.label, c.scores.p99_ms, _colour(i), "ms" if c.meets_slo else "ms (fails SLO)")
        for i, c in enumerate(cands)
    ]
    mj = [
        Bar(
            c.label,
            c.scores.mj_per_inference,
            _colour(i),
            "(estimate)" if c.scores.energy_estimated else "",
            c.scores.energy_estimated,
        )
        for i, c in enumerate(cands)
    ]
    refs = []
    if "p99" in comparison.slo:
        limit = comparison.slo["p99"]
        refs.append(RefLine(limit, f"SLO p99 {fmt_num(limit)} ms", "y", "#c9302c"))
    charts = [
        bar_chart("Throughput at the SLO", qps, y_label="queries/s"),
        bar_chart("p99 latency", p99, y_label="ms", refs=refs),
        bar_chart("Energy per inference", mj, y_label="mJ per inference"),
    ]
    return "".join(f'<div class="chart-box">{svg}</div>' for svg in charts)
