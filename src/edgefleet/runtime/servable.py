"""What a server needs from anything it serves: a model or a pipeline."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from numpy.typing import NDArray

from edgefleet.runtime.spec import TensorSpec
from edgefleet.telemetry import TelemetrySnapshot
from edgefleet.telemetry.totals import TelemetryTotals

__all__ = ["Servable", "TelemetrySource"]


class TelemetrySource(Protocol):
    """Anything that can produce telemetry: windowed snapshots and cumulative totals."""

    def snapshot(self, *, reset: bool = False) -> TelemetrySnapshot:
        """Return the telemetry since the last reset; with ``reset`` start a new window."""
        ...

    def totals(self) -> TelemetryTotals:
        """Everything recorded since loading, never reset by windows (for Prometheus)."""
        ...

    def discard(self) -> None:
        """Forget everything recorded so far (calls made before serving: warm-up, smoke test)."""
        ...


@runtime_checkable
class Servable(Protocol):
    """A named, versioned thing with declared tensors that runs inference."""

    name: str
    version: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    platform: str

    @property
    def telemetry(self) -> TelemetrySource:
        """Where the servable's telemetry snapshots come from."""
        ...

    def predict(self, feeds: Mapping[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
        """Run inference."""
        ...

    @property
    def closed(self) -> bool:
        """Whether it no longer accepts calls."""
        ...

    def close(self, timeout: float = 30.0) -> None:
        """Refuse new calls, wait for running ones, release resources."""
        ...

    def describe(self) -> dict[str, Any]:
        """Plain-data description."""
        ...
