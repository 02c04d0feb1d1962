"""`rollout start` on the demo's three devices: plans that cannot finish, and stage numbers.

A real server on loopback, the operator CLI as a subprocess, devices enrolled through the API.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edgefleet.cli.demo_fleet import DEVICES
from edgefleet.telemetry import TelemetrySnapshot

from .conftest import LiveServer, ServerFactory
from .test_registry_api import push

OLD_DOCS_GATE = "accuracy_delta>=-0.02,min_devices=3,min_inferences=200"
PLAN = "shadow:10%:1h,canary:5%:2h,25%:2h,100%"


def demo_fleet(live: LiveServer, digits_path: Path, echo_path: Path) -> dict[str, str]:
    """The demo's three devices on digits@1, digits@2 in the registry; device id -> credential."""
    enrolled = [live.enroll(dict(labels)) for labels in DEVICES]
    push(live, digits_path, version="1")
    push(live, echo_path, version="2")
    with live.operator() as op:
        assert op.post("/deployments", json={"model": "digits", "version": "1"}).is_success
    return {e["device_id"]: e["credential"] for e in enrolled}


def cli(live: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EDGEFLEET_SERVER": live.url, "EDGEFLEET_TOKEN": live.operator_token}
    return subprocess.run(
        [sys.executable, "-m", "edgefleet", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_a_plan_whose_stages_are_smaller_than_a_gates_minimum_is_refused_with_the_numbers(
    live_on_each_backend: LiveServer, digits_path: Path, echo_path: Path
) -> None:
    live = live_on_each_backend
    demo_fleet(live, digits_path, echo_path)
    with live.operator() as op:
        body = {"model": "digits", "version": "2", "stages": PLAN, "gates": [OLD_DOCS_GATE]}
        refused = op.post("/rollouts", json=body)
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"].startswith(
            "the plan cannot finish on the 3 devices selected now (x86-large: 1, x86-small: 2): "
            "stage 1 (shadow:10%:1h) holds 2 devices; gate accuracy_delta needs min_devices=3; "
            "stage 2 (canary:5%:2h) holds 2 devices"
        )
        assert "--allow-small-cohorts" in refused.json()["error"]
        assert op.get("/rollouts").json() == []

        started = op.post("/rollouts", json={**body, "allow_small_cohorts": True})
        assert started.status_code == 201, started.text
        [event] = started.json()["timeline"]
        assert event["kind"] == "started"
        assert "stage 3 (25%:2h) holds 2 devices" in event["warning"]
        assert event["warning"].endswith("started anyway: such a stage waits for more devices")


def test_the_cli_refuses_or_warns_and_the_documented_example_starts_cleanly(
    live: LiveServer, digits_path: Path, echo_path: Path
) -> None:
    demo_fleet(live, digits_path, echo_path)
    args = ("rollout", "start", "digits@2", "--plan", PLAN, "--gate", OLD_DOCS_GATE)
    refused = cli(live, *args)
    assert refused.returncode != 0
    assert "stage 1 (shadow:10%:1h) holds 2 devices" in refused.stderr
    warned = cli(live, *args, "--allow-small-cohorts")
    assert warned.returncode == 0, warned.stderr
    assert "warning: the plan cannot finish on the 3 devices selected now" in warned.stderr
    rollout_id = warned.stdout.split()[1].rstrip(":")
    assert cli(live, "rollout", "abort", rollout_id).returncode == 0

    documented = ("--gate", "accuracy_delta>=-0.02,min_devices=2,min_inferences=200")
    clean = cli(live, "rollout", "start", "digits@2", "--plan", PLAN, *documented)
    assert clean.returncode == 0, clean.stderr
    assert "warning" not in clean.stderr


def window(version: str, since: float) -> dict[str, Any]:
    """A telemetry window of ``digits@version`` that started at ``since``."""
    now = max(time.time(), since)
    snapshot = TelemetrySnapshot("digits", version, since, now)
    snapshot.count = 10
    snapshot.latency.add_many([0.002] * 10)
    snapshot.confidence.add_many([0.9] * 10)
    return {
        "window_id": f"window-{version}-{now}",
        "model": "digits",
        "version": version,
        "started_at": since,
        "ended_at": now,
        "snapshot": snapshot.to_dict(),
    }


def test_list_status_and_timeline_number_the_stage_alike(
    server_factory: ServerFactory, digits_path: Path, echo_path: Path
) -> None:
    live = server_factory(rollout_eval_s=0.2)
    credentials = demo_fleet(live, digits_path, echo_path)
    gate = "rollbacks<=0,min_inferences=0,min_share=0%"
    started = cli(live, "rollout", "start", "digits@2", "--plan", "canary:34%,100%:1h",
                  "--gate", gate, "--json")  # fmt: skip
    assert started.returncode == 0, started.stderr
    with live.operator() as op:
        rollout_id = next(r["rollout_id"] for r in op.get("/rollouts").json())
        first = op.get(f"/rollouts/{rollout_id}").json()
        for device in first["stage_devices"]:  # the canary reports from the candidate
            with live.device(credentials[device]) as c:
                sent = window("2", since=first["stage_started_at"])
                body = {"batch_id": f"batch-{device[-8:]}", "windows": [sent]}
                assert c.post("/telemetry", json=body).is_success
        deadline = time.monotonic() + 60
        while op.get(f"/rollouts/{rollout_id}").json()["stage"] != 1:
            assert time.monotonic() < deadline, str(
                op.get(f"/rollouts/{rollout_id}").json()["status"]
            )
            time.sleep(0.1)

    listed = cli(live, "rollout", "list")
    row = next(line for line in listed.stdout.splitlines() if line.startswith(rollout_id))
    assert re.search(r"\brunning\s+2/2\b", row), listed.stdout
    shown = cli(live, "rollout", "status", rollout_id).stdout
    assert "RUNNING  stage 2/2 (staged 100%)" in shown
    advanced = next(line for line in shown.splitlines() if " advanced " in line)
    assert "stage=2/2" in advanced, shown
