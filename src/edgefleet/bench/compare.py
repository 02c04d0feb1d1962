"""The decision behind ``edgefleet bench compare``: which candidate to buy or deploy, and why.

A candidate is one (report, target) pair: a device running the model locally, or the model
behind a cloud endpoint. Each is scored on five criteria, each with a value and a one-line
explanation (tail latency against the SLO, throughput at the SLO, energy per inference,
accuracy, sustained performance), optionally battery life and cost, and then ranked by
:data:`RANKING_RULE`.

Examples
--------
>>> target = {"name": "edge", "latency_ms": {"p99": 0.6}, "throughput_qps": 3100.0}
>>> report = {"schema_version": 1, "kind": "edgefleet-bench-report", "label": "pi5",
...           "targets": [target]}
>>> result = compare([report], {"p99": 50.0})
>>> best = result.candidates[0]
>>> best.label, best.verdict, best.criteria[0].explanation
('pi5', 'recommended', 'p99 0.6 ms meets 50 ms')
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgefleet.bench._compare_inputs import (
    check_price_labels,
    load_reports,
    parse_prices,
    parse_slo,
    validate_report,
)
from edgefleet.bench._compare_output import format_table, render_compare_html
from edgefleet.bench._compare_score import Criterion, Scores, score_target
from edgefleet.bench.svg import fmt_num
from edgefleet.errors import ConfigurationError

__all__ = [
    "ACCURACY_TIE",
    "RANKING_RULE",
    "Candidate",
    "Comparison",
    "Criterion",
    "compare",
    "format_table",
    "load_reports",
    "parse_prices",
    "parse_slo",
    "render_compare_html",
]

#: Top-1 accuracies within this distance of the best one (1 percentage point) count as tied.
ACCURACY_TIE = 0.01

RANKING_RULE = (
    "Candidates that meet the SLO rank first, ordered by (1) top-1 accuracy, where every "
    "candidate within 1 percentage point of the best measured accuracy, or without a measured "
    "accuracy, counts as tied; then (2) throughput at the SLO, higher first; then (3) energy per "
    "inference, lower first (not measured last); then (4) p99, lower first. Candidates that fail "
    "the SLO follow, ordered by p99, lower first (not measured last). The first candidate, if it "
    "meets the SLO, is recommended."
)

_FACTORS = ("accuracy", "throughput at the SLO", "energy per inference", "p99", "label")


@dataclass(frozen=True)
class Candidate:
    """One (report, target) pair with its scores, rank, verdict and the reason for it."""

    label: str
    source: str
    target: str
    scores: Scores
    price: float | None
    cost_per_1000_qps: float | None
    criteria: tuple[Criterion, ...]
    rank: int = 0
    verdict: str = ""
    reason: str = ""

    @property
    def meets_slo(self) -> bool:
        """Whether every SLO percentile is met (and the error rate is acceptable)."""
        return self.scores.meets_slo


@dataclass(frozen=True)
class Comparison:
    """The ranked candidates (best first) and what they were judged against."""

    slo: dict[str, float]
    candidates: tuple[Candidate, ...]
    battery_wh: float | None = None
    prices: dict[str, float] | None = None
    rule: str = RANKING_RULE

    @property
    def recommended(self) -> Candidate | None:
        """The recommended candidate, or None when no candidate meets the SLO."""
        first = self.candidates[0] if self.candidates else None
        return first if first is not None and first.verdict == "recommended" else None


def compare(
    reports: Sequence[Mapping[str, Any]],
    slo: Mapping[str, float],
    battery_wh: float | None = None,
    prices: Mapping[str, float] | None = None,
) -> Comparison:
    """Score and rank every (report, target) candidate against ``slo`` (milliseconds).

    Parameters
    ----------
    reports
        Parsed report.json dicts, e.g. from :func:`load_reports`.
    slo
        Latency objectives in ms by percentile key (``{"p99": 50.0}``), e.g. from
        :func:`parse_slo`.
    battery_wh
        Battery capacity: adds hours of continuous inference and inferences per charge.
    prices
        Price per candidate label (or per report label, applying to all its targets): adds the
        cost per 1000 QPS at the SLO.

    Raises
    ------
    ConfigurationError
        No candidates, an empty SLO, a non-positive battery, a malformed report, or a price label
        that matches no candidate.
    """
    if not slo:
        raise ConfigurationError("the SLO is empty; give at least one percentile, e.g. p99=50ms")
    if battery_wh is not None and not (math.isfinite(battery_wh) and battery_wh > 0):
        raise ConfigurationError(
            f"battery capacity must be a positive number of Wh, not {battery_wh}"
        )
    pairs = _pairs(reports)
    if not pairs:
        raise ConfigurationError("nothing to compare: give at least one report.json")
    labels = _labels(pairs)
    if prices:
        known = list(dict.fromkeys([*labels, *(str(r["label"]) for r, _ in pairs)]))
        check_price_labels(prices, known)
    scored = []
    for (report, target), label in zip(pairs, labels, strict=True):
        scores, criteria = score_target(report, target, slo, battery_wh)
        price = _price(prices, label, str(report["label"]))
        cost, cost_criterion = _cost(price, scores.qps_at_slo)
        if cost_criterion is not None:
            criteria = (*criteria, cost_criterion)
        source = str(report.get("_source", ""))
        name = str(target["name"])
        scored.append(Candidate(label, source, name, scores, price, cost, criteria))
    ranked = _rank(scored)
    return Comparison(dict(slo), tuple(ranked), battery_wh, dict(prices) if prices else None)


def _pairs(reports: Sequence[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], Any]]:
    pairs = []
    for i, report in enumerate(reports):
        where = str(report.get("_source") or f"report {i + 1}")
        checked = validate_report(dict(report), where)
        pairs += [(report, target) for target in checked["targets"]]
    return pairs


def _labels(pairs: list[tuple[Mapping[str, Any], Any]]) -> list[str]:
    """Report label, plus "/target" for multi-target reports, plus "@file-stem" for duplicates."""
    per_report: dict[int, int] = {}
    for report, _ in pairs:
        per_report[id(report)] = per_report.get(id(report), 0) + 1
    base = [str(r["label"]) + (f"/{t['name']}" if per_report[id(r)] > 1 else "") for r, t in pairs]
    stems = [
        Path(str(r.get("_source") or f"report-{i + 1}")).stem for i, (r, _) in enumerate(pairs)
    ]
    labels = [
        f"{b}@{stem}" if base.count(b) > 1 else b for b, stem in zip(base, stems, strict=True)
    ]
    seen: dict[str, int] = {}
    unique = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        unique.append(label if seen[label] == 1 else f"{label}#{seen[label]}")
    return unique


def _price(prices: Mapping[str, float] | None, label: str, report_label: str) -> float | None:
    if not prices:
        return None
    return prices.get(label, prices.get(report_label))


def _cost(price: float | None, qps: float) -> tuple[float | None, Criterion | None]:
    if price is None:
        return None, None
    if qps <= 0:
        return None, Criterion("cost", None, f"price {fmt_num(price)}; no throughput at the SLO")
    cost = price / qps * 1000
    text = f"{fmt_num(cost)} per 1000 QPS at the SLO (price {fmt_num(price)} / {fmt_num(qps)} QPS)"
    return cost, Criterion("cost", cost, text)


def _key(c: Candidate, best_acc: float | None) -> tuple[Any, ...]:
    s = c.scores
    acc = s.accuracy
    tied = acc is None or best_acc is None or acc >= best_acc - ACCURACY_TIE - 1e-9
    inf = math.inf
    energy = s.mj_per_inference if s.mj_per_inference is not None else inf
    p99 = s.p99_ms if s.p99_ms is not None else inf
    return ((0, 0.0) if tied else (1, -(acc or 0.0)), -s.qps_at_slo, energy, p99, c.label)


def _rank(cands: list[Candidate]) -> list[Candidate]:
    meeting = [c for c in cands if c.meets_slo]
    best_acc = max(
        (c.scores.accuracy for c in meeting if c.scores.accuracy is not None), default=None
    )
    meeting.sort(key=lambda c: _key(c, best_acc))
    failing = sorted(
        (c for c in cands if not c.meets_slo),
        key=lambda c: (c.scores.p99_ms if c.scores.p99_ms is not None else math.inf, c.label),
    )
    out: list[Candidate] = []
    for i, c in enumerate(meeting):
        if i == 0:
            verdict, reason = "recommended", _lead_reason(c, meeting, best_acc)
        else:
            verdict, reason = "meets SLO", _meets_reason(c, meeting[i - 1], meeting, best_acc)
        out.append(_with(c, len(out) + 1, verdict, reason))
    for c in failing:
        out.append(_with(c, len(out) + 1, "fails SLO", f"fails the SLO: {c.scores.slo_failure}"))
    return out


def _with(c: Candidate, rank: int, verdict: str, reason: str) -> Candidate:
    return Candidate(
        c.label,
        c.source,
        c.target,
        c.scores,
        c.price,
        c.cost_per_1000_qps,
        c.criteria,
        rank,
        verdict,
        reason,
    )


def _decider(a: Candidate, b: Candidate, best_acc: float | None) -> str:
    for name, x, y in zip(_FACTORS, _key(a, best_acc), _key(b, best_acc), strict=True):
        if x != y:
            return name
    return "label"


def _facts(c: Candidate, skip: str = "") -> list[str]:
    s, facts = c.scores, []
    if skip != "throughput at the SLO":
        facts.append(f"{fmt_num(s.qps_at_slo)} QPS at the SLO")
    if skip != "energy per inference" and s.mj_per_inference is not None:
        facts.append(s.energy_text)
    if skip != "accuracy" and s.accuracy is not None:
        facts.append(f"{fmt_num(s.accuracy * 100)} % top-1")
    if s.sustained not in (None, "stable"):
        facts.append(f"sustained: {s.sustained}")
    return facts


def _lead(factor: str, c: Candidate) -> str:
    s = c.scores
    return {
        "accuracy": f"most accurate: {fmt_num((s.accuracy or 0) * 100)} % top-1",
        "throughput at the SLO": f"fastest at the SLO: {fmt_num(s.qps_at_slo)} QPS",
        "energy per inference": f"most efficient among equally fast: {s.energy_text}",
        "p99": f"lowest p99 among equals: {fmt_num(s.p99_ms)} ms",
    }.get(factor, "first by name among exact equals")


def _lead_reason(c: Candidate, meeting: list[Candidate], best_acc: float | None) -> str:
    if len(meeting) == 1:
        return "; ".join(["the only candidate that meets the SLO", *_facts(c)])
    factor = _decider(c, meeting[1], best_acc)
    return "; ".join([_lead(factor, c), *_facts(c, factor)])


def _meets_reason(
    c: Candidate, above: Candidate, meeting: list[Candidate], best_acc: float | None
) -> str:
    factor = _decider(above, c, best_acc)
    parts = [f"meets the SLO; ranked below {above.label} on {factor}"]
    energies = [m.scores.mj_per_inference for m in meeting if m.scores.mj_per_inference is not None]
    if c.scores.mj_per_inference is not None and c.scores.mj_per_inference == min(energies):
        parts.append(f"most efficient: {c.scores.energy_text}")
        return "; ".join(parts + _facts(c, "energy per inference"))
    return "; ".join(parts + _facts(c))
