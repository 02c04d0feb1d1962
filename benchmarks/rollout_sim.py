"""Rollout simulation: how fast a regressing candidate is caught and undone on 1,000 devices.

One process holds the control plane's real pieces (store on SQLite, registry, TUF releases,
signed desired states, the rollout evaluation with its gates and state machine) and 1,000
simulated devices in two hardware classes. The devices share one ONNX Runtime per model
version: every evaluation interval each device syncs its desired state (downloading a model
file it does not hold yet), runs its active model on a sample of the held-out digits, and
uploads one telemetry window with the latencies and the calibrated confidence (temperature from
the release), exactly as an agent does. Simulated time advances one interval per step, so the
figures are in evaluation intervals, independent of this machine's speed.

Two runs, same fleet, same regressing candidate (a digits classifier trained one epoch instead
of 25, so it is genuinely worse on the devices' data):

- **edgefleet gates** (the default gates: latency, errors, estimated accuracy, rollbacks);
- **process health only** (only the local-rollback gate, i.e. "the process is running", which
  is what fleet tools judge): the reference.

Reported: intervals from the first candidate telemetry window to the rollback decision and to
the whole fleet being back on the previous version, devices that ever served the candidate, and
bytes moved (model downloads and telemetry uploads).

Usage: python benchmarks/rollout_sim.py [--devices 1000] [--interval 30] [--plan ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import save
from edgefleet.runtime import load
from edgefleet.server.app import build_context
from edgefleet.server.context import ServerContext
from edgefleet.server.init import initialize
from edgefleet.server.rollout.plan import parse_gate, parse_stages
from edgefleet.server.rollout.spec import DEFAULT_GATES, RolloutPlan
from edgefleet.server.services import registry, rollout_eval, rollouts
from edgefleet.server.settings import load_settings
from edgefleet.server.store import TelemetryBatchRow
from edgefleet.telemetry import TelemetrySnapshot
from edgefleet.telemetry.calibration import softmax
from edgefleet.testing.models import build_digits_classifier, digits_data

NAME = "digits"
SAMPLES = 32


@dataclass
class Device:
    """A simulated device: what it runs, which files it holds, what it moved."""

    device_id: str
    active: dict[str, Any] | None = None
    files: set[str] = field(default_factory=set)
    served_candidate: bool = False


def _setup(root: Path, devices: int) -> tuple[ServerContext, dict[str, Path]]:
    initialize(root / "server")
    ctx = build_context(load_settings(root / "server"))
    cache = root / "models"
    data = digits_data()
    calibration = root / "calibration.npz"
    np.savez(calibration, x=data.x_holdout[:300], y=data.y_holdout[:300])
    paths = {
        "1": build_digits_classifier(cache, epochs=25),
        "2": build_digits_classifier(cache, epochs=1),
    }
    now = time.time()
    for version, path in paths.items():
        registry.push_model(
            ctx, path, name=NAME, version=version, golden=0, calibration=calibration, now=now
        )
    for i in range(devices):
        arch = ("x86_64", "aarch64")[i % 2]
        inventory = {"arch": arch, "cpu_model": f"{arch} sim", "cpu_count": 4}
        ctx.store.create_device(f"dev-{i:05d}", f"cred-{i}", {"fleet": "sim"}, inventory, now)
    registry.deploy(ctx, NAME, "1", {"fleet": "sim"}, now)
    return ctx, paths


def _run(
    root: Path, args: argparse.Namespace, gates: tuple[Any, ...], label: str
) -> dict[str, Any]:
    ctx, paths = _setup(root, args.devices)
    data = digits_data()
    rng = np.random.default_rng(0)
    models = {v: load(p, name=NAME, version=v) for v, p in paths.items()}
    temperature = {
        v: float((ctx.store.get_model_version(NAME, v).calibration or {})["temperature"])  # type: ignore[union-attr]
        for v in paths
    }
    fleet = {f"dev-{i:05d}": Device(f"dev-{i:05d}") for i in range(args.devices)}
    t = time.time()
    interval = args.interval
    plan = RolloutPlan(parse_stages(args.plan), gates, progress_deadline_s=3600 * 24)
    bytes_down = bytes_up = 0
    first_bad: float | None = None
    decided: float | None = None
    back: float | None = None
    rollout = None
    eval_seconds: list[float] = []
    for step in range(args.max_steps):
        states = ctx.store.list_desired_states(list(fleet))
        batches = []
        for device in fleet.values():
            desired = states[device.device_id].model
            if desired and (device.active is None or device.active["sha256"] != desired["sha256"]):
                if desired["sha256"] not in device.files:
                    bytes_down += int(desired["length"])
                    device.files.add(desired["sha256"])
                device.active = desired
            version = device.active["version"] if device.active else "1"
            model = models[version]
            rows = rng.integers(0, len(data.y_holdout), SAMPLES)
            snap = TelemetrySnapshot(NAME, version, t, t + interval)
            for j in rows:
                began = time.perf_counter()
                probabilities = model.predict({"input": data.x_holdout[j : j + 1]})
                snap.latency.add(time.perf_counter() - began)
                p = np.asarray(next(iter(probabilities.values())), dtype=np.float64)
                calibrated = softmax(np.log(np.clip(p, 1e-12, 1.0)) / temperature[version])
                snap.confidence.add_many(calibrated.max(axis=1))
            snap.count = SAMPLES
            if version == "2":
                device.served_candidate = True
                first_bad = t if first_bad is None else first_bad
            window = {
                "window_id": f"w-{device.device_id}-{step}",
                "model": NAME,
                "version": version,
                "started_at": t,
                "ended_at": t + interval,
                "snapshot": snap.to_dict(),
            }
            bytes_up += len(json.dumps(window))
            batches.append(TelemetryBatchRow(device.device_id, [window], 0, t + interval))
        ctx.store.add_telemetry_batches(batches)
        t += interval
        if rollout is None:
            rollout = rollouts.start(ctx, NAME, "2", {"fleet": "sim"}, plan, t)
        else:
            began = time.perf_counter()
            rollout = rollout_eval.evaluate(ctx, ctx.store.get_rollout(rollout.rollout_id), t)  # type: ignore[arg-type]
            eval_seconds.append(time.perf_counter() - began)
        if rollout.state in ("rolled_back", "completed") and decided is None:
            decided = t
        if decided is not None and all(
            d.active and d.active["version"] == "1" for d in fleet.values()
        ):
            back = t
            break
        if rollout.state == "completed" and all(
            d.active and d.active["version"] == "2" for d in fleet.values()
        ):
            break
        serving = sum(1 for d in fleet.values() if d.active and d.active["version"] == "2")
        print(
            f"  [{label}] step {step:3d}: stage {rollout.stage} {rollout.state:<11} "
            f"on candidate {serving:5d}",
            flush=True,
        )
    ctx.store.close()
    assert rollout is not None

    def intervals(at: float | None) -> float | None:
        return None if at is None or first_bad is None else (at - first_bad) / interval

    return {
        "gates": label,
        "final_state": rollout.state,
        "reason": rollout.reason,
        "intervals_to_decision": intervals(decided),
        "intervals_to_fleet_rollback": intervals(back),
        "devices_that_served_candidate": sum(1 for d in fleet.values() if d.served_candidate),
        "model_bytes_downloaded": bytes_down,
        "telemetry_bytes_uploaded": bytes_up,
        "evaluation_ms_p50": 1e3 * float(np.median(eval_seconds)) if eval_seconds else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=30.0, help="Evaluation interval (s).")
    parser.add_argument("--plan", default="canary:5%:10m,25%:10m,100%")
    parser.add_argument("--max-steps", type=int, default=200)
    args = parser.parse_args()
    interval = f"interval={args.interval:g}s"
    ours = tuple(parse_gate(f"{_gate_text(g)},{interval}") for g in DEFAULT_GATES)
    health = (parse_gate(f"rollbacks<=0,{interval}"),)
    results = []
    for label, gates in (("edgefleet gates", ours), ("process health only", health)):
        with tempfile.TemporaryDirectory() as tmp:
            print(f"{label}: {args.devices} devices, plan {args.plan}", flush=True)
            results.append(_run(Path(tmp), args, gates, label))
    print()
    print(
        f"{'gates':<22}{'outcome':<13}{'to decision':>12}{'to fleet back':>14}"
        f"{'served bad':>11}{'model MB':>10}{'telemetry MB':>13}{'eval ms':>9}"
    )
    for r in results:

        def show(v: float | None) -> str:
            return "-" if v is None else f"{v:.0f}"

        print(
            f"{r['gates']:<22}{r['final_state']:<13}{show(r['intervals_to_decision']):>12}"
            f"{show(r['intervals_to_fleet_rollback']):>14}{r['devices_that_served_candidate']:>11}"
            f"{r['model_bytes_downloaded'] / 1e6:>10.2f}"
            f"{r['telemetry_bytes_uploaded'] / 1e6:>13.2f}"
            f"{(r['evaluation_ms_p50'] or 0):>9.0f}"
        )
    ours_r, ref = results
    if ref["devices_that_served_candidate"]:
        ratio = ref["devices_that_served_candidate"] / max(
            1, ours_r["devices_that_served_candidate"]
        )
        print(
            f"\nprocess-health-only gating let {ratio:.0f}x as many devices serve the worse model"
        )
    print(f"reason: {ours_r['reason']}")
    path = save(
        "rollout_sim",
        {"devices": args.devices, "interval_s": args.interval, "plan": args.plan, "runs": results},
    )
    print(f"saved {path}")


def _gate_text(gate: Any) -> str:
    return f"{gate.metric}{gate.op}{gate.threshold:g}"


if __name__ == "__main__":
    main()
