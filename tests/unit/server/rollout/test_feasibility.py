"""Plans that cannot finish: a stage's cohort smaller than a gate's min_devices is found."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.cli.demo_fleet import DEVICES
from edgefleet.server.rollout.cohorts import assign_stages
from edgefleet.server.rollout.feasibility import (
    Shortfall,
    describe_shortfalls,
    shortfalls,
    stage_cohort_sizes,
)
from edgefleet.server.rollout.plan import load_plan_data, parse_gate, parse_stages
from edgefleet.server.rollout.spec import Gate, RolloutPlan, Stage

DOCS = Path(__file__).resolve().parents[4] / "docs" / "rollouts.md"
DEMO_CLASSES = {"x86-small": 2, "x86-large": 1}


def test_the_demo_fleet_is_two_small_and_one_large_device() -> None:
    classes = [labels["hw"] for labels in DEVICES]
    assert {hw: classes.count(hw) for hw in set(classes)} == DEMO_CLASSES


def docs_example() -> RolloutPlan:
    """The plan of the first `rollout start` in docs/rollouts.md, as an operator types it."""
    text = DOCS.read_text(encoding="utf-8")
    command = re.search(r"\$ edgefleet rollout start .*?(?=\n\$)", text, re.S)
    assert command is not None
    words = command.group(0)
    stages = re.search(r"--plan (\S+)", words)
    assert stages is not None
    gates = re.findall(r"--gate '([^']+)'", words)
    return RolloutPlan(parse_stages(stages.group(1)), tuple(parse_gate(g) for g in gates))


def docs_plan_file() -> RolloutPlan:
    text = DOCS.read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(stages:.*?)```", text, re.S)
    assert block is not None
    plan = load_plan_data(yaml.safe_load(block.group(1)))
    assert isinstance(plan, RolloutPlan)
    return plan


def test_the_documented_examples_can_finish_on_the_demo_devices() -> None:
    assert shortfalls(docs_example(), DEMO_CLASSES) == []
    assert shortfalls(docs_plan_file(), DEMO_CLASSES) == []


def test_the_old_documented_example_is_found_with_every_stage_that_would_wait() -> None:
    plan = RolloutPlan(
        parse_stages("shadow:10%:1h,canary:5%:2h,25%:2h,100%"),
        (parse_gate("accuracy_delta>=-0.02,min_devices=3,min_inferences=200"),),
    )
    found = shortfalls(plan, DEMO_CLASSES)
    assert found == [
        Shortfall(1, "shadow:10%:1h", 2, "accuracy_delta", 3),
        Shortfall(2, "canary:5%:2h", 2, "accuracy_delta", 3),
        Shortfall(3, "25%:2h", 2, "accuracy_delta", 3),
    ]
    assert describe_shortfalls(found, DEMO_CLASSES) == (
        "the plan cannot finish on the 3 devices selected now (x86-large: 1, x86-small: 2): "
        "stage 1 (shadow:10%:1h) holds 2 devices; gate accuracy_delta needs min_devices=3; "
        "stage 2 (canary:5%:2h) holds 2 devices; gate accuracy_delta needs min_devices=3; "
        "stage 3 (25%:2h) holds 2 devices; gate accuracy_delta needs min_devices=3"
    )


def test_a_shadow_only_gate_is_not_held_against_serving_stages() -> None:
    plan = RolloutPlan(
        (Stage("shadow", 1.0), Stage("staged", 0.5), Stage("staged", 1.0)),
        (Gate("disagreement", "<=", 0.2, min_devices=3), Gate("rollbacks", "<=", 0)),
    )
    assert shortfalls(plan, {"a": 3}) == []
    assert [s.stage for s in shortfalls(plan, {"a": 2})] == [1]


@given(
    class_sizes=st.lists(st.integers(1, 30), min_size=1, max_size=4),
    shares=st.lists(st.integers(1, 100), min_size=1, max_size=4),
)
def test_cohort_sizes_are_those_the_rollout_would_draw(
    class_sizes: list[int], shares: list[int]
) -> None:
    stages = [Stage("staged", s / 100) for s in sorted(shares)]
    classes = {f"d{c}-{i}": f"hw{c}" for c, n in enumerate(class_sizes) for i in range(n)}
    first = assign_stages("ro-feasible", classes, [s.share for s in stages])
    drawn = [sum(1 for stage in first.values() if stage <= i) for i in range(len(stages))]
    counts = {f"hw{c}": n for c, n in enumerate(class_sizes)}
    assert stage_cohort_sizes(stages, counts) == drawn
