"""Bad input never gives a 5xx: out-of-range numbers and NUL in text are refused at the edge.

Each test runs on SQLite and on PostgreSQL. A value no column can hold (an integer beyond 64
bits, a round number beyond 32 bits, NUL in text, NaN) is answered 422 with a message naming the
field, before any database sees it; the largest value that fits is stored.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.server.conftest import LiveServer

INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1


def assert_refused(response: httpx.Response, field: str) -> None:
    """A 422 in the error shape whose message names ``field``."""
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "protocol.malformed"
    assert field in body["error"], body


def _event(**overrides: Any) -> dict[str, Any]:
    return {"event_id": "e0000001", "at": 1.8e9, "kind": "verified", **overrides}


def _post_json(client: httpx.Client, path: str, text: str) -> httpx.Response:
    """POST a JSON text as it is (NaN included, which ``json=`` would refuse to write)."""
    return client.post(path, content=text, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize(
    "limit", ["-99999999999999999999", "99999999999999999999", "-1", "0", "1001"]
)
def test_a_list_limit_out_of_range_is_refused_naming_limit(
    live_on_each_backend: LiveServer, limit: str
) -> None:
    with live_on_each_backend.operator() as op:
        assert_refused(op.get("/events", params={"limit": limit}), "limit")
        assert op.get("/events", params={"limit": "1000"}).status_code == 200


def test_an_event_release_beyond_64_bits_is_refused_and_the_largest_is_stored(
    live_on_each_backend: LiveServer,
) -> None:
    device = live_on_each_backend.enroll()
    with live_on_each_backend.device(device["credential"]) as c:
        too_big = c.post("/events", json={"events": [_event(release=INT64_MAX + 1)]})
        assert_refused(too_big, "release")
        fits = c.post("/events", json={"events": [_event(release=INT64_MAX)]})
    assert fits.status_code == 200, fits.text
    with live_on_each_backend.operator() as op:
        stored = op.get("/events", params={"device_id": device["device_id"]}).json()
    assert [e["release"] for e in stored] == [INT64_MAX]


def test_a_telemetry_drop_counter_beyond_64_bits_is_refused_naming_it(
    live_on_each_backend: LiveServer,
) -> None:
    device = live_on_each_backend.enroll()
    batch = {"batch_id": "b0000001", "windows": []}
    with live_on_each_backend.device(device["credential"]) as c:
        assert_refused(
            c.post("/telemetry", json={**batch, "dropped_total": INT64_MAX + 1}), "dropped_total"
        )
        fits = c.post("/telemetry", json={**batch, "dropped_total": INT64_MAX})
    assert fits.status_code == 200, fits.text


@pytest.mark.parametrize("round_", [2**63, INT32_MAX + 1, 0])
def test_a_federated_round_out_of_32_bits_is_refused_naming_it(
    live_on_each_backend: LiveServer, round_: int
) -> None:
    device = live_on_each_backend.enroll()
    with live_on_each_backend.device(device["credential"]) as c:
        decline = c.post(f"/fl/job-1/{round_}/decline", json={"reason": "no data"})
        model = c.get(f"/fl/job-1/{round_}/model")
        in_range = c.post(f"/fl/job-1/{INT32_MAX}/decline", json={"reason": "no data"})
    assert_refused(decline, "round_")
    assert_refused(model, "round_")
    assert in_range.status_code == 404, in_range.text  # no such job: a 4xx, not a 5xx


@pytest.mark.parametrize("uses", [2**63, INT32_MAX + 1, 0])
def test_enrolment_token_uses_out_of_32_bits_are_refused_naming_uses(
    live_on_each_backend: LiveServer, uses: int
) -> None:
    with live_on_each_backend.operator() as op:
        assert_refused(op.post("/enroll-tokens", json={"uses": uses}), "uses")
        assert op.post("/enroll-tokens", json={"uses": INT32_MAX}).status_code == 201


def test_nul_in_device_text_is_refused_naming_the_field(live_on_each_backend: LiveServer) -> None:
    device = live_on_each_backend.enroll()
    with live_on_each_backend.device(device["credential"]) as c:
        assert_refused(c.post("/events", json={"events": [_event(detail="a\x00b")]}), "detail")
        assert_refused(c.post("/events", json={"events": [_event(model="m\x00")]}), "model")
        assert_refused(c.post("/heartbeat", json={"inventory": {}, "state": "idle\x00"}), "state")
        assert_refused(c.post("/fl/job-1/1/decline", json={"reason": "\x00"}), "reason")


def test_nul_in_operator_text_is_refused_naming_the_field(
    live_on_each_backend: LiveServer,
) -> None:
    with live_on_each_backend.operator() as op:
        assert_refused(op.get("/events", params={"device_id": "dev\x00"}), "device_id")
        assert_refused(op.get("/devices/dev%00-1"), "device_id")
        assert_refused(op.get("/telemetry", params={"model": "m\x00"}), "model")
        assert_refused(
            op.post("/deployments", json={"model": "digits\x00", "version": "1"}), "model"
        )
        assert_refused(op.get("/fl/jobs/job%00"), "job_id")
        assert_refused(op.post("/rollouts/r%00/pause"), "rollout_id")


def test_non_finite_numbers_are_refused_naming_the_field(
    live_on_each_backend: LiveServer,
) -> None:
    device = live_on_each_backend.enroll()
    with live_on_each_backend.device(device["credential"]) as c:
        events = '{"events": [{"event_id": "e0000001", "at": NaN, "kind": "verified"}]}'
        assert_refused(_post_json(c, "/events", events), "at")
        assert_refused(c.get("/desired-state", params={"wait": "nan"}), "wait")
    with live_on_each_backend.operator() as op:
        assert_refused(op.get("/telemetry", params={"since": "inf"}), "since")
        policy = '{"windows": [{"cron": "0 2 * * *", "duration_s": Infinity}]}'
        refused = op.put("/policies", content=policy, headers={"Content-Type": "application/json"})
        assert_refused(refused, "duration_s")  # a device could not read it back
