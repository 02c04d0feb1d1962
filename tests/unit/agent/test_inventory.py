from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path

import onnxruntime as ort

from edgefleet import __version__
from edgefleet.agent.inventory import collect_inventory, cpu_model, memory_info
from edgefleet.protocol.v1 import ActiveModel


def test_inventory_of_this_machine(tmp_path: Path) -> None:
    active = ActiveModel(name="digits", version="2", release=3, sha256="ab" * 32)
    inv = collect_inventory(tmp_path, labels={"site": "lab"}, active_model=active)
    assert inv.arch == platform.machine()
    assert inv.cpu_count == os.cpu_count()
    assert inv.cpu_model
    assert inv.memory_bytes >= inv.memory_available_bytes > 0
    assert 0 < inv.disk_free_bytes <= shutil.disk_usage(tmp_path).total
    assert inv.hostname
    assert inv.os
    assert inv.python == platform.python_version()
    assert inv.onnxruntime_version == ort.__version__
    assert "CPUExecutionProvider" in inv.execution_providers
    assert inv.agent_version == __version__
    assert inv.active_model == active
    assert inv.labels == {"site": "lab"}


def test_meminfo_and_cpuinfo_from_a_fake_proc(tmp_path: Path) -> None:
    (tmp_path / "meminfo").write_text(
        "MemTotal:        8000000 kB\nMemFree:          100000 kB\nMemAvailable:    4000000 kB\n"
    )
    (tmp_path / "cpuinfo").write_text(
        "processor\t: 0\nBogoMIPS\t: 108.00\nModel\t\t: Raspberry Pi 5 Model B Rev 1.0\n"
    )
    info = memory_info(tmp_path)
    assert (info.total_bytes, info.available_bytes) == (8_000_000 * 1024, 4_000_000 * 1024)
    assert cpu_model(tmp_path) == "Raspberry Pi 5 Model B Rev 1.0"


def test_without_proc_the_fallbacks_answer(tmp_path: Path) -> None:
    info = memory_info(tmp_path / "absent")
    assert info.total_bytes >= info.available_bytes >= 0
    assert isinstance(cpu_model(tmp_path / "absent"), str)
