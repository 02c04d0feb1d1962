"""Federated updates over HTTP: bad ones refused with a stored reason, the round going on.

A real uvicorn server on loopback with a real SQLite store. The test holds the server's
:class:`ServerContext` and steps jobs itself with explicit ``now`` values, so rounds open and
close exactly when a test says (the server's own federated loop never gets its lease).
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn

from edgefleet.errors import ConfigurationError
from edgefleet.federated import DenseCodec, load_task, model_hash
from edgefleet.federated.compression import wire
from edgefleet.protocol.v1 import FL_EXAMPLES_HEADER, FL_METRICS_HEADER
from edgefleet.server.api.fl import MODEL_HASH_HEADER
from edgefleet.server.app import _FEDERATED, build_context, create_app
from edgefleet.server.context import ServerContext
from edgefleet.server.fl import JobConfig, max_update_bytes
from edgefleet.server.init import initialize
from edgefleet.server.services import fl, fl_model, fl_status
from edgefleet.server.settings import load_settings
from edgefleet.server.store import FLJobRow, FLUpdateRow
from edgefleet.testing.models.echo import build_echo_model

from .conftest import LiveServer

FL_LOCK = _FEDERATED
"""The lease under which the server's own loop steps jobs; the tests hold it instead."""


@dataclass
class Device:
    """An enrolled device and its credential."""

    live: LiveServer
    device_id: str
    credential: str

    def upload(
        self,
        job_id: str,
        payload: bytes,
        *,
        examples: str | None = "40",
        metrics: str | None = None,
        round_: int = 1,
    ) -> httpx.Response:
        headers = {"Content-Type": "application/octet-stream"}
        if examples is not None:
            headers[FL_EXAMPLES_HEADER] = examples
        if metrics is not None:
            headers[FL_METRICS_HEADER] = metrics
        with self.live.device(self.credential) as client:
            return client.post(f"/fl/{job_id}/{round_}/update", content=payload, headers=headers)

    def model(self, job_id: str, round_: int = 1) -> httpx.Response:
        with self.live.device(self.credential) as client:
            return client.get(f"/fl/{job_id}/{round_}/model")

    def decline(self, job_id: str, reason: str, round_: int = 1) -> httpx.Response:
        with self.live.device(self.credential) as client:
            return client.post(f"/fl/{job_id}/{round_}/decline", json={"reason": reason})

    def desired(self) -> dict[str, Any]:
        with self.live.device(self.credential) as client:
            response = client.get("/desired-state")
        assert response.status_code == 200, response.text
        signed: dict[str, Any] = response.json()["signed"]
        return signed


@dataclass
class Fleet:
    """A running server, its context, and model ``digits@1`` (the digits task's model)."""

    live: LiveServer
    ctx: ServerContext

    def enroll(self, *, trains: bool = True) -> Device:
        body = self.live.enroll()
        device = Device(self.live, body["device_id"], body["credential"])
        beat = {"inventory": {"fl_tasks": ["digits"] if trains else []}, "state": "serving"}
        with self.live.device(device.credential) as client:
            response = client.post("/heartbeat", json=beat)
        assert response.status_code == 200, response.text
        return device

    def start(self, **config: Any) -> FLJobRow:
        self.ctx.heartbeats.flush()
        settings: dict[str, Any] = {"rounds": 1, "per_round": 2, "deadline_s": 300.0, **config}
        return fl.start(
            self.ctx,
            task="digits",
            model="digits",
            version="1",
            selector={},
            config=JobConfig(**settings),
            now=time.time(),
        )

    def step(self, job_id: str, now: float) -> FLJobRow:
        self.ctx.heartbeats.flush()
        return fl.step(self.ctx, self.job(job_id), now)

    def job(self, job_id: str) -> FLJobRow:
        found = self.ctx.store.get_fl_job(job_id)
        assert found is not None
        return found

    def part(self, job_id: str, device: Device, round_: int = 1) -> FLUpdateRow:
        found = self.ctx.store.get_fl_update(job_id, round_, device.device_id)
        assert found is not None
        return found


