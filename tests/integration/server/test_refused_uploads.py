"""The agent never retries an upload the control plane refuses for good: it drops and counts it.

A batch refused with a 4xx about its content (here a window whose snapshot the server cannot
read, and an event too large for the server's body limit) would be refused on every retry and
block everything spooled behind it. The uploader drops it from the spool, counts it, reports the
count to the server, and sends what comes next.
"""

from __future__ import annotations

from pathlib import Path

from edgefleet.agent.reporter import EventLog, Uploader
from edgefleet.agent.spool import Spool
from edgefleet.agent.uplink import Uplink
from edgefleet.protocol.v1 import Event, TelemetryWindow
from edgefleet.telemetry import TelemetrySnapshot
from tests.integration.server.conftest import LiveServer, ServerFactory


def _window(window_id: str, snapshot: dict[str, object]) -> TelemetryWindow:
    return TelemetryWindow(
        window_id=window_id,
        model="digits",
        version="1",
        started_at=1.8e9,
        ended_at=1.8e9 + 60,
        snapshot=snapshot,
    )


def _good_snapshot() -> dict[str, object]:
    snapshot = TelemetrySnapshot(model="digits", version="1", started_at=1.8e9, ended_at=1.8e9 + 60)
    return snapshot.to_dict()


def test_a_window_refused_for_good_is_dropped_counted_and_reported(
    live: LiveServer, tmp_path: Path
) -> None:
    device = live.enroll()
    with (
        Spool(tmp_path / "spool.db") as spool,
        Uplink(live.url, credential=device["credential"], timeout_s=30) as uplink,
    ):
        events = EventLog(spool)
        uploader = Uploader(spool, uplink, events)
        spool.add_window(_window("unreadable", {"not": "a snapshot"}))
        assert uploader.drain() == 0  # refused with 400: dropped, not raised, not retried
        assert spool.pending().windows == []
        assert spool.counters()["dropped_windows"] == 1
        spool.add_window(_window("readable", _good_snapshot()))
        assert uploader.drain() == 2  # the window, and the event that reports the drop
        assert spool.pending().windows == []
    with live.operator() as op:
        assert op.get("/telemetry").json()["dropped_windows"] == 1
        stored = op.get("/events", params={"device_id": device["device_id"]}).json()
    assert [e["kind"] for e in stored] == ["telemetry_dropped"]  # said once, after the drain


def test_an_event_too_large_for_the_server_alone_is_dropped_and_the_rest_goes(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    live = server_factory(max_body_bytes=2000)
    device = live.enroll()
    with (
        Spool(tmp_path / "spool.db") as spool,
        Uplink(live.url, credential=device["credential"], timeout_s=30) as uplink,
    ):
        uploader = Uploader(spool, uplink, EventLog(spool), max_events=1)
        spool.add_event(Event(event_id="e-large-1", at=1.8e9, kind="error", detail="x" * 3000))
        spool.add_event(Event(event_id="e-small-1", at=1.8e9 + 1, kind="verified"))
        assert uploader.drain() == 1  # the small one; the large one got 413 on its own
        assert spool.counters()["dropped_events"] == 1
        assert [e.kind for e in spool.pending().events] == ["telemetry_dropped"]
        assert uploader.drain() == 1
    with live.operator() as op:
        stored = op.get("/events", params={"device_id": device["device_id"]}).json()
    assert sorted(e["kind"] for e in stored) == ["telemetry_dropped", "verified"]


def test_one_bad_window_among_several_is_isolated_and_alone_dropped(
    live_on_each_backend: LiveServer, tmp_path: Path
) -> None:
    live = live_on_each_backend
    device = live.enroll()
    with (
        Spool(tmp_path / "spool.db") as spool,
        Uplink(live.url, credential=device["credential"], timeout_s=30) as uplink,
    ):
        uploader = Uploader(spool, uplink, EventLog(spool), max_windows=8)
        for i in range(8):
            if i == 5:
                spool.add_window(_window("unreadable", {"not": "a snapshot"}))
            else:
                spool.add_window(_window(f"good-window-{i}", _good_snapshot()))
        # The server refuses the batch of 8 for the one window; halving finds it.
        assert uploader.drain() == 7  # the seven good windows, each acknowledged
        assert spool.counters()["dropped_windows"] == 1
        assert spool.pending().windows == []
        assert uploader.max_windows == 8
    with live.operator() as op:
        assert op.get("/telemetry").json()["dropped_windows"] == 1
