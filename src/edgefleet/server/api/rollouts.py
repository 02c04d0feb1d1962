"""Operator API for rollouts, A/B experiments and update policies.

``POST /rollouts`` starts one (stages and gates in the CLI syntax, or a whole plan as parsed
from a YAML/JSON file), ``GET /rollouts/{id}`` shows its status, ``POST /rollouts/{id}/{action}``
pauses, resumes, promotes or aborts it. ``PUT /policies`` sets the maintenance windows and
download budget of a selector.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from edgefleet.errors import ConfigurationError
from edgefleet.protocol.bounds import Name, Positive64, Text
from edgefleet.protocol.labels import parse_selector
from edgefleet.protocol.v1 import MaintenanceWindow, UpdatePolicy
from edgefleet.server.api.audit import set_target
from edgefleet.server.api.auth import CurrentOperator, context
from edgefleet.server.api.params import TextPath, TextQuery
from edgefleet.server.context import ServerContext
from edgefleet.server.rollout.plan import (
    load_plan_data,
    parse_duration,
    parse_gate,
    parse_share,
    parse_stages,
)
from edgefleet.server.rollout.spec import DEFAULT_GATES, ExperimentPlan, RolloutPlan
from edgefleet.server.services import policies, rollouts

__all__ = ["router"]

router = APIRouter(prefix="/api/operator/v1", tags=["rollouts"])
Ctx = Annotated[ServerContext, Depends(context)]


class RolloutRequest(BaseModel):
    """Start a rollout (``stages``) or an A/B experiment (``ab_share``), or give a whole ``plan``.

    ``plan`` is the content of a plan file (YAML or JSON, already parsed); it cannot be
    combined with ``stages``, ``gates`` or ``ab_share``.
    """

    model_config = ConfigDict(extra="forbid")
    model: Name
    version: Name
    selector: Text = Field(default="", description="Label selector, e.g. region=eu,hw=orin-nx.")
    stages: Text | None = Field(
        default=None, description="e.g. shadow:10%:1h,canary:5%:2h,25%:2h,100%"
    )
    gates: list[Text] = Field(
        default_factory=list,
        max_length=32,
        description="e.g. p99_ratio<=1.5,min_devices=3 (default gates when empty).",
    )
    progress_deadline: Text | None = Field(default=None, description="e.g. 1h")
    ab_share: Text | None = Field(default=None, description="A/B: share of devices on B, e.g. 50%")
    ab_duration: Text | None = Field(default=None, description="A/B: how long it runs, e.g. 2h")
    auto_promote: bool = False
    plan: dict[str, Any] | None = None
    allow_small_cohorts: bool = Field(
        default=False,
        description="Start even if a stage's cohort is smaller than a gate's min_devices now.",
    )


class ActionRequest(BaseModel):
    """Why an operator acts (kept in the timeline)."""

    model_config = ConfigDict(extra="forbid")
    reason: Text = Field(default="", max_length=1000)


class PolicyRequest(BaseModel):
    """Maintenance windows and a daily download budget for the devices matching ``selector``."""

    model_config = ConfigDict(extra="forbid")
    selector: Text = ""
    windows: list[MaintenanceWindow] = Field(default_factory=list, max_length=32)
    daily_download_bytes: Positive64 | None = None


def _plan(body: RolloutRequest) -> RolloutPlan | ExperimentPlan:
    if body.plan is not None:
        if body.stages or body.gates or body.ab_share:
            raise ConfigurationError("give either a plan file or stages/gates/ab_share, not both")
        return load_plan_data(body.plan)
    if body.ab_share is not None:
        if body.stages:
            raise ConfigurationError("an A/B experiment has no stages; drop stages or ab_share")
        if body.ab_duration is None:
            raise ConfigurationError("an A/B experiment needs a duration (ab_duration, e.g. 2h)")
        return ExperimentPlan(
            share_b=parse_share(body.ab_share),
            duration_s=parse_duration(body.ab_duration),
            auto_promote=body.auto_promote,
        )
    if not body.stages:
        raise ConfigurationError(
            "a rollout needs stages, e.g. shadow:10%:1h,canary:5%:2h,25%:2h,100%"
        )
    gates = tuple(parse_gate(g) for g in body.gates) or DEFAULT_GATES
    deadline = parse_duration(body.progress_deadline) if body.progress_deadline else 3600.0
    return RolloutPlan(parse_stages(body.stages), gates, deadline)


@router.post("/rollouts", status_code=201)
def start_rollout(
    ctx: Ctx, _: CurrentOperator, body: RolloutRequest, request: Request
) -> dict[str, Any]:
    """Start a rollout or an A/B experiment; returns its status (its id is the audit target)."""
    set_target(request, f"{body.model}@{body.version} to {body.selector or '(all)'}")
    now = time.time()
    plan = _plan(body)
    row = rollouts.start(
        ctx,
        body.model,
        body.version,
        parse_selector(body.selector),
        plan,
        now,
        allow_small_cohorts=body.allow_small_cohorts,
    )
    set_target(request, row.rollout_id)
    return rollouts.status(ctx, row.rollout_id, now)


@router.get("/rollouts")
def list_rollouts(ctx: Ctx, _: CurrentOperator) -> list[dict[str, Any]]:
    """Every rollout, newest first (summary)."""
    return [
        {
            "rollout_id": r.rollout_id,
            "kind": r.kind,
            "model": r.model,
            "candidate": r.candidate["version"],
            "previous": r.previous["version"],
            "state": r.state,
            "stage": r.stage,
            "stages": len(r.plan.get("stages", [])),
            "reason": r.reason,
            "created_at": r.created_at,
        }
        for r in ctx.store.list_rollouts()
    ]


@router.get("/rollouts/{rollout_id}")
def rollout_status(ctx: Ctx, _: CurrentOperator, rollout_id: TextPath) -> dict[str, Any]:
    """Stage, gate values against thresholds, devices per state and the timeline."""
    return rollouts.status(ctx, rollout_id, time.time())


@router.post("/rollouts/{rollout_id}/{action}")
def rollout_action(
    ctx: Ctx,
    _: CurrentOperator,
    rollout_id: TextPath,
    action: Literal["pause", "resume", "promote", "abort"],
    body: ActionRequest | None = None,
) -> dict[str, Any]:
    """Pause, resume, promote now or abort (roll back) a rollout."""
    now = time.time()
    rollouts.command(ctx, rollout_id, action, now, body.reason if body else "")
    return rollouts.status(ctx, rollout_id, now)


@router.put("/policies")
def set_policy(
    ctx: Ctx, _: CurrentOperator, body: PolicyRequest, request: Request
) -> dict[str, Any]:
    """Set the update policy of a selector; the matching devices get it in their desired state."""
    set_target(request, body.selector or "(all)")
    policy = UpdatePolicy(windows=body.windows, daily_download_bytes=body.daily_download_bytes)
    devices = policies.set_policy(ctx, parse_selector(body.selector), policy, time.time())
    return {"selector": body.selector, "policy": policy.model_dump(mode="json"), "devices": devices}


@router.delete("/policies")
def delete_policy(
    ctx: Ctx, _: CurrentOperator, request: Request, selector: TextQuery = None
) -> dict[str, Any]:
    """Remove the update policy of a selector."""
    set_target(request, selector or "(all)")
    devices = policies.set_policy(ctx, parse_selector(selector or ""), None, time.time())
    return {"selector": selector or "", "devices": devices}


@router.get("/policies")
def list_policies(ctx: Ctx, _: CurrentOperator) -> list[dict[str, Any]]:
    """Every update policy, oldest first."""
    return policies.list_policies(ctx)
