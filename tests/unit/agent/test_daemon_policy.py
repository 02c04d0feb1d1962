"""The whole agent with the update hold, maintenance windows and a shadow candidate."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edgefleet.agent.daemon import Agent
from edgefleet.protocol.v1 import MaintenanceWindow, ShadowSpec, TelemetryWindow, UpdatePolicy
from tests.unit.agent.loopback import ENROLL_TOKEN, LoopbackControlPlane
from tests.unit.agent.models import classifier_model, scale_model
from tests.unit.agent.test_daemon import infer, settings, wait_for

CLASSIFY = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 0, 0, 0]}]}


@pytest.fixture
def agent(data_dir: Path, control_plane: LoopbackControlPlane) -> Iterator[Agent]:
    agent = Agent(
        settings(data_dir, control_plane.url, enroll_token=ENROLL_TOKEN), announce=lambda _: None
    )
    agent.start()
    wait_for(lambda: agent.device_id)
    yield agent
    agent.stop()


def test_a_hold_defers_activation_until_released_then_activates_at_once(
    agent: Agent, control_plane: LoopbackControlPlane
) -> None:
    device = agent.device_id
    assert device is not None
    control_plane.set_desired(device, control_plane.publish("scaler", 1, scale_model(1)))
    wait_for(lambda: "scaler" in agent.repository.names())
    hold_url = f"{agent.serve_url}/agent/v1/hold"
    taken = httpx.post(hold_url, json={"reason": "night shift"}).json()
    assert taken["held"] is True

    control_plane.set_desired(device, control_plane.publish("scaler", 2, scale_model(2)))
    wait_for(lambda: "deferred" in control_plane.event_kinds())
    assert "download_finished" in control_plane.event_kinds()  # downloaded ahead
    assert infer(agent.serve_url) == 1.0
    beat = wait_for(lambda: [h for h in control_plane.heartbeats if h.held_since])[-1]
    assert beat.held_since == taken["since"]
    assert beat.state == "deferred"

    # The release alone activates the downloaded model: no new desired state can arrive now.
    control_plane.overrides["/desired-state"] = (503, b"desired state unavailable")
    assert httpx.delete(hold_url).json()["held"] is False
    wait_for(lambda: infer(agent.serve_url) == 2.0)
    del control_plane.overrides["/desired-state"]
    wait_for(lambda: "hold_released" in control_plane.event_kinds())
    kinds = control_plane.event_kinds()
    assert kinds.index("held") < kinds.index("deferred") < kinds.index("hold_released")


def test_the_hold_survives_a_restart(
    data_dir: Path, control_plane: LoopbackControlPlane, agent: Agent
) -> None:
    httpx.post(f"{agent.serve_url}/agent/v1/hold", json={"reason": "x"})
    agent.stop()
    again = Agent(settings(data_dir, control_plane.url), announce=lambda _: None)
    again.start()
    try:
        status = httpx.get(f"{again.serve_url}/agent/v1/hold").json()
        assert (status["held"], status["reason"]) == (True, "x")
    finally:
        again.stop()


def test_outside_the_windows_nothing_is_activated(
    agent: Agent, control_plane: LoopbackControlPlane
) -> None:
    device = agent.device_id
    assert device is not None
    hour = time.gmtime().tm_hour
    closed = UpdatePolicy(
        windows=[MaintenanceWindow(cron=f"0 {(hour + 12) % 24} * * *", duration_s=60)]
    )
    v1 = control_plane.publish("scaler", 1, scale_model(1))
    control_plane.set_desired(device, v1, policy=closed)
    wait_for(lambda: "deferred" in control_plane.event_kinds())
    assert agent.repository.names() == []
    always = UpdatePolicy(windows=[MaintenanceWindow(cron="* * * * *", duration_s=60)])
    control_plane.set_desired(device, v1, policy=always)
    wait_for(lambda: "scaler" in agent.repository.names())


def test_shadow_windows_reach_the_server(agent: Agent, control_plane: LoopbackControlPlane) -> None:
    device = agent.device_id
    assert device is not None
    active = control_plane.publish("scaler", 1, classifier_model())
    control_plane.set_desired(device, active)
    wait_for(lambda: "scaler" in agent.repository.names())
    candidate = control_plane.publish(
        "scaler",
        2,
        classifier_model((1, 0, 2, 3)),
        calibration={"temperature": "1.5"},  # as the server signs it
    )
    control_plane.set_desired(device, active, shadow=ShadowSpec(model=candidate, sample_rate=1.0))
    wait_for(lambda: "shadow_started" in control_plane.event_kinds())
    for _ in range(5):
        answer = httpx.post(f"{agent.serve_url}/v2/models/scaler/infer", json=CLASSIFY).json()
        assert answer["model_version"] == "1"

    def shadow_windows() -> list[TelemetryWindow]:
        return [w for w in control_plane.windows.values() if w.role == "shadow"]

    wait_for(lambda: sum(w.shadow.compared for w in shadow_windows() if w.shadow) == 5)
    windows = shadow_windows()
    assert {(w.model, w.version) for w in windows} == {("scaler", "2")}
    assert {w.shadow.active_version for w in windows if w.shadow} == {"1"}
    assert sum(w.shadow.disagreed for w in windows if w.shadow) == 5
    assert sum(w.snapshot["count"] for w in windows) == 5  # the shadow's own telemetry
    control_plane.set_desired(device, active)
    wait_for(lambda: "shadow_stopped" in control_plane.event_kinds())
