"""Plan files (YAML, JSON) and the JSON kept in the store: one schema, exact round trips."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.errors import ConfigurationError
from edgefleet.server.rollout.plan import (
    experiment_from_json,
    experiment_to_json,
    load_plan_data,
    load_plan_file,
    plan_from_json,
    plan_to_json,
)
from edgefleet.server.rollout.spec import (
    DEFAULT_GATES,
    EXPERIMENT_METRICS,
    ExperimentPlan,
    Gate,
    RolloutPlan,
    Stage,
)

from .test_plan import gates, stage_tuples

ROLLOUT_YAML = """\
stages:
  - {kind: shadow, share: 10%, bake: 1h, sample_rate: 20%}
  - {kind: canary, share: 5%, bake: 2h}
  - {share: 0.25, bake: 7200}
  - {share: 100%}
gates:
  - {metric: p99_ratio, max: 1.5}
  - metric: accuracy_delta
    min: -0.02
    min_devices: 3
    min_share: 80%
    min_inferences: 200
    interval: 30s
    failure_limit: 2
progress_deadline: 2h
"""

ROLLOUT = RolloutPlan(
    stages=(
        Stage("shadow", 0.1, 3600.0, 0.2),
        Stage("canary", 0.05, 7200.0),
        Stage("staged", 0.25, 7200.0),
        Stage("staged", 1.0),
    ),
    gates=(Gate("p99_ratio", "<=", 1.5), Gate("accuracy_delta", ">=", -0.02, 3, 0.8, 200, 30.0, 2)),
    progress_deadline_s=7200.0,
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["plan.yaml", "plan.yml", "PLAN.YAML"])
def test_a_yaml_rollout_plan_loads(tmp_path: Path, name: str) -> None:
    assert load_plan_file(write(tmp_path, name, ROLLOUT_YAML)) == ROLLOUT


def test_a_json_plan_file_is_the_stored_json(tmp_path: Path) -> None:
    path = write(tmp_path, "plan.json", json.dumps(plan_to_json(ROLLOUT)))
    assert load_plan_file(path) == ROLLOUT


def test_an_experiment_file_loads(tmp_path: Path) -> None:
    text = """\
experiment:
  share_b: 50%
  duration: 1h
  metrics: [accuracy_estimate, p99_ms]
  confidence: 0.9
  auto_promote: true
  min_devices_per_arm: 3