def _serve(ctx: ServerContext) -> Generator[str, None, None]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    ready = threading.Event()
    config = uvicorn.Config(
        create_app(ctx.settings, ctx, on_ready=ready.set), log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    if not ready.wait(60):
        raise RuntimeError("server did not start")
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("server did not start listening")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@pytest.fixture(scope="module")
def digits_onnx() -> bytes:
    task = load_task("digits")
    return task.to_onnx(task.build_model(seed=0))


BACKENDS = pytest.mark.parametrize("fleet", ["sqlite", "postgresql"], indirect=True)
"""Run a test on a PostgreSQL database as well as on SQLite (the default)."""


@pytest.fixture
def fleet(tmp_path: Path, digits_onnx: bytes, request: pytest.FixtureRequest) -> Iterator[Fleet]:
    data_dir = tmp_path / "server"
    on_postgres = getattr(request, "param", "sqlite") == "postgresql"
    url = request.getfixturevalue("postgres_url") if on_postgres else None
    token = initialize(data_dir, database_url=url).operator_token
    ctx = build_context(load_settings(data_dir, fl_eval_s=3600.0, database_url=url))
    serving = _serve(ctx)
    try:
        assert ctx.store.try_lock(FL_LOCK, "tests", 3600.0, time.time())
        live = LiveServer(next(serving), data_dir, token)
        with live.operator() as op:
            pushed = op.post(
                "/models",
                data={"name": "digits", "version": "1"},
                files={"file": ("digits.onnx", digits_onnx, "application/octet-stream")},
            )
        assert pushed.status_code == 201, pushed.text
        yield Fleet(live, ctx)
    finally:
        serving.close()  # stops the server (the generator's finally) before the store closes
        ctx.store.close()


def _update(num_params: int, seed: int = 1) -> np.ndarray[Any, np.dtype[np.float32]]:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(num_params) * 0.01).astype(np.float32)


NUM_PARAMS = 1898
"""Parameters of the digits task's model."""


# -- bad updates ------------------------------------------------------------------------------


