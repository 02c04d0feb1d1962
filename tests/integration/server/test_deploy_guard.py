"""A deployment never fights a rollout or a federated job, and an empty one spends nothing.

On a real store and registry (SQLite): what a refused deployment would have changed (the
release counter, the TUF targets, the devices' desired states, the deployment history) is
checked to be unchanged. The server's automatic rollout decisions land in the audit trail.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefleet.errors import ConflictError
from edgefleet.server.app import build_context
from edgefleet.server.context import ServerContext
from edgefleet.server.init import initialize
from edgefleet.server.rollout.spec import ExperimentPlan, Gate, RolloutPlan, Stage
from edgefleet.server.services import rollout_eval, rollouts
from edgefleet.server.services.registry import deploy, push_model
from edgefleet.server.settings import load_settings
from edgefleet.server.store import FLJobRow

PLAN = RolloutPlan(
    (Stage("canary", 0.5, 3600.0), Stage("staged", 1.0)),
    (Gate("accuracy_delta", ">=", -0.02),),
    progress_deadline_s=60.0,
)


BACKENDS = pytest.mark.parametrize("ctx", ["sqlite", "postgresql"], indirect=True)
"""Run a test on a PostgreSQL database as well as on SQLite (the default)."""


@pytest.fixture
def ctx(
    tmp_path: Path, digits_path: Path, echo_path: Path, request: pytest.FixtureRequest
) -> Iterator[ServerContext]:
    """A control plane's context: devices d1, d2 in region eu on digits@1; @2 and @3 pushed.

    On SQLite, or on a new PostgreSQL database when parametrised with ``"postgresql"``.
    """
    url = (
        request.getfixturevalue("postgres_url")
        if getattr(request, "param", "") == "postgresql"
        else None
    )
    initialize(tmp_path / "server", database_url=url)
    context = build_context(load_settings(tmp_path / "server", database_url=url))
    now = time.time()
    for device in ("d1", "d2"):
        context.store.create_device(device, f"cred-{device}", {"region": "eu"}, {}, now)
    for version, path in (("1", digits_path), ("2", echo_path), ("3", digits_path)):
        push_model(
            context, path, name="digits", version=version, golden=0, calibration=None, now=now
        )
    deploy(context, "digits", "1", {"region": "eu"}, now)
    try:
        yield context
    finally:
        context.store.close()


def snapshot(ctx: ServerContext) -> tuple[object, ...]:
    """Everything a deployment writes."""
    return (
        ctx.store.latest_release("digits"),
        ctx.store.list_desired_states(["d1", "d2"]),
        ctx.store.list_deployments(limit=100),
        ctx.store.get_setting("deployments"),
    )


def test_a_deploy_during_a_rollout_on_the_same_devices_is_refused_naming_it(
    ctx: ServerContext,
) -> None:
    rollout = rollouts.start(ctx, "digits", "2", {"region": "eu"}, PLAN, time.time())
    before = snapshot(ctx)
    with pytest.raises(ConflictError, match=rollout.rollout_id) as refused:
        deploy(ctx, "digits", "1", {"region": "eu"}, time.time())
    assert "digits@2" in str(refused.value)
    assert "d1" in str(refused.value)
    assert snapshot(ctx) == before  # no release spent, no device touched
    with pytest.raises(ConflictError, match=rollout.rollout_id):
        deploy(ctx, "digits", "3", {}, time.time())  # a wider selector overlaps too
    rollouts.command(ctx, rollout.rollout_id, "abort", time.time(), "changed my mind")
    done = deploy(ctx, "digits", "1", {"region": "eu"}, time.time())
    assert done.devices == ["d1", "d2"]


def test_a_paused_rollout_still_holds_its_devices(ctx: ServerContext) -> None:
    rollout = rollouts.start(ctx, "digits", "2", {}, PLAN, time.time())
    rollouts.command(ctx, rollout.rollout_id, "pause", time.time(), "lunch")
    with pytest.raises(ConflictError, match="paused"):
        deploy(ctx, "digits", "3", {"region": "eu"}, time.time())


@BACKENDS
def test_a_concluded_experiment_still_holds_its_devices(ctx: ServerContext) -> None:
    """Until it is promoted or aborted, a concluded A/B experiment decides its devices' models."""
    now = time.time()
    experiment = rollouts.start(ctx, "digits", "2", {}, ExperimentPlan(0.5, 60.0), now)
    concluded = rollout_eval.evaluate(ctx, experiment, now + 61.0)
    assert concluded.state == "concluded"
    before = snapshot(ctx)
    with pytest.raises(ConflictError, match=rf"{experiment.rollout_id} .*concluded"):
        deploy(ctx, "digits", "3", {"region": "eu"}, time.time())
    assert snapshot(ctx) == before
    rollouts.command(ctx, experiment.rollout_id, "abort", time.time(), "enough")
    assert deploy(ctx, "digits", "3", {"region": "eu"}, time.time()).devices == ["d1", "d2"]


