"""What a rollout or an A/B experiment is asked to do: stages, gates, and the experiment split.

These are plain frozen values. :mod:`edgefleet.server.rollout.plan` parses them from the CLI
syntax, YAML or JSON, and turns them back into JSON for the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

__all__ = [
    "DEFAULT_GATES",
    "EXPERIMENT_METRICS",
    "ExperimentPlan",
    "Gate",
    "GateMetric",
    "RolloutPlan",
    "Stage",
    "StageKind",
]

StageKind = Literal["shadow", "canary", "staged"]
"""``shadow``: the candidate runs beside the active model and answers nothing; ``canary`` and
``staged``: the candidate serves on the stage's devices (``canary`` is the name of a first small
serving stage, evaluated the same way)."""

GateMetric = Literal["p99_ratio", "error_rate_delta", "accuracy_delta", "disagreement", "rollbacks"]
"""* ``p99_ratio``: candidate p99 latency / baseline p99 latency (merged sketches);
* ``error_rate_delta``: candidate error rate minus baseline error rate;
* ``accuracy_delta``: candidate mean calibrated confidence minus baseline's (estimated accuracy);
* ``disagreement``: share of shadow samples whose top-1 differs from the active model's
  (shadow stages only);
* ``rollbacks``: local rollbacks and crashes on candidate devices during the stage."""


@dataclass(frozen=True)
class Stage:
    """One step of a rollout.

    Attributes
    ----------
    kind
        See :data:`StageKind`.
    share
        Share of the targeted devices in the stage, ``0 < share <= 1``. Stages are cumulative:
        a device in a stage of share 5% stays in every later stage.
    bake_s
        Minimum time at this stage before it may advance, even when every gate passes.
    sample_rate
        Shadow stages: the share of live inferences also run on the candidate.
    """

    kind: StageKind
    share: float
    bake_s: float = 0.0
    sample_rate: float = 0.1


@dataclass(frozen=True)
class Gate:
    """A condition the candidate must meet against the baseline cohort at every stage.

    The gate passes when ``value <op> threshold`` holds and enough data came in: at least
    ``min_devices`` candidate devices and ``min_device_share`` of the stage's cohort reported,
    with at least ``min_inferences`` inferences among them. With less data it is inconclusive.
    It is evaluated every ``interval_s``; ``failure_limit`` consecutive failing evaluations fail
    the rollout.
    """

    metric: GateMetric
    op: Literal["<=", ">="]
    threshold: float
    min_devices: int = 1
    min_device_share: float = 0.8
    min_inferences: int = 100
    interval_s: float = 30.0
    failure_limit: int = 1

    def holds(self, value: float) -> bool:
        """Whether ``value`` meets the threshold."""
        return value <= self.threshold if self.op == "<=" else value >= self.threshold


DEFAULT_GATES: tuple[Gate, ...] = (
    Gate("p99_ratio", "<=", 1.5),
    Gate("error_rate_delta", "<=", 0.01),
    Gate("accuracy_delta", ">=", -0.03),
    Gate("disagreement", "<=", 0.2),
    Gate("rollbacks", "<=", 0.0),
)
"""Gates used when a plan names none."""


@dataclass(frozen=True)
class RolloutPlan:
    """Stages, gates and the progress deadline of a rollout.

    ``progress_deadline_s``: a stage whose gates stay inconclusive this long pauses the rollout
    for an operator.
    """

    stages: tuple[Stage, ...]
    gates: tuple[Gate, ...] = DEFAULT_GATES
    progress_deadline_s: float = 3600.0


EXPERIMENT_METRICS: Mapping[str, bool] = MappingProxyType(
    {"accuracy_estimate": True, "p99_ms": False, "error_rate": False}
)
"""The per-device metrics an A/B experiment can compare, each mapped to whether higher is better:
``accuracy_estimate`` (mean calibrated confidence), ``p99_ms`` (p99 latency) and ``error_rate``."""


@dataclass(frozen=True)
class ExperimentPlan:
    """A fixed A/B split between the current version (arm A) and a candidate (arm B).

    Attributes
    ----------
    share_b
        Share of the targeted devices on arm B.
    duration_s
        How long the experiment runs before it is concluded.
    metrics
        Per-device metrics compared between the arms, names from :data:`EXPERIMENT_METRICS`.
    confidence
        Confidence level of the intervals (and ``1 - alpha`` of the tests).
    auto_promote
        Promote B to every targeted device when the recommendation says so at the end.
    min_devices_per_arm
        Fewer reporting devices in an arm give no recommendation.
    """

    share_b: float
    duration_s: float
    metrics: tuple[str, ...] = field(
        default=("accuracy_estimate", "p99_ms", "error_rate"),
    )
    confidence: float = 0.95
    auto_promote: bool = False
    min_devices_per_arm: int = 2
