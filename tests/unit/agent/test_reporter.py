from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edgefleet.agent.reporter import EventLog, Uploader, WindowCollector
from edgefleet.agent.spool import Spool
from edgefleet.agent.uplink import RefusedError, Uplink
from edgefleet.protocol.v1 import EnrollRequest
from edgefleet.runtime import Model, load
from edgefleet.telemetry import TelemetrySnapshot
from tests.unit.agent.loopback import ENROLL_TOKEN, LoopbackControlPlane
from tests.unit.agent.models import scale_model

X = np.ones((1, 4), dtype=np.float32)


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    with Spool(tmp_path / "spool.db", budget_bytes=2**22) as spool:
        yield spool


@pytest.fixture
def model(tmp_path: Path) -> Iterator[Model]:
    path = tmp_path / "m.onnx"
    path.write_bytes(scale_model(2))
    model = load(path, name="scaler", version="3", intra_op_threads=1)
    yield model
    model.close()


def test_a_window_of_the_active_model_goes_to_the_spool(spool: Spool, model: Model) -> None:
    collector = WindowCollector(spool)
    assert collector.close_window() is None  # nothing attached
    collector.attach(model)
    assert collector.close_window() is None  # no calls: skipped
    for _ in range(7):
        model.predict({"x": X})
    collector.count_swap()
    window = collector.close_window()
    assert window is not None
    assert (window.model, window.version, window.swaps, window.rollbacks) == ("scaler", "3", 1, 0)
    assert len(window.window_id) == 32
    snap = TelemetrySnapshot.from_dict(window.snapshot)
    assert snap.count == 7
    assert window.started_at <= window.ended_at
    assert spool.pending().windows == [window]
    assert model.telemetry.snapshot().count == 0  # the window was reset


def test_telemetry_since_attach_spans_windows_and_retire_returns_it(
    spool: Spool, model: Model
) -> None:
    collector = WindowCollector(spool, keep_empty=True)
    collector.attach(model)
    for _ in range(3):
        model.predict({"x": X})
    collector.close_window()
    model.predict({"x": X})
    since = collector.since_attach()
    assert since is not None
    assert since.count == 4
    total = collector.retire()
    assert total is not None
    assert total.count == 4
    assert collector.servable is None
    assert len(spool.pending().windows) == 2


def test_event_log_writes_valid_events(spool: Spool) -> None:
    events = EventLog(spool)
    event = events.emit("activated", model="m", version="2", release=4, detail="x" * 5000)
    odd = events.emit("no_such_kind", detail="what happened")
    assert [e.kind for e in spool.pending().events] == ["activated", "error"]
    assert len(event.detail) == 4000
    assert odd.detail == "no_such_kind: what happened"


def _uplink(plane: LoopbackControlPlane) -> Uplink:
    with Uplink(plane.url) as anonymous:
        reply = anonymous.enroll(EnrollRequest(token=ENROLL_TOKEN))
    return Uplink(plane.url, credential=reply.credential, timeout_s=5)


def test_upload_acknowledges_only_after_2xx_and_never_double_counts(
    spool: Spool, model: Model, control_plane: LoopbackControlPlane
) -> None:
    lock = threading.Lock()
    events = EventLog(spool, lock)
    collector = WindowCollector(spool, lock)
    collector.attach(model)
    for i in range(5):
        model.predict({"x": X})
        collector.close_window()
        events.emit("verified", detail=str(i))
    with _uplink(control_plane) as uplink:
        uploader = Uploader(spool, uplink, events, lock, max_windows=2, max_events=2)
        control_plane.fail_status = 503
        with pytest.raises(RefusedError):
            uploader.upload_once()
        assert len(spool.pending().windows) == 5  # nothing acknowledged
        control_plane.fail_status = None
        # The server stores the next batch, but its answer is lost: the same windows come
        # again and are counted once.
        control_plane.lose_answers.add("/telemetry")
        with pytest.raises(RefusedError, match="lost"):
            uploader.upload_once()
        assert len(control_plane.windows) == 2
        control_plane.lose_answers.clear()
        assert uploader.drain() == 10
    assert spool.pending().windows == []
    assert spool.pending().events == []
    assert len(control_plane.windows) == 5
    assert sum(len(b.windows) for b in control_plane.batches) == 7  # two were sent twice
    assert len(control_plane.events) == 5
    assert all(b.dropped_total == 0 for b in control_plane.batches)


def test_drops_are_reported_with_every_batch_and_as_an_event(
    tmp_path: Path, model: Model, control_plane: LoopbackControlPlane
) -> None:
    with Spool(tmp_path / "small.db", budget_bytes=6000) as small:
        collector = WindowCollector(small)
        collector.attach(model)
        events = EventLog(small)
        with _uplink(control_plane) as uplink:
            uploader = Uploader(small, uplink, events)
            for _ in range(20):
                model.predict({"x": X})
                collector.close_window()
            dropped = small.counters()["dropped_windows"]
            assert dropped > 0
            uploader.drain()
            assert control_plane.batches[-1].dropped_total == dropped
            assert control_plane.event_kinds() == []  # the drop event waits for the next drain
            uploader.drain()
        assert control_plane.event_kinds() == ["telemetry_dropped"]
        detail = next(iter(control_plane.events.values())).detail
        assert f"dropped {dropped} windows and 0 events" in detail


def test_drops_are_reported_even_when_no_window_is_left_to_send(
    tmp_path: Path, model: Model, control_plane: LoopbackControlPlane
) -> None:
    with Spool(tmp_path / "small.db", budget_bytes=3000) as small:
        collector = WindowCollector(small)
        collector.attach(model)
        events = EventLog(small)
        model.predict({"x": X})
        collector.close_window()
        for i in range(30):  # events crowd the window out: the oldest windows go first
            events.emit("verified", detail=f"event {i}")
        assert small.pending().windows == []
        with _uplink(control_plane) as uplink:
            uploader = Uploader(small, uplink, events)
            uploader.drain()
            assert [len(b.windows) for b in control_plane.batches] == [0]
            assert control_plane.batches[0].dropped_total == 1
            uploader.drain()  # nothing new: no second empty batch
            assert len(control_plane.batches) == 1


def test_an_html_404_from_something_on_the_way_drops_nothing_and_is_retried(
    spool: Spool, model: Model, control_plane: LoopbackControlPlane
) -> None:
    collector = WindowCollector(spool)
    collector.attach(model)
    events = EventLog(spool)
    for i in range(3):
        model.predict({"x": X})
        collector.close_window()
        events.emit("verified", detail=str(i))
    with _uplink(control_plane) as uplink:
        uploader = Uploader(spool, uplink, events)
        # A misconfigured reverse proxy: HTML, not the control plane's error shape.
        control_plane.overrides["/telemetry"] = (404, b"<html>404 Not Found</html>")
        control_plane.overrides["/events"] = (405, b"<html>405 Not Allowed</html>")
        for _ in range(3):
            with pytest.raises(RefusedError, match="HTTP 404"):
                uploader.drain()
        assert len(spool.pending().windows) == 3  # nothing dropped
        assert len(spool.pending().events) == 3
        assert spool.dropped_total == 0
        del control_plane.overrides["/telemetry"]
        with pytest.raises(RefusedError, match="HTTP 405"):
            uploader.drain()  # the windows went; the events wait
        assert spool.pending().windows == []
        assert len(spool.pending().events) == 3
        del control_plane.overrides["/events"]
        assert uploader.drain() == 3
    assert len(control_plane.windows) == 3
    assert len(control_plane.events) == 3
    assert spool.dropped_total == 0
