"""Step 7 of ``edgefleet demo``: federated learning on the fleet, then a rollout of the result.

The three agents of step 5 each hold a third of the digits training set, which never leaves
them. A federated job starts from the model they serve: each round the server hands every
agent the global model through its desired state, the agents train on their own shard and
send back a DGC-compressed delta, and the server aggregates. One agent is killed during the
first round: the round closes at its deadline without it, and the agent rejoins the next
round after a restart. The job's result is registered as a new, calibrated version and rolled
out in stages with the same quality gates as step 6.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from edgefleet.cli.demo_rollout import Traffic, confirm_serving, report_local_rollbacks, roll_out
from edgefleet.cli.fl_jobs import wait_for_job
from edgefleet.testing.fleet import AgentProcess, ServerProcess
from edgefleet.testing.models import DigitsData

__all__ = ["run_fl_demo"]

Say = Callable[[str], None]

COMPRESSION = "dgc:0.99"
DEADLINE = "20s"
LEARNING_RATE = 0.01
"""Fine-tuning a model that is already good: a fifth of the task's from-scratch rate."""


def run_fl_demo(
    server: ServerProcess, agents: list[AgentProcess], version: str, data: DigitsData, say: Say
) -> None:
    """Run step 7 on the fleet of step 5, starting from ``digits@version``."""
    say("\n== 7. Federated learning: the agents improve the model on their own data")
    body = {
        "task": "digits",
        "model": "digits",
        "version": version,
        "rounds": 3,
        "per_round": len(agents),
        "compression": COMPRESSION,
        "deadline": DEADLINE,
        "learning_rate": LEARNING_RATE,
    }
    say(
        f"   edgefleet fl start --task digits --model digits@{version} --rounds 3 "
        f"--per-round {len(agents)} --compression {COMPRESSION} --deadline {DEADLINE} "
        f"--learning-rate {LEARNING_RATE}"
    )
    job: dict[str, Any] = server.operator("POST", "/fl/jobs", json=body)
    job_id = str(job["job_id"])
    say(f"   {job_id}: held-out accuracy at the start {job['initial_metrics']['accuracy']:.4f}")
    dropped = agents[-1]
    _wait(lambda: _round(server, job_id) >= 1)
    dropped.kill()
    say(f"   agent {len(agents) - 1} killed during round 1 (SIGKILL): the round will not wait")
    _wait(lambda: _round(server, job_id) >= 2, timeout=120)
    dropped.restart()
    say(f"   agent {len(agents) - 1} restarted: it rejoins from round 2")
    result = wait_for_job(
        lambda: server.operator("GET", f"/fl/jobs/{job_id}"),
        timeout_s=300,
        echo=lambda line: say("   " + line),
        poll_s=0.5,
    )
    if result["state"] != "completed" or not result["result_version"]:
        raise RuntimeError(f"the federated job did not complete: {result['reason']}")
    new = str(result["result_version"])
    up = sum(r["bytes_up"] for r in result["rounds"])
    down = sum(r["bytes_down"] for r in result["rounds"])
    say(
        f"   registered digits@{new} (exported to ONNX, calibrated on held-out digits); "
        f"{up} bytes of updates up, {down} bytes of models down, no training data moved"
    )
    since = time.time()
    traffic = Traffic(agents, data)
    try:
        rolled = roll_out(server, new, say)
        if rolled["state"] != "completed":
            raise RuntimeError(f"the federated model was not rolled out: {rolled['reason']}")
        confirm_serving(server, new, len(agents), say)
        say(f"   digits@{new} was trained where the data lives")
        report_local_rollbacks(server, since, say)
    finally:
        traffic.stop()


def _round(server: ServerProcess, job_id: str) -> int:
    return int(server.operator("GET", f"/fl/jobs/{job_id}")["round"])


def _wait(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError("the federated job did not move on in time")
        time.sleep(0.2)
