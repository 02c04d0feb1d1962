from __future__ import annotations

import time
from pathlib import Path

import pytest

from edgefleet.errors import MeterError
from edgefleet.telemetry.energy import JetsonMeter
from edgefleet.telemetry.energy.jetson import find_rails, total_watts
from edgefleet.testing.sysfs import FakeSysfs


def test_constant_five_watts_is_five_joules_per_second_the_meter_is_open(tmp_path: Path) -> None:
    fake = FakeSysfs(tmp_path)
    fake.add_ina3221({"VDD_IN": (5000, 1000), "VDD_CPU_GPU_CV": (5000, 400)})
    before_open = time.monotonic()
    with JetsonMeter(fake.root, interval_s=0.05) as meter:
        opened = time.monotonic()
        deadline = opened + 60
        while meter.read_joules() < 1.5:  # the sampling thread integrates meanwhile
            assert time.monotonic() < deadline, "the meter never reached 1.5 J"
            time.sleep(0.01)
        before_read = time.monotonic()
        joules = meter.read_joules()
        after_read = time.monotonic()
    # the meter's own clock readings lie within the test's: the energy is bracketed exactly
    assert 5.0 * (before_read - opened) - 1e-9 <= joules <= 5.0 * (after_read - before_open) + 1e-9
    assert meter.description == "Jetson INA3221 rail VDD_IN"


def test_total_rail_is_preferred_over_the_sum(tmp_path: Path) -> None:
    fake = FakeSysfs(tmp_path)
    fake.add_ina3221({"VDD_CPU": (5000, 200), "POM_5V_IN": (5000, 1000)})
    read, description = total_watts(find_rails(fake.root))
    assert read() == pytest.approx(5.0)
    assert description == "Jetson INA3221 rail POM_5V_IN"


def test_rails_are_summed_when_there_is_no_total_rail_and_nc_is_ignored(tmp_path: Path) -> None:
    fake = FakeSysfs(tmp_path)
    fake.add_ina3221({"VDD_CPU": (5000, 200), "VDD_GPU": (5000, 400), "NC": (5000, 999)})
    read, description = total_watts(find_rails(fake.root))
    assert read() == pytest.approx(3.0)
    assert description == "Jetson INA3221 sum of rails VDD_CPU + VDD_GPU"


def test_old_jetpack_iio_layout_reads_milliwatts(tmp_path: Path) -> None:
    fake = FakeSysfs(tmp_path)
    fake.add_ina3221({"POM_5V_IN": (5000, 1200), "POM_5V_GPU": (5000, 100)}, layout="iio")
    read, description = total_watts(find_rails(fake.root))
    assert read() == pytest.approx(6.0)
    assert "POM_5V_IN" in description


def test_no_rails_is_a_meter_error(tmp_path: Path) -> None:
    with pytest.raises(MeterError, match="no INA3221"):
        JetsonMeter(tmp_path)


def test_malformed_rail_reading_is_a_meter_error_naming_the_file(tmp_path: Path) -> None:
    fake = FakeSysfs(tmp_path)
    fake.add_ina3221({"VDD_IN": (5000, 1000)})
    fake.write("sys/bus/i2c/devices/1-0040/hwmon/hwmon3/curr1_input", "n/a")
    with pytest.raises(MeterError, match="curr1_input"):
        JetsonMeter(fake.root)
