"""The sustained-load verdict, from windows of throughput and readings of fake sensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgefleet.bench.runner import Measurement, Window
from edgefleet.bench.sustained import sustained_verdict
from edgefleet.telemetry.thermal import ThermalSample, read_thermal
from edgefleet.testing.sysfs import FakeSysfs


def run_with(qps: list[float], start: ThermalSample, end: ThermalSample) -> Measurement:
    windows = [Window(60.0 * (i + 1), 100, q, 1.0, 2.0, None, None) for i, q in enumerate(qps)]
    return Measurement(
        queries=100 * len(qps),
        samples=100 * len(qps),
        errors=0,
        first_error=None,
        duration_s=60.0 * len(qps),
        latencies_ms=np.ones(10),
        windows=windows,
        met_minimums=True,
        interrupted=False,
        thermal_start=start,
        thermal_end=end,
    )


def hot_chip(tmp_path: Path, throttles: int, khz: int) -> ThermalSample:
    fake = FakeSysfs(tmp_path)
    fake.add_thermal_zone(0, "x86_pkg_temp", 85_000)
    fake.add_cpu(0, cur_khz=khz, max_khz=3_000_000, core_throttle=throttles)
    return read_thermal(tmp_path)


def test_a_fall_in_throughput_with_throttle_counters_rising_is_throttled(tmp_path: Path) -> None:
    cool = hot_chip(tmp_path / "a", throttles=0, khz=3_000_000)
    hot = hot_chip(tmp_path / "b", throttles=40, khz=1_800_000)
    verdict = sustained_verdict(run_with([100, 100, 100, 90, 80, 75, 75, 75], cool, hot), 60)
    assert verdict["verdict"] == "throttled"
    assert verdict["throughput_drop"] == 0.25
    assert any("thermal_throttle" in line for line in verdict["evidence"])
    assert any("frequency" in line for line in verdict["evidence"])
    assert len(verdict["windows"]) == 8


def test_the_same_fall_without_any_sensor_is_degraded_without_evidence() -> None:
    none = ThermalSample()
    verdict = sustained_verdict(run_with([100, 100, 100, 80, 80, 80], none, none), 60)
    assert verdict["verdict"] == "degraded without sensor evidence"
    assert verdict["evidence"] == []


def test_a_small_fall_is_stable_even_on_a_hot_chip(tmp_path: Path) -> None:
    cool = hot_chip(tmp_path / "a", throttles=0, khz=3_000_000)
    hot = hot_chip(tmp_path / "b", throttles=5, khz=2_900_000)
    verdict = sustained_verdict(run_with([100, 101, 99, 97, 95, 95], cool, hot), 60)
    assert verdict["verdict"] == "stable"
    assert verdict["throughput_drop"] == 0.05


def test_too_few_windows_are_not_judged() -> None:
    verdict = sustained_verdict(run_with([100, 50, 25], ThermalSample(), ThermalSample()), 60)
    assert verdict["verdict"].startswith("too short to judge")
    assert verdict["throughput_drop"] is None