def test_bad_updates_are_refused_with_stored_reasons_and_the_good_one_is_aggregated(
    fleet: Fleet,
) -> None:
    names = ["good", "shape", "nan", "inf", "big", "no_count", "bad_count", "bad_metrics"]
    devices = {name: fleet.enroll() for name in names}
    outsider = fleet.enroll(trains=False)
    job = fleet.start(per_round=len(names))
    assert job.config["num_params"] == NUM_PARAMS
    opened_at = time.time()
    job = fleet.step(job.job_id, opened_at)
    assert job.round == 1
    parts = fleet.ctx.store.list_fl_updates(job.job_id, 1)
    assert sorted(p.device_id for p in parts) == sorted(d.device_id for d in devices.values())
    initial = fl_model.load_params(fleet.ctx, job.model_sha256)

    delta = _update(NUM_PARAMS)
    good = DenseCodec().encode(delta)
    nan = np.zeros(NUM_PARAMS, np.float32)
    nan[7] = np.nan
    inf = np.zeros(NUM_PARAMS, np.float32)
    inf[11] = np.inf
    limit = max_update_bytes(NUM_PARAMS)
    bad: dict[str, tuple[httpx.Response, int, str]] = {
        "shape": (
            devices["shape"].upload(job.job_id, DenseCodec().encode(np.zeros(100, np.float32))),
            400,
            f"payload is for a vector of 100 values, expected {NUM_PARAMS}",
        ),
        "nan": (
            devices["nan"].upload(job.job_id, wire.encode_dense(nan)),
            400,
            "value 7 is np.float32(nan); payloads carry finite values only",
        ),
        "inf": (
            devices["inf"].upload(job.job_id, wire.encode_dense(inf)),
            400,
            "value 11 is np.float32(inf); payloads carry finite values only",
        ),
        "big": (
            devices["big"].upload(job.job_id, b"\0" * (limit + 1)),
            413,
            f"update of {limit + 1} bytes is over this job's limit of {limit} bytes",
        ),
        "no_count": (
            devices["no_count"].upload(job.job_id, good, examples=None),
            400,
            "the update names no example count (X-Edgefleet-Examples header)",
        ),
        "bad_count": (
            devices["bad_count"].upload(job.job_id, good, examples="lots"),
            400,
            "example count 'lots' is not an integer",
        ),
        "bad_metrics": (
            devices["bad_metrics"].upload(job.job_id, good, metrics="{loss: 0.5"),
            400,
            "the update's metrics header is not valid JSON",
        ),
    }
    for name, (response, status, reason) in bad.items():
        assert response.status_code == status, (name, response.text)
        assert reason in response.json()["error"], name
        stored = fleet.part(job.job_id, devices[name])
        assert (stored.state, stored.num_examples, stored.payload_sha256) == ("rejected", 0, None)
        assert reason in stored.reason, name
    assert fleet.part(job.job_id, devices["big"]).bytes_up == limit + 1

    # the round goes on: still open after every rejection, and the good update is taken
    assert fleet.step(job.job_id, opened_at + 1).round == 1
    assert fleet.ctx.store.get_fl_round(job.job_id, 1) is not None
    sent = devices["good"].upload(job.job_id, good, examples="40", metrics='{"loss": 0.75}')
    assert sent.status_code == 200, sent.text
    assert sent.json()["accepted"] is True
    taken = fleet.part(job.job_id, devices["good"])
    assert (taken.state, taken.num_examples, taken.bytes_up) == ("accepted", 40, len(good))
    assert taken.metrics == {"loss": 0.75}

    again = devices["good"].upload(job.job_id, good, examples="40")
    assert again.status_code == 200, again.text
    assert (again.json()["accepted"], again.json()["detail"]) == (True, "already taken")
    other = devices["good"].upload(job.job_id, DenseCodec().encode(_update(NUM_PARAMS, seed=2)))
    assert other.status_code == 409, other.text
    assert "already sent round 1 (accepted)" in other.json()["error"]
    assert fleet.part(job.job_id, devices["good"]) == taken

    retry = devices["shape"].upload(job.job_id, good)
    assert retry.status_code == 409, retry.text
    assert "already sent round 1 (rejected)" in retry.json()["error"]

    stranger = outsider.upload(job.job_id, good)
    assert stranger.status_code == 403, stranger.text
    assert f"device {outsider.device_id} was not selected for round 1" in stranger.json()["error"]
    refused = fleet.part(job.job_id, outsider)
    assert (refused.state, refused.bytes_up) == ("refused", len(good))

    job = fleet.step(job.job_id, opened_at + 2)  # every selected device answered
    closed = fleet.ctx.store.get_fl_round(job.job_id, 1)
    assert closed is not None
    assert closed.state == "closed"
    result = closed.result
    assert result["closed_by"] == "every selected device answered"
    assert (result["selected"], result["participants"], result["rejected"]) == (8, 1, 7)
    assert (result["refused"], result["examples"], result["train_loss"]) == (1, 40, 0.75)
    np.testing.assert_allclose(
        fl_model.load_params(fleet.ctx, job.model_sha256), initial + delta, atol=1e-6
    )

    late = devices["shape"].upload(job.job_id, good)
    assert late.status_code == 409, late.text
    assert f"round 1 of job {job.job_id} is closed" in late.json()["error"]
    noted = fleet.part(job.job_id, devices["shape"])
    assert noted.state == "rejected"
    assert noted.reason == (
        f"update does not decode as dense: payload is for a vector of 100 values, expected "
        f"{NUM_PARAMS}; device {devices['shape'].device_id} already sent round 1 (rejected); "
        f"round 1 of job {job.job_id} is closed"
    )

    with fleet.live.operator() as op:
        shown = op.get(f"/fl/jobs/{job.job_id}").json()
    [round_one] = shown["rounds"]
    by_device = {d["device_id"]: d for d in round_one["devices"]}
    assert by_device[devices["nan"].device_id]["state"] == "rejected"
    assert "finite values only" in by_device[devices["nan"].device_id]["reason"]
    assert by_device[outsider.device_id]["state"] == "refused"


