"""What the fleet end-to-end tests share: agent settings for fast tests, operator calls, waits."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from edgefleet.runtime.oip.client import OIPClient
from edgefleet.testing.fleet import AgentProcess, ServerProcess
from edgefleet.testing.models import DigitsData

# Short windows and intervals so a test sees uploads, heartbeats and retries within seconds.
AGENT_ENV = {
    "EDGEFLEET_TELEMETRY_WINDOW_S": "1",
    "EDGEFLEET_UPLOAD_INTERVAL_S": "0.5",
    "EDGEFLEET_HEARTBEAT_INTERVAL_S": "0.5",
    "EDGEFLEET_POLL_WAIT_S": "5",
    "EDGEFLEET_HEALTH_WATCH_S": "0",
    "EDGEFLEET_BACKOFF_BASE_S": "0.2",
    "EDGEFLEET_BACKOFF_MAX_S": "1",
    "EDGEFLEET_RETRY_FAILED_S": "1",
    "EDGEFLEET_REQUEST_TIMEOUT_S": "5",
    "EDGEFLEET_INTRA_OP_THREADS": "1",
}
MODEL = "m"


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll ``check`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def push(server: ServerProcess, path: Path, version: str, name: str = MODEL) -> dict[str, Any]:
    with server.client() as client, path.open("rb") as f:
        response = client.post(
            "/models",
            data={"name": name, "version": version},
            files={"file": (path.name, f, "application/octet-stream")},
        )
    assert response.is_success, response.text
    row: dict[str, Any] = response.json()["model"]
    return row


def deploy(server: ServerProcess, version: str, name: str = MODEL) -> dict[str, Any]:
    result: dict[str, Any] = server.operator(
        "POST", "/deployments", json={"model": name, "version": version}
    )
    return result


def devices(server: ServerProcess) -> dict[str, dict[str, Any]]:
    return {d["device_id"]: d for d in server.operator("GET", "/devices")}


def heartbeats_pass(server: ServerProcess, ids: list[str], beats: int = 3) -> None:
    """Wait until each device has been seen ``beats`` more times (its uploads run meanwhile).

    What a test waits on before checking that something did *not* happen: the agents were
    alive and talking to the server for several of their intervals, however slow the machine.
    """
    seen = {d: {devices(server)[d]["last_seen_at"]} for d in ids}

    def more_beats() -> bool:
        for dev, device in devices(server).items():
            if dev in seen:
                seen[dev].add(device["last_seen_at"])
        return all(len(stamps) > beats for stamps in seen.values())

    wait_for(f"{beats} more heartbeats from every device", more_beats)


def active_of(device: dict[str, Any]) -> str | None:
    active = (device.get("inventory") or {}).get("active_model") or {}
    return f"{active['name']}@{active['version']}" if active.get("name") else None


def device_id(agent: AgentProcess) -> str:
    """The id the agent got at enrolment (which may finish after its OIP server is up)."""
    credential = agent.data_dir / "credential.json"
    wait_for(f"{agent.data_dir.name} to enrol", credential.exists)
    return str(json.loads(credential.read_text())["device_id"])


def state_of(agent: AgentProcess) -> dict[str, Any]:
    state: dict[str, Any] = json.loads((agent.data_dir / "state.json").read_text())
    return state


def active_version(agent: AgentProcess) -> str | None:
    """The version ``state.json`` names as active (None before the first activation)."""
    if not (agent.data_dir / "state.json").exists():
        return None
    active = state_of(agent).get("active") or {}
    version = active.get("version")
    return None if version is None else str(version)


def merged_count(server: ServerProcess, dev: str, name: str = MODEL) -> int:
    result = server.operator("GET", "/telemetry", params={"device_id": dev, "model": name})
    return sum(int(row["count"]) for row in result["fleet"])


def infer(agent: AgentProcess, data: DigitsData, n: int) -> None:
    """Send ``n`` inferences to ``agent``'s local OIP endpoint; every one must succeed."""
    client = OIPClient(agent.serve_url)
    try:
        for i in range(n):
            j = i % len(data.y_holdout)
            client.infer(MODEL, {"input": data.x_holdout[j : j + 1]})
    finally:
        client.close()


def serves(agent: AgentProcess, name: str = MODEL) -> bool:
    client = OIPClient(agent.serve_url, timeout=5)
    try:
        client.metadata(name)
        return True
    except Exception:
        return False
    finally:
        client.close()


def start_agent(
    stack: ExitStack,
    root: Path,
    name: str,
    server_url: str,
    token: str,
    env: dict[str, str] | None = None,
) -> AgentProcess:
    return stack.enter_context(
        AgentProcess.start(
            root / name,
            server=server_url,
            enroll_token=token,
            labels={"agent": name},
            env={**AGENT_ENV, **(env or {})},
        )
    )
