"""Step 6 of ``edgefleet demo``: roll out a better model in stages, then catch a worse one.

The fleet of step 5 runs digits@1, an early build (3 epochs). Live traffic (held-out digits)
keeps every agent busy, so every agent uploads telemetry windows with calibrated confidence.
The better build (25 epochs) goes out to half of each hardware class, bakes, passes its gates
against the devices still on version 1, and goes to everyone. Then a broken training run
(1 epoch) is rolled out the same way: its calibrated confidence drops on the devices' own
data, the accuracy gate fails, and the server rolls the canary devices back through a new
signed release, printing the gate values that triggered it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgefleet.cli.rollout import print_status
from edgefleet.runtime.oip.client import OIPClient
from edgefleet.testing.fleet import AgentProcess, ServerProcess
from edgefleet.testing.models import DigitsData

__all__ = [
    "SERVER_ENV",
    "Traffic",
    "confirm_serving",
    "push",
    "report_local_rollbacks",
    "reported_models",
    "roll_out",
    "run_rollout_demo",
    "wait_all_on",
]

Say = Callable[[str], None]

SERVER_ENV = {"EDGEFLEET_ROLLOUT_EVAL_S": "1", "EDGEFLEET_FL_EVAL_S": "0.5"}
"""Evaluate rollouts every second and step federated jobs twice a second (the defaults, 5 s
and 2 s, suit real fleets)."""

PLAN = "canary:50%:4s,100%:2s"
# A few seconds of data per evaluation instead of the defaults (30 s, 100 inferences). These
# models answer in well under a millisecond, where the p99 of a shared machine is mostly
# scheduling noise (p99 ratios of 6 and 11 were seen beside a busy neighbour), so the latency
# gate is loose, wants more inferences (a p99 of a hundred calls is their second slowest) and
# three failing evaluations in a row before it fails.
GATES = [
    "accuracy_delta>=-0.03,interval=1s,min_inferences=50",
    "error_rate_delta<=0.01,interval=1s,min_inferences=50",
    "p99_ratio<=10,interval=1s,min_inferences=500,failures=3",
]


class Traffic:
    """Held-out digits to every agent, round robin, until stopped."""

    def __init__(self, agents: list[AgentProcess], data: DigitsData) -> None:
        self.agents = agents
        self.data = data
        self.sent = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-traffic", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        clients = [OIPClient(a.serve_url, timeout=5) for a in self.agents]
        try:
            while not self._stop.is_set():
                for client in clients:
                    j = self.sent % len(self.data.y_holdout)
                    try:
                        client.infer("digits", {"input": self.data.x_holdout[j : j + 1]})
                    except Exception:  # counted and shown; the traffic goes on
                        self.errors += 1
                    self.sent += 1
                self._stop.wait(0.01)
        finally:
            for client in clients:
                client.close()

    def stop(self) -> None:
        """Stop sending and wait for the sender thread."""
        self._stop.set()
        self._thread.join(10)


def run_rollout_demo(
    server: ServerProcess,
    agents: list[AgentProcess],
    models: dict[str, Path],
    calibration: Path,
    data: DigitsData,
    say: Say,
) -> str:
    """Run step 6 on the running fleet of step 5 (``models``: ``better`` and ``worse``).

    Returns the version every device serves at the end (the better model).
    """
    say("\n== 6. Safe rollouts: staged rollout of a better model, automatic rollback of a worse")
    since = time.time()
    traffic = Traffic(agents, data)
    try:
        better = _push(server, models["better"], calibration, say, "better: trained 25 epochs")
        result = roll_out(server, better, say)
        if result["state"] != "completed":
            raise RuntimeError(f"the better model was not promoted: {result['reason']}")
        confirm_serving(server, better, len(agents), say)
        report_local_rollbacks(server, since, say)
        worse = _push(server, models["worse"], calibration, say, "worse: a 1-epoch training run")
        since = time.time()
        result = roll_out(server, worse, say)
        if result["state"] != "rolled_back":
            raise RuntimeError(f"the worse model was not rolled back: {result['state']}")
        say(f"   rolled back by the server: {result['reason']}")
        confirm_serving(server, better, len(agents), say, again=True)
        report_local_rollbacks(server, since, say)
        say(f"   {traffic.sent} live inferences during this step, {traffic.errors} failed")
    finally:
        traffic.stop()
    return better


def push(server: ServerProcess, model: Path, calibration: Path) -> dict[str, Any]:
    """Push ``model`` as the next version of ``digits``, calibrated, golden input 8."""
    with server.client() as client, model.open("rb") as f, calibration.open("rb") as c:
        pushed = client.post(
            "/models",
            data={"name": "digits", "golden": "8"},
            files={"file": (model.name, f), "calibration": ("calibration.npz", c)},
        )
    if not pushed.is_success:
        raise RuntimeError(f"push failed: {pushed.text}")
    row: dict[str, Any] = pushed.json()["model"]
    return row


def _push(server: ServerProcess, model: Path, calibration: Path, say: Say, what: str) -> str:
    row = push(server, model, calibration)
    say(
        f"   edgefleet model push {model.name} --calibration ... -> digits@{row['version']} "
        f"({what}; temperature {row['calibration']['temperature']:.2f})"
    )
    return str(row["version"])


def roll_out(server: ServerProcess, version: str, say: Say) -> dict[str, Any]:
    """Roll ``digits@version`` out with the demo's plan and gates; its final status."""
    gates = " ".join(f"--gate '{g}'" for g in GATES)
    say(f"   edgefleet rollout start digits@{version} --plan {PLAN} {gates}")
    body = {"model": "digits", "version": version, "stages": PLAN, "gates": GATES}
    rollout_id = str(server.operator("POST", "/rollouts", json=body)["rollout_id"])
    seen = 0
    deadline = time.monotonic() + 120
    while True:
        result: dict[str, Any] = server.operator("GET", f"/rollouts/{rollout_id}")
        for event in result["timeline"][seen:]:
            say(f"     {event['kind']:<11} {_detail(event)}")
        seen = len(result["timeline"])
        ended = result["state"] in ("completed", "rolled_back", "aborted")
        if ended and result["status"].get("applied"):
            break
        if result["state"] == "paused" or time.monotonic() > deadline:
            raise RuntimeError(f"rollout {rollout_id} stopped early: {result['reason']}")
        time.sleep(0.5)
    say(f"   edgefleet rollout status {rollout_id}")
    print_status(result, echo=lambda line: say("     " + line), timeline=False)
    return result


