"""Activation waits for an update hold and for maintenance windows; downloads for the budget."""

from __future__ import annotations

from datetime import UTC, datetime

from edgefleet.agent.budget import DownloadBudget
from edgefleet.agent.gate import ActivationGate
from edgefleet.agent.hold import UpdateHold
from edgefleet.protocol.v1 import MaintenanceWindow, UpdatePolicy
from tests.unit.agent.models import scale_model
from tests.unit.agent.rig import Rig

NIGHTLY = UpdatePolicy(windows=[MaintenanceWindow(cron="0 2 * * *", duration_s=3600)])


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def held_rig(rig: Rig) -> UpdateHold:
    hold = UpdateHold(rig.base / "hold.json", rig.updater.events)
    rig.updater = rig.new_updater(gate=ActivationGate(hold))
    return hold


def test_a_held_update_is_downloaded_ahead_and_activated_after_the_release(rig: Rig) -> None:
    hold = held_rig(rig)
    assert rig.apply(rig.stage(scale_model(1), 1), 1)  # not held yet
    hold.take("recording a batch")
    v2 = rig.stage(scale_model(2), 2)
    assert not rig.apply(v2, 2)
    assert not rig.apply(v2, 2)  # the next poll: deferred again, without a second event
    assert rig.predict()[0, 0] == 1.0
    assert rig.source.fetches.count(v2.target) == 1  # fetched (and verified) once, ahead
    assert rig.updater.phase == "deferred"
    assert rig.updater.deferred == v2
    deferred = [e for e in rig.spool.pending(max_events=100).events if e.kind == "deferred"]
    assert len(deferred) == 1
    assert "update hold" in deferred[0].detail
    assert "recording a batch" in deferred[0].detail
    assert not rig.updater.retry_deferred()  # still held

    hold.release()
    assert rig.updater.retry_deferred()  # no new desired-state version needed
    assert rig.predict()[0, 0] == 2.0
    assert rig.source.fetches.count(v2.target) == 1
    assert rig.kinds() == [
        *("verified", "activated"),
        *("held", "verified", "deferred"),
        *("hold_released", "activated"),
    ]
    assert rig.updater.deferred is None


def test_a_new_desired_model_replaces_the_deferred_one(rig: Rig) -> None:
    hold = held_rig(rig)
    hold.take()
    rig.apply(rig.stage(scale_model(2), 2), 1)
    v3 = rig.stage(scale_model(3), 3)
    assert not rig.apply(v3, 2)
    assert rig.updater.deferred == v3
    hold.release()
    assert rig.updater.retry_deferred()
    assert rig.predict()[0, 0] == 3.0


def test_outside_the_windows_activation_waits_for_the_next_one(rig: Rig) -> None:
    clock = Clock(at("2024-05-01T12:00:00"))
    rig.updater = rig.new_updater(gate=ActivationGate(clock=clock))
    v1 = rig.stage(scale_model(1), 1)
    assert not rig.apply(v1, 1, NIGHTLY)
    (event,) = [e for e in rig.spool.pending(max_events=100).events if e.kind == "deferred"]
    assert "next opens at 2024-05-02T02:00:00Z" in event.detail
    clock.now = at("2024-05-02T01:59:59")
    assert not rig.updater.retry_deferred()
    clock.now = at("2024-05-02T02:00:01")
    assert rig.updater.retry_deferred()
    assert rig.predict()[0, 0] == 1.0
    assert rig.source.fetches == [v1.target]


def test_without_windows_activation_is_immediate(rig: Rig) -> None:
    rig.updater = rig.new_updater(gate=ActivationGate(clock=Clock(at("2024-05-01T12:00:00"))))
    assert rig.apply(rig.stage(scale_model(1), 1), 1, UpdatePolicy())


def test_a_rollback_is_never_deferred(rig: Rig) -> None:
    hold = held_rig(rig)
    rig.apply(rig.stage(scale_model(1), 1), 1)
    rig.apply(rig.stage(scale_model(2), 2), 2)
    hold.take()
    assert rig.updater.rollback("the test says so")
    assert rig.predict()[0, 0] == 1.0


def test_a_spent_budget_defers_the_download_until_the_next_day(rig: Rig) -> None:
    clock = Clock(at("2024-05-01T23:00:00"))
    budget = DownloadBudget(rig.base / "budget.json", clock=clock)
    rig.updater = rig.new_updater(budget=budget)
    budget.limit = 100
    budget.spend(100)
    v1 = rig.stage(scale_model(1), 1)
    policy = UpdatePolicy(daily_download_bytes=100)
    assert not rig.apply(v1, 1, policy)
    assert rig.source.fetches == []  # not even tried
    (event,) = [e for e in rig.spool.pending(max_events=100).events if e.kind == "deferred"]
    assert "daily download budget of 100 bytes is spent" in event.detail
    assert "2024-05-02 00:00 UTC" in event.detail
    clock.now = at("2024-05-02T00:00:01")
    assert rig.updater.retry_deferred()
    assert rig.source.fetches == [v1.target]


def test_a_download_stopped_by_the_budget_is_deferred_not_failed(rig: Rig) -> None:
    v1 = rig.stage(scale_model(1), 1)
    budget = DownloadBudget(rig.base / "budget.json")
    rig.updater = rig.new_updater(budget=budget)
    rig.source.fail_with = budget.spent_error("downloading")
    assert not rig.apply(v1, 1, UpdatePolicy(daily_download_bytes=10))
    assert rig.kinds() == ["deferred"]
    assert rig.updater.state.failures == {}
    rig.source.fail_with = None
    assert rig.updater.retry_deferred()
