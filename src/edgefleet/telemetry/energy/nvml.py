"""NVIDIA GPU energy and clock-event (throttle) reasons through NVML.

Uses the optional ``pynvml`` module (``pip install nvidia-ml-py``), imported only when a meter is
opened. ``nvmlDeviceGetTotalEnergyConsumption`` returns millijoules since the driver loaded
(Volta or newer; it updates every 20-100 ms, so measure over many inferences). Tests and callers
may pass an ``nvml`` module object instead of importing ``pynvml``.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from edgefleet.errors import MeterError
from edgefleet.telemetry.energy.base import MeterBase

__all__ = [
    "CLOCK_EVENT_REASONS",
    "THROTTLE_REASON_NAMES",
    "NvmlMeter",
    "decode_clock_event_reasons",
    "load_nvml",
    "read_clock_event_reasons",
]

CLOCK_EVENT_REASONS: dict[int, str] = {
    0x01: "GPU idle",
    0x02: "applications clocks setting",
    0x04: "SW power cap",
    0x08: "HW slowdown",
    0x10: "sync boost",
    0x20: "SW thermal slowdown",
    0x40: "HW thermal slowdown",
    0x80: "HW power brake slowdown",
    0x100: "display clock setting",
}
"""NVML clock-event reason bits and their names."""

THROTTLE_REASON_NAMES = frozenset(
    CLOCK_EVENT_REASONS[bit] for bit in (0x04, 0x08, 0x20, 0x40, 0x80)
)
"""The reasons that mean the GPU was slowed by power or heat (not idle or by a setting)."""

_INSTALL_HINT = "install the NVML bindings with `pip install nvidia-ml-py`"

_init_lock = threading.Lock()


def load_nvml(nvml: Any = None) -> Any:
    """``nvml`` if given, else the imported ``pynvml``; MeterError with a hint if absent."""
    if nvml is not None:
        return nvml
    try:
        return importlib.import_module("pynvml")
    except ImportError as exc:
        raise MeterError(f"NVML is not available: {_INSTALL_HINT}") from exc


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _open_handle(nvml: Any, index: int) -> Any:
    with _init_lock:
        try:
            nvml.nvmlInit()
        except Exception as exc:
            raise MeterError(
                f"NVML could not start ({exc}): no NVIDIA GPU or driver on this machine?"
            ) from exc
    try:
        count = int(nvml.nvmlDeviceGetCount())
        if index >= count:
            raise MeterError(f"no NVIDIA GPU with index {index} ({count} found)")
        return nvml.nvmlDeviceGetHandleByIndex(index)
    except MeterError:
        nvml.nvmlShutdown()
        raise
    except Exception as exc:
        nvml.nvmlShutdown()
        raise MeterError(f"NVML could not open GPU {index}: {exc}") from exc


def decode_clock_event_reasons(mask: int) -> tuple[str, ...]:
    """Names of the clock-event reason bits set in ``mask``, lowest bit first.

    Examples
    --------
    >>> decode_clock_event_reasons(0x40 | 0x04)
    ('SW power cap', 'HW thermal slowdown')
    >>> decode_clock_event_reasons(0)
    ()
    """
    names = [name for bit, name in sorted(CLOCK_EVENT_REASONS.items()) if mask & bit]
    unknown = mask & ~sum(CLOCK_EVENT_REASONS)
    if unknown:
        names.append(f"unknown reason bits {unknown:#x}")
    return tuple(names)


def read_clock_event_reasons(index: int = 0, *, nvml: Any = None) -> tuple[str, ...]:
    """Current clock-event reasons of GPU ``index``, decoded to names.

    Falls back to ``nvmlDeviceGetCurrentClocksThrottleReasons`` on bindings older than the
    "clocks event" renaming.

    Raises
    ------
    MeterError
        NVML is missing, there is no such GPU, or the query failed.
    """
    lib = load_nvml(nvml)
    handle = _open_handle(lib, index)
    try:
        query = getattr(lib, "nvmlDeviceGetCurrentClocksEventReasons", None)
        if query is None:  # bindings older than the "clocks event" renaming
            query = lib.nvmlDeviceGetCurrentClocksThrottleReasons
        return decode_clock_event_reasons(int(query(handle)))
    except Exception as exc:
        raise MeterError(f"NVML could not read clock-event reasons of GPU {index}: {exc}") from exc
    finally:
        lib.nvmlShutdown()


class NvmlMeter(MeterBase):
    """Energy of one NVIDIA GPU from its total-energy counter.

    Parameters
    ----------
    index
        GPU index as NVML numbers them.
    nvml
        An NVML module object (defaults to importing ``pynvml``).

    Raises
    ------
    MeterError
        ``pynvml`` is not installed, NVML cannot start (no GPU or driver), there is no GPU
        ``index``, or the GPU has no energy counter (older than Volta).
    """

    name = "nvml"
    estimated = False

    def __init__(self, index: int = 0, *, nvml: Any = None) -> None:
        self._nvml = load_nvml(nvml)
        self._handle = _open_handle(self._nvml, index)
        self._closed = False
        try:
            gpu = _text(self._nvml.nvmlDeviceGetName(self._handle))
            self._start_mj = self._read_mj()
        except BaseException:
            self.close()
            raise
        self._last_j = 0.0
        self.description = f"NVML total energy of GPU {index} ({gpu})"

    def _read_mj(self) -> int:
        try:
            return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
        except Exception as exc:
            raise MeterError(
                f"NVML total energy counter unavailable ({exc}): it needs a Volta or newer GPU"
            ) from exc

    def read_joules(self) -> float:
        """GPU energy since the meter opened, in joules."""
        joules = (self._read_mj() - self._start_mj) / 1000.0
        self._last_j = max(self._last_j, joules)
        return self._last_j

    def close(self) -> None:
        """Shut NVML down (idempotent)."""
        if not self._closed:
            self._closed = True
            self._nvml.nvmlShutdown()
