from __future__ import annotations

from pathlib import Path

import pytest

from edgefleet.telemetry.thermal import (
    ThermalSample,
    read_thermal,
    temperature_changes,
    throttle_evidence,
)
from edgefleet.testing.sysfs import FakeSysfs


@pytest.fixture
def fake(tmp_path: Path) -> FakeSysfs:
    return FakeSysfs(tmp_path)


def test_missing_files_give_an_empty_sample(fake: FakeSysfs) -> None:
    assert read_thermal(fake.root) == ThermalSample()


def test_zones_frequencies_and_counters_are_read_in_their_units(fake: FakeSysfs) -> None:
    fake.add_thermal_zone(0, "acpitz", 27800)
    fake.add_thermal_zone(1, "x86_pkg_temp", 48000)
    fake.add_thermal_zone(2, "acpitz", 30000)
    fake.add_cpu(0, cur_khz=3_400_000, max_khz=4_000_000, core_throttle=2, package_throttle=5)
    fake.set_rpi_throttled(0x50005)
    sample = read_thermal(fake.root, nvml_reasons=["GPU idle"])
    assert sample.temperatures_c == {
        "acpitz": 27.8,
        "x86_pkg_temp": 48.0,
        "acpitz/thermal_zone2": 30.0,
    }
    assert sample.cpu_mhz == {0: 3400.0}
    assert sample.cpu_max_mhz == {0: 4000.0}
    assert sample.throttle_counts == {(0, "core"): 2, (0, "package"): 5}
    assert sample.rpi_throttled == 0x50005
    assert sample.nvml_reasons == ("GPU idle",)
    assert sample.problems == ()


def test_malformed_files_are_recorded_as_problems_not_raised(fake: FakeSysfs) -> None:
    fake.add_thermal_zone(0, "cpu-thermal", "hot")
    fake.add_cpu(0, cur_khz="<unknown>", max_khz=1_500_000)
    fake.set_rpi_throttled("throttled=0xzz")
    sample = read_thermal(fake.root)
    assert sample.temperatures_c == {}
    assert sample.cpu_max_mhz == {0: 1500.0}
    assert sample.rpi_throttled is None
    assert len(sample.problems) == 3
    assert any("thermal_zone0/temp" in p and "'hot'" in p for p in sample.problems)


def test_rising_throttle_counters_are_evidence(fake: FakeSysfs) -> None:
    fake.add_cpu(0, 4_000_000, 4_000_000, core_throttle=3, package_throttle=10)
    fake.add_cpu(1, 4_000_000, 4_000_000, core_throttle=0, package_throttle=10)
    before = read_thermal(fake.root)
    fake.add_cpu(0, 4_000_000, 4_000_000, core_throttle=15, package_throttle=14)
    fake.add_cpu(1, 4_000_000, 4_000_000, core_throttle=0, package_throttle=14)
    assert throttle_evidence(before, read_thermal(fake.root)) == [
        "thermal_throttle core count +12 on cpu0",
        "thermal_throttle package count +4 on cpu0",
    ]


def test_fastest_cpu_below_85_percent_of_max_is_evidence(fake: FakeSysfs) -> None:
    fake.add_cpu(0, 3_900_000, 4_000_000)
    fake.add_cpu(1, 800_000, 4_000_000)  # an idle core clocked down is not evidence
    before = read_thermal(fake.root)
    assert throttle_evidence(before, before) == []
    fake.add_cpu(0, 2_440_000, 4_000_000)
    assert throttle_evidence(before, read_thermal(fake.root)) == [
        "cpu frequency fell to 61% of max (fastest core), from 98% before"
    ]


def test_raspberry_pi_bits_now_and_newly_set_since_boot_are_evidence(fake: FakeSysfs) -> None:
    fake.set_rpi_throttled(0x10000)  # under-voltage happened before the run: not this run's
    before = read_thermal(fake.root)
    fake.set_rpi_throttled(0x50004)
    assert throttle_evidence(before, read_thermal(fake.root)) == [
        "Raspberry Pi: throttled now (bit 2)",
        "Raspberry Pi: throttled since boot, newly set (bit 18)",
    ]


def test_nvml_throttle_reasons_are_evidence_but_idle_is_not() -> None:
    after = ThermalSample(nvml_reasons=("GPU idle", "HW thermal slowdown", "SW power cap"))
    assert throttle_evidence(ThermalSample(), after) == [
        "NVML: HW thermal slowdown",
        "NVML: SW power cap",
    ]


def test_temperature_rise_is_context_not_evidence(fake: FakeSysfs) -> None:
    fake.add_thermal_zone(0, "x86_pkg_temp", 48000)
    fake.add_thermal_zone(1, "acpitz", 30000)
    before = read_thermal(fake.root)
    fake.add_thermal_zone(0, "x86_pkg_temp", 81500)
    fake.add_thermal_zone(1, "acpitz", 31000)
    after = read_thermal(fake.root)
    assert throttle_evidence(before, after) == []
    assert temperature_changes(before, after) == [
        "temperature rose from 48.0 to 81.5 °C on x86_pkg_temp"
    ]
