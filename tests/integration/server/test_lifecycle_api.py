"""The operator API for a fleet's lifecycle and its audit trail, on SQLite and PostgreSQL.

Decommissioning, relabelling, enrolment tokens, the deployment history and the audit trail;
bad input (an unknown id, a malformed label, an integer beyond 64 bits) is a 4xx naming it.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from edgefleet.protocol.v1 import API_PREFIX

from .conftest import LiveServer
from .test_registry_api import push

INT64_MAX = 2**63 - 1


def refused(response: httpx.Response, status: int, *words: str) -> None:
    """An error in the project's shape whose message names each of ``words``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "code"}, body
    for word in words:
        assert word in body["error"], body


def test_a_decommissioned_device_is_refused_leaves_selections_and_keeps_its_history(
    live_on_each_backend: LiveServer, digits_path: Path
) -> None:
    live = live_on_each_backend
    gone = live.enroll({"region": "eu"})
    kept = live.enroll({"region": "eu"})
    with live.device(gone["credential"]) as c:
        assert c.get("/desired-state").status_code == 200  # its credential is cached now
        event = {"event_id": "e0000001", "at": 1.8e9, "kind": "verified"}
        assert c.post("/events", json={"events": [event]}).status_code == 200
    push(live, digits_path)
    with live.operator() as op:
        done = op.post(f"/devices/{gone['device_id']}/decommission")
        assert done.status_code == 200, done.text
        assert done.json()["decommissioned_at"] is not None
        listed = [d["device_id"] for d in op.get("/devices").json()]
        assert listed == [kept["device_id"]]
        shown = op.get(f"/devices/{gone['device_id']}").json()
        assert shown["device"]["decommissioned_at"] is not None
        assert [e["kind"] for e in shown["events"]] == ["verified"]  # history stays
        deployed = op.post(
            "/deployments", json={"model": "digits", "version": "1", "selector": "region=eu"}
        )
        assert deployed.json()["devices"] == [kept["device_id"]]
    with live.device(gone["credential"]) as c:
        refused(c.get("/desired-state"), 401, "credential")
        refused(c.post("/heartbeat", json={"state": "idle"}), 401)


def test_decommissioning_or_relabelling_an_unknown_device_is_404(
    live_on_each_backend: LiveServer,
) -> None:
    with live_on_each_backend.operator() as op:
        refused(op.post("/devices/dev-nope/decommission"), 404, "dev-nope")
        refused(op.patch("/devices/dev-nope/labels", json={"set": {"a": "b"}}), 404, "dev-nope")


def test_labels_are_set_replaced_and_removed(live_on_each_backend: LiveServer) -> None:
    device = live_on_each_backend.enroll({"region": "eu", "hw": "x86"})
    path = f"/devices/{device['device_id']}/labels"
    with live_on_each_backend.operator() as op:
        changed = op.patch(path, json={"set": {"region": "us", "tier": "gold"}, "remove": ["hw"]})
        assert changed.status_code == 200, changed.text
        assert changed.json()["labels"] == {"region": "us", "tier": "gold"}
        selected = op.get("/devices", params={"selector": "tier=gold"}).json()
        assert [d["device_id"] for d in selected] == [device["device_id"]]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"set": {"bad key": "x"}}, "bad key"),
        ({"set": {"region": "e u"}}, "e u"),
        ({"set": {"": "x"}}, "''"),
        ({"remove": ["no/good key!"]}, "no/good key!"),
        ({"set": {"region": "x"}, "colour": "red"}, "colour"),
    ],
)
def test_a_malformed_label_is_refused_naming_it(
    live_on_each_backend: LiveServer, body: dict[str, object], named: str
) -> None:
    device = live_on_each_backend.enroll({"region": "eu"})
    with live_on_each_backend.operator() as op:
        answer = op.patch(f"/devices/{device['device_id']}/labels", json=body)
        refused(answer, 422, named)
        shown = op.get(f"/devices/{device['device_id']}").json()
    assert shown["device"]["labels"] == {"region": "eu"}


def test_enrolment_tokens_are_listed_and_a_revoked_one_enrols_nothing(
    live_on_each_backend: LiveServer,
) -> None:
    live = live_on_each_backend
    with live.operator() as op:
        created = op.post("/enroll-tokens", json={"labels": {"site": "lab"}, "uses": 3}).json()
        [listed] = op.get("/enroll-tokens").json()
        assert (listed["id"], listed["state"], listed["remaining"]) == (created["id"], "active", 3)
        assert "token" not in listed
        assert "token_hash" not in listed
        revoked = op.post(f"/enroll-tokens/{created['id']}/revoke")
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["state"] == "revoked"
    with live.client(prefix=API_PREFIX) as c:
        refused(c.post("/enroll", json={"token": created["token"]}), 401)


