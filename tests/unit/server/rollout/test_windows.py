"""The window cache gives the numbers a full re-read would, reading each window once."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet.server.rollout.metrics import CohortMetrics
from edgefleet.server.rollout.windows import OVERLAP_S, REFRESH_S, WindowCache
from edgefleet.server.store.rows import RolloutRow, TelemetryRow
from edgefleet.telemetry import TelemetrySnapshot

START = 1_000.0
CLASSES = {"d1": "x86", "d2": "x86", "d3": "arm"}


def window(
    i: int, device: str, version: str, received: float, role: str = "active"
) -> TelemetryRow:
    snap = TelemetrySnapshot("m", version, START + i, START + i + 1)
    snap.count = 10 + i
    snap.errors = i % 3
    for k in range(5):
        snap.latency.add(0.001 * (1 + (i + k) % 7))
        snap.confidence.add_many([0.5 + 0.05 * ((i + k) % 9)])
    return TelemetryRow(
        id=i,
        device_id=device,
        window_id=f"w-{i}",
        model="m",
        version=version,
        started_at=START + i,
        ended_at=START + i + 1,
        snapshot=snap.to_dict(),
        swaps=0,
        rollbacks=0,
        received_at=received,
        role=role,
        shadow={"compared": 4, "disagreed": i % 2, "confidence_delta_sum": 0.1}
        if role == "shadow"
        else None,
    )


def collect(
    rows: list[TelemetryRow], *, version: str, role: str, classes: dict[str, str]
) -> dict[str, CohortMetrics]:
    """The oracle: every window of ``version`` and ``role`` merged per class in one pass."""
    out: dict[str, CohortMetrics] = {}
    for row in rows:
        hw = classes.get(row.device_id)
        if hw is not None and row.version == version and row.role == role:
            out.setdefault(hw, CohortMetrics()).add(row)
    return out


def rollout(stage: int = 0, started: float = START) -> RolloutRow:
    return RolloutRow(
        "ro-1", "rollout", "m", {}, {}, {}, {}, "running", stage, started, {}, "", 1, START, START
    )


class Store:
    """The rows in the store so far, and how many times each was handed out."""

    def __init__(self) -> None:
        self.rows: list[TelemetryRow] = []
        self.reads: dict[int, int] = {}

    def fetch(self, received_since: float | None) -> list[TelemetryRow]:
        out = [r for r in self.rows if received_since is None or r.received_at >= received_since]
        for r in out:
            self.reads[r.id] = self.reads.get(r.id, 0) + 1
        return out


def numbers(metrics: dict[str, CohortMetrics]) -> dict[str, Any]:
    """What the gates read, floats rounded (sums in another order differ in the last bits)."""

    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 9)

    return {
        hw: (
            sorted(m.devices),
            m.inferences,
            r(m.p99_ms),
            r(m.error_rate),
            r(m.accuracy),
            m.compared,
            m.disagreed,
        )
        for hw, m in metrics.items()
    }


arrivals = st.lists(
    st.tuples(
        st.sampled_from(sorted(CLASSES)),
        st.sampled_from(["1", "2"]),
        st.sampled_from(["active", "shadow"]),
        st.floats(0, 400),  # received this long after the stage began
    ),
    max_size=40,
)


@given(arrivals, st.lists(st.floats(0, 400), max_size=6))
@settings(max_examples=60, deadline=None)
def test_incremental_reads_give_what_one_full_read_gives(
    rows: list[tuple[str, str, str, float]], reads_at: list[float]
) -> None:
    store, cache = Store(), WindowCache()
    pending = sorted(
        (window(i, d, v, START + at, role) for i, (d, v, role, at) in enumerate(rows)),
        key=lambda r: r.received_at,
    )
    for at in sorted(reads_at):
        while pending and pending[0].received_at <= START + at:
            store.rows.append(pending.pop(0))
        cache.read(rollout(), store.fetch)
    store.rows.extend(pending)
    stage = cache.read(rollout(), store.fetch)
    for version in ("1", "2"):
        for role in ("active", "shadow"):
            want = collect(store.rows, version=version, role=role, classes=CLASSES)
            got = stage.collect(version=version, role=role, classes=CLASSES)
            assert numbers(got) == numbers(want)


def test_a_window_is_merged_once_though_it_is_read_again_inside_the_overlap() -> None:
    store, cache = Store(), WindowCache()
    store.rows.append(window(1, "d1", "2", START + 10))
    cache.read(rollout(), store.fetch)
    store.rows.append(window(2, "d1", "2", START + 20))
    stage = cache.read(rollout(), store.fetch)
    assert store.reads == {1: 2, 2: 1}  # the first window came again, inside the overlap
    [x86] = stage.collect(version="2", role="active", classes=CLASSES).values()
    assert x86.inferences == (11 + 1) + (12 + 2)


def test_windows_received_long_ago_are_not_read_again() -> None:
    store, cache = Store(), WindowCache()
    store.rows.append(window(1, "d1", "2", START))
    cache.read(rollout(), store.fetch)
    store.rows.append(window(2, "d1", "2", START + 2 * OVERLAP_S))
    cache.read(rollout(), store.fetch)
    cache.read(rollout(), store.fetch)
    assert store.reads[1] == 2  # the first read, then once within the overlap of the second
    assert store.reads[2] == 2


def test_a_new_stage_starts_from_nothing() -> None:
    store, cache = Store(), WindowCache()
    store.rows.append(window(1, "d1", "2", START))
    cache.read(rollout(stage=0), store.fetch)
    store.rows.clear()  # the next stage's query starts at its own start: nothing yet
    stage = cache.read(rollout(stage=1, started=START + 50), store.fetch)
    assert stage.collect(version="2", role="active", classes=CLASSES) == {}


def test_a_window_committed_after_the_overlap_is_missed_until_a_full_read() -> None:
    """Incremental reads cannot see a window stamped long before it reached the database;
    the full read (before any advance, and every REFRESH_S) counts it."""
    store, cache = Store(), WindowCache()
    store.rows.append(window(1, "d1", "2", START + 500))
    cache.read(rollout(), store.fetch)
    store.rows.append(window(2, "d2", "2", START))  # stamped 500 s earlier, committed now
    partial = cache.read(rollout(), store.fetch)
    assert not partial.full
    [x86] = partial.collect(version="2", role="active", classes=CLASSES).values()
    assert x86.devices == {"d1"}
    whole = cache.read(rollout(), store.fetch, full=True)
    assert whole.full
    [x86] = whole.collect(version="2", role="active", classes=CLASSES).values()
    assert x86.devices == {"d1", "d2"}


def test_a_stage_is_read_in_full_again_after_the_refresh_period(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, cache = Store(), WindowCache()
    store.rows.append(window(1, "d1", "2", START + 500))
    cache.read(rollout(), store.fetch)
    store.rows.append(window(2, "d2", "2", START))
    clock = time.monotonic() + REFRESH_S + 1
    monkeypatch.setattr(time, "monotonic", lambda: clock)  # only the clock is faked
    stage = cache.read(rollout(), store.fetch)
    assert stage.full
    [x86] = stage.collect(version="2", role="active", classes=CLASSES).values()
    assert x86.devices == {"d1", "d2"}
