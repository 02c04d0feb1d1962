from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgefleet.errors import MeterError
from edgefleet.telemetry.energy import EstimateMeter
from edgefleet.telemetry.energy.estimate import (
    DEFAULT_WATTS_PER_CORE,
    cpu_model,
    read_cpu_ticks,
)
from edgefleet.testing.sysfs import FakeSysfs

TICKS = os.sysconf("SC_CLK_TCK")


def test_stat_is_parsed_from_the_last_parenthesis(tmp_path: Path) -> None:
    fake = FakeSysfs(tmp_path)
    fake.add_process(42, utime_ticks=70, stime_ticks=30, comm="a) b (c) 7 8")
    assert read_cpu_ticks(fake.root, 42) == 100


def test_explicit_figure_times_cpu_seconds(tmp_path: Path) -> None:
    fake = FakeSysfs(tmp_path)
    fake.add_process(10, 100, 0)
    with EstimateMeter(fake.root, [10], watts_per_core=2.0) as meter:
        fake.add_process(10, 100 + 3 * TICKS, TICKS)  # 4 CPU seconds later
        assert meter.read_joules() == pytest.approx(8.0)
        assert meter.estimated
        assert "ESTIMATE" in meter.description
        assert "2 W per core (given)" in meter.description


def test_figure_comes_from_the_cpu_model_table(tmp_path: Path) -> None:
    fake = FakeSysfs(tmp_path)
    fake.add_cpuinfo("Raspberry Pi 4 Model B Rev 1.4", key="Model")
    fake.add_process(10, 0, 0)
    with EstimateMeter(fake.root, [10]) as meter:
        fake.add_process(10, 2 * TICKS, 0)
        assert meter.watts_per_core == 1.0
        assert meter.read_joules() == pytest.approx(2.0)
        assert "'raspberry pi'" in meter.description


def test_arm_cpu_part_number_names_the_core(tmp_path: Path) -> None:
    fake = FakeSysfs(tmp_path)
    fake.write("proc/cpuinfo", "processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xd42\n")
    assert cpu_model(fake.root) == "Cortex-A78AE"
    fake.add_process(1, 0, 0)
    with EstimateMeter(fake.root, [1]) as meter:
        assert meter.watts_per_core == 1.5


def test_unknown_cpu_uses_the_documented_default(tmp_path: Path) -> None:
    fake = FakeSysfs(tmp_path)
    fake.add_process(1, 0, 0)
    with EstimateMeter(fake.root, [1]) as meter:
        assert meter.watts_per_core == DEFAULT_WATTS_PER_CORE
        assert "default" in meter.description


def test_pids_added_later_count_from_when_they_are_added(tmp_path: Path) -> None:
    fake = FakeSysfs(tmp_path)
    fake.add_process(1, 0, 0)
    fake.add_process(2, 5 * TICKS, 0)
    with EstimateMeter(fake.root, [1], watts_per_core=1.0) as meter:
        meter.add_pid(2)
        fake.add_process(2, 6 * TICKS, 0)
        assert meter.read_joules() == pytest.approx(1.0)
        assert meter.pids == (1, 2)


def test_exited_process_keeps_its_last_cpu_time(tmp_path: Path) -> None:
    fake = FakeSysfs(tmp_path)
    fake.add_process(3, 0, 0)
    with EstimateMeter(fake.root, [3], watts_per_core=1.0) as meter:
        fake.add_process(3, TICKS, 0)
        assert meter.read_joules() == pytest.approx(1.0)
        (fake.root / "proc/3/stat").unlink()
        assert meter.read_joules() == pytest.approx(1.0)


def test_unknown_pid_is_a_meter_error(tmp_path: Path) -> None:
    with pytest.raises(MeterError, match="proc/99/stat"):
        EstimateMeter(tmp_path, [99], watts_per_core=1.0)


def test_non_positive_figure_is_a_meter_error(tmp_path: Path) -> None:
    with pytest.raises(MeterError, match="positive"):
        EstimateMeter(tmp_path, [1], watts_per_core=0.0)
