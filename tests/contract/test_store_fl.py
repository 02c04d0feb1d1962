"""Federated jobs in the store: rounds opened and closed by compare-and-set, parts settled once."""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from edgefleet.errors import ConflictError, NotFoundError
from edgefleet.server.store import FLJobRow, FLRoundRow, FLUpdateRow, Store

from .helpers import NOW, enrol, sha

MODEL = {"name": "digits", "version": "1", "release": 1, "sha256": "a" * 64}
SHADOW = {"model": {**MODEL, "version": "2", "release": 2}, "sample_rate": 0.5}


def job(job_id: str = "fl-1", created_at: float = NOW) -> FLJobRow:
    return FLJobRow(
        job_id=job_id,
        model="digits",
        base_version="1",
        task="digits",
        selector={"site": "lab"},
        config={"rounds": 3, "per_round": 2, "num_params": 1898},
        state="running",
        round=0,
        model_sha256=sha("m"),
        strategy_state={"kind": "fedavg"},
        privacy_state={},
        result_version=None,
        reason="",
        revision=1,
        created_at=created_at,
        updated_at=created_at,
    )


def round_row(round_: int = 1, job_id: str = "fl-1", opened_at: float = NOW) -> FLRoundRow:
    return FLRoundRow(
        job_id=job_id,
        round=round_,
        state="open",
        opened_at=opened_at,
        deadline=opened_at + 300,
        closed_at=None,
        model_hash=f"hash-{round_:04d}",
        model_sha256=sha(str(round_ % 10)),
        result={"candidates": 3},
    )


def opened(store: Store, devices: tuple[str, ...] = ("dev-1", "dev-2")) -> FLJobRow:
    """Job ``fl-1`` stored with round 1 open for ``devices``; the job as it stands after."""
    created = store.create_fl_job(job())
    return store.open_fl_round(created, NOW + 1, round_row(1, opened_at=NOW + 1), list(devices))


def part(store: Store, device_id: str, round_: int = 1) -> FLUpdateRow:
    found = store.get_fl_update("fl-1", round_, device_id)
    assert found is not None
    return found


def settle(store: Store, device_id: str, at: float = NOW + 2, **extra: Any) -> FLUpdateRow:
    values: dict[str, Any] = {"state": "accepted", "num_examples": 40, "bytes_up": 900}
    return store.settle_fl_update("fl-1", 1, device_id, at, **{**values, **extra})


# -- jobs -------------------------------------------------------------------------------------


def test_a_job_reads_back_as_stored_and_jobs_list_newest_first(store: Store) -> None:
    assert store.create_fl_job(job("fl-1", NOW)) == job("fl-1", NOW)
    store.create_fl_job(job("fl-2", NOW + 10))
    store.create_fl_job(job("fl-3", NOW + 5))
    assert store.get_fl_job("fl-1") == job("fl-1", NOW)
    assert store.get_fl_job("fl-9") is None
    assert [j.job_id for j in store.list_fl_jobs()] == ["fl-2", "fl-3", "fl-1"]
    store.update_fl_job("fl-3", 1, NOW + 20, {"state": "cancelled"})
    assert [j.job_id for j in store.list_fl_jobs(states=("running",))] == ["fl-2", "fl-1"]
    assert [j.job_id for j in store.list_fl_jobs(states=("cancelled",))] == ["fl-3"]


def test_a_job_id_is_taken_once(store: Store) -> None:
    store.create_fl_job(job("fl-1"))
    with pytest.raises(ConflictError, match="federated job id fl-1 is taken"):
        store.create_fl_job(dataclasses.replace(job("fl-1"), model="other"))
    stored = store.get_fl_job("fl-1")
    assert stored is not None
    assert stored.model == "digits"
    assert len(store.list_fl_jobs()) == 1


def test_a_job_changes_only_at_the_revision_it_was_read_at(store: Store) -> None:
    store.create_fl_job(job())
    moved = store.update_fl_job(
        "fl-1", 1, NOW + 5, {"model_sha256": sha("n"), "strategy_state": {"step": 1}}
    )
    assert (moved.revision, moved.updated_at) == (2, NOW + 5)
    assert (moved.model_sha256, moved.strategy_state) == (sha("n"), {"step": 1})
    with pytest.raises(ConflictError, match=r"revision 2, expected 1"):
        store.update_fl_job("fl-1", 1, NOW + 6, {"state": "cancelled"})
    assert store.get_fl_job("fl-1") == moved


