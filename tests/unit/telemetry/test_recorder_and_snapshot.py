from __future__ import annotations

import json
import subprocess
import sys
import threading

import numpy as np
import pytest

from edgefleet.telemetry import InferenceRecorder, MaxProbability, TelemetrySnapshot


def probs(rows: int, top: float) -> dict[str, np.ndarray]:
    p = np.full((rows, 4), (1 - top) / 3, dtype=np.float32)
    p[:, 0] = top
    return {"p": p}


def test_counts_latency_and_confidence_across_batches() -> None:
    rec = InferenceRecorder("m", "1", MaxProbability("p"), classes=4, capacity=8)
    for _ in range(20):  # more than two ring fills
        rec.record(1_000_000, probs(3, 0.9))
    rec.record_error(5_000_000)
    rec.record_rejected()
    snap = rec.snapshot()
    assert snap.count == 20
    assert snap.confidence.count == 60
    assert snap.confidence.mean == pytest.approx(0.9, abs=1e-6)
    assert snap.latency_ms()["p50"] == pytest.approx(1.0, rel=0.02)
    assert (snap.errors, snap.rejected) == (1, 1)
    assert snap.error_seconds == pytest.approx(0.005)


def test_reset_starts_a_new_window() -> None:
    rec = InferenceRecorder("m", "1")
    rec.record(1000, {})
    assert rec.snapshot(reset=True).count == 1
    assert rec.snapshot().count == 0


def test_custom_extractor_is_called_per_call() -> None:
    rec = InferenceRecorder("m", "1", lambda outs: np.asarray(outs["score"]).ravel())
    rec.record(10, {"score": np.array([0.25, 0.75])})
    assert rec.snapshot().confidence.mean == pytest.approx(0.5)


def test_concurrent_recording_loses_nothing() -> None:
    rec = InferenceRecorder("m", "1", MaxProbability("p"), classes=4, capacity=64)

    def work() -> None:
        for _ in range(5000):
            rec.record(1000, probs(1, 0.5))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    snapshots = [rec.snapshot(reset=True) for _ in range(50)]
    for t in threads:
        t.join()
    snapshots.append(rec.snapshot())
    assert sum(s.count for s in snapshots) == 20000
    assert sum(s.confidence.count for s in snapshots) == 20000


CHILD = """
import sys
from edgefleet.telemetry import InferenceRecorder
rec = InferenceRecorder("m", "1")
for i in range(100):
    rec.record(int(sys.argv[1]) * 1_000_000, {})
print(rec.snapshot().to_json())
"""


def test_snapshots_from_other_processes_merge() -> None:
    outs = [
        subprocess.run(
            [sys.executable, "-c", CHILD, str(ms)], capture_output=True, text=True, check=True
        ).stdout
        for ms in (1, 100)
    ]
    merged = TelemetrySnapshot.from_json(outs[0]).merge(TelemetrySnapshot.from_json(outs[1]))
    assert merged.count == 200
    assert merged.latency_ms()["p50"] == pytest.approx(1.0, rel=0.02)
    assert merged.latency_ms()["p99"] == pytest.approx(100.0, rel=0.02)


def test_snapshot_round_trips_with_stages() -> None:
    rec = InferenceRecorder("m", "1")
    rec.record(2000, {})
    snap = rec.snapshot()
    snap.stages["a"] = InferenceRecorder("a", "1").snapshot()
    again = TelemetrySnapshot.from_json(snap.to_json())
    assert again.to_dict() == snap.to_dict()


def test_merging_in_place_equals_merging_into_a_copy_and_leaves_the_other_unchanged() -> None:
    def recorded(ns: int, top: float) -> TelemetrySnapshot:
        rec = InferenceRecorder("m", "1")
        for _ in range(3):
            rec.record(ns, probs(2, top))
        snap = rec.snapshot()
        stage = InferenceRecorder("m", "1")
        stage.record(ns, {})
        snap.stages["classifier"] = stage.snapshot()
        return snap

    a, b = recorded(1_000_000, 0.9), recorded(5_000_000, 0.6)
    b_before = b.to_dict()
    copied = a.merge(b)
    a.merge_in(b)
    assert a.to_dict() == copied.to_dict()
    assert b.to_dict() == b_before
    assert a.count == 6
    assert a.stages["classifier"].count == 2
    a.merge_in(a.copy())  # merging a copy of itself doubles every count
    assert (a.count, a.stages["classifier"].count) == (12, 4)
    assert b.to_dict() == b_before


def test_merging_different_models_is_refused() -> None:
    a = InferenceRecorder("a", "1").snapshot()
    b = InferenceRecorder("b", "1").snapshot()
    with pytest.raises(ValueError, match="cannot merge"):
        a.merge(b)
    with pytest.raises(ValueError, match="cannot merge"):
        a.merge_in(b)


@pytest.mark.parametrize("text", ["not json", "[]", json.dumps({"schema": 99})])
def test_bad_snapshot_text_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="snapshot"):
        TelemetrySnapshot.from_json(text)
