"""Shadow stages and A/B experiments end to end: real agents, real models, real telemetry.

A background thread sends held-out digits to every agent and records the ``model_version`` of
each answer, so the tests can tell which version answered when. Models: ``good`` is version 1
everywhere; ``other`` (another seed) disagrees with it on about 1% of the digits, ``worse``
(one epoch of training) on about 20%, and its calibrated confidence is far lower.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from edgefleet.testing.fleet import ServerProcess
from edgefleet.testing.models import DigitsData

from .fleet_helpers import MODEL, device_id, wait_for
from .rollout_helpers import (  # noqa: F401 (fixtures used by name)
    Traffic,
    calibration_fixture,
    fleet,
    gate,
    models_fixture,
    on_version,
    push_calibrated,
    release_of,
    stack_fixture,
    start,
    state_is,
    status,
)

pytestmark = pytest.mark.slow


def _events(server: ServerProcess, device: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = server.operator(
        "GET", "/events", params={"device_id": device, "limit": 1000}
    )
    return result


def _answers(traffic: Traffic, agent: int, version: str) -> Callable[[], bool]:
    return lambda: version in traffic.versions(agent)


def _desired_version(server: ServerProcess, device: str) -> str:
    """The model version in ``device``'s desired state."""
    return str(server.operator("GET", f"/devices/{device}")["desired"]["model"]["version"])


def test_a_shadow_stage_scores_the_candidate_on_live_inputs_while_version_1_keeps_answering(
    tmp_path: Path,
    stack: ExitStack,
    models: dict[str, Path],
    calibration: Path,
    digits: DigitsData,
) -> None:
    """At a shadow stage the candidate sees a sample of the live inputs and answers nothing.

    Every answer before the rollout leaves the shadow stage comes from version 1, on the
    shadowing device as on the other one. The shadowing device reports its comparisons with
    version 1: the ``disagreement`` gate has a value computed from enough shadow samples of
    every device in the cohort, and it passes (the candidate agrees on ~99% of the digits).
    Then the rollout advances, and version 2 serves everywhere.
    """
    server, agents, traffic = fleet(stack, tmp_path, models, calibration, digits, n=2)
    push_calibrated(server, models["other"], "2", calibration)
    rollout = start(
        server,
        "2",
        "shadow:50%:3s:100%,100%:1s",
        gate("disagreement<=0.05"),
        gate("accuracy_delta>=-0.03"),
    )
    first = status(server, rollout)
    assert first["plan"]["stages"][0]["kind"] == "shadow"
    [shadowing] = first["stage_devices"]
    ids = [device_id(agent) for agent in agents]
    watched = ids.index(shadowing)

    wait_for("the rollout to end", lambda: state_is(server, rollout, "completed", "rolled_back"))
    result = status(server, rollout)
    assert result["state"] == "completed", result["reason"]
    [left_shadow] = [e for e in result["timeline"] if e["kind"] == "advanced"]
    assert (left_shadow["stage"], left_shadow["stage_kind"]) == (1, "staged")

    gates = {g["metric"]: g for g in left_shadow["gates"]}
    shadow_gate = gates["disagreement"]
    assert shadow_gate["outcome"] == "pass", shadow_gate
    assert 0 <= shadow_gate["value"] <= 0.05
    assert shadow_gate["devices"] == shadow_gate["required_devices"] == 1
    disagreed, compared = map(int, re.findall(r"\d+", shadow_gate["reason"])[:2])
    assert compared >= 30
    assert disagreed == round(shadow_gate["value"] * compared)
    # at a shadow stage the candidate's estimated accuracy comes from its shadow telemetry
    assert gates["accuracy_delta"]["outcome"] == "pass"
    assert gates["accuracy_delta"]["devices"] == 1

    # nothing but version 1 answered until the rollout left the shadow stage
    assert traffic.versions(watched, before=left_shadow["at"]) == {"1"}
    assert traffic.versions(before=left_shadow["at"]) == {"1"}
    started = [e for e in _events(server, shadowing) if e["kind"] == "shadow_started"]
    assert [(e["version"], e["at"] < left_shadow["at"]) for e in started] == [("2", True)]
    [other] = set(ids) - {shadowing}
    assert all(e["kind"] != "shadow_started" for e in _events(server, other))

    for i, agent in enumerate(agents):
        wait_for(f"{agent.data_dir.name} on 2", on_version(agent, "2"))
        wait_for(f"{agent.data_dir.name} to answer with 2", _answers(traffic, i, "2"))
    assert traffic.errors == 0


