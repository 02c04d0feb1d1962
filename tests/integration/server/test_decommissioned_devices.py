"""Decommissioned devices: listed only when asked for, and still counted in fleet-wide counters.

On SQLite and PostgreSQL, through the operator API and ``edgefleet device list``.
"""

from __future__ import annotations

import json

from typer.testing import CliRunner

from edgefleet.cli.main import app

from .conftest import LiveServer


def test_the_fleet_dropped_counter_keeps_a_decommissioned_devices_drops(
    live_on_each_backend: LiveServer,
) -> None:
    live = live_on_each_backend
    gone, kept = live.enroll(), live.enroll()
    for device, dropped in ((gone, 5), (kept, 2)):
        with live.device(device["credential"]) as c:
            batch = {"batch_id": f"b000000{dropped}", "windows": [], "dropped_total": dropped}
            assert c.post("/telemetry", json=batch).status_code == 200
    with live.operator() as op:
        assert op.get("/telemetry").json()["dropped_windows"] == 7
        assert op.post(f"/devices/{gone['device_id']}/decommission").status_code == 200
        assert op.get("/telemetry").json()["dropped_windows"] == 7  # a counter never goes down


def test_decommissioned_devices_are_listed_only_when_asked_for(
    live_on_each_backend: LiveServer,
) -> None:
    live = live_on_each_backend
    gone, kept = live.enroll({"region": "eu"}), live.enroll({"region": "eu"})
    with live.operator() as op:
        assert op.post(f"/devices/{gone['device_id']}/decommission").status_code == 200
        enrolled = op.get("/devices", params={"selector": "region=eu"}).json()
        retired = op.get("/devices", params={"selector": "region=eu", "decommissioned": "true"})
        bad = op.get("/devices", params={"decommissioned": "maybe"})
    assert [d["device_id"] for d in enrolled] == [kept["device_id"]]
    assert [d["device_id"] for d in retired.json()] == [gone["device_id"]]
    assert retired.json()[0]["decommissioned_at"] is not None
    assert bad.status_code == 422
    assert "decommissioned" in bad.text


def test_device_list_decommissioned_lists_them(live_on_each_backend: LiveServer) -> None:
    live = live_on_each_backend
    gone, kept = live.enroll(), live.enroll()
    with live.operator() as op:
        assert op.post(f"/devices/{gone['device_id']}/decommission").status_code == 200
    runner = CliRunner()
    where = ["--server", live.url, "--token", live.operator_token]
    listed = runner.invoke(app, ["device", "list", "--decommissioned", "--json", *where])
    assert listed.exit_code == 0, listed.output
    assert [d["device_id"] for d in json.loads(listed.output)] == [gone["device_id"]]
    table = runner.invoke(app, ["device", "list", "--decommissioned", *where])
    assert table.exit_code == 0, table.output
    assert gone["device_id"] in table.output
    assert "decommissioned" in table.output
    assert kept["device_id"] not in table.output