@BACKENDS
@pytest.mark.parametrize(
    ("metrics", "reason"),
    [
        ("[" * 2000, "the update's metrics header nests JSON 2000 levels deep; at most 1"),
        ('{"loss": [[0.5]]}', "the update's metrics header nests JSON 3 levels deep; at most 1"),
        (
            '{"loss": 0.5' + " " * 5000 + "}",
            "the update's metrics header is 5013 characters long; at most 4096 are read",
        ),
    ],
    ids=["deep", "nested", "long"],
)
def test_a_metrics_header_too_deep_or_too_long_is_refused_and_the_round_goes_on(
    fleet: Fleet, metrics: str, reason: str
) -> None:
    bad, good = fleet.enroll(), fleet.enroll()
    job = fleet.start(per_round=2, min_results=1)
    opened_at = time.time()
    fleet.step(job.job_id, opened_at)
    update = DenseCodec().encode(_update(NUM_PARAMS))

    refused = bad.upload(job.job_id, update, metrics=metrics)

    assert refused.status_code == 400, refused.text
    assert refused.json()["code"] == "protocol.malformed"
    assert reason in refused.json()["error"]
    stored = fleet.part(job.job_id, bad)
    assert (stored.state, stored.payload_sha256) == ("rejected", None)
    assert reason in stored.reason
    taken = good.upload(job.job_id, update, metrics='{"loss": 0.5}')
    assert taken.status_code == 200, taken.text
    fleet.step(job.job_id, opened_at + 1)  # every selected device has answered: it closes
    closed = fleet.ctx.store.get_fl_round(job.job_id, 1)
    assert closed is not None
    assert closed.state != "open"


def test_a_refused_second_update_is_not_kept_on_the_server(fleet: Fleet) -> None:
    device = fleet.enroll()
    job = fleet.start(per_round=1)
    fleet.step(job.job_id, time.time())
    assert device.upload(job.job_id, DenseCodec().encode(_update(NUM_PARAMS))).status_code == 200
    junk = b"\xff" * (4 * max_update_bytes(NUM_PARAMS))
    response = device.upload(job.job_id, junk)
    assert response.status_code in (409, 413), response.text
    assert not fleet.ctx.artifacts.exists(hashlib.sha256(junk).hexdigest())


# -- the round's model ------------------------------------------------------------------------


def test_only_a_selected_device_gets_the_rounds_model_and_its_hash_matches(
    fleet: Fleet,
) -> None:
    first, second = fleet.enroll(), fleet.enroll()
    job = fleet.start(per_round=1)
    job = fleet.step(job.job_id, time.time())
    [part] = fleet.ctx.store.list_fl_updates(job.job_id, 1)
    selected, unselected = (first, second) if part.device_id == first.device_id else (second, first)

    assignment = selected.desired()["fl"]
    assert (assignment["job_id"], assignment["round"]) == (job.job_id, 1)
    assert assignment["num_params"] == NUM_PARAMS
    assert unselected.desired()["fl"] is None
    response = selected.model(job.job_id)
    assert response.status_code == 200, response.text
    assert len(response.content) == 4 * NUM_PARAMS
    params = np.frombuffer(response.content, dtype="<f4")
    assert response.headers[MODEL_HASH_HEADER] == assignment["model_hash"]
    assert model_hash(params) == assignment["model_hash"]
    np.testing.assert_array_equal(params, fl_model.load_params(fleet.ctx, job.model_sha256))
    assert fleet.part(job.job_id, selected).bytes_down == 4 * NUM_PARAMS

    refused = unselected.model(job.job_id)
    assert refused.status_code == 403, refused.text
    assert f"device {unselected.device_id} was not selected for round 1" in refused.json()["error"]
    assert fleet.ctx.store.get_fl_update(job.job_id, 1, unselected.device_id) is None
    assert selected.model(job.job_id, round_=2).status_code == 404


