"""The device API's hot path: answers from memory that stay true to the database."""

from __future__ import annotations

import threading
import time
from typing import Any

from edgefleet.server.settings import load_settings
from edgefleet.server.store import open_store
from edgefleet.telemetry import TelemetrySnapshot

from .conftest import LiveServer, ServerFactory


def desired(live: LiveServer, credential: str, etag: str | None = None, wait: float = 0) -> Any:
    headers = {"If-None-Match": etag} if etag else {}
    with live.device(credential) as device:
        return device.get("/desired-state", headers=headers, params={"wait": wait})


def test_an_unchanged_poll_gets_304_until_the_state_is_half_expired_then_a_new_version(
    server_factory: ServerFactory,
) -> None:
    live = server_factory(desired_state_expiry_s=3.0)
    credential = live.enroll()["credential"]
    first = desired(live, credential)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert desired(live, credential, etag).status_code == 304
    time.sleep(1.6)  # past half of the 3 s lifetime
    renewed = desired(live, credential, etag)
    assert renewed.status_code == 200
    state = renewed.json()["signed"]
    assert state["version"] == first.json()["signed"]["version"] + 1
    assert state["expires_at"] > first.json()["signed"]["expires_at"]
    assert desired(live, credential, renewed.headers["etag"]).status_code == 304


def test_a_long_poll_wakes_for_a_desired_state_another_server_process_wrote(
    server_factory: ServerFactory,
) -> None:
    live = server_factory(desired_state_refresh_s=0.2)
    enrolled = live.enroll()
    credential, device_id = enrolled["credential"], enrolled["device_id"]
    first = desired(live, credential)
    settings = load_settings(live.data_dir)

    def other_process_writes() -> None:  # a second store on the same database, as a replica
        time.sleep(1.0)
        with open_store(settings.sqlalchemy_url) as other:
            now = time.time()
            other.set_desired_state(device_id, None, now, now + settings.desired_state_expiry_s)

    writer = threading.Thread(target=other_process_writes)
    writer.start()
    woken = desired(live, credential, first.headers["etag"], wait=20)
    writer.join()
    # A poll that ran out its wait answers 304: a 200 with the new version was woken by the
    # refresh that read the other process's write.
    assert woken.status_code == 200
    assert woken.json()["signed"]["version"] == first.json()["signed"]["version"] + 1


def test_a_heartbeat_shows_in_device_show_at_once(live: LiveServer) -> None:
    enrolled = live.enroll()
    beat = {"inventory": {"hostname": "cam-7", "arch": "aarch64"}, "state": "serving"}
    with live.device(enrolled["credential"]) as device:
        ack = device.post("/heartbeat", json=beat)
    assert ack.status_code == 200, ack.text
    assert ack.json()["desired_version"] == 1
    with live.operator() as operator:
        shown = operator.get(f"/devices/{enrolled['device_id']}").json()["device"]
    assert shown["state"] == "serving"
    assert shown["inventory"]["hostname"] == "cam-7"


def window(window_id: str, snapshot: dict[str, Any]) -> dict[str, Any]:
    now = time.time()
    return {
        "window_id": window_id,
        "model": "digits",
        "version": "1",
        "started_at": now - 60,
        "ended_at": now,
        "snapshot": snapshot,
    }


def test_telemetry_uploads_at_once_are_each_counted_once_and_a_bad_one_changes_nothing(
    live: LiveServer,
) -> None:
    credentials = [live.enroll()["credential"] for _ in range(3)]
    snapshot = TelemetrySnapshot("digits", "1", 0.0, 60.0)
    snapshot.count = 1
    snapshot.latency.add_many([0.002])
    snapshot.confidence.add_many([0.9])
    good = snapshot.to_dict()
    answers: list[Any] = [None] * 6

    def upload(index: int) -> None:
        body = {
            "batch_id": f"batch-{index:04d}",
            "windows": [window(f"window-{index % 2}", good)],
        }
        with live.device(credentials[index % 3]) as device:
            answers[index] = device.post("/telemetry", json=body)

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert sum(a.json()["accepted"] for a in answers) == 6  # (device, window) pairs: 3 x 2
    assert sum(a.json()["duplicates"] for a in answers) == 0

    broken = {**good, "latency": {**good["latency"], "count": 99}}
    with live.device(credentials[0]) as device:
        refused = device.post(
            "/telemetry", json={"batch_id": "batch-bad1", "windows": [window("window-9", broken)]}
        )
    assert refused.status_code == 400, refused.text
    assert "window-9" in refused.json()["error"]
    with live.operator() as operator:
        merged = operator.get("/telemetry", params={"model": "digits"}).json()["fleet"]
    assert sum(row["count"] for row in merged) == 6
