"""Wall time per federated round: edgefleet's real agents against Flower's deployment runtime.

Both sides run real processes on loopback with the same job: the digits CNN from the same
untrained weights, every device in every round, 1 local epoch of the same SGD on IID shards of
scikit-learn's digits, dense float32 updates, FedAvg, the global model evaluated on the
held-out digits after every round.

- **edgefleet**: ``edgefleet server`` and ``--devices`` ``edgefleet agent`` processes (each
  trains its shard, ``EDGEFLEET_FL_PARTITION=i/N``); the job goes through ``POST
  /api/operator/v1/fl/jobs``. A round's time runs from its opening to the next round's
  opening (assignment through the desired-state long poll, model download, training, upload,
  aggregation, held-out evaluation); the last round's to its close. The server steps jobs every
  ``--fl-eval-s`` seconds (the default of a real server is 2 s).
- **Flower 1.42**: a SuperLink and ``--devices`` SuperNodes, the job submitted with ``flwr
  run`` (``_flower_deployment.py``, in Flower's own virtual environment, installed on first
  use); per-round time measured in the ServerApp from one central evaluation to the next.

Start-up (processes ready) is reported apart from the rounds on both sides. Target: edgefleet
at least 10x faster per round.

Usage: python benchmarks/fl_rounds.py [--devices 5] [--rounds 3] [--epochs 1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from _common import save
from _flower_venv import flower_python
from edgefleet.federated import load_task
from edgefleet.testing.fleet import AgentProcess, ServerProcess

HERE = Path(__file__).resolve().parent

AGENT_ENV = {
    "EDGEFLEET_HEARTBEAT_INTERVAL_S": "1",
    "EDGEFLEET_POLL_WAIT_S": "30",
    "EDGEFLEET_TELEMETRY_WINDOW_S": "60",
    "EDGEFLEET_INTRA_OP_THREADS": "1",
    "EDGEFLEET_FL_TASKS": "digits",
}


def _ready(server: ServerProcess, devices: int) -> bool:
    rows = server.operator("GET", "/devices")
    trains = [d for d in rows if "digits" in ((d.get("inventory") or {}).get("fl_tasks") or [])]
    return len(trains) == devices


def run_edgefleet(devices: int, rounds: int, epochs: int, eval_s: float) -> dict[str, Any]:
    """The job on a server and ``devices`` agents; per-round seconds and accuracies."""
    task = load_task("digits")
    with tempfile.TemporaryDirectory(prefix="fl-rounds-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        began = time.monotonic()
        server = stack.enter_context(
            ServerProcess.start(root / "server", env={"EDGEFLEET_FL_EVAL_S": str(eval_s)})
        )
        token = server.enroll_token(uses=devices)
        for i in range(devices):
            stack.enter_context(
                AgentProcess.start(
                    root / f"agent-{i}",
                    server=server.url,
                    enroll_token=token,
                    env={**AGENT_ENV, "EDGEFLEET_FL_PARTITION": f"{i}/{devices}"},
                )
            )
        model = root / "digits-untrained.onnx"
        model.write_bytes(task.to_onnx(task.build_model(seed=0)))
        with server.client() as client, model.open("rb") as f:
            pushed = client.post(
                "/models", data={"name": "digits"}, files={"file": (model.name, f)}
            )
        pushed.raise_for_status()
        deadline = time.monotonic() + 120
        while not _ready(server, devices):
            if time.monotonic() > deadline:
                raise RuntimeError("the agents did not report the digits task in time")
            time.sleep(0.2)
        ready = time.monotonic()
        print(f"  edgefleet: server and {devices} agents ready in {ready - began:.1f} s")
        body = {
            "task": "digits",
            "model": "digits",
            "version": "1",
            "rounds": rounds,
            "per_round": devices,
            "compression": "dense",
            "deadline": "10m",
            "local_epochs": epochs,
        }
        job_id = server.operator("POST", "/fl/jobs", json=body)["job_id"]
        while True:
            status: dict[str, Any] = server.operator("GET", f"/fl/jobs/{job_id}")
            if status["state"] != "running":
                break
            time.sleep(0.2)
        if status["state"] != "completed":
            raise RuntimeError(f"the job ended {status['state']}: {status['reason']}")
    found = status["rounds"]
    opened = [r["opened_at"] for r in found]
    ends = [*opened[1:], found[-1]["closed_at"]]
    return {
        "round_seconds": [end - start for start, end in zip(opened, ends, strict=True)],
        "accuracy": [r["metrics"]["accuracy"] for r in found],
        "bytes_up_per_device_round": [r["bytes_up"] / r["participants"] for r in found],
        "startup_seconds": ready - began,
        "fl_eval_s": eval_s,
    }


def run_flower(devices: int, rounds: int, epochs: int) -> dict[str, Any]:
    """The same job on Flower's deployment runtime, in Flower's own virtual environment."""
    python = flower_python()
    command = [
        str(python),
        str(HERE / "_flower_deployment.py"),
        "--devices",
        str(devices),
        "--rounds",
        str(rounds),
        "--epochs",
        str(epochs),
        "--json",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if done.returncode:
        raise RuntimeError(f"the Flower run failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"  flower: SuperLink and {devices} SuperNodes ready in {result['startup_seconds']:.1f} s"
    )
    return result


def main() -> None:
    """Run both sides once and print the per-round times and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=5, help="devices, all in every round (5)")
    parser.add_argument("--rounds", type=int, default=3, help="federated rounds (3)")
    parser.add_argument("--epochs", type=int, default=1, help="local epochs (1)")
    parser.add_argument(
        "--fl-eval-s", type=float, default=0.5, help="edgefleet server's job step interval (0.5)"
    )
    parser.add_argument("--skip-flower", action="store_true", help="run the edgefleet side only")
    args = parser.parse_args()

    print(f"edgefleet: {args.devices} agents, {args.rounds} rounds, {args.epochs} local epoch(s)")
    ours = run_edgefleet(args.devices, args.rounds, args.epochs, args.fl_eval_s)
    runs = {"edgefleet": ours}
    if not args.skip_flower:
        print(f"flower 1.42 deployment runtime: {args.devices} SuperNodes, same job")
        runs["flower"] = run_flower(args.devices, args.rounds, args.epochs)

    print(f"\n{'round':>5}  " + "  ".join(f"{name + ' s':>12}" for name in runs))
    for i in range(args.rounds):
        row = "  ".join(f"{run['round_seconds'][i]:>12.2f}" for run in runs.values())
        print(f"{i + 1:>5}  {row}")
    medians = {name: float(np.median(run["round_seconds"])) for name, run in runs.items()}
    print(f"{'median':>5}  " + "  ".join(f"{m:>12.2f}" for m in medians.values()))
    for name, run in runs.items():
        print(f"{name}: final held-out accuracy {run['accuracy'][-1]:.4f}")
    if "flower" in medians:
        ratio = medians["flower"] / medians["edgefleet"]
        print(f"\nFlower's median round takes {ratio:.1f}x edgefleet's (target: >= 10x)")
    path = save(
        "fl_rounds",
        {"devices": args.devices, "rounds": args.rounds, "epochs": args.epochs, "runs": runs},
    )
    print(f"saved {path}")


if __name__ == "__main__":
    main()