# -- declining, deadlines, cancelling ---------------------------------------------------------


def test_a_declined_round_is_stored_as_rejected_and_the_round_goes_on(fleet: Fleet) -> None:
    first, second = fleet.enroll(), fleet.enroll()
    job = fleet.start(per_round=2)
    opened_at = time.time()
    fleet.step(job.job_id, opened_at)
    response = first.decline(job.job_id, "federated learning is not enabled here")
    assert response.status_code == 200, response.text
    assert (response.json()["accepted"], response.json()["detail"]) == (False, "declined")
    declined = fleet.part(job.job_id, first)
    assert (declined.state, declined.reason) == (
        "rejected",
        "declined: federated learning is not enabled here",
    )
    twice = first.decline(job.job_id, "again")
    assert twice.status_code == 409, twice.text
    fleet.step(job.job_id, opened_at + 1)
    still = fleet.ctx.store.get_fl_round(job.job_id, 1)
    assert still is not None
    assert still.state == "open"
    assert fleet.part(job.job_id, second).state == "assigned"
    assert second.upload(job.job_id, DenseCodec().encode(_update(NUM_PARAMS))).status_code == 200


def test_a_round_with_no_update_fails_at_its_deadline_and_the_global_model_stays(
    fleet: Fleet,
) -> None:
    quiet, declining = fleet.enroll(), fleet.enroll()
    job = fleet.start(rounds=2, per_round=2, deadline_s=60.0)
    opened_at = time.time()
    job = fleet.step(job.job_id, opened_at)
    before = job.model_sha256
    assert quiet.desired()["fl"]["round"] == 1
    assert declining.decline(job.job_id, "battery low").status_code == 200
    assert fleet.step(job.job_id, opened_at + 59.0).round == 1
    round_one = fleet.ctx.store.get_fl_round(job.job_id, 1)
    assert round_one is not None
    assert round_one.state == "open"

    job = fleet.step(job.job_id, opened_at + 60.0)
    round_one = fleet.ctx.store.get_fl_round(job.job_id, 1)
    assert round_one is not None
    assert (round_one.state, round_one.closed_at) == ("failed", opened_at + 60.0)
    assert round_one.result["closed_by"] == (
        "deadline: 0 of 2 updates arrived; no update: the global model stays"
    )
    assert (round_one.result["participants"], round_one.result["examples"]) == (0, 0)
    assert job.model_sha256 == before
    assert fleet.part(job.job_id, quiet).state == "missed"
    assert fleet.part(job.job_id, declining).reason == "declined: battery low"
    assert quiet.desired()["fl"] is None
    assert declining.desired()["fl"] is None

    job = fleet.step(job.job_id, time.time())  # round 2 starts from the same global model
    round_two = fleet.ctx.store.get_fl_round(job.job_id, 2)
    assert round_two is not None
    assert (round_two.model_hash, round_two.model_sha256) == (
        round_one.model_hash,
        round_one.model_sha256,
    )


def test_cancelling_a_job_clears_its_devices_assignments(fleet: Fleet) -> None:
    first, second = fleet.enroll(), fleet.enroll()
    job = fleet.start(per_round=2)
    fleet.step(job.job_id, time.time())
    assigned = first.desired()
    assert assigned["fl"]["job_id"] == job.job_id
    assert second.desired()["fl"]["job_id"] == job.job_id
    with fleet.live.operator() as op:
        cancelled = op.post(f"/fl/jobs/{job.job_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert (cancelled.json()["state"], cancelled.json()["reason"]) == (
            "cancelled",
            "cancelled by an operator",
        )
        again = op.post(f"/fl/jobs/{job.job_id}/cancel")
        assert again.status_code == 409, again.text
        assert f"federated job {job.job_id} is cancelled, not running" in again.json()["error"]
    cleared = first.desired()
    assert cleared["fl"] is None
    assert cleared["version"] == assigned["version"] + 1
    assert second.desired()["fl"] is None
    assert fleet.ctx.store.list_fl_jobs(states=("running",)) == []