def test_changing_an_unknown_job_or_a_fixed_field_is_refused(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no federated job 'fl-9'"):
        store.update_fl_job("fl-9", 1, NOW, {"state": "cancelled"})
    store.create_fl_job(job())
    with pytest.raises(ValueError, match="cannot change model, task of a federated job"):
        store.update_fl_job("fl-1", 1, NOW, {"task": "other", "model": "other"})
    assert store.get_fl_job("fl-1") == job()


# -- rounds -----------------------------------------------------------------------------------


def test_opening_a_round_stores_it_with_its_parts_and_moves_the_job(store: Store) -> None:
    enrol(store, "dev-1")
    moved = opened(store, ("dev-2", "dev-1", "dev-2"))
    assert (moved.round, moved.revision, moved.updated_at) == (1, 2, NOW + 1)
    assert store.get_fl_job("fl-1") == moved
    assert store.get_fl_round("fl-1", 1) == round_row(1, opened_at=NOW + 1)
    assert store.get_fl_round("fl-1", 2) is None
    parts = store.list_fl_updates("fl-1", 1)
    assert [(p.device_id, p.state, p.num_examples, p.payload_sha256) for p in parts] == [
        ("dev-1", "assigned", 0, None),
        ("dev-2", "assigned", 0, None),
    ]
    assert all(p.updated_at == NOW + 1 for p in parts)


def test_a_round_opened_on_a_stale_job_stores_nothing(store: Store) -> None:
    created = store.create_fl_job(job())
    store.update_fl_job("fl-1", created.revision, NOW + 1, {"reason": "waiting for devices"})
    with pytest.raises(ConflictError, match="changed meanwhile"):
        store.open_fl_round(created, NOW + 2, round_row(1), ["dev-1"])
    assert store.get_fl_round("fl-1", 1) is None
    assert store.list_fl_rounds("fl-1") == []
    assert store.list_fl_updates("fl-1") == []
    stored = store.get_fl_job("fl-1")
    assert stored is not None
    assert (stored.round, stored.revision) == (0, 2)


def test_closing_a_round_marks_silent_devices_missed_and_moves_the_job(store: Store) -> None:
    current = opened(store, ("dev-1", "dev-2", "dev-3"))
    settle(store, "dev-1")
    store.settle_fl_update("fl-1", 1, "dev-2", NOW + 3, state="rejected", reason="NaN")
    closed = store.close_fl_round(
        current, NOW + 10, 1, "closed", {"participants": 1}, {"model_sha256": sha("n")}
    )
    assert (closed.revision, closed.model_sha256, closed.round) == (3, sha("n"), 1)
    stored_round = store.get_fl_round("fl-1", 1)
    assert stored_round is not None
    assert (stored_round.state, stored_round.closed_at) == ("closed", NOW + 10)
    assert stored_round.result == {"participants": 1}
    states = {p.device_id: (p.state, p.reason) for p in store.list_fl_updates("fl-1", 1)}
    assert states == {
        "dev-1": ("accepted", ""),
        "dev-2": ("rejected", "NaN"),
        "dev-3": ("missed", "no update before the round closed"),
    }
    assert part(store, "dev-3").updated_at == NOW + 10


def test_a_round_is_closed_once_and_a_refused_close_leaves_the_job_as_it_was(
    store: Store,
) -> None:
    current = opened(store)
    closed = store.close_fl_round(current, NOW + 10, 1, "failed", {"n": 1}, {})
    with pytest.raises(ConflictError, match="round 1 of job fl-1 is not open"):
        store.close_fl_round(closed, NOW + 20, 1, "closed", {"n": 2}, {"reason": "again"})
    assert store.get_fl_job("fl-1") == closed  # the job's change rolled back with the close
    stored_round = store.get_fl_round("fl-1", 1)
    assert stored_round is not None
    assert (stored_round.state, stored_round.closed_at, stored_round.result) == (
        "failed",
        NOW + 10,
        {"n": 1},
    )


def test_a_round_closed_on_a_stale_job_stays_open(store: Store) -> None:
    current = opened(store)
    store.update_fl_job("fl-1", current.revision, NOW + 2, {"reason": "operator"})
    with pytest.raises(ConflictError, match="changed meanwhile"):
        store.close_fl_round(current, NOW + 10, 1, "closed", {}, {})
    stored_round = store.get_fl_round("fl-1", 1)
    assert stored_round is not None
    assert stored_round.state == "open"
    assert {p.state for p in store.list_fl_updates("fl-1", 1)} == {"assigned"}


def test_a_round_is_found_by_its_models_hash_latest_first(store: Store) -> None:
    current = opened(store)
    current = store.close_fl_round(current, NOW + 10, 1, "failed", {}, {})
    again = dataclasses.replace(round_row(2, opened_at=NOW + 11), model_hash="hash-0001")
    store.open_fl_round(current, NOW + 11, again, ["dev-1"])
    found = store.find_fl_round_by_hash("fl-1", "hash-0001")
    assert found is not None
    assert (found.round, found.state) == (2, "open")
    assert store.find_fl_round_by_hash("fl-1", "hash-9999") is None
    assert store.find_fl_round_by_hash("fl-2", "hash-0001") is None
    assert [r.round for r in store.list_fl_rounds("fl-1")] == [1, 2]


# -- parts ------------------------------------------------------------------------------------


def test_a_selected_devices_part_in_an_open_round_is_settled_once(store: Store) -> None:
    opened(store)
    settled = settle(
        store, "dev-1", payload_sha256=sha("u"), metrics={"loss": 0.5}, num_examples=37
    )
    assert settled == FLUpdateRow(
        job_id="fl-1",
        round=1,
        device_id="dev-1",
        state="accepted",
        reason="",
        num_examples=37,
        bytes_up=900,
        bytes_down=0,
        payload_sha256=sha("u"),
        metrics={"loss": 0.5},
        updated_at=NOW + 2,
    )
    assert part(store, "dev-1") == settled
    with pytest.raises(ConflictError, match=r"device dev-1 already sent round 1 \(accepted\)"):
        settle(store, "dev-1", at=NOW + 3, state="rejected", reason="late")
    assert part(store, "dev-1") == settled


def test_a_second_settle_names_the_earlier_rejection_and_its_reason(store: Store) -> None:
    opened(store)
    store.settle_fl_update("fl-1", 1, "dev-2", NOW + 2, state="rejected", reason="declined: off")
    with pytest.raises(ConflictError, match=r"already sent round 1 \(rejected: declined: off\)"):
        settle(store, "dev-2", at=NOW + 3)
    assert part(store, "dev-2").state == "rejected"


def test_an_unselected_device_or_unknown_round_has_no_part_to_settle(store: Store) -> None:
    opened(store)
    with pytest.raises(NotFoundError, match="device dev-9 was not selected for round 1"):
        settle(store, "dev-9")
    with pytest.raises(NotFoundError, match="job fl-1 has no round 2"):
        store.settle_fl_update("fl-1", 2, "dev-1", NOW, state="accepted")
    assert store.get_fl_update("fl-1", 1, "dev-9") is None


def test_a_part_of_a_closed_round_cannot_be_settled(store: Store) -> None:
    current = opened(store)
    store.close_fl_round(current, NOW + 10, 1, "failed", {}, {})
    with pytest.raises(ConflictError, match="round 1 of job fl-1 is closed"):
        settle(store, "dev-1", at=NOW + 11)
    assert part(store, "dev-1").state == "missed"


def test_a_refused_update_is_noted_without_changing_any_part(store: Store) -> None:
    opened(store, ("dev-1", "dev-2"))
    settle(store, "dev-1", payload_sha256=sha("u"))
    store.note_refused_fl_update("fl-1", 1, "dev-9", "not selected", 123, NOW + 3)
    refused = part(store, "dev-9")
    assert (refused.state, refused.reason, refused.bytes_up, refused.updated_at) == (
        "refused",
        "not selected",
        123,
        NOW + 3,
    )
    store.note_refused_fl_update("fl-1", 1, "dev-2", "round closed", 50, NOW + 4)
    store.note_refused_fl_update("fl-1", 1, "dev-2", "round closed", 50, NOW + 5)
    store.note_refused_fl_update("fl-1", 1, "dev-2", "second copy", 50, NOW + 6)
    waiting = part(store, "dev-2")
    assert (waiting.state, waiting.reason, waiting.bytes_up) == (
        "assigned",
        "round closed; second copy",
        0,
    )
    accepted_before = part(store, "dev-1")
    store.note_refused_fl_update("fl-1", 1, "dev-1", "different update", 70, NOW + 7)
    assert part(store, "dev-1") == accepted_before
    assert len(store.list_fl_updates("fl-1", 1)) == 3


def test_model_bytes_sent_to_a_device_accumulate_on_its_part(store: Store) -> None:
    opened(store)
    store.add_fl_bytes_down("fl-1", 1, "dev-1", 7592)
    store.add_fl_bytes_down("fl-1", 1, "dev-1", 7592)
    store.add_fl_bytes_down("fl-1", 1, "dev-9", 100)  # no part: nothing to count on
    assert part(store, "dev-1").bytes_down == 15184
    assert part(store, "dev-2").bytes_down == 0
    assert store.get_fl_update("fl-1", 1, "dev-9") is None


def test_two_threads_settling_the_same_part_exactly_one_wins(store: Store) -> None:
    opened(store)
    barrier = threading.Barrier(2)

    def attempt(state: str) -> str:
        barrier.wait()
        try:
            store.settle_fl_update("fl-1", 1, "dev-1", NOW + 2, state=state, reason=state)
        except ConflictError:
            return "lost"
        return state

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(attempt, ["accepted", "rejected"]))
    [winner] = [o for o in outcomes if o != "lost"]
    assert outcomes.count("lost") == 1
    assert (part(store, "dev-1").state, part(store, "dev-1").reason) == (winner, winner)


