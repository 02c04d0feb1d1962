"""A recorder's totals: what a model saw since loading, untouched by telemetry windows."""

from __future__ import annotations

import numpy as np
import pytest

from edgefleet.telemetry import InferenceRecorder, MaxProbability
from edgefleet.telemetry.totals import LATENCY_BUCKETS_SECONDS, LatencyHistogram


def probs(rows: int, top: float) -> dict[str, np.ndarray]:
    p = np.full((rows, 4), (1 - top) / 3, dtype=np.float32)
    p[:, 0] = top
    return {"p": p}


def test_totals_sum_every_window_and_the_open_one() -> None:
    rec = InferenceRecorder("m", "1", MaxProbability("p"), classes=4, capacity=8)
    windows = []
    for calls in (5, 0, 13):  # an empty window too; 13 crosses a batch flush
        for _ in range(calls):
            rec.record(2_000_000, probs(2, 0.75))
        rec.record_error(1_000)
        rec.record_rejected()
        windows.append(rec.snapshot(reset=True))
    for _ in range(4):  # the open window
        rec.record(3_000_000, probs(1, 0.5))
    totals = rec.totals()
    assert [w.count for w in windows] == [5, 0, 13]
    assert totals.count == 22 == totals.latency.count
    assert (totals.errors, totals.rejected) == (3, 3)
    assert totals.latency.sum == pytest.approx(18 * 0.002 + 4 * 0.003)
    assert totals.confidence.count == 2 * 18 + 4
    assert totals.confidence.mean == pytest.approx((36 * 0.75 + 4 * 0.5) / 40, abs=1e-6)


def test_totals_never_decrease_as_windows_close() -> None:
    rec = InferenceRecorder("m", "1", capacity=4)
    rng = np.random.default_rng(0)
    previous = rec.totals()
    for _ in range(10):
        for ns in rng.integers(10_000, 50_000_000, size=int(rng.integers(0, 9))):
            rec.record(int(ns), {})
        rec.snapshot(reset=bool(rng.integers(0, 2)))
        now = rec.totals()
        assert now.count >= previous.count
        assert now.latency.sum >= previous.latency.sum
        assert (now.latency.counts >= previous.latency.counts).all()
        previous = now


def test_latencies_land_in_the_bucket_whose_bound_they_do_not_exceed() -> None:
    rec = InferenceRecorder("m", "1")
    for ns in (25_000, 25_001, 1_000_000, 20_000_000_000):  # 25 us, just over, 1 ms, 20 s
        rec.record(ns, {})
    cumulative = dict(rec.totals().latency.cumulative())
    assert cumulative[25e-6] == 1  # a bound is inclusive ("le")
    assert cumulative[50e-6] == 2
    assert cumulative[0.001] == 3
    assert cumulative[10.0] == 3
    assert cumulative[float("inf")] == 4


def test_discard_forgets_calls_made_before_serving() -> None:
    rec = InferenceRecorder("m", "1", MaxProbability("p"), classes=4)
    rec.record(1_000, probs(1, 0.9))
    rec.record_rejected()
    rec.snapshot(reset=True)
    rec.record(1_000, probs(1, 0.9))
    rec.discard()
    totals = rec.totals()
    assert (totals.count, totals.rejected, totals.latency.sum) == (0, 0, 0.0)
    assert totals.confidence.count == 0
    assert rec.snapshot().count == 0


def test_the_buckets_are_fixed_and_increasing() -> None:
    assert list(LATENCY_BUCKETS_SECONDS) == sorted(set(LATENCY_BUCKETS_SECONDS))
    assert LatencyHistogram().bounds == LATENCY_BUCKETS_SECONDS
    with pytest.raises(ValueError, match="increasing"):
        LatencyHistogram((0.1, 0.01))


def test_rows_written_into_rings_are_counted_exactly_across_many_fills() -> None:
    rec = InferenceRecorder("m", "1", MaxProbability("p"), classes=4, capacity=32)
    ring = rec.ring_for("p", (3, 4))
    assert ring is not None
    rng = np.random.default_rng(1)
    maxima = []
    for _ in range(50):  # 50 calls of 3 rows: several ring fills and maxima-buffer folds
        rows = rng.dirichlet(np.ones(4), size=3).astype(np.float32)
        ring.rows[ring.written] = rows
        maxima.extend(rows.max(axis=1).tolist())
        ring.written += 1
        rec.record(1_000, {}, in_ring=True)
        if ring.written == len(ring.rows):
            rec.ring_full(ring)
    snap = rec.snapshot()
    assert snap.confidence.count == 150 == rec.totals().confidence.count
    assert snap.confidence.mean == pytest.approx(np.mean(maxima), rel=1e-6)
    assert snap.confidence.max == pytest.approx(max(maxima))
