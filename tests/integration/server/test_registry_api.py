"""Pushing models, deploying them, and what devices then see."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from edgefleet.protocol.signing import verify_desired_state
from edgefleet.protocol.v1 import SignedDesiredState
from edgefleet.telemetry import TelemetrySnapshot
from edgefleet.testing.models import DigitsData
from tests.integration.server.conftest import LiveServer, ServerFactory


def push(live: LiveServer, path: Path, name: str = "digits", **form: Any) -> Any:
    with live.operator() as op, path.open("rb") as f:
        return op.post(
            "/models",
            data={"name": name, **{k: str(v) for k, v in form.items()}},
            files={"file": (path.name, f, "application/octet-stream")},
        )


def test_push_validates_stores_by_sha256_and_records_metadata(
    live: LiveServer, digits_path: Path
) -> None:
    response = push(live, digits_path, golden=4)
    assert response.status_code == 201, response.text
    row = response.json()["model"]
    sha = hashlib.sha256(digits_path.read_bytes()).hexdigest()
    assert row["sha256"] == sha
    assert (live.data_dir / "artifacts" / "sha256" / sha).read_bytes() == digits_path.read_bytes()
    assert row["version"] == "1"
    assert row["inputs"][0]["name"] == "input"
    assert row["opset"] > 0
    assert row["memory_estimate_bytes"] > 0
    assert row["golden_sha256"]


def test_push_of_identical_bytes_is_idempotent_and_other_bytes_conflict(
    live: LiveServer, digits_path: Path, echo_path: Path
) -> None:
    assert push(live, digits_path, version="a").status_code == 201
    again = push(live, digits_path, version="a")
    assert again.status_code == 201
    assert again.json()["created"] is False
    conflict = push(live, echo_path, version="a")
    assert conflict.status_code == 409


def test_push_rejects_non_onnx_truncated_and_oversized_files(
    server_factory: ServerFactory, digits_path: Path, tmp_path: Path
) -> None:
    live = server_factory(max_model_bytes=digits_path.stat().st_size - 1)
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model")
    response = push(live, text)
    assert response.status_code == 422
    assert response.json()["code"] == "model.load"
    truncated = tmp_path / "half.onnx"
    truncated.write_bytes(digits_path.read_bytes()[: digits_path.stat().st_size // 2])
    assert push(live, truncated).status_code in (413, 422)
    too_big = push(live, digits_path)
    assert too_big.status_code == 413
    with live.operator() as op:
        assert op.get("/models").json() == []


def test_push_with_a_calibration_set_fits_a_temperature(
    live: LiveServer, digits_path: Path, digits: DigitsData, tmp_path: Path
) -> None:
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=digits.x_holdout, y=digits.y_holdout)
    with live.operator() as op, digits_path.open("rb") as f, calib.open("rb") as c:
        response = op.post(
            "/models",
            data={"name": "digits"},
            files={"file": ("d.onnx", f), "calibration": ("c.npz", c)},
        )
    assert response.status_code == 201, response.text
    calibration = response.json()["model"]["calibration"]
    assert calibration["temperature"] > 0
    assert calibration["n"] == len(digits.y_holdout)


def test_deploy_signs_a_desired_state_for_matching_devices_only(
    live: LiveServer, digits_path: Path
) -> None:
    eu = live.enroll({"region": "eu"})
    us = live.enroll({"region": "us"})
    assert push(live, digits_path).status_code == 201
    with live.operator() as op:
        result = op.post(
            "/deployments", json={"model": "digits", "version": "1", "selector": "region=eu"}
        )
    assert result.status_code == 201, result.text
    assert result.json()["devices"] == [eu["device_id"]]
    with live.device(eu["credential"]) as c:
        signed = SignedDesiredState.model_validate(c.get("/desired-state").json())
    state = verify_desired_state(
        signed, eu["desired_state_keys"], device_id=eu["device_id"], last_version=0, now=time.time()
    )
    assert state.model is not None
    assert (state.model.name, state.model.version, state.model.release) == ("digits", "1", 1)
    with live.device(us["credential"]) as c:
        assert c.get("/desired-state").json()["signed"]["model"] is None


def test_devices_enrolling_after_a_deploy_get_it_too(live: LiveServer, digits_path: Path) -> None:
    push(live, digits_path)
    with live.operator() as op:
        deployed = op.post(
            "/deployments",
            json={"model": "digits", "version": "1", "selector": "hw=x86", "allow_empty": True},
        )
        assert deployed.status_code == 201, deployed.text
    late = live.enroll({"hw": "x86"})
    with live.device(late["credential"]) as c:
        assert c.get("/desired-state").json()["signed"]["model"]["version"] == "1"


def test_deploy_errors_name_the_problem(live: LiveServer) -> None:
    with live.operator() as op:
        unknown = op.post("/deployments", json={"model": "nope", "version": "1"})
        assert unknown.status_code == 404
        assert "nope@1" in unknown.json()["error"]
        bad = op.post("/deployments", json={"model": "nope", "version": "1", "selector": "region"})
        assert bad.status_code == 400
        assert "key=value" in bad.json()["error"]


def test_conditional_get_answers_304_and_long_poll_wakes_on_deploy(
    live: LiveServer, digits_path: Path
) -> None:
    device = live.enroll()
    push(live, digits_path)
    with live.device(device["credential"]) as c:
        first = c.get("/desired-state")
        etag = first.headers["etag"]
        assert c.get("/desired-state", headers={"If-None-Match": etag}).status_code == 304

        def deploy_soon() -> None:
            time.sleep(0.5)
            with live.operator() as op:
                op.post("/deployments", json={"model": "digits", "version": "1"})

        thread = threading.Thread(target=deploy_soon)
        thread.start()
        woke = c.get("/desired-state", params={"wait": 20}, headers={"If-None-Match": etag})
        thread.join()
    assert woke.status_code == 200
    assert woke.headers["etag"] != etag
    assert woke.json()["signed"]["model"]["name"] == "digits"


def test_going_back_to_an_old_version_publishes_a_new_higher_release(
    live: LiveServer, digits_path: Path, echo_path: Path
) -> None:
    device = live.enroll()
    push(live, digits_path, name="m")
    push(live, echo_path, name="m")
    with live.operator() as op:
        releases = [
            op.post("/deployments", json={"model": "m", "version": v}).json()["release"]
            for v in ("2", "1")
        ]
    assert releases == [2, 3]
    with live.device(device["credential"]) as c:
        model = c.get("/desired-state").json()["signed"]["model"]
    assert (model["version"], model["release"]) == ("1", 3)


def test_tuf_metadata_and_targets_are_served_to_devices_with_range(
    live: LiveServer, digits_path: Path
) -> None:
    device = live.enroll()
    push(live, digits_path)
    with live.operator() as op:
        op.post("/deployments", json={"model": "digits", "version": "1"})
    with live.device(device["credential"]) as c:
        model = c.get("/desired-state").json()["signed"]["model"]
        assert c.get("/tuf/metadata/timestamp.json").json()["signed"]["_type"] == "timestamp"
        directory, _, base = model["target"].rpartition("/")
        path = f"/tuf/targets/{directory}/{model['sha256']}.{base}"
        part = c.get(path, headers={"Range": "bytes=10-19"})
        assert part.status_code == 206
        assert part.content == digits_path.read_bytes()[10:20]
        assert c.get("/tuf/targets/models/../../etc/passwd").status_code == 404
        assert c.get("/tuf/metadata/nope.json").status_code == 404


def _window(model: str, version: str, latencies: list[float]) -> dict[str, Any]:
    snap = TelemetrySnapshot(model=model, version=version, started_at=0.0, ended_at=60.0)
    for latency in latencies:
        snap.latency.add(latency)
    snap.count = len(latencies)
    snap.errors = 1
    snap.confidence.add_many([0.9] * len(latencies))
    return {
        "window_id": uuid.uuid4().hex,
        "model": model,
        "version": version,
        "started_at": 0.0,
        "ended_at": 60.0,
        "snapshot": snap.to_dict(),
    }


def test_telemetry_retries_never_double_count_and_merge_fleet_wide(live: LiveServer) -> None:
    a, b = live.enroll(), live.enroll()
    wa = _window("digits", "1", [0.001] * 99)
    wb = _window("digits", "1", [0.010] * 99)
    for device, window in ((a, wa), (b, wb)):
        body = {"batch_id": uuid.uuid4().hex, "windows": [window], "dropped_total": 2}
        with live.device(device["credential"]) as c:
            assert c.post("/telemetry", json=body).json() == {"accepted": 1, "duplicates": 0}
            assert c.post("/telemetry", json=body).json() == {"accepted": 0, "duplicates": 1}
    with live.operator() as op:
        merged = op.get("/telemetry", params={"per_device": True}).json()
    fleet = merged["fleet"][0]
    assert (fleet["count"], fleet["errors"], fleet["devices"]) == (198, 2, 2)
    assert 0.9 <= fleet["p50_ms"] <= 11.0
    assert 9.0 <= fleet["p99_ms"] <= 11.0
    assert abs(fleet["mean_confidence"] - 0.9) < 1e-6
    assert len(merged["devices"]) == 2
    assert merged["dropped_windows"] == 4


def test_telemetry_with_a_malformed_snapshot_is_refused(live: LiveServer) -> None:
    device = live.enroll()
    window = _window("digits", "1", [0.001])
    window["snapshot"] = {"schema": 99}
    body = {"batch_id": uuid.uuid4().hex, "windows": [window]}
    with live.device(device["credential"]) as c:
        response = c.post("/telemetry", json=body)
    assert response.status_code == 400
    assert "window" in response.json()["error"]


def test_the_openapi_schema_is_published(live: LiveServer) -> None:
    with live.client() as c:
        schema = c.get("/openapi.json").json()
    assert "/api/operator/v1/models" in schema["paths"]
    assert "/api/device/v1/desired-state" in schema["paths"]
