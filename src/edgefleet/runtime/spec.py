"""Descriptions of a model's inputs and outputs."""

from __future__ import annotations

from dataclasses import dataclass

from edgefleet.runtime.dtypes import ElementType

__all__ = ["MAX_RANK", "Dim", "TensorSpec"]

MAX_RANK = 64
"""The most dimensions a tensor may have: numpy's limit (ONNX Runtime's tensors are no deeper)."""

Dim = int | str | None
"""A dimension: a fixed size, a symbolic name (``"batch"``), or ``None`` for unknown."""


@dataclass(frozen=True)
class TensorSpec:
    """Name, element type and shape of one model input or output."""

    name: str
    type: ElementType
    shape: tuple[Dim, ...]

    @property
    def datatype(self) -> str:
        """The Open Inference Protocol datatype, e.g. ``FP32``."""
        return self.type.datatype

    @property
    def protocol_shape(self) -> list[int]:
        """The shape as the Open Inference Protocol states it: ``-1`` for dynamic dimensions."""
        return [d if isinstance(d, int) and d >= 0 else -1 for d in self.shape]

    def describe_shape(self) -> str:
        """Human-readable shape, e.g. ``[batch, 1, 8, 8]``."""
        return "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"

    def to_dict(self) -> dict[str, object]:
        """Open Inference Protocol tensor metadata."""
        return {"name": self.name, "datatype": self.datatype, "shape": self.protocol_shape}