def test_a_deploy_to_other_devices_than_the_rollout_is_accepted(ctx: ServerContext) -> None:
    ctx.store.create_device("d3", "cred-d3", {"region": "us"}, {}, time.time())
    rollouts.start(ctx, "digits", "2", {"region": "eu"}, PLAN, time.time())
    assert deploy(ctx, "digits", "3", {"region": "us"}, time.time()).devices == ["d3"]


def test_a_deploy_during_a_federated_job_on_the_same_devices_is_refused_naming_it(
    ctx: ServerContext,
) -> None:
    now = time.time()
    job = ctx.store.create_fl_job(
        FLJobRow(
            job_id="fl-000001",
            model="digits",
            base_version="1",
            task="digits",
            selector={"region": "eu"},
            config={},
            state="running",
            round=0,
            model_sha256="0" * 64,
            strategy_state={},
            privacy_state={},
            result_version=None,
            reason="",
            revision=1,
            created_at=now,
            updated_at=now,
        )
    )
    before = snapshot(ctx)
    with pytest.raises(ConflictError, match="federated job fl-000001"):
        deploy(ctx, "digits", "2", {}, time.time())
    assert snapshot(ctx) == before
    ctx.store.update_fl_job(job.job_id, job.revision, now, {"state": "cancelled"})
    assert deploy(ctx, "digits", "2", {}, time.time()).devices == ["d1", "d2"]


def test_a_deploy_that_matches_no_device_is_refused_and_spends_no_release(
    ctx: ServerContext,
) -> None:
    before = snapshot(ctx)
    with pytest.raises(ConflictError, match="region=mars matches no device"):
        deploy(ctx, "digits", "2", {"region": "mars"}, time.time())
    assert snapshot(ctx) == before
    asked = deploy(ctx, "digits", "2", {"region": "mars"}, time.time(), allow_empty=True)
    assert asked.devices == []
    assert ctx.store.list_deployments(limit=1)[0].selector == {"region": "mars"}


def test_a_decommissioned_device_is_not_deployed_to(ctx: ServerContext) -> None:
    ctx.store.decommission_device("d2", time.time())
    assert deploy(ctx, "digits", "2", {"region": "eu"}, time.time()).devices == ["d1"]


def test_the_servers_automatic_rollout_decisions_are_audited(ctx: ServerContext) -> None:
    rollout = rollouts.start(ctx, "digits", "2", {}, PLAN, time.time())
    rollout_eval.evaluate_all(ctx, now=time.time() + PLAN.progress_deadline_s + 1)
    print(ctx.store.get_rollout(rollout.rollout_id))
    [entry] = ctx.store.list_audit(limit=10, action="rollout")
    assert (entry.actor, entry.action, entry.target) == (
        "server",
        "rollout.pause",
        rollout.rollout_id,
    )
    assert entry.outcome.startswith("inconclusive for")
    assert entry.detail == {"model": "digits", "candidate": "2", "stage": 0}


def test_an_automatic_rollback_is_audited_with_its_reason(ctx: ServerContext) -> None:
    plan = RolloutPlan((Stage("canary", 1.0, 3600.0),), (Gate("rollbacks", "<=", 0),))
    rollout = rollouts.start(ctx, "digits", "2", {}, plan, time.time())
    for device in ("d1", "d2"):
        event = {
            "event_id": f"e-{device}",
            "at": time.time() + 1,
            "kind": "rolled_back",
            "model": "digits",
            "version": "2",
            "ok": False,
        }
        ctx.store.add_events(device, [event])
    rollout_eval.evaluate_all(ctx, now=time.time() + plan.gates[0].interval_s + 1)  # gate due
    [entry] = ctx.store.list_audit(limit=10, action="rollout")
    assert (entry.actor, entry.action, entry.target) == (
        "server",
        "rollout.rollback",
        rollout.rollout_id,
    )
    assert "2 local rollbacks" in entry.outcome
