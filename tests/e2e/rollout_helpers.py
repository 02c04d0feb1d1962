"""What the rollout end-to-end tests share: models, a fleet with live traffic, operator calls.

The fixtures are declared under their own names (``models``, ``calibration``, ``stack``); a
test module imports the ``*_fixture`` functions to use them::

    from .rollout_helpers import calibration_fixture, models_fixture, stack_fixture  # noqa: F401

Gates are given explicitly and loosely where they are not the subject: the digits models run in
well under a millisecond, where p99 on a shared 2-core machine is noise.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from edgefleet.runtime.oip.client import OIPClient, OIPError, encode_request
from edgefleet.testing.fleet import AgentProcess, ServerProcess
from edgefleet.testing.models import DigitsData, build_digits_classifier

from .fleet_helpers import MODEL, active_version, deploy, start_agent, wait_for

__all__ = [
    "QUICK",
    "SERVER_ENV",
    "Served",
    "Traffic",
    "calibration_fixture",
    "fleet",
    "gate",
    "models_fixture",
    "on_version",
    "push_calibrated",
    "release_of",
    "slow_copy",
    "stack_fixture",
    "start",
    "state_is",
    "status",
    "stop_together",
]

SERVER_ENV = {"EDGEFLEET_ROLLOUT_EVAL_S": "0.5"}
QUICK = ["interval=1s", "min_inferences=30"]


def gate(text: str) -> str:
    """``text`` with a 1 s evaluation interval and 30 inferences as enough data."""
    return ",".join([text, *QUICK])


@pytest.fixture(scope="module", name="models")
def models_fixture(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> dict[str, Path]:
    """``good`` (25 epochs), ``other`` (25 epochs, another seed), ``worse`` (1 epoch), ``slow``.

    ``slow`` is ``good`` plus dead work. ``other`` disagrees with ``good`` on about 1% of the
    held-out digits, ``worse`` on about 20%. The trained models are cached across sessions.
    """
    good = build_digits_classifier(model_cache, epochs=25)
    return {
        "good": good,
        "other": build_digits_classifier(model_cache, epochs=25, seed=1),
        "worse": build_digits_classifier(model_cache, epochs=1),
        "slow": slow_copy(good, tmp_path_factory.mktemp("models") / "slow.onnx"),
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


@pytest.fixture(name="stack")
def stack_fixture() -> Iterator[ExitStack]:
    """Everything the test starts, stopped in reverse order at its end."""
    with ExitStack() as s:
        yield s


@pytest.fixture(name="calibration")
def calibration_fixture(tmp_path: Path, digits: DigitsData) -> Path:
    """300 labelled held-out digits, the calibration set pushed with each version."""
    path = tmp_path / "calibration.npz"
    np.savez(path, x=digits.x_holdout[:300], y=digits.y_holdout[:300])
    return path


class Served(NamedTuple):
    """One answered inference: when the answer came back, from which agent, which version."""

    at: float
    agent: int
    version: str


class Traffic:
    """Sends held-out digits to every agent in a loop until stopped.

    Errors are counted; every answer is recorded with the ``model_version`` the agent put in
    it (:attr:`served`), so a test can tell which version answered when.
    """

    def __init__(self, agents: list[AgentProcess], data: DigitsData) -> None:
        self.agents = agents
        self.data = data
        self.errors = 0
        self.served: list[Served] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        clients = [OIPClient(a.serve_url, timeout=5) for a in self.agents]
        i = 0
        while not self._stop.is_set():
            for index, client in enumerate(clients):
                j = i % len(self.data.y_holdout)
                try:
                    version = _infer(client, self.data.x_holdout[j : j + 1])
                except Exception:  # any failed or malformed answer counts
                    self.errors += 1
                else:
                    self.served.append(Served(time.time(), index, version))
            i += 1
            self._stop.wait(0.005)
        for client in clients:
            client.close()

    def versions(
        self, agent: int | None = None, *, after: float = 0.0, before: float = float("inf")
    ) -> set[str]:
        """The versions that answered (one agent's, or any), between ``after`` and ``before``."""
        return {
            s.version
            for s in list(self.served)
            if (agent is None or s.agent == agent) and after <= s.at < before
        }

    def stop(self) -> None:
        """Stop sending and wait for the sender thread."""
        self._stop.set()
        self._thread.join(10)


def _infer(client: OIPClient, x: np.ndarray[Any, Any]) -> str:
    """One inference; returns the response's ``model_version`` (raises on any failure)."""
    body, headers = encode_request({"input": x}, binary=True)
    code, response_headers, payload = client.request(
        "POST", f"/v2/models/{MODEL}/infer", body, headers
    )
    if code != 200:
        raise OIPError(f"HTTP {code}: {payload[:200]!r}", code)
    length = response_headers.get("inference-header-content-length")
    header = json.loads(payload if length is None else payload[: int(length)])
    if not header.get("outputs"):
        raise ValueError(f"an answer without outputs: {header}")
    return str(header["model_version"])


def push_calibrated(
    server: ServerProcess, path: Path, version: str, calibration: Path
) -> dict[str, Any]:
    """Push ``path`` as ``version`` with its calibration set (the temperature is fitted)."""
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
    stack.callback(stop_together, agents)
    push_calibrated(server, models["good"], "1", calibration)
    deploy(server, "1")
    for agent in agents:
        wait_for(f"{agent.data_dir.name} on version 1", on_version(agent, "1"))
    traffic = Traffic(agents, digits)
    stack.callback(traffic.stop)
    return server, agents, traffic


def stop_together(agents: list[AgentProcess]) -> None:
    """Stop the agents at once rather than one after the other.

    An agent's stop waits for its long poll in flight (up to ``EDGEFLEET_POLL_WAIT_S``).
    """
    with ThreadPoolExecutor(len(agents) or 1) as pool:
        list(pool.map(AgentProcess.stop, agents))


def on_version(agent: AgentProcess, version: str) -> Callable[[], bool]:
    """Whether ``agent``'s state names ``version`` as active (for :func:`wait_for`)."""
    return lambda: active_version(agent) == version


def release_of(agent: AgentProcess) -> int:
    """The release number ``agent``'s state names as active."""
    state = json.loads((agent.data_dir / "state.json").read_text())
    return int(state["active"]["release"])


def start(server: ServerProcess, version: str, plan: str, *gates: str, **extra: Any) -> str:
    """Start a rollout of ``version`` with stages ``plan`` and ``gates``; returns its id."""
    body = {"model": MODEL, "version": version, "stages": plan, "gates": list(gates), **extra}
    result: dict[str, Any] = server.operator("POST", "/rollouts", json=body)
    return str(result["rollout_id"])


def status(server: ServerProcess, rollout_id: str) -> dict[str, Any]:
    """The operator API's status of a rollout or experiment."""
    result: dict[str, Any] = server.operator("GET", f"/rollouts/{rollout_id}")
    return result


def state_is(server: ServerProcess, rollout_id: str, *states: str) -> bool:
    """Whether the rollout is in one of ``states``."""
    return status(server, rollout_id)["state"] in states