@pytest.mark.parametrize(
    "path",
    [
        f"/enroll-tokens/{INT64_MAX + 1}/revoke",
        "/enroll-tokens/0/revoke",
        "/enroll-tokens/-99999999999999999999/revoke",
    ],
)
def test_a_token_id_out_of_range_is_422(live_on_each_backend: LiveServer, path: str) -> None:
    with live_on_each_backend.operator() as op:
        refused(op.post(path), 422, "token_id")


def test_an_unknown_token_id_is_404(live_on_each_backend: LiveServer) -> None:
    with live_on_each_backend.operator() as op:
        refused(op.post(f"/enroll-tokens/{INT64_MAX}/revoke"), 404, str(INT64_MAX))


def test_deployments_are_kept_in_a_history_with_their_progress(
    live_on_each_backend: LiveServer, digits_path: Path, echo_path: Path
) -> None:
    live = live_on_each_backend
    device = live.enroll()
    push(live, digits_path)
    push(live, echo_path)
    with live.operator() as op:
        first = op.post("/deployments", json={"model": "digits", "version": "1"}).json()
        second = op.post("/deployments", json={"model": "digits", "version": "2"}).json()
        page = op.get("/deployments", params={"limit": 1}).json()
        assert [d["version"] for d in page["deployments"]] == ["2"]
        assert page["deployments"][0]["actor"] == "init"
        rest = op.get("/deployments", params={"limit": 1, "before": page["next_before"]}).json()
        assert [d["id"] for d in rest["deployments"]] == [first["deployment_id"]]
        progress = op.get(f"/deployments/{second['deployment_id']}").json()
    assert (progress["done"], progress["total"]) == (0, 1)  # no agent reports yet
    assert progress["devices"][0]["device_id"] == device["device_id"]


@pytest.mark.parametrize(
    ("path", "params", "named"),
    [
        (f"/deployments/{INT64_MAX + 1}", {}, "deployment_id"),
        ("/deployments", {"before": str(INT64_MAX + 1)}, "before"),
        ("/deployments", {"limit": "-99999999999999999999"}, "limit"),
        ("/audit", {"limit": "1001"}, "limit"),
        ("/audit", {"limit": "0"}, "limit"),
        ("/audit", {"before": "-1"}, "before"),
        ("/audit", {"since": "nan"}, "since"),
        ("/audit", {"actor": "a\x00b"}, "actor"),
    ],
)
def test_history_and_audit_queries_out_of_range_are_422(
    live_on_each_backend: LiveServer, path: str, params: dict[str, str], named: str
) -> None:
    with live_on_each_backend.operator() as op:
        refused(op.get(path, params=params), 422, named)


def test_an_unknown_deployment_is_404(live_on_each_backend: LiveServer) -> None:
    with live_on_each_backend.operator() as op:
        refused(op.get(f"/deployments/{INT64_MAX}"), 404, str(INT64_MAX))


def test_operator_actions_are_audited_with_actor_target_and_outcome(
    live_on_each_backend: LiveServer, digits_path: Path
) -> None:
    live = live_on_each_backend
    device = live.enroll({"region": "eu"})
    push(live, digits_path)
    with live.operator() as op:
        [token] = op.get("/enroll-tokens").json()
        token_id = token["id"]
        op.post("/deployments", json={"model": "digits", "version": "1", "selector": "region=eu"})
        op.post("/deployments", json={"model": "digits", "version": "1", "selector": "region=us"})
        op.post(f"/devices/{device['device_id']}/decommission")
        page = op.get("/audit", params={"limit": 3}).json()
        older = op.get("/audit", params={"before": page["next_before"]}).json()
    entries = page["entries"] + older["entries"]
    actions = [(e["actor"], e["action"], e["target"], e["outcome"][:11]) for e in entries]
    assert actions == [
        ("init", "devices.decommission", device["device_id"], "ok"),
        ("init", "deployments.create", "digits@1 to region=us", "refused 409"),
        ("init", "deployments.create", "digits@1 to region=eu", "ok"),
        ("init", "models.create", "digits@1", "ok"),
        ("init", "enroll-tokens.create", str(token_id), "ok"),
    ]
    assert "matches no device" in entries[1]["outcome"]
    assert all("efe_" not in str(e) for e in entries)  # the token's secret is never recorded
    assert older["next_before"] is None
