from __future__ import annotations

import sys
from pathlib import Path

import pytest

from edgefleet.errors import MeterError
from edgefleet.telemetry.energy import CommandMeter, CsvMeter
from edgefleet.telemetry.energy.base import PowerIntegrator


def test_command_printing_watts_is_integrated_over_time() -> None:
    with CommandMeter("echo 7.5", interval_s=0.05) as meter:
        first = meter.read_joules()
        second = meter.read_joules()
    assert 0.0 <= first <= second
    assert "echo 7.5" in meter.description


def test_integrator_uses_the_trapezoid_rule_between_samples() -> None:
    watts = iter([0.0, 10.0, 10.0])
    ticks = iter([0.0, 1.0, 3.0])
    integrator = PowerIntegrator(lambda: next(watts), interval_s=None, clock=lambda: next(ticks))
    assert integrator.joules() == pytest.approx(5.0)
    assert integrator.joules() == pytest.approx(25.0)
    integrator.close()


def test_failing_command_is_a_meter_error_with_its_status() -> None:
    with pytest.raises(MeterError, match="exited with status 3"):
        CommandMeter("echo broken >&2; exit 3")


def test_non_numeric_output_is_a_meter_error_quoting_it() -> None:
    with pytest.raises(MeterError, match="'twelve watts'"):
        CommandMeter("echo twelve watts")


def test_command_failing_later_raises_on_the_next_read(tmp_path: Path) -> None:
    flag = tmp_path / "fail"
    script = (
        f"{sys.executable} -c \"import pathlib,sys; sys.exit(pathlib.Path(r'{flag}').exists())\""
    )
    with CommandMeter(f"{script} && echo 2", interval_s=0.02) as meter:
        flag.touch()
        with pytest.raises(MeterError, match="exited with status 1"):
            meter.read_joules()


def _write(path: Path, text: str) -> None:
    with path.open("a") as handle:
        handle.write(text)


def test_csv_rows_are_integrated_from_the_opening_time(tmp_path: Path) -> None:
    log = tmp_path / "power.csv"
    log.write_text("timestamp_s,watts\n100.0,4.0\n")
    with CsvMeter(log, start=101.0) as meter:
        assert meter.read_joules() == 0.0
        _write(log, "102.0,6.0\n")  # power at 101 interpolates to 5.0: (5 + 6) / 2 * 1
        assert meter.read_joules() == pytest.approx(5.5)
        _write(log, "104.0,6.0\n105.0,")  # the unfinished row does not count yet
        assert meter.read_joules() == pytest.approx(17.5)
        _write(log, "8.0\n")
        assert meter.read_joules() == pytest.approx(24.5)


def test_missing_csv_is_a_meter_error(tmp_path: Path) -> None:
    with pytest.raises(MeterError, match="does not exist"):
        CsvMeter(tmp_path / "absent.csv")


def test_malformed_csv_row_is_a_meter_error_naming_the_line(tmp_path: Path) -> None:
    log = tmp_path / "power.csv"
    log.write_text("timestamp_s,watts\n1.0,2.0\n2.0;3.0\n")
    with pytest.raises(MeterError, match=r"power.csv:3: expected 'timestamp_s,watts'"):
        CsvMeter(log, start=0.0)


def test_csv_timestamps_going_backwards_are_a_meter_error(tmp_path: Path) -> None:
    log = tmp_path / "power.csv"
    log.write_text("5.0,2.0\n4.0,2.0\n")
    with pytest.raises(MeterError, match="backwards"):
        CsvMeter(log, start=0.0)
