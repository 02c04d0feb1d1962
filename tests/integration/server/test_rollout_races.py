"""Operator calls racing the evaluation loop: the call succeeds, each transition happens once.

The evaluation loop runs beside the operator API, in the same process (a thread) or in another
server process on the same database. Each test makes the loop's evaluation land at the worst
moment of an operator call, on a real store: a store method is wrapped to run
:func:`~edgefleet.server.services.rollout_eval.evaluate_all` right after it. Nothing else makes
the interleaving deterministic: real threads would hit this window only now and then.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgefleet.server.app import build_context
from edgefleet.server.context import ServerContext
from edgefleet.server.init import initialize
from edgefleet.server.rollout.spec import Gate, RolloutPlan, Stage
from edgefleet.server.services import rollout_eval, rollouts
from edgefleet.server.services.registry import deploy, push_model
from edgefleet.server.settings import load_settings

PLAN = RolloutPlan(
    (Stage("canary", 0.5, 3600.0), Stage("staged", 1.0)),
    (Gate("accuracy_delta", ">=", -0.02),),
)


@pytest.fixture
def ctx(tmp_path: Path, digits_path: Path, echo_path: Path) -> Iterator[ServerContext]:
    """A control plane's context on a fresh SQLite store: two devices on digits@1, and @2."""
    initialize(tmp_path / "server")
    context = build_context(load_settings(tmp_path / "server"))
    now = time.time()
    for device in ("d1", "d2"):
        context.store.create_device(device, f"cred-{device}", {}, {"arch": "x86_64"}, now)
    for version, path in (("1", digits_path), ("2", echo_path)):
        push_model(
            context, path, name="digits", version=version, golden=0, calibration=None, now=now
        )
    deploy(context, "digits", "1", {}, now)
    try:
        yield context
    finally:
        context.store.close()


def loop_runs_after(ctx: ServerContext, method: str, when: Callable[..., bool]) -> None:
    """Run the evaluation loop once right after the next call of ``ctx.store.<method>``.

    ``when(*args, **kwargs)`` picks the call.
    """
    original = getattr(ctx.store, method)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if when(*args, **kwargs):
            setattr(ctx.store, method, original)  # once
            rollout_eval.evaluate_all(ctx)
        return result

    setattr(ctx.store, method, wrapped)


def test_a_rollout_evaluated_by_the_loop_as_it_is_created_still_starts(
    ctx: ServerContext,
) -> None:
    """The loop may evaluate a new rollout before ``start`` does: ``start`` returns it."""
    loop_runs_after(ctx, "create_rollout", lambda *_, **__: True)
    row = rollouts.start(ctx, "digits", "2", {}, PLAN, time.time())
    assert (row.state, row.stage) == ("running", 0)
    assert row.revision >= 1  # evaluated once, by the loop
    kinds = [e.kind for e in ctx.store.list_rollout_events(row.rollout_id)]
    assert kinds == ["started"]


def test_a_pause_that_races_an_evaluation_is_stored(ctx: ServerContext) -> None:
    """An evaluation stored between the command's read and write: the command reads again."""
    row = rollouts.start(ctx, "digits", "2", {}, PLAN, time.time())
    loop_runs_after(ctx, "get_rollout", lambda rollout_id: rollout_id == row.rollout_id)
    paused = rollouts.command(ctx, row.rollout_id, "pause", time.time(), "lunch")
    assert (paused.state, paused.reason) == ("paused", "lunch")
    kinds = [e.kind for e in ctx.store.list_rollout_events(row.rollout_id)]
    assert kinds == ["started", "pause"]


def test_an_abort_whose_effects_the_loop_applies_first_succeeds_once(
    ctx: ServerContext,
) -> None:
    """The loop repairs a stored, unapplied abort first: the abort succeeds, applied once."""
    row = rollouts.start(ctx, "digits", "2", {}, PLAN, time.time())
    loop_runs_after(
        ctx,
        "update_rollout",
        lambda *args, **kwargs: args[3].get("state") == "aborted",
    )
    aborted = rollouts.command(ctx, row.rollout_id, "abort", time.time())
    assert aborted.state == "aborted"
    assert aborted.status["applied"] is True
    kinds = [e.kind for e in ctx.store.list_rollout_events(row.rollout_id)]
    assert kinds == ["started", "abort", "applied"]
    desired = ctx.store.list_desired_states(["d1", "d2"])
    assert {s.model["version"] for s in desired.values() if s.model} == {"1"}


def test_an_evaluation_working_from_a_read_older_than_an_abort_does_not_undo_it(
    ctx: ServerContext,
) -> None:
    """The loop read the rollout, then an operator aborted and applied the abort; the loop's
    write of the old stage to the devices is undone, and nothing of its result is stored."""
    row = rollouts.start(ctx, "digits", "2", {}, PLAN, time.time())
    canary = ctx.store.list_desired_states(["d1", "d2"])
    assert sorted(s.model["version"] for s in canary.values() if s.model) == ["1", "2"]
    original = ctx.store.list_rollouts

    def read_then_abort(*args: Any, **kwargs: Any) -> Any:
        rows = original(*args, **kwargs)
        ctx.store.list_rollouts = original  # type: ignore[method-assign]
        rollouts.command(ctx, row.rollout_id, "abort", time.time())
        return rows  # the loop goes on with the rollout as it was before the abort

    ctx.store.list_rollouts = read_then_abort  # type: ignore[method-assign]
    rollout_eval.evaluate_all(ctx)
    desired = ctx.store.list_desired_states(["d1", "d2"])
    assert {s.model["version"] for s in desired.values() if s.model} == {"1"}
    stored = ctx.store.get_rollout(row.rollout_id)
    assert stored is not None
    assert stored.state == "aborted"
    kinds = [e.kind for e in ctx.store.list_rollout_events(row.rollout_id)]
    assert kinds == ["started", "abort", "applied"]
