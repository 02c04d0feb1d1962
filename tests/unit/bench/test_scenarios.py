"""Scenario semantics: stop rules, warm-up, open-loop arrivals, stability, multi-stream."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from edgefleet.bench.queries import QuerySet, random_queries
from edgefleet.bench.runner import RunPlan, measure
from edgefleet.bench.scenarios import issuer_for
from edgefleet.bench.targets import LocalTarget, Session
from edgefleet.errors import ConfigurationError
from edgefleet.runtime import load


class ScriptedTarget:
    """A target whose service time is chosen by the test.

    Why not a real model: the tests need a target that stalls for a known time at a known
    moment, which no real model does on demand; everything around it (issuers, runner,
    windows) is the real code.
    """

    name, kind, url, format, emulation = "scripted", "in-process", None, "in-process", None

    def __init__(self, service_s: float, stall_s: float = 0.0, stall_at_call: int = -1) -> None:
        self.pids: list[int] = []
        self.service_s, self.stall_s, self.stall_at = service_s, stall_s, stall_at_call
        self.calls = 0
        self.lock = threading.Lock()
        self.threads: set[int] = set()  # the threads that called run
        self.spans: dict[int, tuple[float, float]] = {}  # call number -> (start, end)

    def prepare(self, queries: QuerySet) -> None:
        pass

    def session(self) -> Session:
        return self

    def run(self, index: int) -> dict[str, Any]:
        with self.lock:
            self.calls += 1
            call = self.calls
            self.threads.add(threading.get_ident())
        start = time.perf_counter()
        time.sleep(self.stall_s if call == self.stall_at else self.service_s)
        self.spans[call] = (start, time.perf_counter())
        return {}

    def overlapping(self, call: int) -> list[int]:
        """The calls that ran while ``call`` did."""
        start, end = self.spans[call]
        return [c for c, (s, e) in self.spans.items() if c != call and s < end and e > start]

    def close(self) -> None:
        pass


def test_single_stream_runs_until_both_minimums_are_met(digits_path: Path) -> None:
    model = load(digits_path, intra_op_threads=1)
    target = LocalTarget(model)
    queries = random_queries(model.inputs, count=8)
    target.prepare(queries)
    issuer = issuer_for("single-stream", target, len(queries), concurrency=1)
    m = measure(issuer, RunPlan(duration_s=0.5, min_queries=300, warmup_s=0.2, window_s=0.1))
    model.close()
    assert m.met_minimums
    assert not m.interrupted
    assert m.queries >= 300
    assert m.duration_s >= 0.5
    assert m.errors == 0
    assert m.latencies_ms.size == m.queries
    assert m.windows
    # warm-up queries are excluded: the model's own counter saw more calls than were measured
    assert model.telemetry.snapshot().count > m.queries


def test_the_run_stops_at_the_limit_when_the_minimum_count_is_out_of_reach() -> None:
    target = ScriptedTarget(service_s=0.01)
    issuer = issuer_for("single-stream", target, 1, concurrency=1)
    plan = RunPlan(duration_s=0.2, min_queries=10_000, warmup_s=0, window_s=0.1, max_duration_s=0.4)
    m = measure(issuer, plan)
    assert not m.met_minimums
    assert m.queries < 10_000


def test_server_latency_counts_from_the_scheduled_time_so_a_stall_is_not_hidden() -> None:
    # 200 queries/s against a 1 ms service time, one worker, and a 300 ms stall: every query
    # scheduled during the stall waits behind it, and that wait is part of its latency.
    target = ScriptedTarget(service_s=0.001, stall_s=0.3, stall_at_call=100)
    server = issuer_for("server", target, 1, concurrency=1, target_qps=200, seed=1)
    m = measure(server, RunPlan(duration_s=1.5, min_queries=10, warmup_s=0, window_s=0.5))
    late = int((m.latencies_ms > 50).sum())
    assert late >= 20, f"only {late} queries saw the stall"
    # Closed loop (single-stream) against the same stall: one slow query, the rest unaware,
    # since nothing is issued while it runs.
    target = ScriptedTarget(service_s=0.001, stall_s=0.3, stall_at_call=100)
    closed = issuer_for("single-stream", target, 1, concurrency=1)
    m = measure(closed, RunPlan(duration_s=1.5, min_queries=10, warmup_s=0, window_s=0.5))
    assert float(m.latencies_ms.max()) >= 300
    assert target.overlapping(100) == []


def test_server_arrivals_follow_the_requested_rate() -> None:
    target = ScriptedTarget(service_s=0.0005)
    server = issuer_for("server", target, 1, concurrency=4, target_qps=400, seed=3)
    m = measure(server, RunPlan(duration_s=2.0, min_queries=10, warmup_s=0.2, window_s=0.5))
    # Arrivals follow the schedule, not the machine: 800 +- 28 are due in the 2 s measured
    # (more if a busy machine ends the run late), and never more than the rate allows.
    assert 640 <= m.queries <= 1.2 * 400 * m.duration_s


def test_multi_stream_queries_run_their_samples_side_by_side() -> None:
    class Together(ScriptedTarget):
        """Each sample waits for three others to run at the same time: alone, it fails."""

        def __init__(self) -> None:
            super().__init__(service_s=0.001)
            self.barrier = threading.Barrier(4, timeout=60)

        def run(self, index: int) -> dict[str, Any]:
            self.barrier.wait()
            return super().run(index)

    target = Together()
    issuer = issuer_for("multi-stream", target, 1, concurrency=1, samples_per_query=4)
    m = measure(issuer, RunPlan(duration_s=0.5, min_queries=5, warmup_s=0, window_s=0.25))
    assert (m.errors, m.first_error) == (0, None)
    assert m.queries >= 5
    assert m.samples == 4 * m.queries
    assert target.calls >= 4 * m.queries


def test_offline_uses_every_worker() -> None:
    target = ScriptedTarget(service_s=0.01)
    offline = issuer_for("offline", target, 1, concurrency=4)
    m = measure(offline, RunPlan(duration_s=0.6, min_queries=10, warmup_s=0, window_s=0.2))
    assert m.queries >= 10
    assert len(target.threads) == 4  # every worker issued queries


def test_failed_queries_are_counted_with_the_first_error() -> None:
    class Failing(ScriptedTarget):
        def run(self, index: int) -> dict[str, Any]:
            raise RuntimeError("endpoint said no")

    m = measure(
        issuer_for("single-stream", Failing(0), 1, concurrency=1),
        RunPlan(duration_s=0.2, min_queries=5, warmup_s=0, window_s=0.1),
    )
    assert m.errors == m.queries > 0
    assert m.first_error == "RuntimeError: endpoint said no"
    assert m.latencies_ms.size == 0


def test_stability_needs_three_windows_within_ten_percent() -> None:
    target = ScriptedTarget(service_s=0.002)
    m = measure(
        issuer_for("single-stream", target, 1, concurrency=1),
        RunPlan(duration_s=1.2, min_queries=5, warmup_s=0, window_s=0.3),
    )
    stable, why = m.stability()
    assert isinstance(stable, bool)
    assert why
    m.windows = m.windows[:2]
    assert m.stability() == (False, "only 2 windows; 3 are needed to judge")


@pytest.mark.parametrize(
    ("scenario", "options", "message"),
    [
        ("server", {}, "needs --qps"),
        ("server", {"target_qps": -1.0}, "rate > 0"),
        ("multi-stream", {"samples_per_query": 0}, "at least 1 sample"),
        ("burst", {}, "unknown scenario 'burst'"),
    ],
)
def test_bad_scenario_settings_are_refused(
    scenario: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        issuer_for(scenario, ScriptedTarget(0), 1, concurrency=1, **options)


def test_a_stopped_server_run_still_issues_every_arrival_that_was_due() -> None:
    # The target slows to 50 ms per query near the end: arrivals pile up behind it. They were
    # due before the run ended, so they are issued and their lateness is measured.
    target = ScriptedTarget(service_s=0.001, stall_s=0.0, stall_at_call=-1)
    server = issuer_for("server", target, 1, concurrency=2, target_qps=200, seed=5)
    original = target.run

    def slow_late(index: int) -> dict[str, Any]:
        if target.calls > 120:
            time.sleep(0.05)
        return original(index)

    target.run = slow_late  # type: ignore[method-assign]
    m = measure(server, RunPlan(duration_s=1.0, min_queries=10, warmup_s=0, window_s=0.5))
    assert m.queries > 0.7 * 200  # about 200 arrivals were due in the measured second
    assert float(m.latencies_ms.max()) > 200  # the backlog's lateness is in the tail
    assert m.duration_s > 1.5  # the run lasted until the backlog was served


def test_throughput_counts_batch_rows_and_only_successful_queries() -> None:
    target = ScriptedTarget(service_s=0.005)
    issuer = issuer_for("single-stream", target, 1, concurrency=1, batch=8)
    m = measure(issuer, RunPlan(duration_s=0.3, min_queries=5, warmup_s=0, window_s=0.1))
    assert m.samples == 8 * m.queries
    assert m.throughput_qps == m.samples / m.duration_s
