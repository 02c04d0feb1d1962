"""What the agent reports about its device: hardware, software, labels and the active model.

Readers take a ``proc`` root so they can be tested on fake trees; on systems without
``/proc`` they fall back to :func:`os.sysconf` and :mod:`platform`.

>>> info = memory_info()
>>> info.total_bytes >= info.available_bytes > 0
True
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

from edgefleet import __version__
from edgefleet.protocol.v1 import ActiveModel, Inventory

__all__ = ["MemoryInfo", "collect_inventory", "cpu_model", "memory_info", "os_name"]

log = logging.getLogger(__name__)

PROC = Path("/proc")


@dataclass(frozen=True)
class MemoryInfo:
    """Physical memory in bytes."""

    total_bytes: int
    available_bytes: int


def memory_info(proc: Path = PROC) -> MemoryInfo:
    """Total and available memory, from ``meminfo`` or else :func:`os.sysconf`."""
    fields: dict[str, int] = {}
    try:
        for line in (proc / "meminfo").read_text(encoding="ascii").splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                scale = 1024 if parts[1:2] == ["kB"] else 1
                fields[key.strip()] = int(parts[0]) * scale
    except (OSError, UnicodeDecodeError):
        pass
    total = fields.get("MemTotal")
    available = fields.get("MemAvailable", fields.get("MemFree"))
    if total is not None and available is not None:
        return MemoryInfo(total, available)
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        total = page * os.sysconf("SC_PHYS_PAGES")
        available = page * os.sysconf("SC_AVPHYS_PAGES")
    except (AttributeError, OSError, ValueError):  # not every platform names these
        return MemoryInfo(0, 0)
    return MemoryInfo(max(total, 0), max(available, 0))


def cpu_model(proc: Path = PROC) -> str:
    """The CPU's marketing name (x86 ``model name``; ARM ``Model`` or ``Hardware``)."""
    found: dict[str, str] = {}
    try:
        for line in (proc / "cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, sep, value = line.partition(":")
            if sep and value.strip():
                found.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    for key in ("model name", "Model", "Hardware", "cpu model", "Processor"):
        if key in found:
            return found[key]
    return platform.processor() or platform.machine()


def os_name() -> str:
    """A readable operating system name, e.g. ``Debian GNU/Linux 12 (bookworm)``."""
    try:
        pretty = platform.freedesktop_os_release().get("PRETTY_NAME")
    except OSError:
        pretty = None
    kernel = f"{platform.system()} {platform.release()}".strip()
    return f"{pretty} ({kernel})" if pretty else (kernel or platform.platform())


def _disk_free(directory: Path) -> int:
    try:
        return shutil.disk_usage(directory).free
    except OSError as exc:
        log.debug("cannot measure free disk space of %s: %s", directory, exc)
        return 0


def collect_inventory(
    data_dir: Path,
    *,
    labels: dict[str, str] | None = None,
    active_model: ActiveModel | None = None,
    fl_tasks: list[str] | None = None,
    proc: Path = PROC,
) -> Inventory:
    """Describe this device for a heartbeat or the enrolment request.

    Parameters
    ----------
    data_dir
        The agent's data directory; its file system's free space is reported.
    labels
        The device's labels.
    active_model
        The model served now, if any.
    fl_tasks
        The federated tasks this device trains.
    proc
        Root of the ``/proc`` tree to read.
    """
    memory = memory_info(proc)
    return Inventory(
        hostname=socket.gethostname(),
        arch=platform.machine(),
        cpu_model=cpu_model(proc),
        cpu_count=os.cpu_count() or 0,
        memory_bytes=memory.total_bytes,
        memory_available_bytes=memory.available_bytes,
        disk_free_bytes=_disk_free(data_dir),
        os=os_name(),
        python=platform.python_version(),
        onnxruntime_version=ort.__version__,
        execution_providers=list(ort.get_available_providers()),
        agent_version=__version__,
        active_model=active_model,
        labels=dict(labels or {}),
        fl_tasks=list(fl_tasks or []),
    )
