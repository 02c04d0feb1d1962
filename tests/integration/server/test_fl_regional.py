"""A regional relay's aggregate: taken for its region's selected devices, refused otherwise."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest

from edgefleet.federated import DenseCodec, load_task
from edgefleet.federated.compression import wire
from edgefleet.protocol.v1 import API_PREFIX

from .conftest import LiveServer, ServerFactory


@dataclass
class Round:
    """A server with an open round 1 of a job over eu-1, eu-2 (region eu) and us-1 (region us)."""

    live: LiveServer
    job_id: str
    num_params: int
    devices: dict[str, str]  # name -> device id
    credentials: dict[str, str]  # name -> device credential

    def regional(
        self,
        region: str,
        names: list[str],
        payload: bytes | None = None,
        examples: str = "10",
        round_: int = 1,
        token: str | None = None,
    ) -> httpx.Response:
        ids = [self.devices.get(n, n) for n in names]
        body = DenseCodec().encode(np.full(self.num_params, 0.01, np.float32))
        with self.live.client(token or self.live.operator_token, "/api/operator/v1") as op:
            return op.post(
                f"/fl/jobs/{self.job_id}/rounds/{round_}/regional",
                content=body if payload is None else payload,
                headers={
                    "Content-Type": "application/octet-stream",
                    "X-Edgefleet-Region": region,
                    "X-Edgefleet-Devices": ",".join(ids),
                    "X-Edgefleet-Examples": examples,
                },
            )

    def status(self) -> dict[str, Any]:
        with self.live.operator() as op:
            body: dict[str, Any] = op.get(f"/fl/jobs/{self.job_id}").json()
        return body

    def parts(self) -> dict[str, dict[str, Any]]:
        return {d["device_id"]: d for d in self.status()["rounds"][0]["devices"]}


def _enroll(live: LiveServer, region: str) -> dict[str, Any]:
    with live.operator() as op:
        token = op.post("/enroll-tokens", json={"labels": {"region": region}}).json()["token"]
    with live.client(prefix=API_PREFIX) as client:
        response = client.post(
            "/enroll", json={"token": token, "inventory": {"fl_tasks": ["digits"]}}
        )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def open_round(server_factory: ServerFactory) -> Round:
    live = server_factory(fl_eval_s=0.2)
    task = load_task("digits")
    model = task.to_onnx(task.build_model(seed=0))
    with live.operator() as op:
        pushed = op.post(
            "/models",
            data={"name": "digits", "version": "1"},
            files={"file": ("digits.onnx", model, "application/octet-stream")},
        )
        assert pushed.is_success, pushed.text
    enrolled = {name: _enroll(live, name.split("-")[0]) for name in ("eu-1", "eu-2", "us-1")}
    with live.operator() as op:
        started = op.post(
            "/fl/jobs",
            json={
                "task": "digits",
                "model": "digits",
                "version": "1",
                "rounds": 1,
                "per_round": 3,
                "deadline": "120s",
            },
        )
        assert started.status_code == 201, started.text
    job = started.json()
    result = Round(
        live,
        job["job_id"],
        int(job["config"]["num_params"]),
        {name: e["device_id"] for name, e in enrolled.items()},
        {name: e["credential"] for name, e in enrolled.items()},
    )
    deadline = time.monotonic() + 30
    while not result.status()["rounds"]:
        assert time.monotonic() < deadline, "round 1 did not open"
        time.sleep(0.1)
    return result


def _untouched(r: Round) -> None:
    parts = r.parts()
    assert sorted(parts) == sorted(r.devices.values())
    assert {p["state"] for p in parts.values()} == {"assigned"}


def test_an_aggregate_is_refused_with_a_reason_and_nothing_is_stored(open_round: Round) -> None:
    r = open_round
    values = np.ones(r.num_params, np.float32)
    values[7] = np.nan  # the codec refuses to encode NaN: write the wire format directly
    nan = wire.encode_dense(values, codec_id=DenseCodec().codec_id)
    short = DenseCodec().encode(np.zeros(r.num_params - 1, np.float32))
    cases = [
        (r.regional("eu", ["eu-1", "us-1"]), 403, "not in region eu"),
        (r.regional("eu", ["eu-1", "dev-unknown"]), 403, "was not selected"),
        (r.regional("eu", ["eu-1"], payload=nan), 400, "finite values only"),
        (r.regional("eu", ["eu-1"], payload=short), 400, "does not decode"),
        (r.regional("eu", ["eu-1"], payload=b""), 400, "empty"),
        (r.regional("eu", ["eu-1"], examples="0"), 400, "example count"),
        (r.regional("eu", ["eu-1"], examples="many"), 400, "not an integer"),
        (r.regional("eu", []), 400, "name the devices"),
        (r.regional("eu", ["eu-1", "eu-1"]), 400, "twice"),
        (r.regional("e u", ["eu-1"]), 400, "not a region name"),
        (r.regional("eu", ["eu-1"], round_=2), 404, "no round 2"),
        (r.regional("eu", ["eu-1"], token=r.credentials["eu-1"]), 403, "device credentials"),
    ]
    for response, status, message in cases:
        assert response.status_code == status, response.text
        assert message in response.json()["error"], response.text
    _untouched(r)


def test_an_aggregate_stands_for_its_devices_once_and_the_round_closes_with_it(
    open_round: Round,
) -> None:
    r = open_round
    taken = r.regional("eu", ["eu-1", "eu-2"], examples="120")
    assert taken.status_code == 200, taken.text
    assert taken.json() == {
        "part": "region:eu",
        "devices": 2,
        "examples": 120,
        "bytes": len(DenseCodec().encode(np.zeros(r.num_params, np.float32))),
    }
    parts = r.parts()
    for name in ("eu-1", "eu-2"):
        part = parts[r.devices[name]]
        assert part["state"] == "in_region"
        assert part["reason"] == "aggregated in region eu"
        assert part["bytes_up"] == 0
    assert parts["region:eu"]["state"] == "accepted"
    assert parts["region:eu"]["num_examples"] == 120
    assert parts[r.devices["us-1"]]["state"] == "assigned"

    again = r.regional("eu", ["eu-1", "eu-2"])
    assert again.status_code == 409
    assert "already sent" in again.json()["error"]
    assert r.parts() == parts

    with r.live.device(r.credentials["us-1"]) as device:
        sent = device.post(
            f"/fl/{r.job_id}/1/update",
            content=DenseCodec().encode(np.zeros(r.num_params, np.float32)),
            headers={"X-Edgefleet-Examples": "60"},
        )
    assert sent.status_code == 200, sent.text
    deadline = time.monotonic() + 30
    while (status := r.status())["rounds"][0]["state"] == "open":
        assert time.monotonic() < deadline, "round 1 did not close"
        time.sleep(0.1)
    closed = status["rounds"][0]
    assert closed["state"] == "closed"
    assert closed["participants"] == 3
    assert closed["selected"] == 3
    assert closed["regions"] == ["eu"]
    assert closed["examples"] == 180

    late = r.regional("us", ["us-1"])
    assert late.status_code == 409
    assert "closed" in late.json()["error"]


def test_a_device_credential_tells_who_it_is(open_round: Round) -> None:
    r = open_round
    with r.live.device(r.credentials["eu-2"]) as device:
        me = device.get("/identity")
    assert me.status_code == 200
    assert me.json() == {"device_id": r.devices["eu-2"], "labels": {"region": "eu"}}
    with r.live.device("not-a-credential") as device:
        assert device.get("/identity").status_code == 401
    with r.live.device(r.live.operator_token) as device:
        assert device.get("/identity").status_code == 403
