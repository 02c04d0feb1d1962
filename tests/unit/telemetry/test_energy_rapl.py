from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.errors import MeterError
from edgefleet.telemetry.energy import RaplMeter
from edgefleet.telemetry.energy.rapl import wrapped_delta
from edgefleet.testing.sysfs import FakeSysfs


@pytest.fixture
def fake(tmp_path: Path) -> FakeSysfs:
    return FakeSysfs(tmp_path)


def test_reads_joules_since_opening_from_a_package_counter(fake: FakeSysfs) -> None:
    fake.add_rapl(0, energy_uj=5_000_000)
    with RaplMeter(fake.root) as meter:
        assert meter.read_joules() == 0.0
        fake.set_rapl_energy(0, 7_250_000)
        assert meter.read_joules() == pytest.approx(2.25)
        assert meter.description == "RAPL package-0 (intel-rapl)"


def test_counter_wrap_adds_the_rest_of_the_range(fake: FakeSysfs) -> None:
    fake.add_rapl(0, energy_uj=900, max_energy_range_uj=999)
    with RaplMeter(fake.root) as meter:
        fake.set_rapl_energy(0, 100)  # 900 -> 999 (99), wrap to 0 (1), 0 -> 100 (100)
        assert meter.read_joules() == pytest.approx(200e-6)


def test_subdomains_are_not_double_counted(fake: FakeSysfs) -> None:
    fake.add_rapl(0, energy_uj=0)
    fake.add_rapl(0, "core", energy_uj=0, sub=0)
    fake.add_rapl(0, "dram", energy_uj=0, sub=1)
    with RaplMeter(fake.root) as meter:
        fake.set_rapl_energy(0, 3_000_000)
        fake.set_rapl_energy(0, 2_000_000, sub=0)
        fake.set_rapl_energy(0, 500_000, sub=1)
        assert meter.read_joules() == pytest.approx(3.0)
        assert "core" not in meter.description


def test_sockets_are_summed(fake: FakeSysfs) -> None:
    fake.add_rapl(0, energy_uj=0)
    fake.add_rapl(1, energy_uj=0)
    with RaplMeter(fake.root) as meter:
        fake.set_rapl_energy(0, 1_000_000)
        fake.set_rapl_energy(1, 4_000_000)
        assert meter.read_joules() == pytest.approx(5.0)
        assert meter.description == "RAPL package-0 + package-1 (intel-rapl)"


def test_psys_is_used_only_when_there_is_no_package_zone(fake: FakeSysfs) -> None:
    fake.add_rapl(1, "psys", energy_uj=0)
    with RaplMeter(fake.root) as meter:
        assert meter.description == "RAPL psys (intel-rapl)"
    fake.add_rapl(0, energy_uj=0)
    with RaplMeter(fake.root) as meter:
        assert meter.description == "RAPL package-0 (intel-rapl)"
    with RaplMeter(fake.root, domain="psys") as meter:
        assert meter.description == "RAPL psys (intel-rapl)"


def test_no_zones_is_a_meter_error(fake: FakeSysfs) -> None:
    with pytest.raises(MeterError, match="no RAPL zones"):
        RaplMeter(fake.root)


def test_unreadable_energy_file_is_a_meter_error_naming_the_file(fake: FakeSysfs) -> None:
    fake.add_rapl(0)
    energy = fake.root / "sys/class/powercap/intel-rapl:0/energy_uj"
    energy.unlink()
    energy.mkdir()  # reading a directory fails even for root, unlike chmod 000
    with pytest.raises(MeterError, match=re.escape(str(energy))):
        RaplMeter(fake.root)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied_explains_the_root_only_counter(fake: FakeSysfs) -> None:
    fake.add_rapl(0)
    energy = fake.root / "sys/class/powercap/intel-rapl:0/energy_uj"
    energy.chmod(0)
    with pytest.raises(MeterError, match=r"permission denied.*root"):
        RaplMeter(fake.root)


def test_poll_thread_keeps_counting_and_stops_on_close(fake: FakeSysfs) -> None:
    fake.add_rapl(0, energy_uj=0)
    meter = RaplMeter(fake.root, poll_interval_s=0.01)
    fake.set_rapl_energy(0, 1_000_000)
    assert meter.read_joules() == pytest.approx(1.0)
    meter.close()
    meter.close()


@given(
    start=st.integers(0, 10_000),
    increments=st.lists(st.integers(0, 10_000), max_size=50),
)
def test_wrapped_readings_sum_to_the_true_total(start: int, increments: list[int]) -> None:
    max_range = 10_000  # each increment is below the modulus (max_range + 1): at most one wrap
    previous, total = start, 0
    for step in increments:
        current = (previous + step) % (max_range + 1)
        total += wrapped_delta(previous, current, max_range)
        previous = current
    assert total == sum(increments)
