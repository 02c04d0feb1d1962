from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgefleet.agent.daemon import Agent, BindError
from edgefleet.agent.enrollment import EnrollmentRefusedError
from edgefleet.agent.settings import AgentSettings
from edgefleet.agent.spool import Spool
from edgefleet.telemetry import TelemetrySnapshot
from tests.unit.agent.loopback import ENROLL_TOKEN, LoopbackControlPlane
from tests.unit.agent.models import fragile_model, golden, scale_model

FAST = {
    "serve": "127.0.0.1:0",
    "heartbeat_interval_s": 0.2,
    "poll_wait_s": 1.0,
    "telemetry_window_s": 0.3,
    "upload_interval_s": 0.2,
    "health_watch_s": 0.6,
    "health_min_requests": 5,
    "backoff_base_s": 0.05,
    "backoff_max_s": 0.5,
    "retry_failed_s": 60.0,
    "request_timeout_s": 5.0,
    "shutdown_grace_s": 2.0,
    "intra_op_threads": 1,
}


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {predicate}")


def infer(base_url: str, rows: int = 1) -> float:
    body = {
        "inputs": [{"name": "x", "shape": [rows, 4], "datatype": "FP32", "data": [1.0] * 4 * rows}]
    }
    response = httpx.post(f"{base_url}/v2/models/scaler/infer", json=body, timeout=5)
    response.raise_for_status()
    return float(response.json()["outputs"][0]["data"][0])


def settings(data_dir: Path, server_url: str | None, **extra: Any) -> AgentSettings:
    return AgentSettings.model_validate(
        {"data_dir": data_dir, "server_url": server_url, **FAST, **extra}
    )


@pytest.fixture
def started() -> Iterator[Callable[[AgentSettings], Agent]]:
    agents: list[Agent] = []

    def start(s: AgentSettings) -> Agent:
        agent = Agent(s, announce=lambda line: None)
        agents.append(agent)
        agent.start()
        return agent

    yield start
    for agent in agents:
        agent.stop()


def _event_kinds(plane: LoopbackControlPlane) -> list[str]:
    return plane.event_kinds()


def test_enrol_update_serve_report_then_restart_offline(
    data_dir: Path,
    control_plane: LoopbackControlPlane,
    started: Callable[[AgentSettings], Agent],
) -> None:
    agent = started(
        settings(data_dir, control_plane.url, enroll_token=ENROLL_TOKEN, labels="site=lab")
    )
    device_id = wait_for(lambda: agent.device_id)
    credential = data_dir / "credential.json"
    assert stat.S_IMODE(credential.stat().st_mode) == 0o600
    assert json.loads(credential.read_text())["device_id"] == device_id
    assert control_plane.enrolments[0].labels == {"site": "lab"}
    assert control_plane.enrolments[0].inventory.cpu_count > 0

    v1 = control_plane.publish("scaler", 1, scale_model(3), golden=golden(scale_model(3)))
    control_plane.set_desired(device_id, v1)
    wait_for(lambda: "scaler" in agent.repository.names())
    for _ in range(10):
        assert infer(agent.serve_url) == 3.0
    wait_for(lambda: "health_passed" in control_plane.event_kinds())
    wait_for(lambda: control_plane.windows)
    kinds = control_plane.event_kinds()
    for kind in (
        "enrolled",
        "desired_state",
        "download_started",
        "download_finished",
        "verified",
        "smoke_test_passed",
        "activated",
        "health_passed",
    ):
        assert kind in kinds
    assert kinds.index("verified") < kinds.index("activated") < kinds.index("health_passed")
    beats = wait_for(lambda: [h for h in control_plane.heartbeats if h.inventory.active_model])
    assert beats[-1].inventory.active_model.version == "1"
    assert beats[-1].desired_version == 2
    window = next(iter(control_plane.windows.values()))
    assert (window.model, window.version) == ("scaler", "1")
    agent.stop()

    # Restart with the control plane gone: the verified model serves at once, no token needed.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    again = started(settings(data_dir, dead))
    assert "scaler" in again.repository.names()
    assert infer(again.serve_url) == 3.0
    again.stop()
    state = json.loads((data_dir / "state.json").read_text())
    assert state["active"]["release"] == 1
    assert not (data_dir / "agent.running").exists()


def test_a_model_failing_on_real_traffic_is_rolled_back(
    data_dir: Path,
    control_plane: LoopbackControlPlane,
    started: Callable[[AgentSettings], Agent],
) -> None:
    agent = started(
        settings(data_dir, control_plane.url, enroll_token=ENROLL_TOKEN, health_watch_s=30)
    )
    device_id = wait_for(lambda: agent.device_id)
    control_plane.set_desired(device_id, control_plane.publish("scaler", 1, scale_model(1)))
    wait_for(lambda: "scaler" in agent.repository.names())
    fragile = control_plane.publish("scaler", 2, fragile_model(2), golden=golden(fragile_model(2)))
    control_plane.set_desired(device_id, fragile)
    wait_for(lambda: infer(agent.serve_url) == 2.0)
    failures = 0
    while True:  # real traffic in batches of two rows fails until the agent rolls back
        try:
            assert infer(agent.serve_url, rows=2) == 1.0
            break
        except httpx.HTTPStatusError:
            failures += 1
            assert failures < 1000
    assert failures >= 4  # health_min_requests (5) calls, one of them the successful one
    wait_for(lambda: "rolled_back" in control_plane.event_kinds())
    assert agent.updater.state.active is not None
    assert agent.updater.state.active.release == 1
    wait_for(lambda: any(w.rollbacks for w in control_plane.windows.values()))