"""
    assert load_plan_file(write(tmp_path, "ab.yaml", text)) == ExperimentPlan(
        0.5, 3600.0, ("accuracy_estimate", "p99_ms"), 0.9, True, 3
    )


def test_a_plan_without_gates_gets_the_default_gates() -> None:
    plan = plan_from_json({"stages": [{"share": 1}]})
    assert plan.gates == DEFAULT_GATES
    assert plan.progress_deadline_s == 3600.0


def test_an_empty_gate_list_means_no_gates() -> None:
    assert plan_from_json({"stages": [{"share": 1}], "gates": []}).gates == ()


def test_an_experiment_takes_its_defaults() -> None:
    plan = experiment_from_json({"share_b": 0.2, "duration": "30m"})
    assert plan == ExperimentPlan(0.2, 1800.0)
    assert plan.metrics == tuple(EXPERIMENT_METRICS)


def test_confidence_may_be_a_percentage() -> None:
    plan = experiment_from_json({"share_b": 0.2, "duration": 60, "confidence": "99%"})
    assert plan.confidence == 0.99


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"stages": [{"share": 1}], "gate": []}, "unknown key 'gate' in the plan; expected stages"),
        ({"gates": []}, "a plan needs 'stages' .* or 'experiment'"),
        ({"stages": "100%"}, "stages must be a list, got str"),
        ({"stages": []}, "a rollout needs at least one stage"),
        ({"stages": [{"share": 1, "bake_s": 60}]}, "unknown key 'bake_s' in stages.0."),
        ({"stages": [{"kind": "blue", "share": 1}]}, r"stages\[0\]\.kind: unknown stage kind"),
        ({"stages": [{"share": 5}]}, r"stages\[0\]\.share: share '5' is more than 100%"),
        ({"stages": [{"share": True}]}, r"stages\[0\]\.share must be a number, got True"),
        ({"stages": [{"share": "1", "bake": -1}]}, r"stages\[0\]\.bake: bad duration -1"),
        ({"stages": [{"share": 1, "sample_rate": 0.5}]}, "only shadow stages take a sample rate"),
        ({"stages": [{"share": 0.5}]}, "the last stage .* must serve 100%"),
        ({"stages": [{"share": 1}], "gates": [{"metric": "p99_ratio"}]}, "exactly one of max"),
        (
            {"stages": [{"share": 1}], "gates": [{"metric": "p99_ratio", "max": 1, "min": 0}]},
            "exactly one of max",
        ),
        (
            {"stages": [{"share": 1}], "gates": [{"metric": "speed", "max": 1}]},
            r"gates\[0\]\.metric: unknown gate metric 'speed'; expected one of p99_ratio",
        ),
        (
            {"stages": [{"share": 1}], "gates": [{"metric": "p99_ratio", "max": "1.5"}]},
            r"gates\[0\]\.max must be a number",
        ),
        (
            {"stages": [{"share": 1}], "gates": [{"metric": "p99_ratio", "max": 1, "x": 1}]},
            r"unknown key 'x' in gates\[0\]; expected metric, max, min, min_devices",
        ),
        (
            {"stages": [{"share": 1}], "gates": [{"metric": "p99_ratio", "max": 1, "failures": 2}]},
            "unknown key 'failures'.*failure_limit",
        ),
        (
            {
                "stages": [{"share": 1}],
                "gates": [{"metric": "rollbacks", "max": 0, "min_devices": 1.5}],
            },
            r"gates\[0\]\.min_devices must be an integer, got 1\.5",
        ),
        (
            {"stages": [{"share": 1}], "gates": [{"metric": "rollbacks", "max": 0, "interval": 0}]},
            r"gates\[0\]: gate 'rollbacks<=0': interval must be positive",
        ),
        (
            {"stages": [{"share": 1}], "progress_deadline": "0s"},
            "progress_deadline must be positive",
        ),
        (
            {"stages": [{"share": 1}], "progress_deadline": "soon"},
            "progress_deadline: bad duration",
        ),
    ],
)
def test_a_bad_rollout_plan_is_refused_naming_the_bad_part(
    data: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_plan_data(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"duration": "1h"}, "the experiment lacks the key 'share_b'"),
        ({"share_b": "50%"}, "the experiment lacks the key 'duration'"),
        ({"share_b": "50%", "duration": "1h", "arms": 2}, "unknown key 'arms' in the experiment"),
        ({"share_b": "100%", "duration": "1h"}, "share_b must lie in .0%, 100%.: arm A needs"),
        ({"share_b": "0%", "duration": "1h"}, "share_b: share '0%' must be more than 0%"),
        ({"share_b": 0.5, "duration": 0}, "experiment duration must be positive"),
        ({"share_b": 0.5, "duration": 60, "metrics": []}, "needs at least one metric"),
        (
            {"share_b": 0.5, "duration": 60, "metrics": ["speed"]},
            "unknown experiment metric 'speed'",
        ),
        ({"share_b": 0.5, "duration": 60, "metrics": [1]}, r"metrics\[0\] must be a metric name"),
        (
            {"share_b": 0.5, "duration": 60, "metrics": ["p99_ms", "p99_ms"]},
            "metrics repeat a name",
        ),
        ({"share_b": 0.5, "duration": 60, "confidence": 1}, "confidence must lie strictly"),
        ({"share_b": 0.5, "duration": 60, "auto_promote": "yes"}, "true or false, got 'yes'"),
        ({"share_b": 0.5, "duration": 60, "min_devices_per_arm": 1}, "integer >= 2"),
    ],
)
def test_a_bad_experiment_is_refused_naming_the_bad_part(
    data: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_plan_data({"experiment": data})


def test_an_experiment_document_holds_nothing_else() -> None:
    with pytest.raises(ConfigurationError, match="unknown key 'stages' in an experiment plan"):
        load_plan_data({"experiment": {"share_b": 0.5, "duration": 60}, "stages": []})


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("plan.toml", "", r"unknown suffix '\.toml'; expected \.yaml, \.yml or \.json"),
        ("plan", "", r"unknown suffix '\(none\)'"),
        ("plan.yaml", "stages: [", "is not valid YAML"),
        ("plan.json", "{stages", "is not valid JSON"),
        ("plan.yaml", "", "a plan must be a mapping .* got nothing"),
        ("plan.yaml", "- 100%\n", "a plan must be a mapping .* got list"),
        ("plan.json", '"100%"', "a plan must be a mapping .* got str"),
        ("plan.yaml", "stages: [{share: 50%}]", "plan file .*plan.yaml: the last stage"),
    ],
)
def test_a_bad_plan_file_is_refused_naming_the_file(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_plan_file(write(tmp_path, name, text))


def test_a_missing_plan_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"plan file .*absent\.yaml does not exist"):
        load_plan_file(tmp_path / "absent.yaml")


def test_an_unreadable_plan_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(ConfigurationError, match=r"cannot read plan file .*dir\.yaml"):
        load_plan_file(tmp_path / "dir.yaml")


def test_a_plan_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    (tmp_path / "plan.yaml").write_bytes(b"stages: [\xff]")
    with pytest.raises(ConfigurationError, match=r"cannot read plan file .*plan\.yaml"):
        load_plan_file(tmp_path / "plan.yaml")


# -- round trips --------------------------------------------------------------------------


def test_the_stored_json_names_every_field() -> None:
    assert plan_to_json(ROLLOUT)["gates"][1] == {
        "metric": "accuracy_delta",
        "min": -0.02,
        "min_devices": 3,
        "min_share": 0.8,
        "min_inferences": 200,
        "interval": 30.0,
        "failure_limit": 2,
    }
    assert plan_to_json(ROLLOUT)["stages"][0] == {
        "kind": "shadow",
        "share": 0.1,
        "bake": 3600.0,
        "sample_rate": 0.2,
    }


plans = st.builds(
    RolloutPlan,
    stage_tuples(),
    st.lists(gates, max_size=4).map(tuple),
    st.floats(min_value=0, max_value=1e9, exclude_min=True),
)


@given(plans)
def test_a_plan_survives_json_exactly(plan: RolloutPlan) -> None:
    assert plan_from_json(json.loads(json.dumps(plan_to_json(plan)))) == plan


experiments = st.builds(
    ExperimentPlan,
    st.floats(min_value=0, max_value=1, exclude_min=True, exclude_max=True),
    st.floats(min_value=0, max_value=1e9, exclude_min=True),
    st.lists(st.sampled_from(list(EXPERIMENT_METRICS)), min_size=1, unique=True).map(tuple),
    st.floats(min_value=0, max_value=1, exclude_min=True, exclude_max=True),
    st.booleans(),
    st.integers(min_value=2, max_value=1000),
)


@given(experiments)
def test_an_experiment_survives_json_exactly(plan: ExperimentPlan) -> None:
    data = json.loads(json.dumps(experiment_to_json(plan)))
    assert experiment_from_json(data) == plan
    assert load_plan_data({"experiment": data}) == plan
