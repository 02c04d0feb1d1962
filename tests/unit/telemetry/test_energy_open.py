from __future__ import annotations

import time
from contextlib import closing
from pathlib import Path

import pytest

from edgefleet.errors import ConfigurationError, MeterError
from edgefleet.telemetry.energy import (
    EnergyMeter,
    EstimateMeter,
    energy_result,
    measure_idle,
    open_meter,
)
from edgefleet.testing.sysfs import FakeSysfs

from .test_energy_nvml import FakeNvml


def _open(spec: str, fake: FakeSysfs, nvml: object = None) -> EnergyMeter:
    return open_meter(spec, root=fake.root, pids=[1], watts_per_core=1.0, nvml=nvml)


@pytest.fixture
def fake(tmp_path: Path) -> FakeSysfs:
    tree = FakeSysfs(tmp_path)
    tree.add_process(1, 0, 0)
    return tree


def test_auto_prefers_rapl(fake: FakeSysfs) -> None:
    fake.add_rapl(0)
    fake.add_ina3221({"VDD_IN": (5000, 1000)})
    meter = _open("auto", fake, FakeNvml())
    assert meter.name == "rapl"
    meter.close()


def test_auto_takes_nvml_when_there_is_no_rapl(fake: FakeSysfs) -> None:
    fake.add_ina3221({"VDD_IN": (5000, 1000)})
    meter = _open("auto", fake, FakeNvml())
    assert meter.name == "nvml"
    meter.close()


def test_auto_takes_jetson_when_there_is_no_rapl_or_gpu(fake: FakeSysfs) -> None:
    fake.add_ina3221({"VDD_IN": (5000, 1000)})
    meter = _open("auto", fake, FakeNvml(gpus=0))
    assert meter.name == "jetson"
    meter.close()


def test_auto_falls_back_to_a_labelled_estimate_saying_why(fake: FakeSysfs) -> None:
    meter = _open("auto", fake, FakeNvml(gpus=0))
    assert meter.name == "estimate"
    assert meter.estimated
    assert "no RAPL zones" in meter.description
    assert "no INA3221" in meter.description
    meter.close()


@pytest.mark.parametrize("spec", ["rapl", "jetson", "nvml"])
def test_named_meter_that_is_absent_is_a_meter_error(fake: FakeSysfs, spec: str) -> None:
    with pytest.raises(MeterError):
        _open(spec, fake, FakeNvml(gpus=0))


def test_cmd_and_csv_specs_open_external_meters(fake: FakeSysfs) -> None:
    meter = _open("cmd:echo 3", fake)
    assert meter.name == "cmd"
    meter.close()
    log = fake.root / "power.csv"
    log.write_text("")
    meter = _open(f"csv:{log}", fake)
    assert meter.name == "csv"
    meter.close()


@pytest.mark.parametrize("spec", ["magic", "rapl:0", "csv:", "", "auto:rapl"])
def test_bad_spec_is_a_configuration_error_listing_the_choices(fake: FakeSysfs, spec: str) -> None:
    with pytest.raises(ConfigurationError, match=r"auto, rapl, nvml, jetson, estimate|path"):
        _open(spec, fake)


def test_energy_result_subtracts_the_idle_baseline(fake: FakeSysfs) -> None:
    with EstimateMeter(fake.root, [1], watts_per_core=1.0) as meter:
        result = energy_result(meter, 4.0, joules_used=60.0, seconds=10.0, inferences=2000)
    assert result.as_dict() == {
        "meter": "estimate",
        "estimated": True,
        "mean_watts": 6.0,
        "idle_watts": 4.0,
        "mj_per_inference": pytest.approx(10.0),
    }


def test_energy_result_is_never_negative(fake: FakeSysfs) -> None:
    with EstimateMeter(fake.root, [1], watts_per_core=1.0) as meter:
        result = energy_result(meter, 10.0, joules_used=5.0, seconds=1.0, inferences=10)
    assert result.mj_per_inference == 0.0


def test_energy_result_needs_a_positive_duration_and_count(fake: FakeSysfs) -> None:
    with EstimateMeter(fake.root, [1], watts_per_core=1.0) as meter:
        with pytest.raises(ValueError, match="seconds"):
            energy_result(meter, 0.0, 1.0, seconds=0.0, inferences=1)
        with pytest.raises(ValueError, match="inferences"):
            energy_result(meter, 0.0, 1.0, seconds=1.0, inferences=0)


def test_measure_idle_returns_mean_watts_of_a_quiet_interval(fake: FakeSysfs) -> None:
    fake.add_ina3221({"VDD_IN": (5000, 600)})
    with closing(open_meter("jetson", root=fake.root)) as meter:
        start = time.monotonic()
        watts = measure_idle(meter, 0.1)
    assert time.monotonic() - start >= 0.1
    assert watts == pytest.approx(3.0, rel=0.05)
