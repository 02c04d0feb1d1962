"""Flower's own virtual environment for the federated benchmarks, created on first use.

Flower 1.42 with its simulation extra (Ray), the same CPU build of PyTorch as edgefleet's
environment, scikit-learn and numpy, under ``benchmarks/.cache/flower-venv`` (ignored by git).
The Flower-side scripts (``_flower_digits.py``, ``_flower_deployment.py``) run with its Python.
``python benchmarks/_flower_venv.py`` creates it and prints that Python's path.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

VENV = Path(__file__).resolve().parent / ".cache" / "flower-venv"
REQUIREMENTS = ["flwr[simulation]==1.42.0", "torch==2.13.0", "scikit-learn", "numpy"]


def flower_python() -> Path:
    """The Flower venv's Python, installing the venv first if needed (a few minutes, once)."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".installed"
    if not stamp.exists() or stamp.read_text() != " ".join(REQUIREMENTS):
        print(f"installing Flower into {VENV} (first run only, takes a few minutes)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        done = subprocess.run([*pip, *REQUIREMENTS], capture_output=True, text=True, timeout=3600)
        if done.returncode:
            raise RuntimeError(f"pip install failed:\n{done.stderr[-2000:]}")
        stamp.write_text(" ".join(REQUIREMENTS))
    return python


if __name__ == "__main__":
    print(flower_python())