def test_an_update_for_a_cancelled_jobs_round_is_refused(fleet: Fleet) -> None:
    device = fleet.enroll()
    job = fleet.start(per_round=1)
    fleet.step(job.job_id, time.time())
    fl.cancel(fleet.ctx, job.job_id, time.time())
    response = device.upload(job.job_id, DenseCodec().encode(_update(NUM_PARAMS)))
    assert response.status_code == 409, response.text
    assert fleet.part(job.job_id, device).state != "accepted"


# -- starting a job ---------------------------------------------------------------------------


def test_a_model_that_does_not_fit_the_task_is_refused_at_start(fleet: Fleet) -> None:
    with fleet.live.operator() as op, build_echo_model().open("rb") as f:
        pushed = op.post("/models", data={"name": "echo", "version": "1"}, files={"file": f})
    assert pushed.status_code == 201, pushed.text
    with pytest.raises(ConfigurationError, match="model echo@1 does not fit task 'digits'"):
        fl.start(
            fleet.ctx,
            task="digits",
            model="echo",
            version="1",
            selector={},
            config=JobConfig(rounds=1, per_round=1),
            now=time.time(),
        )
    body = {"task": "digits", "model": "echo", "version": "1", "rounds": 1, "per_round": 1}
    with fleet.live.operator() as op:
        response = op.post("/fl/jobs", json=body)
    assert response.status_code == 400, response.text
    assert "model echo@1 does not fit task 'digits'" in response.json()["error"]
    assert fleet.ctx.store.list_fl_jobs() == []


