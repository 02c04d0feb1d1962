"""The rollout state machine: small ordered rules, the first that applies decides.

Each rule looks at :class:`Facts` (one evaluation's view of a running rollout) and returns a
:class:`Decision` or None. :func:`decide` runs :data:`RULES` in order. Keeping the rules apart
keeps each one testable alone and their priority explicit:

1. a gate that failed ``failure_limit`` times in a row rolls back (safety first);
2. a gate that failed fewer times waits for the next evaluation;
3. every gate passing after the bake time advances (or completes at the last stage);
4. every gate passing within the bake time waits;
5. gates inconclusive past the progress deadline pause the rollout for an operator;
6. otherwise wait for more data.

Examples
--------
>>> from edgefleet.server.rollout.gates import GateResult
>>> ok = GateResult("p99_ratio", "<=", 1.5, "pass", 1.1, "", 3, 3, 500)
>>> facts = Facts(now=100.0, stage=0, stages=2, stage_started_at=0.0, bake_s=60.0,
...               gates=(ok,), failures={}, failure_limits={"p99_ratio": 1},
...               inconclusive_since=None, progress_deadline_s=600.0)
>>> decide(facts).action
'advance'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from edgefleet.server.rollout.gates import GateResult

__all__ = ["RULES", "Action", "Decision", "Facts", "decide"]

Action = Literal["rollback", "advance", "complete", "pause", "wait"]


@dataclass(frozen=True)
class Facts:
    """What one evaluation of a running rollout knows.

    ``failures`` counts consecutive failing evaluations per gate metric, this one included;
    ``inconclusive_since`` is when the gates last stopped being all conclusive (None while
    they are).
    """

    now: float
    stage: int
    stages: int
    stage_started_at: float
    bake_s: float
    gates: tuple[GateResult, ...]
    failures: Mapping[str, int]
    failure_limits: Mapping[str, int]
    inconclusive_since: float | None
    progress_deadline_s: float


@dataclass(frozen=True)
class Decision:
    """What to do, and why (shown in the timeline and status)."""

    action: Action
    reason: str


Rule = Callable[[Facts], Decision | None]


def rollback_on_failed_gate(facts: Facts) -> Decision | None:
    """A gate failing ``failure_limit`` consecutive evaluations rolls the candidate back."""
    failed = [
        g
        for g in facts.gates
        if g.outcome == "fail" and facts.failures.get(g.metric, 0) >= facts.failure_limits[g.metric]
    ]
    if not failed:
        return None
    reasons = "; ".join(f"{g.describe()} ({g.reason})" for g in failed)
    return Decision("rollback", f"gate failed: {reasons}")


def wait_on_failing_gate(facts: Facts) -> Decision | None:
    """A gate that failed fewer times than its limit waits for the next evaluation."""
    failing = [g for g in facts.gates if g.outcome == "fail"]
    if not failing:
        return None
    shown = ", ".join(
        f"{g.metric} {facts.failures.get(g.metric, 0)}/{facts.failure_limits[g.metric]}"
        for g in failing
    )
    return Decision("wait", f"failing, not yet at the failure limit: {shown}")


def advance_when_baked(facts: Facts) -> Decision | None:
    """Every gate passing after the bake time: next stage, or done after the last."""
    if not facts.gates or any(g.outcome != "pass" for g in facts.gates):
        return None
    baked = facts.now - facts.stage_started_at >= facts.bake_s
    if not baked:
        return None
    if facts.stage + 1 >= facts.stages:
        return Decision("complete", "every gate passed at the last stage")
    return Decision("advance", f"every gate passed; stage {facts.stage + 1} baked")


def wait_while_baking(facts: Facts) -> Decision | None:
    """Every gate passing within the bake time: wait for it."""
    if not facts.gates or any(g.outcome != "pass" for g in facts.gates):
        return None
    left = facts.bake_s - (facts.now - facts.stage_started_at)
    return Decision("wait", f"every gate passes; baking {left:.0f} s more")


def pause_at_progress_deadline(facts: Facts) -> Decision | None:
    """Gates inconclusive for longer than the progress deadline: pause for an operator."""
    since = facts.inconclusive_since
    if since is None or facts.now - since < facts.progress_deadline_s:
        return None
    stuck = ", ".join(g.metric for g in facts.gates if g.outcome == "inconclusive")
    stuck = stuck or "no gate applies to this stage"
    return Decision(
        "pause",
        f"inconclusive for {facts.now - since:.0f} s (deadline {facts.progress_deadline_s:g} s): "
        f"{stuck}; an operator must resume, promote or abort",
    )


def wait_for_data(facts: Facts) -> Decision | None:
    """Otherwise: too little data, wait (never pass)."""
    shown = "; ".join(f"{g.metric}: {g.reason}" for g in facts.gates if g.outcome != "pass")
    return Decision("wait", f"inconclusive: {shown or 'no gates evaluated yet'}")


RULES: tuple[Rule, ...] = (
    rollback_on_failed_gate,
    wait_on_failing_gate,
    advance_when_baked,
    wait_while_baking,
    pause_at_progress_deadline,
    wait_for_data,
)


def decide(facts: Facts) -> Decision:
    """The decision of the first rule in :data:`RULES` that applies."""
    for rule in RULES:
        decision = rule(facts)
        if decision is not None:
            return decision
    raise AssertionError("wait_for_data always decides")  # pragma: no cover
