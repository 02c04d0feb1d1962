"""Cohort metrics: telemetry windows merged per hardware class, the numbers gates compare.

Latency percentiles come from merged sketches (never averaged), the error rate from summed
counts, estimated accuracy from the mean calibrated confidence, and shadow disagreement from
summed comparisons.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edgefleet.server.store.rows import TelemetryRow
from edgefleet.telemetry import TelemetrySnapshot

__all__ = ["CohortMetrics", "Reference"]


@dataclass(frozen=True)
class Reference:
    """A cohort's numbers, as stored for later stages that have no baseline devices left."""

    devices: int
    inferences: int
    p99_ms: float | None
    error_rate: float | None
    accuracy: float | None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON."""
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Reference:
        """From :meth:`to_json`."""
        return cls(
            int(data["devices"]),
            int(data["inferences"]),
            data.get("p99_ms"),
            data.get("error_rate"),
            data.get("accuracy"),
        )


@dataclass
class CohortMetrics:
    """What the devices of one cohort and hardware class reported."""

    devices: set[str] = field(default_factory=set)
    snapshot: TelemetrySnapshot | None = None
    compared: int = 0
    disagreed: int = 0
    confidence_delta_sum: float = 0.0

    def add(self, row: TelemetryRow) -> None:
        """Merge one stored window in (windows with malformed snapshots are skipped)."""
        try:
            snap = TelemetrySnapshot.from_dict(row.snapshot)
        except ValueError:
            return
        snap.model, snap.version = row.model, row.version
        self.devices.add(row.device_id)
        if self.snapshot is None:
            self.snapshot = snap  # a fresh object, owned from here on
        else:
            self.snapshot.merge_in(snap)
        if row.shadow:
            self.compared += int(row.shadow.get("compared", 0))
            self.disagreed += int(row.shadow.get("disagreed", 0))
            self.confidence_delta_sum += float(row.shadow.get("confidence_delta_sum", 0.0))

    def absorb(self, other: CohortMetrics) -> None:
        """Merge another cohort's (or device's) metrics in."""
        self.devices |= other.devices
        if other.snapshot is not None:
            if self.snapshot is None:
                self.snapshot = other.snapshot.copy()
            else:
                self.snapshot.merge_in(other.snapshot)
        self.compared += other.compared
        self.disagreed += other.disagreed
        self.confidence_delta_sum += other.confidence_delta_sum

    @property
    def inferences(self) -> int:
        """Successful plus failed inferences."""
        snap = self.snapshot
        return 0 if snap is None else snap.count + snap.errors

    @property
    def p99_ms(self) -> float | None:
        """p99 latency of successful inferences (ms), None without any."""
        snap = self.snapshot
        return None if snap is None or snap.count == 0 else snap.latency.quantile(0.99) * 1e3

    @property
    def error_rate(self) -> float | None:
        """Failed / all inferences, None without any."""
        snap = self.snapshot
        calls = self.inferences
        return None if snap is None or calls == 0 else snap.errors / calls

    @property
    def accuracy(self) -> float | None:
        """Mean (calibrated) confidence: the estimated accuracy. None without samples."""
        snap = self.snapshot
        if snap is None or snap.confidence.count == 0:
            return None
        return snap.confidence.mean

    @property
    def disagreement(self) -> float | None:
        """Share of shadow comparisons whose top-1 differed, None without comparisons."""
        return None if self.compared == 0 else self.disagreed / self.compared

    def reference(self) -> Reference:
        """The numbers, for storing."""
        return Reference(
            len(self.devices), self.inferences, self.p99_ms, self.error_rate, self.accuracy
        )
