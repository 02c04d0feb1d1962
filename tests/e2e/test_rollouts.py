"""Rollouts end to end: real agents as subprocesses, real models, real telemetry, real gates.

Four agents serve the digits classifier; a background thread sends them the held-out digits
(the devices' "live" data) so that every agent uploads telemetry windows. Gates are given
explicitly and loosely where they are not the subject: these models run in well under a
millisecond, where p99 on a shared 2-core machine is noise.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from edgefleet.runtime.oip.client import OIPClient
from edgefleet.testing.fleet import AgentProcess, ServerProcess
from edgefleet.testing.models import DigitsData, build_digits_classifier

from .fleet_helpers import MODEL, active_version, deploy, start_agent, wait_for

pytestmark = pytest.mark.slow

SERVER_ENV = {"EDGEFLEET_ROLLOUT_EVAL_S": "0.5"}
QUICK = ["interval=1s", "min_inferences=30"]


def gate(text: str) -> str:
    return ",".join([text, *QUICK])


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``good`` (trained 25 epochs), ``worse`` (1 epoch) and ``slow`` (good plus dead work)."""
    cache = tmp_path_factory.mktemp("models")
    good = build_digits_classifier(cache, epochs=25)
    worse = build_digits_classifier(cache, epochs=1)
    return {
        "good": good,
        "other": build_digits_classifier(cache, epochs=25, seed=1),
        "worse": worse,
        "slow": slow_copy(good, cache / "slow.onnx"),
    }


def slow_copy(path: Path, out: Path, width: int = 1024, layers: int = 2) -> Path:
    """The same predictions plus input-dependent matrix products multiplied by zero.

    About four times the digits model's inference time on a 2-core VM (0.04 ms to 0.15 ms).

    The extra work depends on the input, so ONNX Runtime cannot fold it away at load time.
    """
    model = onnx.load(str(path))
    graph = model.graph
    rng = np.random.default_rng(0)
    graph.node.append(helper.make_node("Flatten", ["input"], ["slow_flat"], axis=1))
    last, size = "slow_flat", 64
    for i in range(layers):
        w = numpy_helper.from_array(
            (rng.standard_normal((size, width)) * 0.01).astype(np.float32), f"slow_w{i}"
        )
        graph.initializer.append(w)
        graph.node.append(helper.make_node("MatMul", [last, f"slow_w{i}"], [f"slow_h{i}"]))
        last, size = f"slow_h{i}", width
    graph.initializer.append(numpy_helper.from_array(np.zeros((1, 1), np.float32), "slow_zero"))
    graph.node.append(helper.make_node("ReduceSum", [last], ["slow_sum"], keepdims=1))
    graph.node.append(helper.make_node("Mul", ["slow_sum", "slow_zero"], ["slow_nothing"]))
    [softmax] = [node for node in graph.node if node.op_type == "Softmax"]
    graph.node.append(helper.make_node("Add", [softmax.input[0], "slow_nothing"], ["slow_logits"]))
    moved = onnx.NodeProto()
    moved.CopyFrom(softmax)
    moved.input[0] = "slow_logits"  # the Softmax stays the output: calibration still works
    graph.node.remove(softmax)
    graph.node.append(moved)  # after the nodes it now depends on
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    return out


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as s:
        yield s


class Traffic:
    """Sends held-out digits to every agent in a loop until stopped (errors are counted)."""

    def __init__(self, agents: list[AgentProcess], data: DigitsData) -> None:
        self.agents = agents
        self.data = data
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        clients = [OIPClient(a.serve_url, timeout=5) for a in self.agents]
        i = 0
        while not self._stop.is_set():
            for client in clients:
                j = i % len(self.data.y_holdout)
                try:
                    client.infer(MODEL, {"input": self.data.x_holdout[j : j + 1]})
                except Exception:
                    self.errors += 1
            i += 1
            self._stop.wait(0.005)
        for client in clients:
            client.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def push_calibrated(
    server: ServerProcess, path: Path, version: str, calibration: Path
) -> dict[str, Any]:
    with server.client() as client, path.open("rb") as f, calibration.open("rb") as c:
        response = client.post(
            "/models",
            data={"name": MODEL, "version": version},
            files={
                "file": (path.name, f, "application/octet-stream"),
                "calibration": ("calibration.npz", c, "application/octet-stream"),
            },
        )
    assert response.is_success, response.text
    row: dict[str, Any] = response.json()["model"]
    return row


@pytest.fixture
def calibration(tmp_path: Path, digits: DigitsData) -> Path:
    path = tmp_path / "calibration.npz"
    np.savez(path, x=digits.x_holdout[:300], y=digits.y_holdout[:300])
    return path


def fleet(
    stack: ExitStack,
    tmp_path: Path,
    models: dict[str, Path],
    calibration: Path,
    digits: DigitsData,
    n: int = 4,
) -> tuple[ServerProcess, list[AgentProcess], Traffic]:
    """A server, ``n`` agents running ``good`` as version 1, and live traffic to them."""
    server = stack.enter_context(ServerProcess.start(tmp_path / "server", env=SERVER_ENV))
    token = server.enroll_token(uses=n)
    agents = [start_agent(stack, tmp_path, f"a{i}", server.url, token) for i in range(n)]
    push_calibrated(server, models["good"], "1", calibration)
    deploy(server, "1")
    for agent in agents:
        wait_for(f"{agent.data_dir.name} on version 1", on_version(agent, "1"))
    traffic = Traffic(agents, digits)
    stack.callback(traffic.stop)
    return server, agents, traffic


def on_version(agent: AgentProcess, version: str) -> Callable[[], bool]:
    return lambda: active_version(agent) == version


def start(server: ServerProcess, version: str, plan: str, *gates: str, **extra: Any) -> str:
    body = {"model": MODEL, "version": version, "stages": plan, "gates": list(gates), **extra}
    result: dict[str, Any] = server.operator("POST", "/rollouts", json=body)
    return str(result["rollout_id"])


def status(server: ServerProcess, rollout_id: str) -> dict[str, Any]:
    result: dict[str, Any] = server.operator("GET", f"/rollouts/{rollout_id}")
    return result


def state_is(server: ServerProcess, rollout_id: str, *states: str) -> bool:
    return status(server, rollout_id)["state"] in states


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
    releases = sorted(_release(a) for a in agents)
    assert releases == [1, 1, 3, 3]
    assert traffic.errors == 0


def _release(agent: AgentProcess) -> int:
    import json

    state = json.loads((agent.data_dir / "state.json").read_text())
    return int(state["active"]["release"])


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
    by_id = {_device_id(a): a for a in agents}
    by_id[cohort[0]].kill()  # one of three (33%) goes offline before it reports
    wait_for("the rollout to stop waiting", lambda: not state_is(server, rollout, "running"), 90)
    result = status(server, rollout)
    assert result["state"] == "paused", result["reason"]
    assert "inconclusive" in result["reason"]
    [accuracy] = result["status"]["gates"]
    assert accuracy["outcome"] == "inconclusive"
    assert (accuracy["devices"], accuracy["required_devices"]) == (2, 3)
    assert all(e["kind"] != "advanced" for e in result["timeline"])


def _device_id(agent: AgentProcess) -> str:
    from .fleet_helpers import device_id

    return device_id(agent)


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
