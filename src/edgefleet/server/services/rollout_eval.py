"""One evaluation of a rollout or A/B experiment: gather metrics, decide, persist, apply.

The decision is persisted (compare-and-set on the rollout's revision) before its effect on
desired states is applied, so a crash in between is repaired by the next evaluation, and two
server processes never apply one transition twice.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Any

from edgefleet.errors import ConflictError, EdgefleetError
from edgefleet.server.context import ServerContext
from edgefleet.server.rollout.ab import ArmComparison, bootstrap, recommend, welch
from edgefleet.server.rollout.gates import GateResult, applies, evaluate_gate
from edgefleet.server.rollout.metrics import CohortMetrics, Reference
from edgefleet.server.rollout.plan import experiment_from_json, plan_from_json
from edgefleet.server.rollout.rules import Facts, decide
from edgefleet.server.rollout.spec import ExperimentPlan, RolloutPlan
from edgefleet.server.services import audit
from edgefleet.server.services import rollout_effects as fx
from edgefleet.server.services.registry import remember_deployment
from edgefleet.server.store.rows import RolloutRow

__all__ = ["end", "evaluate", "evaluate_all", "finish_effects"]

log = logging.getLogger(__name__)

TERMINAL = ("completed", "rolled_back", "aborted")


def evaluate_all(ctx: ServerContext, now: float | None = None) -> list[RolloutRow]:
    """Evaluate every running rollout and repair unapplied terminal ones; return them."""
    out: list[RolloutRow] = []
    for row in ctx.store.list_rollouts():
        moment = time.time() if now is None else now
        if row.state != "running":
            ctx.rollout_windows.forget(row.rollout_id)
        try:
            if row.state in TERMINAL:
                if not row.status.get("applied", True):
                    out.append(finish_effects(ctx, row, moment))
            elif row.state == "running":
                out.append(evaluate(ctx, row, moment))
        except ConflictError:
            continue  # another process moved it on; it is evaluated there
        except EdgefleetError as exc:
            log.error("rollout %s: evaluation failed: %s", row.rollout_id, exc)
    return out


def evaluate(ctx: ServerContext, row: RolloutRow, now: float) -> RolloutRow:
    """Evaluate one running rollout or experiment at ``now``."""
    if row.kind == "experiment":
        return _evaluate_experiment(ctx, row, experiment_from_json(row.plan), now)
    return _evaluate_rollout(ctx, row, plan_from_json(row.plan), now)


# -- staged rollouts ---------------------------------------------------------------------------


def _evaluate_rollout(
    ctx: ServerContext, row: RolloutRow, plan: RolloutPlan, now: float, *, full: bool = False
) -> RolloutRow:
    stage = plan.stages[row.stage]
    devices = fx.targets(ctx, row)
    classes = fx.classes_of(devices)
    current = fx.current_payloads(ctx, list(devices))
    fx.apply_desired(ctx, fx.stage_payloads(row, stage, classes, current), now)
    _unless_moved_on(ctx, row, now)

    inside = fx.members(row, classes, stage.share)
    shadow = stage.kind == "shadow"
    windows = ctx.rollout_windows.read(
        row,
        lambda received_since: ctx.store.list_telemetry(
            model=row.model, since=row.stage_started_at, received_since=received_since
        ),
        full=full,
    )
    cand = windows.collect(
        version=row.candidate["version"],
        role="shadow" if shadow else "active",
        classes={d: classes[d] for d in inside},
    )
    outside = classes if shadow else {d: c for d, c in classes.items() if d not in inside}
    live = windows.collect(version=row.previous["version"], role="active", classes=outside)
    baseline = _baseline(row, live)
    rollbacks = sum(
        1
        for e in ctx.store.find_events(
            kind="rolled_back",
            model=row.model,
            version=row.candidate["version"],
            since=row.stage_started_at,
        )
        if e.device_id in inside
    )
    status = dict(row.status)
    previous_results = {g["metric"]: g for g in status.get("gates", [])}
    evaluated_at: dict[str, float] = dict(status.get("evaluated_at", {}))
    failures: dict[str, int] = dict(status.get("failures", {}))
    results: list[GateResult] = []
    disagreement = (
        sum(m.disagreed for m in cand.values()),
        sum(m.compared for m in cand.values()),
    )
    for gate in plan.gates:
        if not applies(gate, shadow):
            continue
        due = now - evaluated_at.get(gate.metric, 0.0) >= gate.interval_s
        if not due and gate.metric in previous_results:
            results.append(GateResult.from_json(previous_results[gate.metric]))
            continue
        result = evaluate_gate(
            gate,
            candidate={hw: m.reference() for hw, m in cand.items()},
            baseline=baseline,
            cohort_size=len(inside),
            rollbacks=rollbacks,
            disagreement=disagreement,
        )
        evaluated_at[gate.metric] = now
        failures[gate.metric] = failures.get(gate.metric, 0) + 1 if result.outcome == "fail" else 0
        results.append(result)
    # no gate at all is not conclusive either: such a stage pauses at the progress deadline
    conclusive = bool(results) and all(g.outcome != "inconclusive" for g in results)
    inconclusive_since = None if conclusive else status.get("inconclusive_since") or now
    decision = decide(
        Facts(
            now=now,
            stage=row.stage,
            stages=len(plan.stages),
            stage_started_at=row.stage_started_at,
            bake_s=stage.bake_s,
            gates=tuple(results),
            failures=failures,
            failure_limits={g.metric: g.failure_limit for g in plan.gates},
            inconclusive_since=inconclusive_since,
            progress_deadline_s=plan.progress_deadline_s,
        )
    )
    status.update(
        gates=[g.to_json() for g in results],
        evaluated_at=evaluated_at,
        failures=failures,
        inconclusive_since=inconclusive_since,
        baseline={hw: ref.to_json() for hw, ref in baseline.items()},
        decision={"action": decision.action, "reason": decision.reason, "at": now},
        cohort={
            "targeted": len(devices),
            "stage": len(inside),
            "reporting": sum(len(m.devices) for m in cand.values()),
            "baseline_reporting": sum(len(m.devices) for m in live.values()),
        },
    )
    if decision.action in ("advance", "complete") and not windows.full:
        # a pass is only decided on a full read of the stage (see rollout.windows)
        return _evaluate_rollout(ctx, row, plan, now, full=True)
    gate_values = [g.to_json() for g in results]
    if decision.action == "wait":
        return ctx.store.update_rollout(row.rollout_id, row.revision, now, {"status": status})
    if decision.action == "advance":
        status.update(failures={}, evaluated_at={}, inconclusive_since=None, gates=[])
        nxt = plan.stages[row.stage + 1]
        moved = ctx.store.update_rollout(
            row.rollout_id,
            row.revision,
            now,
            {"stage": row.stage + 1, "stage_started_at": now, "status": status},
            [
                {
                    "kind": "advanced",
                    "stage": row.stage + 1,
                    "stage_kind": nxt.kind,
                    "share": nxt.share,
                    "reason": decision.reason,
                    "gates": gate_values,
                }
            ],
        )
        to = f"to stage {row.stage + 2}/{len(plan.stages)} ({nxt.kind} {nxt.share:.0%})"
        _decided(ctx, "rollout.advance", moved, f"{to}: {decision.reason}", now)
        current = fx.current_payloads(ctx, list(devices))
        fx.apply_desired(ctx, fx.stage_payloads(moved, nxt, classes, current), now)
        _unless_moved_on(ctx, moved, now)
        return moved
    if decision.action == "pause":
        paused = ctx.store.update_rollout(
            row.rollout_id,
            row.revision,
            now,
            {"state": "paused", "reason": decision.reason, "status": status},
            [{"kind": "paused", "reason": decision.reason, "gates": gate_values}],
        )
        _decided(ctx, "rollout.pause", paused, decision.reason, now)
        return paused
    state = "completed" if decision.action == "complete" else "rolled_back"
    event = {"kind": state, "reason": decision.reason, "gates": gate_values}
    done = end(ctx, row, state, decision.reason, status, event, now)
    action = "rollout.complete" if state == "completed" else "rollout.rollback"
    _decided(ctx, action, done, decision.reason, now)
    return done


def _decided(ctx: ServerContext, action: str, row: RolloutRow, outcome: str, now: float) -> None:
    """Audit an automatic decision on ``row`` (persisted already).

    Texts number stages from 1 as the CLI shows them; ``detail["stage"]`` is the plan index.
    """
    detail = {"model": row.model, "candidate": row.candidate.get("version"), "stage": row.stage}
    audit.record_decision(ctx, action, row.rollout_id, outcome, detail, now)


def _baseline(row: RolloutRow, live: dict[str, CohortMetrics]) -> dict[str, Reference]:
    """Live baseline per class, or the one stored from an earlier evaluation of the rollout."""
    stored = {hw: Reference.from_json(v) for hw, v in row.status.get("baseline", {}).items()}
    for hw, metrics in live.items():
        if metrics.devices:
            stored[hw] = metrics.reference()
    return stored


def end(
    ctx: ServerContext,
    row: RolloutRow,
    state: str,
    reason: str,
    status: dict[str, Any],
    event: dict[str, Any],
    now: float,
) -> RolloutRow:
    """Store a terminal ``state`` (marked not yet applied), then apply it to the devices."""
    changes = {"state": state, "reason": reason, "status": {**status, "applied": False}}
    done = ctx.store.update_rollout(row.rollout_id, row.revision, now, changes, [event])
    return finish_effects(ctx, done, now)


def finish_effects(ctx: ServerContext, row: RolloutRow, now: float) -> RolloutRow:
    """Apply a terminal state to the devices, then mark it applied."""
    event = _terminal_effects(ctx, row, now)
    status = dict(row.status, applied=True)
    try:
        return ctx.store.update_rollout(
            row.rollout_id, row.revision, now, {"status": status}, [event]
        )
    except ConflictError:
        stored = ctx.store.get_rollout(row.rollout_id)
        if stored is None or stored.state != row.state or not stored.status.get("applied"):
            raise
        return stored  # another evaluation applied the same terminal state first


def _terminal_effects(ctx: ServerContext, row: RolloutRow, now: float) -> dict[str, Any]:
    """Put the devices where a terminal ``row`` wants them (idempotent); the ``applied`` event."""
    if row.state == "completed":
        changed = fx.everyone_on_candidate(ctx, row, now)
        remember_deployment(ctx, row.selector, row.candidate, now)
        return {"kind": "applied", "devices": len(changed), "to": "candidate"}
    release = fx.rollback_release(ctx, row, now)
    changed = fx.back_to_previous(ctx, row, release, now)
    remember_deployment(ctx, row.selector, release, now)
    return {
        "kind": "applied",
        "devices": len(changed),
        "to": f"{release['version']} (release {release['release']})",
    }


def _unless_moved_on(ctx: ServerContext, row: RolloutRow, now: float) -> None:
    """After applying effects read from ``row``: if the rollout changed meanwhile, undo them.

    An operator's abort or promote (or another evaluation) stored and applied between this
    evaluation's read and its writes to the devices would otherwise be overwritten with a
    stale stage. A terminal state already applied is applied again here; anything else is
    left to the next evaluation, which starts from a fresh read.

    Raises
    ------
    ConflictError
        The rollout changed; this evaluation's result must not be stored.
    """
    stored = ctx.store.get_rollout(row.rollout_id)
    if stored is None or stored.revision == row.revision:
        return
    if stored.state in TERMINAL and stored.status.get("applied", True):
        _terminal_effects(ctx, stored, now)
    raise ConflictError(f"rollout {row.rollout_id} changed during its evaluation")


# -- A/B experiments ---------------------------------------------------------------------------

_HIGHER_IS_BETTER = {"accuracy_estimate": True, "p99_ms": False, "error_rate": False}


def _evaluate_experiment(
    ctx: ServerContext, row: RolloutRow, plan: ExperimentPlan, now: float
) -> RolloutRow:
    devices = fx.targets(ctx, row)
    classes = fx.classes_of(devices)
    b = fx.arm_b(row, classes, plan.share_b)
    fx.apply_desired(ctx, dict.fromkeys(b, (row.candidate, None)), now)
    _unless_moved_on(ctx, row, now)
    windows = ctx.store.list_telemetry(
        model=row.model, since=row.stage_started_at, device_ids=list(devices)
    )
    arm_a = _per_device(windows, row.previous["version"], set(devices) - b)
    arm_b = _per_device(windows, row.candidate["version"], b)
    comparisons: dict[str, ArmComparison] = {}
    for metric in plan.metrics:
        a_values = [x for v in arm_a.values() if (x := v.get(metric)) is not None]
        b_values = [x for v in arm_b.values() if (x := v.get(metric)) is not None]
        if min(len(a_values), len(b_values)) < max(2, plan.min_devices_per_arm):
            continue
        test = welch if metric != "p99_ms" else bootstrap
        comparisons[metric] = test(a_values, b_values, metric=metric, confidence=plan.confidence)
    advice = recommend(comparisons, higher_is_better=_HIGHER_IS_BETTER)
    status = dict(row.status)
    status.update(
        arms={
            "a": {
                "version": row.previous["version"],
                "devices": len(devices) - len(b),
                "reporting": len(arm_a),
            },
            "b": {"version": row.candidate["version"], "devices": len(b), "reporting": len(arm_b)},
        },
        comparisons={k: c.to_json() for k, c in comparisons.items()},
        recommendation={"verdict": advice.verdict, "reason": advice.reason},
        ends_at=row.stage_started_at + plan.duration_s,
    )
    if now < row.stage_started_at + plan.duration_s:
        return ctx.store.update_rollout(row.rollout_id, row.revision, now, {"status": status})
    if plan.auto_promote and advice.verdict in ("promote_b", "keep_a"):
        state = "completed" if advice.verdict == "promote_b" else "rolled_back"
        event = {"kind": state, "reason": f"experiment ended: {advice.reason}"}
        done = end(ctx, row, state, advice.reason, status, event, now)
        action = "rollout.complete" if state == "completed" else "rollout.rollback"
        _decided(ctx, action, done, advice.reason, now)
        return done
    concluded = ctx.store.update_rollout(
        row.rollout_id,
        row.revision,
        now,
        {"state": "concluded", "reason": advice.reason, "status": status},
        [{"kind": "concluded", "verdict": advice.verdict, "reason": advice.reason}],
    )
    _decided(ctx, "rollout.conclude", concluded, f"{advice.verdict}: {advice.reason}", now)
    return concluded


def _per_device(
    windows: list[Any], version: str, devices: set[str]
) -> dict[str, dict[str, float | None]]:
    merged: dict[str, CohortMetrics] = defaultdict(CohortMetrics)
    for window in windows:
        if window.device_id in devices and window.version == version and window.role == "active":
            merged[window.device_id].add(window)
    return {
        d: {"accuracy_estimate": m.accuracy, "p99_ms": m.p99_ms, "error_rate": m.error_rate}
        for d, m in merged.items()
        if m.inferences
    }
