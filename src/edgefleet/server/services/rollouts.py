"""Rollout services: start a rollout or an A/B experiment, operator commands, status.

A rollout moves one model of the devices matching a selector from the version they run (the
*previous* release) to a candidate, stage by stage, judged by gates against the devices still
on the previous version; :mod:`edgefleet.server.services.rollout_eval` does the evaluation.
Every transition is stored before it changes any desired state.
"""

from __future__ import annotations

import secrets
from collections import Counter
from typing import Any

from edgefleet.errors import ConfigurationError, ConflictError, NotFoundError
from edgefleet.protocol.labels import check_labels
from edgefleet.server.context import ServerContext
from edgefleet.server.rollout.feasibility import describe_shortfalls, shortfalls
from edgefleet.server.rollout.plan import (
    check_every_stage_is_judged,
    experiment_to_json,
    format_stages,
    plan_to_json,
)
from edgefleet.server.rollout.spec import ExperimentPlan, RolloutPlan
from edgefleet.server.services import rollout_effects as fx
from edgefleet.server.services.registry import desired_model, ensure_release
from edgefleet.server.services.rollout_eval import end, evaluate
from edgefleet.server.store.rollouts import ACTIVE_STATES
from edgefleet.server.store.rows import DeviceRow, RolloutRow

__all__ = ["command", "start", "status"]

_COMMANDS = {
    "pause": ("running",),
    "resume": ("paused", "concluded"),
    "promote": ("running", "paused", "concluded"),
    "abort": ("running", "paused", "concluded"),
}
_ATTEMPTS = 5
"""Compare-and-set attempts of an operator command racing the evaluation loop."""


def start(
    ctx: ServerContext,
    name: str,
    version: str,
    selector: dict[str, str],
    plan: RolloutPlan | ExperimentPlan,
    now: float,
    *,
    allow_small_cohorts: bool = False,
) -> RolloutRow:
    """Start rolling ``name@version`` out to the devices matching ``selector``.

    A plan with a stage whose cohort, on the devices selected now, is smaller than a gate's
    ``min_devices`` could never advance past it: it is refused, unless ``allow_small_cohorts``
    (more devices may be enrolled before the stage is reached); the ``started`` event then
    carries the numbers as a ``warning``.

    Raises
    ------
    NotFoundError
        The version is not in the registry.
    ConfigurationError
        The selector matches no device, the devices already run that version, or a stage of
        the plan has no gate that applies to it.
    ConflictError
        No targeted device runs a version of ``name`` yet (deploy one first), the devices
        run different versions, another rollout of ``name`` is active, or (unless
        ``allow_small_cohorts``) a stage's cohort is smaller than a gate's ``min_devices``.
    """
    check_labels(selector)
    if isinstance(plan, RolloutPlan):
        check_every_stage_is_judged(plan)
    with ctx.registry_lock:  # a deployment checks for rollouts under it, then writes
        row = _create(ctx, name, version, selector, plan, now, allow_small_cohorts)
    try:
        return evaluate(ctx, row, now)
    except ConflictError:  # the evaluation loop (here or in another process) was first
        return _get(ctx, row.rollout_id)


def _create(
    ctx: ServerContext,
    name: str,
    version: str,
    selector: dict[str, str],
    plan: RolloutPlan | ExperimentPlan,
    now: float,
    allow_small_cohorts: bool,
) -> RolloutRow:
    """Check the devices and their versions and store the rollout (under the registry lock)."""
    for active in ctx.store.list_rollouts(states=ACTIVE_STATES):
        if active.model == name:  # (the store checks again, atomically, when it creates one)
            raise ConflictError(
                f"rollout {active.rollout_id} of model {name} is still active; "
                "promote, abort or wait for it first"
            )
    version_row = ctx.store.get_model_version(name, version)
    if version_row is None:
        known = ", ".join(r.version for r in ctx.store.list_model_versions(name)) or "none"
        raise NotFoundError(f"model {name}@{version} is not in the registry (versions: {known})")
    devices = ctx.store.list_devices(selector)
    if not devices:
        raise ConfigurationError(f"selector {_show(selector)} matches no enrolled device")
    warning = _small_cohorts(plan, devices, allow=allow_small_cohorts)
    states = ctx.store.list_desired_states([d.device_id for d in devices])
    running = Counter(
        (s.model["version"], s.model["release"])
        for s in states.values()
        if s.model is not None and s.model.get("name") == name
    )
    if not running:
        raise ConflictError(
            f"no device matching {_show(selector)} runs a version of {name} yet; "
            f"deploy a first one with `edgefleet deploy {name}@VERSION --to ...`"
        )
    (prev_version, prev_release), _ = running.most_common(1)[0]
    if prev_version == version:
        raise ConfigurationError(f"the devices matching {_show(selector)} already run {version}")
    previous = next(
        s.model
        for s in states.values()
        if s.model is not None
        and (s.model["version"], s.model["release"])
        == (
            prev_version,
            prev_release,
        )
    )
    candidate = desired_model(ensure_release(ctx, version_row, now))
    kind = "experiment" if isinstance(plan, ExperimentPlan) else "rollout"
    plan_json = experiment_to_json(plan) if isinstance(plan, ExperimentPlan) else plan_to_json(plan)
    row = RolloutRow(
        rollout_id=("ab-" if kind == "experiment" else "ro-") + secrets.token_hex(4),
        kind=kind,
        model=name,
        candidate=candidate,
        previous=previous,
        selector=dict(selector),
        plan=plan_json,
        state="running",
        stage=0,
        stage_started_at=now,
        status={},
        reason="",
        revision=0,
        created_at=now,
        updated_at=now,
    )
    described = (
        f"A/B {prev_version} vs {version}, {plan.share_b:.0%} on B"
        if isinstance(plan, ExperimentPlan)
        else format_stages(plan.stages)
    )
    ctx.store.create_rollout(
        row,
        {
            "kind": "started",
            "candidate": f"{name}@{version} (release {candidate['release']})",
            "previous": f"{name}@{prev_version} (release {prev_release})",
            "devices": len(devices),
            "plan": described,
            **({"warning": warning} if warning else {}),
        },
    )
    return row


