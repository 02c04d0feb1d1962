"""Rollouts in the store: created once per model at a time, moved by compare-and-set."""

from __future__ import annotations

import dataclasses

import pytest

from edgefleet.errors import ConflictError, NotFoundError
from edgefleet.server.store import RolloutRow, Store

from .helpers import NOW, enrol, window

CANDIDATE = {"name": "digits", "version": "2", "release": 2, "sha256": "b" * 64}
PREVIOUS = {"name": "digits", "version": "1", "release": 1, "sha256": "a" * 64}


def rollout(rollout_id: str = "ro-1", model: str = "digits") -> RolloutRow:
    return RolloutRow(
        rollout_id=rollout_id,
        kind="rollout",
        model=model,
        candidate=CANDIDATE,
        previous=PREVIOUS,
        selector={"site": "lab"},
        plan={"stages": [{"kind": "staged", "share": 1.0, "bake_s": 0.0}]},
        state="running",
        stage=0,
        stage_started_at=NOW,
        status={},
        reason="",
        revision=0,
        created_at=NOW,
        updated_at=NOW,
    )


def test_a_rollout_is_stored_with_its_first_timeline_entry(store: Store) -> None:
    store.create_rollout(rollout(), {"kind": "started", "devices": 3})
    assert store.get_rollout("ro-1") == rollout()
    [event] = store.list_rollout_events("ro-1")
    assert (event.kind, event.detail, event.at) == ("started", {"devices": 3}, NOW)
    assert store.get_rollout("ro-2") is None


def test_only_one_rollout_per_model_is_active_at_a_time(store: Store) -> None:
    store.create_rollout(rollout("ro-1"), {"kind": "started"})
    with pytest.raises(ConflictError, match="ro-1 of model digits is still active"):
        store.create_rollout(rollout("ro-2"), {"kind": "started"})
    store.create_rollout(rollout("ro-3", model="other"), {"kind": "started"})
    store.update_rollout("ro-1", 0, NOW + 1, {"state": "completed"})
    store.create_rollout(rollout("ro-2"), {"kind": "started"})
    assert [r.rollout_id for r in store.list_rollouts(states=("running",))] == ["ro-2", "ro-3"]


def test_a_transition_applies_only_at_the_revision_it_was_decided_on(store: Store) -> None:
    store.create_rollout(rollout(), {"kind": "started"})
    moved = store.update_rollout(
        "ro-1", 0, NOW + 5, {"stage": 1, "stage_started_at": NOW + 5}, [{"kind": "advanced"}]
    )
    assert (moved.stage, moved.revision, moved.updated_at) == (1, 1, NOW + 5)
    with pytest.raises(ConflictError, match="changed meanwhile"):
        store.update_rollout("ro-1", 0, NOW + 6, {"state": "rolled_back"}, [{"kind": "x"}])
    stored = store.get_rollout("ro-1")
    assert stored is not None
    assert stored.state == "running"
    assert [e.kind for e in store.list_rollout_events("ro-1")] == ["started", "advanced"]


def test_updating_an_unknown_rollout_or_an_unknown_field_is_refused(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no rollout 'ro-9'"):
        store.update_rollout("ro-9", 0, NOW, {"state": "paused"})
    store.create_rollout(rollout(), {"kind": "started"})
    with pytest.raises(ValueError, match="cannot change model"):
        store.update_rollout("ro-1", 0, NOW, {"model": "other"})
    assert store.get_rollout("ro-1") == rollout()


def test_shadow_windows_keep_their_role_and_comparison(store: Store) -> None:
    enrol(store, "dev-1")
    shadow = {"active_version": "1", "compared": 10, "disagreed": 2, "confidence_delta_sum": -0.5}
    store.add_telemetry(
        "dev-1",
        [window("w-active-1"), {**window("w-shadow-1"), "role": "shadow", "shadow": shadow}],
        0,
        NOW,
    )
    rows = {r.window_id: r for r in store.list_telemetry(device_ids=["dev-1"])}
    assert (rows["w-active-1"].role, rows["w-active-1"].shadow) == ("active", None)
    assert (rows["w-shadow-1"].role, rows["w-shadow-1"].shadow) == ("shadow", shadow)
    assert store.list_telemetry(device_ids=["dev-2"]) == []


def test_a_desired_state_carries_its_shadow_and_reads_back_in_bulk(store: Store) -> None:
    enrol(store, "dev-1")
    enrol(store, "dev-2")
    spec = {"model": CANDIDATE, "sample_rate": 0.2}
    store.set_desired_states(["dev-1"], PREVIOUS, NOW, NOW + 60, spec)
    store.set_desired_states(["dev-2"], PREVIOUS, NOW, NOW + 60)
    states = store.list_desired_states(["dev-1", "dev-2", "dev-3"])
    assert set(states) == {"dev-1", "dev-2"}
    assert states["dev-1"].shadow == spec
    assert states["dev-2"].shadow is None
    assert dataclasses.replace(states["dev-1"], shadow=None).model == PREVIOUS


def test_events_are_found_by_kind_model_version_and_time(store: Store) -> None:
    enrol(store, "dev-1")
    store.add_events(
        "dev-1",
        [
            {
                "event_id": "e-000001",
                "at": NOW,
                "kind": "rolled_back",
                "model": "digits",
                "version": "2",
                "release": 2,
                "ok": False,
                "detail": "",
            },
            {
                "event_id": "e-000002",
                "at": NOW - 10,
                "kind": "rolled_back",
                "model": "digits",
                "version": "2",
                "release": 2,
                "ok": False,
                "detail": "",
            },
            {
                "event_id": "e-000003",
                "at": NOW,
                "kind": "activated",
                "model": "digits",
                "version": "2",
                "release": 2,
                "ok": True,
                "detail": "",
            },
        ],
    )
    found = store.find_events(kind="rolled_back", model="digits", version="2", since=NOW - 1)
    assert [e.event_id for e in found] == ["e-000001"]
