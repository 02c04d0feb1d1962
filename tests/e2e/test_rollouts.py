"""Rollouts end to end: real agents as subprocesses, real models, real telemetry, real gates.

Four agents serve the digits classifier; a background thread sends them the held-out digits
(the devices' "live" data) so that every agent uploads telemetry windows. Gates are given
explicitly and loosely where they are not the subject: these models run in well under a
millisecond, where p99 on a shared 2-core machine is noise.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from edgefleet.testing.models import DigitsData

from .fleet_helpers import active_version, deploy, device_id, wait_for
from .rollout_helpers import (  # noqa: F401 (fixtures used by name)
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


def test_a_good_candidate_is_promoted_stage_by_stage_to_every_device(
    tmp_path: Path,
    stack: ExitStack,
    models: dict[str, Path],
    calibration: Path,
    digits: DigitsData,
) -> None:
    server, agents, traffic = fleet(stack, tmp_path, models, calibration, digits)
    push_calibrated(server, models["other"], "2", calibration)
    rollout = start(
        server,
        "2",
        "canary:25%:2s,50%:2s,100%:2s",
        gate("accuracy_delta>=-0.03"),
        gate("error_rate_delta<=0.01"),
        gate("rollbacks<=0"),
    )
    wait_for(
        "the rollout to complete",
        lambda: state_is(server, rollout, "completed", "rolled_back"),
        180,
    )
    result = status(server, rollout)
    assert result["state"] == "completed", result["reason"]
    kinds = [e["kind"] for e in result["timeline"]]
    assert kinds[:4] == ["started", "advanced", "advanced", "completed"]
    assert [e["stage"] for e in result["timeline"] if e["kind"] == "advanced"] == [1, 2]
    for agent in agents:
        wait_for(f"{agent.data_dir.name} on 2", on_version(agent, "2"))
    assert traffic.errors == 0


def test_a_candidate_worse_on_the_devices_data_is_rolled_back_automatically(
    tmp_path: Path,
    stack: ExitStack,
    models: dict[str, Path],
    calibration: Path,
    digits: DigitsData,
) -> None:
    server, agents, traffic = fleet(stack, tmp_path, models, calibration, digits)
    push_calibrated(server, models["worse"], "2", calibration)
    rollout = start(server, "2", "canary:50%:30s,100%", gate("accuracy_delta>=-0.03"))
    wait_for("the rollback", lambda: state_is(server, rollout, "rolled_back", "completed"), 120)
    result = status(server, rollout)
    assert result["state"] == "rolled_back"
    assert "accuracy_delta" in result["reason"]
    assert "fail" in result["reason"]
    [failed] = [g for g in result["status"]["gates"] if g["metric"] == "accuracy_delta"]
    assert failed["outcome"] == "fail"
    assert failed["value"] < -0.03
    applied = [e for e in result["timeline"] if e["kind"] == "applied"]
    assert applied
    assert applied[0]["to"].startswith("1 (release ")
    for agent in agents:
        wait_for(f"{agent.data_dir.name} back on 1", on_version(agent, "1"))
    # the canary half went back through a new release (3): downgrade protection stayed on;
    # the other half never left release 1
    releases = sorted(release_of(a) for a in agents)
    assert releases == [1, 1, 3, 3]
    assert traffic.errors == 0


def test_a_candidate_three_times_slower_is_rolled_back_on_the_latency_gate(
    tmp_path: Path,
    stack: ExitStack,
    models: dict[str, Path],
    calibration: Path,
    digits: DigitsData,
) -> None:
    server, _, _ = fleet(stack, tmp_path, models, calibration, digits)
    push_calibrated(server, models["slow"], "2", calibration)
    rollout = start(
        server, "2", "canary:50%:60s,100%", gate("p99_ratio<=2"), gate("accuracy_delta>=-0.03")
    )
    wait_for("the rollback", lambda: state_is(server, rollout, "rolled_back", "completed"), 120)
    result = status(server, rollout)
    assert result["state"] == "rolled_back"
    assert "p99_ratio" in result["reason"]
    [latency] = [g for g in result["status"]["gates"] if g["metric"] == "p99_ratio"]
    assert latency["value"] > 2


def test_with_30_percent_of_the_cohort_offline_the_gate_stays_inconclusive(
    tmp_path: Path,
    stack: ExitStack,
    models: dict[str, Path],
    calibration: Path,
    digits: DigitsData,
) -> None:
    server, agents, _ = fleet(stack, tmp_path, models, calibration, digits)
    push_calibrated(server, models["other"], "2", calibration)
    rollout = start(
        server,
        "2",
        "canary:75%:1s,100%",
        gate("accuracy_delta>=-0.03"),
        progress_deadline="12s",
    )
    cohort = status(server, rollout)["stage_devices"]
    assert len(cohort) == 3
    by_id = {device_id(a): a for a in agents}
    by_id[cohort[0]].kill()  # one of three (33%) goes offline before it reports
    wait_for("the rollout to stop waiting", lambda: not state_is(server, rollout, "running"), 90)
    result = status(server, rollout)
    assert result["state"] == "paused", result["reason"]
    assert "inconclusive" in result["reason"]
    [accuracy] = result["status"]["gates"]
    assert accuracy["outcome"] == "inconclusive"
    assert (accuracy["devices"], accuracy["required_devices"]) == (2, 3)
    assert all(e["kind"] != "advanced" for e in result["timeline"])


def test_a_server_restarted_mid_rollout_resumes_at_the_same_stage_with_the_same_cohorts(
    tmp_path: Path,
    stack: ExitStack,
    models: dict[str, Path],
    calibration: Path,
    digits: DigitsData,
) -> None:
    server, agents, _ = fleet(stack, tmp_path, models, calibration, digits)
    push_calibrated(server, models["other"], "2", calibration)
    rollout = start(server, "2", "canary:25%:1s,50%:20s,100%:1s", gate("accuracy_delta>=-0.03"))
    wait_for("stage 2", lambda: status(server, rollout)["stage"] == 1, 120)
    before = status(server, rollout)
    server.restart()
    after = status(server, rollout)
    assert (after["state"], after["stage"]) == ("running", 1)
    assert after["stage_devices"] == before["stage_devices"]
    assert after["stage_started_at"] == before["stage_started_at"]
    wait_for("completion", lambda: state_is(server, rollout, "completed", "rolled_back"), 120)
    assert status(server, rollout)["state"] == "completed"
    for agent in agents:
        wait_for(f"{agent.data_dir.name} on 2", on_version(agent, "2"))


def test_a_device_holding_its_update_lock_is_not_switched_until_it_releases_it(
    tmp_path: Path,
    stack: ExitStack,
    models: dict[str, Path],
    calibration: Path,
    digits: DigitsData,
) -> None:
    server, agents, _ = fleet(stack, tmp_path, models, calibration, digits, n=2)
    busy, free = agents
    held = httpx.post(f"{busy.serve_url}/agent/v1/hold", json={"reason": "welding"}, timeout=5)
    assert held.status_code == 200, held.text
    push_calibrated(server, models["other"], "2", calibration)
    deploy(server, "2")
    wait_for("the free device on 2", lambda: active_version(free) == "2")
    wait_for(
        "the held device to report its hold",
        lambda: any(d["inventory"].get("held_since") for d in server.operator("GET", "/devices")),
    )
    assert active_version(busy) == "1"
    released = httpx.delete(f"{busy.serve_url}/agent/v1/hold", timeout=5)
    assert released.status_code == 200, released.text
    wait_for("the released device on 2", lambda: active_version(busy) == "2", 30)
