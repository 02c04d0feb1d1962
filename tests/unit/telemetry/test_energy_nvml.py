from __future__ import annotations

import importlib.util

import pytest

from edgefleet.errors import MeterError
from edgefleet.telemetry.energy import (
    NvmlMeter,
    decode_clock_event_reasons,
    read_clock_event_reasons,
)
from edgefleet.telemetry.energy.nvml import load_nvml


class FakeNvml:
    """Stands in for the ``pynvml`` module.

    No NVIDIA GPU or driver exists on the machines that run this suite, so the real library
    cannot be exercised here; this fake implements only the calls the meter makes, with the
    units NVML documents (millijoules since driver load, a reason bitmask). Method names mirror
    pynvml's, hence the N802 exemptions.
    """

    def __init__(self, *, gpus: int = 1, energy_mj: int = 1_000_000, reasons: int = 0) -> None:
        self.gpus = gpus
        self.energy_mj = energy_mj
        self.reasons = reasons
        self.started = 0
        self.energy_supported = True

    def nvmlInit(self) -> None:  # noqa: N802
        if self.gpus == 0:
            raise RuntimeError("NVML Shared Library Not Found")
        self.started += 1

    def nvmlShutdown(self) -> None:  # noqa: N802
        self.started -= 1

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return self.gpus

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:  # noqa: N802
        return f"handle-{index}"

    def nvmlDeviceGetName(self, handle: str) -> bytes:  # noqa: N802
        return b"NVIDIA H100"

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: str) -> int:  # noqa: N802
        if not self.energy_supported:
            raise RuntimeError("Not Supported")
        return self.energy_mj

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: str) -> int:  # noqa: N802
        return self.reasons


def test_energy_is_the_counter_difference_in_joules() -> None:
    nvml = FakeNvml(energy_mj=5_000_000)
    with NvmlMeter(nvml=nvml) as meter:
        nvml.energy_mj += 2_500
        assert meter.read_joules() == pytest.approx(2.5)
        assert meter.description == "NVML total energy of GPU 0 (NVIDIA H100)"
    assert nvml.started == 0


def test_missing_pynvml_is_a_meter_error_with_an_install_hint() -> None:
    if importlib.util.find_spec("pynvml") is not None:
        pytest.skip("pynvml is installed here")
    with pytest.raises(MeterError, match="pip install nvidia-ml-py"):
        load_nvml()


def test_no_gpu_is_a_meter_error() -> None:
    with pytest.raises(MeterError, match="no NVIDIA GPU or driver"):
        NvmlMeter(nvml=FakeNvml(gpus=0))


def test_gpu_index_out_of_range_is_a_meter_error_and_shuts_nvml_down() -> None:
    nvml = FakeNvml(gpus=1)
    with pytest.raises(MeterError, match="index 2"):
        NvmlMeter(2, nvml=nvml)
    assert nvml.started == 0


def test_gpu_without_an_energy_counter_is_a_meter_error() -> None:
    nvml = FakeNvml()
    nvml.energy_supported = False
    with pytest.raises(MeterError, match="Volta"):
        NvmlMeter(nvml=nvml)
    assert nvml.started == 0


def test_clock_event_reasons_are_decoded_to_names() -> None:
    assert decode_clock_event_reasons(0x20 | 0x40 | 0x04 | 0x08 | 0x80) == (
        "SW power cap",
        "HW slowdown",
        "SW thermal slowdown",
        "HW thermal slowdown",
        "HW power brake slowdown",
    )
    assert decode_clock_event_reasons(0x1000) == ("unknown reason bits 0x1000",)


def test_clock_event_reasons_are_read_from_the_gpu() -> None:
    nvml = FakeNvml(reasons=0x40)
    assert read_clock_event_reasons(nvml=nvml) == ("HW thermal slowdown",)
    assert nvml.started == 0
