"""Example federated learning tasks; ``digits`` is the one the demo and the benchmarks use."""

from __future__ import annotations

from edgefleet.federated.tasks.digits import DigitsTask, export_onnx

__all__ = ["DigitsTask", "export_onnx"]
