"""A rollout or a federated job starts under the registry lock, which a deployment also holds.

The registry lock is a lease in the store, so it excludes server processes sharing the
database as well as threads of one process. A deployment checks for active rollouts and jobs
and writes the devices' desired states under it; a rollout or job that starts meanwhile must
wait for it, or the deployment would overwrite the devices it has just taken (or the rollout
would take the devices' pre-deployment version as the one to return to).

The interleaving is made deterministic: the test holds the lock (as a deployment in progress
does), starts the rollout or job in a thread, waits until that thread has been refused the
lock, deploys, and only then lets go. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgefleet.federated import load_task
from edgefleet.server.app import build_context
from edgefleet.server.context import ServerContext
from edgefleet.server.fl import JobConfig
from edgefleet.server.init import initialize
from edgefleet.server.rollout.spec import Gate, RolloutPlan, Stage
from edgefleet.server.services import fl, rollouts
from edgefleet.server.services.registry import deploy, push_model
from edgefleet.server.settings import load_settings
from edgefleet.server.store import RolloutRow

DEADLINE_S = 60.0
"""Generous for a loaded machine; nothing is asserted about seconds within it."""

PLAN = RolloutPlan(
    (Stage("canary", 0.5, 3600.0), Stage("staged", 1.0)),
    (Gate("accuracy_delta", ">=", -0.02),),
    progress_deadline_s=60.0,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def ctx(
    tmp_path: Path, digits_path: Path, echo_path: Path, request: pytest.FixtureRequest
) -> Iterator[ServerContext]:
    """Devices d1, d2 in region eu on digits@1 (the digits task's model); @2 and @3 pushed."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    initialize(tmp_path / "server", database_url=url)
    context = build_context(load_settings(tmp_path / "server", database_url=url))
    task = load_task("digits")
    trained = tmp_path / "digits-task.onnx"
    trained.write_bytes(task.to_onnx(task.build_model(seed=0)))
    now = time.time()
    for device in ("d1", "d2"):
        context.store.create_device(device, f"cred-{device}", {"region": "eu"}, {}, now)
    for version, path in (("1", trained), ("2", echo_path), ("3", digits_path)):
        push_model(
            context, path, name="digits", version=version, golden=0, calibration=None, now=now
        )
    deploy(context, "digits", "1", {"region": "eu"}, now)
    try:
        yield context
    finally:
        context.store.close()


class Contender(threading.Thread):
    """Runs ``work`` in a thread; ``blocked`` is set once it has been refused the registry lock
    (or once it has finished, so that a start that never asks for the lock is seen too)."""

    def __init__(self, ctx: ServerContext, work: Callable[[], object]) -> None:
        super().__init__(daemon=True)
        self.work = work
        self.blocked = threading.Event()
        self.error: BaseException | None = None
        take = ctx.store.try_lock

        def try_lock(name: str, owner: str, lease_s: float, now: float) -> bool:
            taken = take(name, owner, lease_s, now)
            if name == "registry" and not taken and threading.get_ident() == self.ident:
                self.blocked.set()
            return taken

        ctx.store.try_lock = try_lock  # type: ignore[method-assign]

    def run(self) -> None:
        try:
            self.work()
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.blocked.set()


def test_a_rollout_start_waits_for_a_deployment_in_progress(ctx: ServerContext) -> None:
    started: list[RolloutRow] = []
    contender = Contender(
        ctx,
        lambda: started.append(
            rollouts.start(ctx, "digits", "2", {"region": "eu"}, PLAN, time.time())
        ),
    )
    with ctx.registry_lock:  # a deployment is in progress (in this thread)
        contender.start()
        assert contender.blocked.wait(DEADLINE_S)
        assert ctx.store.list_rollouts() == []  # it has not started yet, nor read the devices
        deploy(ctx, "digits", "3", {"region": "eu"}, time.time())  # sees no rollout: goes on
    contender.join(DEADLINE_S)
    assert contender.error is None, contender.error
    (rollout,) = started
    # it began from what the deployment left on the devices, not from what was there before
    assert rollout.previous["version"] == "3"
    states = ctx.store.list_desired_states(["d1", "d2"]).values()
    assert {s.model["version"] for s in states if s.model is not None} <= {"2", "3"}


def test_a_federated_job_start_waits_for_a_deployment_in_progress(ctx: ServerContext) -> None:
    contender = Contender(
        ctx,
        lambda: fl.start(
            ctx,
            task="digits",
            model="digits",
            version="1",
            selector={"region": "eu"},
            config=JobConfig(rounds=1, per_round=2, deadline_s=300.0),
            now=time.time(),
        ),
    )
    with ctx.registry_lock:  # a deployment is in progress (in this thread)
        contender.start()
        assert contender.blocked.wait(DEADLINE_S)
        assert ctx.store.list_fl_jobs() == []  # not stored while the deployment runs
        deploy(ctx, "digits", "3", {"region": "eu"}, time.time())
    contender.join(DEADLINE_S)
    assert contender.error is None, contender.error
    (job,) = ctx.store.list_fl_jobs()
    assert job.state == "running"