def _detail(event: dict[str, Any]) -> str:
    if event["kind"] == "started":
        return f"{event['candidate']} on {event['devices']} devices, plan {event['plan']}"
    if event["kind"] == "advanced":
        return f"to stage {event['stage'] + 1} ({event['share']:.0%}): {event['reason']}"
    if event["kind"] == "applied":
        return f"{event['devices']} devices -> {event['to']}"
    return str(event.get("reason", ""))


def wait_all_on(server: ServerProcess, version: str, n: int, timeout: float = 60.0) -> None:
    """Wait until all ``n`` devices report ``version`` as their active model."""
    deadline = time.monotonic() + timeout
    while True:
        versions = [
            ((d.get("inventory") or {}).get("active_model") or {}).get("version")
            for d in server.operator("GET", "/devices")
        ]
        if versions == [version] * n:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for every device on {version}: {versions}")
        time.sleep(0.3)


def reported_models(server: ServerProcess) -> dict[str, str]:
    """What every device reported serving in its last heartbeat: device id -> name@version."""
    out = {}
    for device in server.operator("GET", "/devices"):
        active = (device.get("inventory") or {}).get("active_model") or {}
        out[str(device["device_id"])] = f"{active.get('name')}@{active.get('version')}"
    return out


def confirm_serving(
    server: ServerProcess, version: str, n: int, say: Say, *, again: bool = False
) -> None:
    """Wait until all ``n`` devices report ``digits@version``, then read it back and print it.

    Nothing is claimed that was not read from the server: the line lists what each device
    reported. Raises if a device reports anything else on the read-back.
    """
    wait_all_on(server, version, n)
    reported = reported_models(server)
    want = f"digits@{version}"
    if len(reported) != n or set(reported.values()) != {want}:
        raise RuntimeError(f"devices do not all report {want}: {reported}")
    listed = ", ".join(f"{device} {model}" for device, model in sorted(reported.items()))
    say(
        f"   read back from the server, every device {'again ' if again else ''}reports "
        f"serving {want}: {listed}"
    )


def report_local_rollbacks(server: ServerProcess, since: float, say: Say) -> int:
    """Print the health watch rollbacks the agents reported since ``since`` (Unix time).

    These are the agents' own decisions (``rolled_back`` events), not the server's rollout
    rollbacks; an honest demo shows them rather than hiding them. Returns how many.
    """
    events = server.operator("GET", "/events", params={"limit": 500})
    local = [e for e in events if e["kind"] == "rolled_back" and float(e["at"]) >= since]
    if not local:
        say("   local rollbacks by the agents' health watch reported so far: none")
    for event in reversed(local):  # oldest first
        say(
            f"   LOCAL ROLLBACK on {event['device_id']}: {event['model']}@{event['version']} "
            f"({event['detail']})"
        )
    return len(local)
