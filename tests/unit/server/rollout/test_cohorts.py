"""Stage and arm assignment: deterministic, stratified by hardware class, stable as fleets grow."""

from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter
from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.server.rollout.cohorts import (
    UNKNOWN_CLASS,
    assign_arms,
    assign_stages,
    hardware_class,
    rank,
    stage_size,
)

# -- hardware classes -------------------------------------------------------------------------


def test_the_hw_label_names_the_class() -> None:
    assert hardware_class({"hw": "orin-nx"}, {"arch": "aarch64", "cpu_count": 8}) == "orin-nx"


def test_without_a_label_the_inventory_names_the_class() -> None:
    inventory = {"arch": "x86_64", "cpu_model": "Intel Xeon", "cpu_count": 8}
    assert hardware_class({"hw": " "}, inventory) == "x86_64/Intel Xeon/8cpu"


def test_a_cuda_provider_makes_a_gpu_class_of_its_own() -> None:
    inventory = {
        "arch": "x86_64",
        "cpu_model": "Intel Xeon",
        "cpu_count": 8,
        "execution_providers": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    }
    assert hardware_class({}, inventory) == "x86_64/Intel Xeon/8cpu+gpu"


@pytest.mark.parametrize(
    "inventory",
    [{}, {"arch": "", "cpu_model": "", "cpu_count": 0}, {"cpu_count": None, "arch": None}],
)
def test_an_empty_inventory_gives_the_unknown_class(inventory: dict[str, object]) -> None:
    assert hardware_class({}, inventory) == UNKNOWN_CLASS == "unknown"


def test_missing_fields_read_unknown() -> None:
    assert hardware_class({}, {"arch": "aarch64", "cpu_count": 4}) == "aarch64/unknown/4cpu"


# -- rank -------------------------------------------------------------------------------------


def test_rank_is_the_same_in_another_process() -> None:
    """Python's hash() is salted per process; SHA-256 is not."""
    code = "from edgefleet.server.rollout.cohorts import rank; print(repr(rank('r-1', 'cam-7')))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert float(out) == rank("r-1", "cam-7")


def test_rank_is_pinned() -> None:
    """A change here reshuffles every running rollout: never change the derivation."""
    assert rank("rollout-1", "cam-1") == 0.6675485560465335


def test_the_ids_are_not_concatenated_ambiguously() -> None:
    assert rank("a:b", "c") != rank("a", "b:c")


@given(st.text(), st.text())
def test_rank_lies_in_the_unit_interval(rollout_id: str, device_id: str) -> None:
    assert 0 <= rank(rollout_id, device_id) < 1


def test_ranks_spread_evenly() -> None:
    ranks = [rank("r", f"d{i}") for i in range(4000)]
    deciles = Counter(int(r * 10) for r in ranks)
    assert all(340 < deciles[d] < 460 for d in range(10))


# -- stages -----------------------------------------------------------------------------------


def test_stage_size_is_a_ceiling_without_float_noise() -> None:
    assert [stage_size(0.05, n) for n in (1, 19, 20, 21)] == [1, 1, 1, 2]
    assert stage_size(0.3, 10) == 3  # 0.3 * 10 == 3.0000000000000004
    assert stage_size(0.29, 100) == 29  # 0.29 * 100 == 28.999999999999996
    assert stage_size(0.0, 10) == 0


def test_every_class_has_a_device_in_the_first_stage() -> None:
    classes = {f"x86-{i}": "x86" for i in range(100)} | {"orin": "orin", "pi-1": "pi", "pi-2": "pi"}
    stages = assign_stages("r", classes, [0.01, 1.0])
    first = {device for device, stage in stages.items() if stage == 0}
    assert sorted(classes[d] for d in first) == ["orin", "pi", "x86"]


def test_devices_beyond_the_last_share_are_in_no_stage() -> None:
    stages = assign_stages("r", {f"d{i}": "x" for i in range(10)}, [0.2, 0.5])
    assert Counter(stages.values()) == {0: 2, 1: 3, 2: 5}


def test_no_stages_leave_every_device_out() -> None:
    assert assign_stages("r", {"a": "x"}, []) == {"a": 0}


@pytest.mark.parametrize("shares", [[0.5, 0.2], [1.5], [-0.1, 1.0]])
def test_shares_must_be_non_decreasing_fractions(shares: list[float]) -> None:
    with pytest.raises(ValueError, match="non-decreasing in"):
        assign_stages("r", {"a": "x"}, shares)


fleets = st.dictionaries(
    st.text(min_size=1, max_size=8), st.sampled_from(["x86", "arm", "gpu", "unknown"]), max_size=60
)
share_lists = st.lists(st.floats(min_value=0, max_value=1), max_size=5).map(sorted)


