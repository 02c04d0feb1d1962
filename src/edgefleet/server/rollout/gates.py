"""Gate evaluation: the candidate cohort against the baseline of the same hardware class.

Each gate compares, per hardware class, the candidate's value with the baseline devices of that
class still on the current version, and reports the worst class. A gate is:

* **inconclusive** when too few candidate devices reported (fewer than ``min_devices`` or than
  ``min_device_share`` of the stage's cohort: an offline device never counts as healthy), when
  they ran fewer than ``min_inferences`` inferences, or when no class has a baseline yet;
* **fail** when the worst class misses the threshold with enough data (the ``rollbacks``
  gate fails on any local rollback over its threshold, whatever the data);
* **pass** otherwise. Too little data never passes.

Examples
--------
>>> from edgefleet.server.rollout.spec import Gate
>>> result = evaluate_gate(
...     Gate("accuracy_delta", ">=", -0.03, min_inferences=0),
...     candidate={"x86": Reference(3, 900, 2.0, 0.0, 0.70)},
...     baseline={"x86": Reference(5, 1500, 2.0, 0.0, 0.90)},
...     cohort_size=3,
...     rollbacks=0,
... )
>>> result.outcome, round(result.value or 0, 2)
('fail', -0.2)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from edgefleet.server.rollout.metrics import Reference
from edgefleet.server.rollout.spec import Gate

__all__ = ["GateResult", "Outcome", "applies", "evaluate_gate"]

Outcome = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class GateResult:
    """One gate's outcome, its value against its threshold, and the data behind it."""

    metric: str
    op: str
    threshold: float
    outcome: Outcome
    value: float | None
    reason: str
    devices: int
    required_devices: int
    inferences: int
    per_class: dict[str, float | None] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON."""
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GateResult:
        """From :meth:`to_json`."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})

    def describe(self) -> str:
        """``accuracy_delta = -0.200 (>= -0.03): fail``."""
        shown = "n/a" if self.value is None else f"{self.value:.3f}"
        return f"{self.metric} = {shown} ({self.op} {self.threshold:g}): {self.outcome}"


def applies(gate: Gate, shadow_stage: bool) -> bool:
    """Whether ``gate`` is evaluated in this kind of stage (disagreement: shadow stages only)."""
    return shadow_stage or gate.metric != "disagreement"


def _class_value(gate: Gate, cand: Reference, base: Reference | None) -> float | None:
    if gate.metric == "p99_ratio":
        if base is None or not base.p99_ms or cand.p99_ms is None:
            return None
        return cand.p99_ms / base.p99_ms
    if gate.metric == "error_rate_delta":
        if base is None or base.error_rate is None or cand.error_rate is None:
            return None
        return cand.error_rate - base.error_rate
    if gate.metric == "accuracy_delta":
        if base is None or base.accuracy is None or cand.accuracy is None:
            return None
        return cand.accuracy - base.accuracy
    raise ValueError(f"gate metric {gate.metric} has no per-class value")


def evaluate_gate(
    gate: Gate,
    *,
    candidate: Mapping[str, Reference],
    baseline: Mapping[str, Reference],
    cohort_size: int,
    rollbacks: int,
    disagreement: tuple[int, int] = (0, 0),
) -> GateResult:
    """Evaluate ``gate`` for one stage.

    Parameters
    ----------
    candidate
        Hardware class -> what the candidate's devices of that class reported.
    baseline
        Hardware class -> the baseline devices' numbers (live, or stored from an earlier stage).
    cohort_size
        Devices in the stage's cohort, reporting or not.
    rollbacks
        Local rollbacks (and crash restores) of the candidate on the cohort during the stage.
    disagreement
        ``(disagreed, compared)`` summed over the cohort's shadow windows.
    """
    devices = sum(ref.devices for ref in candidate.values())
    inferences = sum(ref.inferences for ref in candidate.values())
    required = max(gate.min_devices, math.ceil(gate.min_device_share * cohort_size - 1e-9))

    def result(outcome: Outcome, value: float | None, reason: str, **extra: Any) -> GateResult:
        return GateResult(
            gate.metric,
            gate.op,
            gate.threshold,
            outcome,
            value,
            reason,
            devices,
            required,
            inferences,
            **extra,
        )

    if gate.metric == "rollbacks":
        value = float(rollbacks)
        if not gate.holds(value):
            return result("fail", value, f"{rollbacks} local rollbacks on candidate devices")
    enough = devices >= required and inferences >= gate.min_inferences
    if not enough:
        why = (
            f"{devices} of {cohort_size} devices reported (need {required})"
            if devices < required
            else f"{inferences} inferences (need {gate.min_inferences})"
        )
        return result("inconclusive", None, f"too little data: {why}")
    if gate.metric == "rollbacks":
        return result("pass", float(rollbacks), "no local rollbacks over the threshold")
    if gate.metric == "disagreement":
        disagreed, compared = disagreement
        if compared < gate.min_inferences or compared == 0:
            return result("inconclusive", None, f"too little data: {compared} shadow comparisons")
        value = disagreed / compared
        outcome: Outcome = "pass" if gate.holds(value) else "fail"
        return result(outcome, value, f"{disagreed} of {compared} shadow samples disagreed")
    per_class = {hw: _class_value(gate, ref, baseline.get(hw)) for hw, ref in candidate.items()}
    known = [v for v in per_class.values() if v is not None]
    if not known:
        return result("inconclusive", None, "no baseline to compare with yet", per_class=per_class)
    worst = max(known) if gate.op == "<=" else min(known)
    outcome = "pass" if gate.holds(worst) else "fail"
    return result(outcome, worst, "worst hardware class", per_class=per_class)
