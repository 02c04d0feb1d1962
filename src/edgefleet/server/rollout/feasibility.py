"""Whether a rollout plan can finish on the devices its selector matches now.

A gate is inconclusive until at least ``min_devices`` of the stage's cohort report, and an
inconclusive stage never advances: a stage whose cohort holds fewer devices than a gate's
``min_devices`` waits until the progress deadline pauses it. The cohort sizes follow from the
fleet alone: a stage of share ``s`` takes :func:`~edgefleet.server.rollout.cohorts.stage_size`
``(s, n)`` devices of every hardware class of ``n`` (shadow stages too), whatever the ranks.
The other requirement, ``min_share`` of the cohort, can always be met (it is at most the cohort).

Stages are numbered from 1 here, as everywhere an operator reads them.

Examples
--------
>>> from edgefleet.server.rollout.plan import parse_gate, parse_stages
>>> plan = RolloutPlan(
...     parse_stages("shadow:10%:1h,canary:5%:2h,25%:2h,100%"),
...     (parse_gate("accuracy_delta>=-0.02,min_devices=3"),),
... )
>>> demo = {"x86-small": 2, "x86-large": 1}
>>> stage_cohort_sizes(plan.stages, demo)
[2, 2, 2, 3]
>>> [(s.stage, s.cohort, s.min_devices) for s in shortfalls(plan, demo)]
[(1, 2, 3), (2, 2, 3), (3, 2, 3)]
>>> shortfalls(plan, {"x86-small": 40, "x86-large": 20})  # 5%: 2 + 1 devices
[]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from edgefleet.server.rollout.cohorts import stage_size
from edgefleet.server.rollout.gates import applies
from edgefleet.server.rollout.plan import format_stages
from edgefleet.server.rollout.spec import RolloutPlan, Stage

__all__ = ["Shortfall", "describe_shortfalls", "shortfalls", "stage_cohort_sizes"]


@dataclass(frozen=True)
class Shortfall:
    """A stage whose cohort is smaller than a gate's ``min_devices``.

    Attributes
    ----------
    stage
        The stage's number, from 1.
    stage_text
        The stage in the plan syntax, e.g. ``shadow:10%:1h``.
    cohort
        Devices in the stage's cohort on the devices selected now.
    metric
        The gate's metric.
    min_devices
        The gate's ``min_devices``.
    """

    stage: int
    stage_text: str
    cohort: int
    metric: str
    min_devices: int

    def describe(self) -> str:
        """``stage 1 (shadow:10%:1h) holds 2 devices; gate accuracy_delta needs 3``."""
        held = f"{self.cohort} device{'s' if self.cohort != 1 else ''}"
        return (
            f"stage {self.stage} ({self.stage_text}) holds {held}; gate {self.metric} needs "
            f"min_devices={self.min_devices}"
        )


def stage_cohort_sizes(stages: Sequence[Stage], class_sizes: Mapping[str, int]) -> list[int]:
    """Devices in each stage's cohort, given the number of devices of each hardware class.

    >>> stage_cohort_sizes([Stage("canary", 0.05), Stage("staged", 1.0)], {"a": 10, "b": 3})
    [2, 13]
    """
    return [sum(stage_size(s.share, n) for n in class_sizes.values()) for s in stages]


def shortfalls(plan: RolloutPlan, class_sizes: Mapping[str, int]) -> list[Shortfall]:
    """Every (stage, gate) pair whose gate can never be conclusive on these devices."""
    found = []
    sizes = stage_cohort_sizes(plan.stages, class_sizes)
    for number, (stage, cohort) in enumerate(zip(plan.stages, sizes, strict=True), start=1):
        for gate in plan.gates:
            if applies(gate, stage.kind == "shadow") and gate.min_devices > cohort:
                text = format_stages([stage])
                found.append(Shortfall(number, text, cohort, gate.metric, gate.min_devices))
    return found


def describe_shortfalls(found: Sequence[Shortfall], class_sizes: Mapping[str, int]) -> str:
    """One message: the devices selected now, and every stage that would wait forever.

    >>> print(describe_shortfalls([Shortfall(1, "shadow:10%", 2, "p99_ratio", 3)], {"a": 3}))
    the plan cannot finish on the 3 devices selected now (a: 3): stage 1 (shadow:10%) holds 2 devices; gate p99_ratio needs min_devices=3
    """  # noqa: E501
    total = sum(class_sizes.values())
    classes = ", ".join(f"{hw}: {n}" for hw, n in sorted(class_sizes.items()))
    return (
        f"the plan cannot finish on the {total} device{'s' if total != 1 else ''} selected now "
        f"({classes}): " + "; ".join(s.describe() for s in found)
    )