def test_a_candidate_that_disagrees_in_shadow_is_rolled_back_before_it_ever_answers(
    tmp_path: Path,
    stack: ExitStack,
    models: dict[str, Path],
    calibration: Path,
    digits: DigitsData,
) -> None:
    """A shadow candidate whose top-1 differs too often is rolled back at the shadow stage.

    The reason names the ``disagreement`` gate and its value; the rollout never advances;
    the shadowing device goes to a new release of version 1 and stops shadowing; and no
    answer, on any device, ever came from the candidate.
    """
    server, agents, traffic = fleet(stack, tmp_path, models, calibration, digits, n=2)
    push_calibrated(server, models["worse"], "2", calibration)
    rollout = start(
        server,
        "2",
        "shadow:50%:30s:100%,100%",
        gate("disagreement<=0.05"),
        gate("accuracy_delta>=-0.03"),  # judges the last stage (never reached)
    )
    [shadowing] = status(server, rollout)["stage_devices"]

    wait_for("the rollback", lambda: state_is(server, rollout, "rolled_back", "completed"))
    result = status(server, rollout)
    assert result["state"] == "rolled_back"
    assert "disagreement" in result["reason"]
    assert "fail" in result["reason"]
    [failed] = [g for g in result["status"]["gates"] if g["metric"] == "disagreement"]
    assert failed["outcome"] == "fail"
    assert failed["value"] > 0.05
    assert result["stage"] == 0
    assert all(e["kind"] != "advanced" for e in result["timeline"])

    ids = [device_id(agent) for agent in agents]
    shadow_agent = agents[ids.index(shadowing)]
    wait_for("the shadowing device on a new release of 1", lambda: release_of(shadow_agent) == 3)
    wait_for(
        "the shadow to stop",
        lambda: any(e["kind"] == "shadow_stopped" for e in _events(server, shadowing)),
    )
    assert [release_of(a) for a in agents if a is not shadow_agent] == [1]
    seen = len(traffic.served)
    wait_for("more answers after the rollback", lambda: len(traffic.served) > seen + 20)
    assert traffic.versions() == {"1"}
    assert traffic.errors == 0


def test_an_ab_experiment_compares_the_arms_and_recommends_without_promoting(
    tmp_path: Path,
    stack: ExitStack,
    models: dict[str, Path],
    calibration: Path,
    digits: DigitsData,
) -> None:
    """A 50/50 experiment serves each arm its version, then concludes with a recommendation.

    Arm B (the one-epoch model) is far less confident on the devices' data, so the
    recommendation is ``keep_a``, backed by a Welch interval and p-value on the estimated
    accuracy (and a bootstrap interval on p99). Without automatic promotion the experiment is
    only *concluded*: each arm keeps its version until an operator acts. Here the operator
    aborts, and arm B goes back to version 1.
    """
    server, agents, traffic = fleet(stack, tmp_path, models, calibration, digits, n=4)
    push_calibrated(server, models["worse"], "2", calibration)
    body = {"model": MODEL, "version": "2", "ab_share": "50%", "ab_duration": "8s"}
    experiment = str(server.operator("POST", "/rollouts", json=body)["rollout_id"])
    first = status(server, experiment)
    assert (first["kind"], first["plan"]["auto_promote"]) == ("experiment", False)
    ids = [device_id(agent) for agent in agents]
    arm_b = {ids.index(d) for d in first["stage_devices"]}
    arm_a = set(range(len(agents))) - arm_b
    assert len(arm_b) == len(arm_a) == 2

    for i in sorted(arm_b):
        wait_for(f"arm B's a{i} to answer with 2", _answers(traffic, i, "2"))
    wait_for("the experiment to end", lambda: not state_is(server, experiment, "running"), 90)
    result = status(server, experiment)
    assert result["state"] == "concluded", result["reason"]
    arms = result["status"]["arms"]
    assert (arms["a"]["version"], arms["b"]["version"]) == ("1", "2")
    assert arms["a"]["devices"] == arms["a"]["reporting"] == 2
    assert arms["b"]["devices"] == arms["b"]["reporting"] == 2

    comparisons = result["status"]["comparisons"]
    assert set(comparisons) == {"accuracy_estimate", "p99_ms", "error_rate"}
    accuracy = comparisons["accuracy_estimate"]
    assert (accuracy["method"], accuracy["n_a"], accuracy["n_b"]) == ("welch", 2, 2)
    assert accuracy["diff"] == pytest.approx(accuracy["mean_b"] - accuracy["mean_a"])
    assert accuracy["ci_low"] <= accuracy["diff"] <= accuracy["ci_high"] < 0
    assert 0 <= accuracy["p_value"] < 0.05
    p99 = comparisons["p99_ms"]
    assert (p99["method"], p99["p_value"]) == ("bootstrap", None)
    assert p99["ci_low"] <= p99["ci_high"]
    recommendation = result["status"]["recommendation"]
    assert recommendation["verdict"] == "keep_a"
    assert "accuracy_estimate" in recommendation["reason"]
    assert result["reason"] == recommendation["reason"]
    kinds = [e["kind"] for e in result["timeline"]]
    assert kinds == ["started", "concluded"]
    assert result["timeline"][-1]["verdict"] == "keep_a"

    # not applied: each arm keeps its version (desired and served) until an operator acts
    concluded_at = result["timeline"][-1]["at"]
    later = concluded_at + 2  # four evaluation intervals on
    wait_for(
        "traffic served four evaluation intervals after the conclusion",
        lambda: all(traffic.versions(i, after=later) for i in range(len(ids))),
    )
    assert status(server, experiment)["timeline"] == result["timeline"]
    desired = [_desired_version(server, d) for d in ids]
    assert {desired[i] for i in arm_a} == {"1"}
    assert {desired[i] for i in arm_b} == {"2"}
    for i in arm_b:
        assert traffic.versions(i, after=concluded_at + 1) == {"2"}
    for i in arm_a:
        assert traffic.versions(i) == {"1"}

    aborted = server.operator("POST", f"/rollouts/{experiment}/abort", json={"reason": "keep A"})
    assert aborted["state"] == "aborted"
    for agent in agents:
        wait_for(f"{agent.data_dir.name} back on 1", on_version(agent, "1"))
    assert traffic.errors == 0
