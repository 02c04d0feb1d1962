"""The environment fingerprint every report carries: what was measured, on what."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path
from typing import Any

import onnxruntime as ort

from edgefleet import __version__

__all__ = ["fingerprint"]


def _cpuinfo(root: Path) -> tuple[str, int | None]:
    """CPU model name and physical core count from ``/proc/cpuinfo`` (None when unknown)."""
    try:
        text = (root / "proc" / "cpuinfo").read_text(errors="replace")
    except OSError:
        return platform.processor() or platform.machine(), None
    model, cores, physical = "", set(), ""
    for line in text.splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key in ("model name", "Model", "Hardware", "cpu model") and not model:
            model = value
        elif key == "physical id":
            physical = value
        elif key == "core id":
            cores.add((physical, value))
    return model or platform.processor() or platform.machine(), len(cores) or None


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def fingerprint(root: Path = Path("/")) -> dict[str, Any]:
    """Hostname, CPU, cores, memory, OS, Python, ONNX Runtime and its execution providers."""
    model, physical = _cpuinfo(root)
    return {
        "hostname": socket.gethostname(),
        "cpu_model": model,
        "cores_logical": os.cpu_count(),
        "cores_physical": physical or os.cpu_count(),
        "memory_bytes": _memory_bytes(),
        "os": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "execution_providers": ort.get_available_providers(),
        "edgefleet": __version__,
    }
