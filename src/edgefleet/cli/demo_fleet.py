"""Step 5 of ``edgefleet demo``: a control plane and three agents, all real processes.

Step 6 (:mod:`edgefleet.cli.demo_rollout`) then runs rollouts on the same fleet.

Push the digit classifier (validated, calibrated, with golden inputs), deploy it to every
device, wait until each agent has verified, smoke-tested and activated it, send inferences to
each agent's local OIP endpoint, and print the fleet-merged percentiles the server computed from
the agents' telemetry windows.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from edgefleet.cli.demo_fl import run_fl_demo
from edgefleet.cli.demo_rollout import SERVER_ENV, push, reported_models, run_rollout_demo
from edgefleet.runtime.oip.client import OIPClient
from edgefleet.testing.fleet import AgentProcess, ServerProcess
from edgefleet.testing.models import DigitsData

__all__ = ["run_fleet_demo"]

Say = Callable[[str], None]

DEVICES = (
    {"region": "eu", "hw": "x86-small"},
    {"region": "eu", "hw": "x86-large"},
    {"region": "us", "hw": "x86-small"},
)
# Short windows and intervals so the demo shows uploaded telemetry within seconds; the defaults
# (60 s windows, 10 s heartbeats) suit real fleets.
AGENT_ENV = {
    "EDGEFLEET_TELEMETRY_WINDOW_S": "1",
    "EDGEFLEET_UPLOAD_INTERVAL_S": "0.5",
    "EDGEFLEET_HEARTBEAT_INTERVAL_S": "1",
    "EDGEFLEET_POLL_WAIT_S": "5",
    # long enough at the demo's traffic for the latency rule's three windows of 50 calls
    "EDGEFLEET_HEALTH_WATCH_S": "6",
}


def _wait(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


_STEPS = {"verified", "smoke_test_passed", "activated"}


def _all_reported(server: ServerProcess, version: str) -> bool:
    """Whether every device reported each step of installing ``digits@version``."""
    seen: dict[str, set[str]] = {}
    for event in server.operator("GET", "/events", params={"limit": 500}):
        if event["model"] == "digits" and event["version"] == version:
            seen.setdefault(event["device_id"], set()).add(event["kind"])
    return len(seen) == len(DEVICES) and all(kinds >= _STEPS for kinds in seen.values())


def run_fleet_demo(
    workdir: Path, models: dict[str, Path], data: DigitsData, seconds: float, say: Say
) -> None:
    """Run steps 5, 6 and 7 under ``workdir/fleet`` (started afresh every time).

    ``models``: ``first`` is deployed in step 5; step 6 rolls out ``better``, then ``worse``.
    """
    say("\n== 5. A fleet: edgefleet server + 3 agents (real processes, own data dirs and labels)")
    root = workdir / "fleet"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    calibration = root / "calibration.npz"
    half = len(data.y_holdout) // 2
    np.savez(calibration, x=data.x_holdout[:half], y=data.y_holdout[:half])
    with ExitStack() as stack:
        server = stack.enter_context(ServerProcess.start(root / "server", env=SERVER_ENV))
        say(f"   server {server.url} (SQLite in {root / 'server'})")
        token = server.enroll_token(uses=len(DEVICES))
        agents = []
        for i, labels in enumerate(DEVICES):
            agent = stack.enter_context(
                AgentProcess.start(
                    root / f"agent-{i}",
                    server=server.url,
                    enroll_token=token,
                    labels=labels,
                    # each agent trains federated rounds on its own third of the digits
                    env={
                        **AGENT_ENV,
                        "EDGEFLEET_FL_TASKS": "digits",
                        "EDGEFLEET_FL_PARTITION": f"{i}/{len(DEVICES)}",
                    },
                )
            )
            agents.append(agent)
            say(f"   agent {i}: labels {labels}, local OIP endpoint {agent.serve_url}")
        model = models["first"]
        row = push(server, model, calibration)
        calib = row["calibration"]
        say(
            f"   edgefleet model push {model.name} --name digits --calibration ... --golden 8"
            " (an early build: 3 epochs)\n"
            f"     -> digits@{row['version']} sha256 {row['sha256'][:16]}…, opset {row['opset']},"
            f" temperature {calib['temperature']:.2f} (ECE {calib['ece_before']:.3f} ->"
            f" {calib['ece_after']:.3f})"
        )
        result = server.operator(
            "POST", "/deployments", json={"model": "digits", "version": row["version"]}
        )
        say(
            f"   edgefleet deploy digits@{row['version']} --to '' -> release "
            f"{result['release']} for {len(result['devices'])} devices"
        )
        started = time.monotonic()
        want = f"digits@{row['version']}"
        _wait(
            "every agent to activate the model",
            lambda: list(reported_models(server).values()) == [want] * len(DEVICES),
        )
        seconds_taken = time.monotonic() - started
        _wait(
            "every agent's verified, smoke_test_passed and activated events",
            lambda: _all_reported(server, str(row["version"])),
            timeout=30,
        )
        say(
            f"   all {len(DEVICES)} agents report {want} active ({seconds_taken:.1f} s), and each"
            " reported its verified (TUF), smoke_test_passed and activated events"
        )
        _infer_everywhere(agents, data, seconds, say)
        _fleet_report(server, say)
        serving = run_rollout_demo(server, agents, models, calibration, data, say)
        run_fl_demo(server, agents, serving, data, say)


def _infer_everywhere(
    agents: list[AgentProcess], data: DigitsData, seconds: float, say: Say
) -> None:
    per_agent = max(seconds / len(agents), 0.5)
    for i, agent in enumerate(agents):
        client = OIPClient(agent.serve_url)
        try:
            sent = correct = 0
            deadline = time.monotonic() + per_agent
            while time.monotonic() < deadline:
                j = sent % len(data.y_holdout)
                out = client.infer("digits", {"input": data.x_holdout[j : j + 1]})
                correct += int(out["probabilities"].argmax() == data.y_holdout[j])
                sent += 1
        finally:
            client.close()
        say(f"   agent {i}: {sent} inferences over OIP, {correct / max(sent, 1):.1%} correct")


def _fleet_report(server: ServerProcess, say: Say) -> None:
    def uploaded() -> dict[str, Any]:
        result: dict[str, Any] = server.operator("GET", "/telemetry", params={"per_device": True})
        return result

    _wait(
        "telemetry from every agent",
        lambda: len({d["device_id"] for d in uploaded().get("devices", [])}) == len(DEVICES),
        timeout=30,
    )
    time.sleep(2.0)  # let the last windows arrive
    merged = uploaded()
    say("   telemetry windows merged by the server (latency sketches, not averaged p99s):")
    rows = [("device " + d["device_id"], d) for d in merged["devices"]]
    rows += [("FLEET-WIDE", f) for f in merged["fleet"]]
    for label, r in rows:
        say(
            f"     {label:<24} {r['model']}@{r['version']}  {r['count']:6d} inferences  "
            f"p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms  errors {r['errors']}  "
            f"mean confidence {r['mean_confidence']:.3f}"
        )