def test_the_operator_api_names_what_is_wrong_with_a_job(fleet: Fleet) -> None:
    base = {"task": "digits", "model": "digits", "version": "1", "rounds": 1, "per_round": 2}
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"deadline": "soon"}, 400, "bad duration 'soon'"),
        ({"strategy": "fedmagic"}, 400, "strategy: strategy spec 'fedmagic'"),
        ({"compression": "zip"}, 400, "compression: unknown codec 'zip'"),
        ({"min_results": 3}, 400, "min_results (3) cannot exceed per_round (2)"),
        ({"rounds": 0}, 422, "body.rounds"),
        ({"version": "9"}, 404, "no model version digits@9"),
    ]
    with fleet.live.operator() as op:
        for change, status, fragment in cases:
            response = op.post("/fl/jobs", json={**base, **change})
            assert response.status_code == status, (change, response.text)
            assert fragment in response.json()["error"], change
        started = op.post("/fl/jobs", json={**base, "deadline": "90s"})
    assert started.status_code == 201, started.text
    assert started.json()["config"]["deadline_s"] == 90.0
    assert [j.job_id for j in fleet.ctx.store.list_fl_jobs()] == [started.json()["job_id"]]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"rounds": 0}, "rounds must be an integer >= 1, got 0"),
        ({"per_round": 0}, "per_round must be an integer >= 1, got 0"),
        ({"local_epochs": True}, "local_epochs must be an integer >= 1, got True"),
        ({"min_results": 5}, "min_results (5) cannot exceed per_round (4)"),
        ({"min_results": -1}, "min_results must be >= 1, got -1"),
        ({"deadline_s": 0.0}, "deadline must be > 0 seconds, got 0.0"),
        ({"deadline_s": float("nan")}, "deadline must be > 0 seconds, got nan"),
        ({"learning_rate": -0.1}, "learning_rate must be > 0, got -0.1"),
        ({"batch_size": 0}, "batch_size must be >= 1, got 0"),
        ({"seed": -1}, "seed must be >= 0, got -1"),
        ({"strategy": "fedmagic"}, "strategy: strategy spec 'fedmagic'"),
        ({"compression": "dgc:2"}, "compression: codec spec 'dgc:2'"),
        ({"privacy": "garbage"}, "privacy: "),
    ],
)
def test_bad_job_settings_are_refused_naming_the_field(
    settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        JobConfig(**{"rounds": 3, "per_round": 4, **settings})
    assert message in str(raised.value)


def test_job_settings_round_trip_and_default_min_results_to_per_round() -> None:
    config = JobConfig(rounds=2, per_round=3, compression="topk:0.9", deadline_s=45.0)
    assert config.min_results == 3
    loaded = JobConfig.from_json({**config.to_json(), "from_a_newer_server": 1})
    assert loaded == config
    assert json.loads(json.dumps(config.to_json()))["compression"] == "topk:0.9"


# -- differential privacy at aggregation --------------------------------------------------------


def test_central_privacy_clips_noises_and_reports_the_spent_epsilon(fleet: Fleet) -> None:
    devices = [fleet.enroll(), fleet.enroll()]
    job = fleet.start(per_round=2, privacy="dp:clip=0.1,noise=1.0,delta=1e-5,at=relay")
    job = fleet.step(job.job_id, time.time())
    big = _update(NUM_PARAMS) * 100  # L2 norm about 4.4: clipped to 0.1
    for device in devices:
        assert device.upload(job.job_id, DenseCodec().encode(big)).status_code == 200
    before = fleet.ctx.store.get_fl_round(job.job_id, 1)
    assert before is not None
    job = fleet.step(job.job_id, time.time())
    result = fl_status.status(fleet.ctx, job.job_id, time.time())["rounds"][0]
    privacy = result["privacy"]
    assert privacy["clipped"] == 2
    assert privacy["rounds"] == 1
    assert 0 < privacy["epsilon"] < 100
    assert privacy["spec"] == "dp:clip=0.1,noise=1.0,delta=1e-05,at=relay"
    start = fl_model.load_params(fleet.ctx, before.model_sha256)
    moved = fl_model.load_params(fleet.ctx, fleet.job(job.job_id).model_sha256) - start
    # the mean of two clipped updates has norm <= 0.1; the noise (std 1.0 * 0.1 / 2 per
    # coordinate over 1898 coordinates) dominates: about 0.05 * sqrt(1898) = 2.2
    assert 1.0 < float(np.linalg.norm(moved)) < 4.0


# -- two jobs, one fleet ----------------------------------------------------------------------


def test_a_device_in_another_jobs_round_is_left_to_that_job(fleet: Fleet) -> None:
    devices = [fleet.enroll() for _ in range(3)]
    first = fleet.start(per_round=2)
    first = fleet.step(first.job_id, time.time())
    busy = {p.device_id for p in fleet.ctx.store.list_fl_updates(first.job_id, 1)}
    second = fleet.start(per_round=3)
    second = fleet.step(second.job_id, time.time())
    free = {p.device_id for p in fleet.ctx.store.list_fl_updates(second.job_id, 1)}
    assert len(busy) == 2
    assert free == {d.device_id for d in devices} - busy
    for device in devices:  # every device holds the assignment of the job that selected it
        expected = first.job_id if device.device_id in busy else second.job_id
        assert device.desired()["fl"]["job_id"] == expected
    third = fleet.start(per_round=1)
    third = fleet.step(third.job_id, time.time())
    assert third.round == 0
    assert third.reason.startswith("waiting for devices")


def test_closing_a_round_is_audited_as_the_servers_decision(fleet: Fleet) -> None:
    fleet.enroll()
    job = fleet.start(rounds=2, per_round=1, deadline_s=60.0)
    opened_at = time.time()
    fleet.step(job.job_id, opened_at)
    fleet.step(job.job_id, opened_at + 60.0)  # the deadline closes round 1
    [entry] = fleet.ctx.store.list_audit(limit=10, action="fl")
    assert (entry.actor, entry.action, entry.target) == (
        "server",
        "fl.round_close",
        f"{job.job_id}/1",
    )
    assert entry.outcome.startswith("failed: deadline")
    assert entry.at == opened_at + 60.0
