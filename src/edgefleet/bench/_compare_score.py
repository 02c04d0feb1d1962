"""Scoring one benchmark target on the five criteria of ``edgefleet bench compare``.

Examples
--------
>>> target = {"name": "edge", "latency_ms": {"p99": 62.0}, "throughput_qps": 900.0}
>>> scores, criteria = score_target({"label": "pi5"}, target, {"p99": 50.0}, None)
>>> scores.meets_slo, scores.qps_at_slo, criteria[1].explanation
(False, 0.0, '0 QPS: does not meet the SLO')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edgefleet.bench._html_values import mapping, num, text
from edgefleet.bench.svg import fmt_num

__all__ = ["MAX_ERROR_RATE", "Criterion", "Scores", "score_target", "slo_name"]

#: A candidate whose failed queries exceed this share of all queries does not meet the SLO.
MAX_ERROR_RATE = 0.01


def slo_name(key: str) -> str:
    """How a latency key is shown: ``p999`` reads as ``p99.9``."""
    return "p99.9" if key == "p999" else key


@dataclass(frozen=True)
class Criterion:
    """One scored criterion: a machine-readable ``value`` and a one-line ``explanation``.

    ``measured`` is False when the report has no data for it ("not measured"); such a
    criterion never counts against a candidate.
    """

    name: str
    value: float | str | None
    explanation: str
    measured: bool = True


@dataclass(frozen=True)
class Scores:
    """The numbers behind one candidate's criteria (None: not measured)."""

    meets_slo: bool
    slo_failure: str
    latency_ms: dict[str, float | None] = field(default_factory=dict)
    p99_ms: float | None = None
    qps_at_slo: float = 0.0
    mj_per_inference: float | None = None
    energy_estimated: bool = False
    energy_text: str = "not measured"
    watts: float | None = None
    battery_hours: float | None = None
    inferences_per_charge: float | None = None
    accuracy: float | None = None
    sustained: str | None = None
    partial: bool = False


def score_target(
    report: Mapping[str, Any],
    target: Mapping[str, Any],
    slo: Mapping[str, float],
    battery_wh: float | None,
) -> tuple[Scores, tuple[Criterion, ...]]:
    """The :class:`Scores` of ``target`` and its five criteria, in the documented order."""
    lat = mapping(target, "latency_ms")
    values = {key: num(lat, key) for key in slo}
    parts, failures = [], []
    for key, limit in slo.items():
        value, name = values[key], slo_name(key)
        if value is None:
            failures.append(f"{name} not measured (SLO {fmt_num(limit)} ms)")
        elif value <= limit:
            parts.append(f"{name} {fmt_num(value)} ms meets {fmt_num(limit)} ms")
        else:
            failures.append(f"{name} {fmt_num(value)} ms exceeds {fmt_num(limit)} ms")
    errors, queries = num(target, "errors") or 0.0, num(target, "queries") or 0.0
    if errors and queries and errors / queries > MAX_ERROR_RATE:
        rate = 100 * errors / queries
        failures.append(f"error rate {fmt_num(rate)} % exceeds {fmt_num(MAX_ERROR_RATE * 100)} %")
    elif errors:
        parts.append(f"{fmt_num(errors)} failed queries")
    meets = not failures
    partial = bool(report.get("partial"))
    latency_text = "; ".join(failures + parts) + (" (partial run)" if partial else "")
    primary = next(iter(values.values()), None)
    latency = Criterion("tail latency", primary, latency_text, primary is not None)

    qps, throughput = _throughput(report, target, slo, meets)
    mj, energy_text, battery, energy = _energy(target, battery_wh)
    acc = mapping(target, "accuracy")
    top1 = num(acc, "top1")
    if top1 is None:
        accuracy = Criterion("accuracy", None, "not measured", False)
    else:
        samples = num(acc, "samples")
        extra = f" ({fmt_num(samples)} samples)" if samples else ""
        accuracy = Criterion("accuracy", top1, f"{fmt_num(top1 * 100)} % top-1{extra}")
    sustained, verdict = _sustained(target)
    scores = Scores(
        meets_slo=meets,
        slo_failure="; ".join(failures),
        latency_ms=values,
        p99_ms=num(lat, "p99"),
        qps_at_slo=qps,
        mj_per_inference=mj,
        energy_estimated=bool(mapping(target, "energy").get("estimated")),
        energy_text=energy_text,
        watts=battery[0],
        battery_hours=battery[1],
        inferences_per_charge=battery[2],
        accuracy=top1,
        sustained=verdict,
        partial=partial,
    )
    return scores, (latency, throughput, energy, accuracy, sustained)


def _throughput(
    report: Mapping[str, Any], target: Mapping[str, Any], slo: Mapping[str, float], meets: bool
) -> tuple[float, Criterion]:
    searched = num(mapping(target, "server"), "max_qps_at_slo")
    if searched is not None:
        run_slo = mapping(mapping(report, "settings"), "slo_ms")
        note = ""
        if run_slo and dict(run_slo) != dict(slo):
            shown = ", ".join(f"{slo_name(k)} {fmt_num(num(run_slo, k))} ms" for k in run_slo)
            note = f"; searched against the run's SLO ({shown})"
        text_ = f"{fmt_num(searched)} QPS at the SLO (server-scenario search){note}"
        return searched, Criterion("throughput at SLO", searched, text_)
    measured = num(target, "throughput_qps")
    if meets and measured is not None:
        scenario = text(target, "scenario", "the run")
        explanation = f"{fmt_num(measured)} QPS measured in {scenario} while meeting the SLO"
        return measured, Criterion("throughput at SLO", measured, explanation)
    if meets:
        return 0.0, Criterion("throughput at SLO", 0.0, "throughput not measured", False)
    return 0.0, Criterion("throughput at SLO", 0.0, "0 QPS: does not meet the SLO")


def _energy(
    target: Mapping[str, Any], battery_wh: float | None
) -> tuple[float | None, str, tuple[float | None, float | None, float | None], Criterion]:
    energy = mapping(target, "energy")
    mj = num(energy, "mj_per_inference")
    if mj is None or mj <= 0:
        return (
            None,
            "not measured",
            (None, None, None),
            Criterion("energy", None, "not measured", False),
        )
    estimated = bool(energy.get("estimated"))
    shown = f"{fmt_num(mj)} mJ/inference" + (" (estimate)" if estimated else "")
    explanation = shown
    watts = hours = per_charge = None
    if battery_wh is not None:
        watts = num(energy, "mean_watts")
        qps = num(target, "throughput_qps")
        if (watts is None or watts <= 0) and qps:
            watts = mj / 1000 * qps
        per_charge = battery_wh * 3600 / (mj / 1000)
        explanation += f"; {fmt_num(battery_wh)} Wh battery: {fmt_num(per_charge)} inferences"
        if watts:
            hours = battery_wh / watts
            explanation += f", {fmt_num(hours)} h continuous at {fmt_num(watts)} W"
    return mj, shown, (watts, hours, per_charge), Criterion("energy", mj, explanation)


def _sustained(target: Mapping[str, Any]) -> tuple[Criterion, str | None]:
    sustained = mapping(target, "sustained")
    verdict = text(sustained, "verdict") or None
    if verdict is None:
        return Criterion("sustained", None, "not measured", False), None
    drop = num(sustained, "throughput_drop")
    explanation = verdict
    if drop is not None:
        explanation += f": throughput drop {fmt_num(drop * 100)} %"
    evidence = sustained.get("evidence")
    if isinstance(evidence, list) and evidence and verdict != "stable":
        explanation += f" ({evidence[0]})"
    return Criterion("sustained", verdict, explanation), verdict