def by_class(classes: dict[str, str]) -> dict[str, list[str]]:
    members: dict[str, list[str]] = {}
    for device, name in classes.items():
        members.setdefault(name, []).append(device)
    return members


@given(fleets, share_lists, st.randoms(use_true_random=False))
def test_assignment_is_stable_and_ignores_dict_order(
    classes: dict[str, str], shares: list[float], random: Random
) -> None:
    items = list(classes.items())
    random.shuffle(items)
    assert assign_stages("r", dict(items), shares) == assign_stages("r", classes, shares)


@given(fleets, share_lists)
def test_each_stage_takes_the_ceiling_of_its_share_of_every_class(
    classes: dict[str, str], shares: list[float]
) -> None:
    stages = assign_stages("r", classes, shares)
    assert set(stages) == set(classes)
    for devices in by_class(classes).values():
        for i, share in enumerate(shares):
            members = [d for d in devices if stages[d] <= i]
            assert len(members) == stage_size(share, len(devices))
            if share > 0:
                assert members


@given(fleets, share_lists)
def test_stage_members_are_a_prefix_of_the_rank_order(
    classes: dict[str, str], shares: list[float]
) -> None:
    stages = assign_stages("r", classes, shares)
    for devices in by_class(classes).values():
        ordered = sorted(devices, key=lambda d: (rank("r", d), d))
        assert [stages[d] for d in ordered] == sorted(stages[d] for d in ordered)


@given(fleets, share_lists, st.text(min_size=1, max_size=8), st.sampled_from(["x86", "arm"]))
def test_a_new_device_moves_at_most_the_last_member_of_a_stage_of_its_own_class(
    classes: dict[str, str], shares: list[float], newcomer: str, new_class: str
) -> None:
    if newcomer in classes:
        return
    before = assign_stages("r", classes, shares)
    after = assign_stages("r", classes | {newcomer: new_class}, shares)
    for device, stage in before.items():
        if classes[device] != new_class:
            assert after[device] == stage  # other classes never move
    same = [d for d in classes if classes[d] == new_class]
    for i in range(len(shares)):
        old = {d for d in same if before[d] <= i}
        new = {d for d in same if after[d] <= i}
        assert len(new) + (after[newcomer] <= i) >= len(old)  # a stage never shrinks
        left = old - new
        assert len(left) <= 1
        if left:
            (gone,) = left
            assert gone == max(old, key=lambda d: (rank("r", d), d))
            assert after[newcomer] <= i


# -- A/B arms ---------------------------------------------------------------------------------


def test_arms_split_each_class_in_proportion() -> None:
    classes = {f"x86-{i}": "x86" for i in range(10)} | {f"arm-{i}": "arm" for i in range(4)}
    arms = assign_arms("exp", classes, 0.5)
    b = Counter(classes[d] for d, arm in arms.items() if arm == "b")
    assert b == {"x86": 5, "arm": 2}


def test_both_arms_exist_whenever_two_devices_do() -> None:
    assert sorted(assign_arms("exp", {"a": "x", "b": "x"}, 0.01).values()) == ["a", "b"]
    assert sorted(assign_arms("exp", {"a": "x", "b": "y"}, 0.99).values()) == ["a", "b"]


def test_share_b_must_be_a_fraction() -> None:
    with pytest.raises(ValueError, match="share_b must lie in"):
        assign_arms("exp", {"a": "x"}, 1.5)


@given(fleets, st.floats(min_value=0, max_value=1))
def test_arm_b_is_the_rounded_share_spread_by_class(classes: dict[str, str], share: float) -> None:
    arms = assign_arms("exp", classes, share)
    assert set(arms) == set(classes)
    n = len(classes)
    rounded = math.floor(share * n + 0.5 + 1e-9)
    target = min(max(rounded, 1), n - 1) if 0 < share < 1 and n >= 2 else rounded
    assert sum(arm == "b" for arm in arms.values()) == target
    for devices in by_class(classes).values():
        b = {d for d in devices if arms[d] == "b"}
        ordered = sorted(devices, key=lambda d: (rank("exp", d), d))
        assert b == set(ordered[: len(b)])  # B takes the first devices by rank
        if target == rounded:  # clamping may take one more to keep both arms
            ideal = share * len(devices)
            assert math.floor(ideal - 1e-9) <= len(b) <= math.ceil(ideal + 1e-9)


@given(fleets, st.floats(min_value=0, max_value=1))
def test_arm_assignment_is_stable(classes: dict[str, str], share: float) -> None:
    assert assign_arms("exp", dict(reversed(classes.items())), share) == assign_arms(
        "exp", classes, share
    )
