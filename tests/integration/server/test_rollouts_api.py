"""The operator API for rollouts and update policies: starting, refusing, acting, showing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from .conftest import LiveServer
from .test_registry_api import push


def start(op: httpx.Client, **body: Any) -> httpx.Response:
    return op.post("/rollouts", json={"model": "digits", "version": "2", **body})


def fleet(live: LiveServer, digits_path: Path, echo_path: Path) -> list[str]:
    """Two enrolled devices desiring digits@1, and digits@2 in the registry."""
    ids = [live.enroll({"site": "lab"})["device_id"] for _ in range(2)]
    push(live, digits_path, version="1")
    push(live, echo_path, version="2")
    with live.operator() as op:
        assert op.post("/deployments", json={"model": "digits", "version": "1"}).is_success
    return ids


def test_a_rollout_starts_on_its_first_stage_and_shows_its_status(
    live: LiveServer, digits_path: Path, echo_path: Path
) -> None:
    ids = fleet(live, digits_path, echo_path)
    with live.operator() as op:
        response = start(op, stages="canary:50%:1h,100%", gates=["accuracy_delta>=-0.02"])
        assert response.status_code == 201, response.text
        body = response.json()
        assert (body["state"], body["stage"], body["previous"]["version"]) == ("running", 0, "1")
        assert len(body["stage_devices"]) == 1
        assert body["stage_devices"][0] in ids
        assert [e["kind"] for e in body["timeline"]] == ["started"]
        [gate] = body["status"]["gates"]
        assert (gate["metric"], gate["outcome"]) == ("accuracy_delta", "inconclusive")
        assert op.get(f"/rollouts/{body['rollout_id']}").json()["stage"] == 0
        again = start(op, stages="100%")
        assert again.status_code == 409
        assert "still active" in again.text
        paused = op.post(f"/rollouts/{body['rollout_id']}/pause", json={"reason": "lunch"})
        assert paused.json()["state"] == "paused"
        twice = op.post(f"/rollouts/{body['rollout_id']}/pause")
        assert twice.status_code == 409
        assert "it is paused" in twice.text
        aborted = op.post(f"/rollouts/{body['rollout_id']}/abort").json()
        assert aborted["state"] == "aborted"
        assert aborted["timeline"][-1]["kind"] == "applied"


def test_bad_rollout_requests_are_refused_with_the_reason_and_store_nothing(
    live: LiveServer, digits_path: Path, echo_path: Path
) -> None:
    fleet(live, digits_path, echo_path)
    with live.operator() as op:
        cases: list[tuple[dict[str, Any], int, str]] = [
            ({"stages": "50%"}, 400, "last stage"),
            ({"stages": "canary:5"}, 400, "5%"),
            ({"stages": "100%", "gates": ["speed<=2"]}, 400, "p99_ratio"),
            ({"stages": "100%", "version": "9"}, 404, "digits@9"),
            ({"stages": "100%", "selector": "site=moon"}, 400, "matches no enrolled device"),
            ({"stages": "100%", "version": "1"}, 400, "already run 1"),
            ({}, 400, "needs stages"),
            ({"ab_share": "50%"}, 400, "duration"),
            ({"plan": {"stages": [{"share": "100%"}], "colour": 1}}, 400, "colour"),
        ]
        for body, status, needle in cases:
            response = start(op, **body)
            assert response.status_code == status, (body, response.text)
            assert needle in response.text, (body, response.text)
        assert op.get("/rollouts").json() == []
        unknown = op.post("/rollouts/ro-missing/abort")
        assert unknown.status_code == 404


def test_an_update_policy_reaches_the_devices_desired_state(
    live: LiveServer, digits_path: Path, echo_path: Path
) -> None:
    fleet(live, digits_path, echo_path)
    device = live.enroll({"site": "lab"})
    with live.operator() as op:
        bad = op.put(
            "/policies",
            json={"selector": "site=lab", "windows": [{"cron": "0 25 * * *", "duration_s": 3600}]},
        )
        assert bad.status_code == 400
        assert "hour" in bad.text
        good = op.put(
            "/policies",
            json={
                "selector": "site=lab",
                "windows": [{"cron": "0 2 * * *", "duration_s": 3600}],
                "daily_download_bytes": 1000000,
            },
        )
        assert good.status_code == 200, good.text
        assert device["device_id"] in good.json()["devices"]
    with live.device(device["credential"]) as dev:
        state = dev.get("/desired-state").json()["signed"]
    assert state["policy"] == {
        "windows": [{"cron": "0 2 * * *", "duration_s": 3600.0}],
        "daily_download_bytes": 1000000,
    }