def _small_cohorts(
    plan: RolloutPlan | ExperimentPlan, devices: list[DeviceRow], *, allow: bool
) -> str:
    """Refuse (or, when allowed, describe) stages too small for a gate's ``min_devices``."""
    if not isinstance(plan, RolloutPlan):
        return ""
    class_sizes = Counter(fx.classes_of({d.device_id: d for d in devices}).values())
    found = shortfalls(plan, class_sizes)
    if not found:
        return ""
    message = describe_shortfalls(found, class_sizes)
    if allow:
        return f"{message}; started anyway: such a stage waits for more devices"
    raise ConflictError(
        f"{message}. Lower the gate's min_devices or raise the stage's share, or start anyway "
        "with --allow-small-cohorts (API: allow_small_cohorts) if more devices will be "
        "selected by then"
    )


def command(
    ctx: ServerContext, rollout_id: str, action: str, now: float, reason: str = ""
) -> RolloutRow:
    """``pause``, ``resume``, ``promote`` or ``abort`` a rollout (stored before it acts).

    Raises
    ------
    NotFoundError
        No such rollout.
    ConflictError
        The rollout's state does not allow ``action`` (the message names the state).
    """
    if action not in _COMMANDS:
        raise ConfigurationError(f"unknown rollout action {action!r}; use {', '.join(_COMMANDS)}")
    for attempt in range(_ATTEMPTS):
        row = _get(ctx, rollout_id)
        if row.state not in _COMMANDS[action]:
            raise ConflictError(
                f"cannot {action} rollout {rollout_id}: it is {row.state} "
                f"({action} needs {' or '.join(_COMMANDS[action])})"
            )
        try:
            return _act(ctx, row, action, reason, now)
        except ConflictError:  # an evaluation stored its status meanwhile: read it again
            if attempt + 1 == _ATTEMPTS:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _act(ctx: ServerContext, row: RolloutRow, action: str, reason: str, now: float) -> RolloutRow:
    rollout_id = row.rollout_id
    why = reason or f"{action} by an operator"
    event = {"kind": action, "reason": why}
    if action == "pause":
        return ctx.store.update_rollout(
            rollout_id, row.revision, now, {"state": "paused", "reason": why}, [event]
        )
    if action == "resume":
        status = dict(row.status, inconclusive_since=None)
        return ctx.store.update_rollout(
            rollout_id,
            row.revision,
            now,
            {"state": "running", "reason": "", "status": status},
            [event],
        )
    state = "completed" if action == "promote" else "aborted"
    return end(ctx, row, state, why, dict(row.status), event, now)


def status(ctx: ServerContext, rollout_id: str, now: float) -> dict[str, Any]:
    """Everything about one rollout as JSON: plan, stage, gates, devices per state, timeline."""
    ctx.heartbeats.flush()
    row = _get(ctx, rollout_id)
    devices = fx.targets(ctx, row)
    per_state: Counter[str] = Counter()
    offline_after = ctx.settings.device_offline_after_s
    for device in devices.values():
        active = (device.inventory.get("active_model") or {}).get("version")
        if now - device.last_seen_at >= offline_after:
            per_state["offline"] += 1
        if device.inventory.get("held_since") is not None:
            per_state["held"] += 1
        if active == row.candidate["version"]:
            per_state["on_candidate"] += 1
        elif active == row.previous["version"]:
            per_state["on_previous"] += 1
        else:
            per_state["other"] += 1
    out: dict[str, Any] = {
        "rollout_id": row.rollout_id,
        "kind": row.kind,
        "model": row.model,
        "candidate": row.candidate,
        "previous": row.previous,
        "selector": row.selector,
        "plan": row.plan,
        "state": row.state,
        "stage": row.stage,
        "stage_started_at": row.stage_started_at,
        "reason": row.reason,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "devices": {"targeted": len(devices), **per_state},
        "stage_devices": _stage_devices(row, devices),
        "status": row.status,
        "timeline": [
            {"at": e.at, "kind": e.kind, **e.detail}
            for e in ctx.store.list_rollout_events(rollout_id)
        ],
    }
    return out


def _stage_devices(row: RolloutRow, devices: dict[str, Any]) -> list[str]:
    """The devices of the current stage (a rollout) or of arm B (an experiment), sorted."""
    classes = fx.classes_of(devices)
    if row.kind == "experiment":
        return sorted(fx.arm_b(row, classes, float(row.plan["share_b"])))
    share = float(row.plan["stages"][row.stage]["share"])
    return sorted(fx.members(row, classes, share))


def _get(ctx: ServerContext, rollout_id: str) -> RolloutRow:
    row = ctx.store.get_rollout(rollout_id)
    if row is None:
        raise NotFoundError(f"no rollout {rollout_id!r}")
    return row


def _show(selector: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in selector.items()) or "(all devices)"