# -- desired states ---------------------------------------------------------------------------


def test_fl_assignments_are_set_and_cleared_while_model_and_shadow_stay(store: Store) -> None:
    enrol(store, "dev-1")
    enrol(store, "dev-2")
    assert store.set_desired_states(["dev-1", "dev-2"], MODEL, NOW, NOW + 60, SHADOW) == {
        "dev-1": 1,
        "dev-2": 1,
    }
    assignment = {"job_id": "fl-1", "round": 1, "model_hash": "hash-0001"}
    versions = store.set_fl_assignments(
        {"dev-1": assignment, "dev-9": assignment}, NOW + 1, NOW + 61
    )
    assert versions == {"dev-1": 2}  # an unknown device is skipped
    one = store.get_desired_state("dev-1")
    assert one is not None
    assert (one.version, one.model, one.shadow, one.fl) == (2, MODEL, SHADOW, assignment)
    assert (one.issued_at, one.expires_at) == (NOW + 1, NOW + 61)
    two = store.get_desired_state("dev-2")
    assert two is not None
    assert (two.version, two.fl) == (1, None)
    assert store.set_fl_assignments({"dev-1": None}, NOW + 2, NOW + 62) == {"dev-1": 3}
    cleared = store.get_desired_state("dev-1")
    assert cleared is not None
    assert (cleared.version, cleared.model, cleared.shadow, cleared.fl) == (3, MODEL, SHADOW, None)
    assert store.desired_state_versions()["dev-1"] == (3, NOW + 2, NOW + 62)


def test_an_fl_assignment_to_a_device_with_no_desired_state_yet_runs_no_model(
    store: Store,
) -> None:
    enrol(store, "dev-1")
    assignment = {"job_id": "fl-1", "round": 1}
    assert store.set_fl_assignments({"dev-1": assignment}, NOW, NOW + 60) == {"dev-1": 1}
    state = store.list_desired_states(["dev-1"])["dev-1"]
    assert (state.version, state.model, state.shadow, state.fl) == (1, None, None, assignment)


def test_a_deployment_keeps_the_devices_fl_assignment(store: Store) -> None:
    enrol(store, "dev-1")
    assignment = {"job_id": "fl-1", "round": 2}
    store.set_fl_assignments({"dev-1": assignment}, NOW, NOW + 60)
    assert store.set_desired_states(["dev-1"], MODEL, NOW + 1, NOW + 61) == {"dev-1": 2}
    state = store.get_desired_state("dev-1")
    assert state is not None
    assert (state.version, state.model, state.fl) == (2, MODEL, assignment)
    store.set_desired_state("dev-1", None, NOW + 2, NOW + 62)
    after = store.list_desired_states(["dev-1"])["dev-1"]
    assert (after.version, after.model, after.fl) == (3, None, assignment)