def test_a_refused_token_is_fatal_but_the_local_server_runs(
    data_dir: Path,
    control_plane: LoopbackControlPlane,
    started: Callable[[AgentSettings], Agent],
) -> None:
    agent = started(settings(data_dir, control_plane.url, enroll_token="not-the-right-token"))
    error = wait_for(lambda: agent.fatal)
    assert isinstance(error, EnrollmentRefusedError)
    assert "unknown, expired or used up" in str(error)
    assert not (data_dir / "credential.json").exists()
    assert httpx.get(f"{agent.serve_url}/v2/health/live", timeout=5).status_code == 200


def test_an_unreachable_server_is_retried_until_it_answers(
    data_dir: Path,
    control_plane: LoopbackControlPlane,
    started: Callable[[AgentSettings], Agent],
) -> None:
    control_plane.fail_status = 503
    agent = started(settings(data_dir, control_plane.url, enroll_token=ENROLL_TOKEN))
    wait_for(lambda: len(control_plane.requests) >= 3)
    assert agent.device_id is None
    control_plane.fail_status = None
    wait_for(lambda: agent.device_id)
    assert agent.fatal is None


def test_an_address_in_use_is_a_bind_error(data_dir: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = f"127.0.0.1:{sock.getsockname()[1]}"
        agent = Agent(
            settings(data_dir, "http://127.0.0.1:9", enroll_token=ENROLL_TOKEN, serve=taken)
        )
        with pytest.raises(BindError, match="cannot listen on"):
            agent.start()
        agent.stop()


# -- the command line, as a real process --------------------------------------------------------

CLI = [
    sys.executable,
    "-c",
    "import typer; from edgefleet.cli.agent import agent_command; typer.run(agent_command)",
]


def _cli(*args: str, data_dir: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEFLEET_")}
    env.update({"EDGEFLEET_HEARTBEAT_INTERVAL_S": "0.2", "EDGEFLEET_BACKOFF_MAX_S": "0.5"})
    return subprocess.Popen(
        [*CLI, "--data-dir", str(data_dir), "--serve", "127.0.0.1:0", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_cli_runs_until_sigterm(data_dir: Path, control_plane: LoopbackControlPlane) -> None:
    proc = _cli("--server", control_plane.url, "--enroll-token", ENROLL_TOKEN, data_dir=data_dir)
    assert proc.stderr is not None
    seen: list[str] = []
    match = None
    while match is None:  # log lines may come first
        seen.append(proc.stderr.readline())
        assert seen[-1], "".join(seen)
        match = re.search(r"serving on (http://127\.0\.0\.1:\d+) ", seen[-1])
    assert (data_dir / "credential.json").exists()  # announced once enrolled
    assert httpx.get(f"{match.group(1)}/v2/health/live", timeout=5).status_code == 200
    wait_for(lambda: control_plane.heartbeats)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--labels", "oops"), 2, "labels: label 'oops' is not key=value"),
        ((), 2, "not enrolled yet"),
        (("--enroll-token", "not-the-right-token"), 6, "refused the enrolment"),
    ],
)
def test_cli_exit_codes(
    data_dir: Path,
    control_plane: LoopbackControlPlane,
    args: tuple[str, ...],
    code: int,
    message: str,
) -> None:
    proc = _cli("--server", control_plane.url, *args, data_dir=data_dir)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert message in err
    assert "Traceback" not in err


def test_stop_spools_the_open_window_and_a_revoked_credential_keeps_serving(
    data_dir: Path,
    control_plane: LoopbackControlPlane,
    started: Callable[[AgentSettings], Agent],
    caplog: pytest.LogCaptureFixture,
) -> None:
    agent = started(
        settings(
            data_dir,
            control_plane.url,
            enroll_token=ENROLL_TOKEN,
            telemetry_window_s=3600,
            upload_interval_s=3600,
        )
    )
    device_id = wait_for(lambda: agent.device_id)
    control_plane.set_desired(device_id, control_plane.publish("scaler", 1, scale_model(2)))
    wait_for(lambda: "scaler" in agent.repository.names())
    control_plane.revoke(device_id)
    wait_for(lambda: "refused this device's credential" in caplog.text)
    for _ in range(9):
        assert infer(agent.serve_url) == 2.0  # still serving
    agent.stop()
    with Spool(data_dir / "spool.db") as spool:
        windows = spool.pending().windows
    assert sum(TelemetrySnapshot.from_dict(w.snapshot).count for w in windows) == 9
