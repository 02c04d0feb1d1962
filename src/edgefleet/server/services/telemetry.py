"""Fleet telemetry on query: stored windows merged per device and fleet-wide per model version.

Percentiles come from merged latency sketches, never from averaging per-device percentiles.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from edgefleet.telemetry import TelemetrySnapshot

__all__ = ["StoredWindow", "TelemetrySummary", "summarize"]


@dataclass(frozen=True)
class StoredWindow:
    """One stored window as the summary needs it."""

    device_id: str
    model: str
    version: str
    snapshot: dict[str, Any]
    swaps: int = 0
    rollbacks: int = 0


@dataclass
class TelemetrySummary:
    """Merged telemetry of one model version (on one device, or fleet-wide)."""

    model: str
    version: str
    devices: set[str] = field(default_factory=set)
    windows: int = 0
    swaps: int = 0
    rollbacks: int = 0
    snapshot: TelemetrySnapshot | None = None

    def to_dict(self) -> dict[str, Any]:
        """Counts, error rate, p50/p90/p99 (ms) and mean (raw) confidence as JSON types."""
        snap = self.snapshot
        count = snap.count if snap else 0
        errors = snap.errors if snap else 0
        rejected = snap.rejected if snap else 0
        calls = count + errors
        latency = snap.latency_ms() if snap and count else {}
        confidence = snap.confidence if snap else None
        return {
            "model": self.model,
            "version": self.version,
            "devices": len(self.devices),
            "windows": self.windows,
            "count": count,
            "errors": errors,
            "rejected": rejected,
            "error_rate": errors / calls if calls else None,
            "p50_ms": latency.get("p50"),
            "p90_ms": latency.get("p90"),
            "p99_ms": latency.get("p99"),
            "mean_confidence": confidence.mean if confidence and confidence.count else None,
            "swaps": self.swaps,
            "rollbacks": self.rollbacks,
        }


def summarize(
    windows: Iterable[StoredWindow], *, per_device: bool
) -> dict[tuple[str, str, str], TelemetrySummary]:
    """Merge windows by (device, model, version), or by (``""``, model, version) fleet-wide.

    Windows whose snapshot is malformed were refused at upload; any that slipped into the
    database are skipped rather than failing the whole query.
    """
    out: dict[tuple[str, str, str], TelemetrySummary] = {}
    for window in windows:
        try:
            snap = TelemetrySnapshot.from_dict(window.snapshot)
        except ValueError:
            continue
        snap.model, snap.version = window.model, window.version
        key = (window.device_id if per_device else "", window.model, window.version)
        summary = out.get(key)
        if summary is None:
            summary = out[key] = TelemetrySummary(window.model, window.version)
        summary.devices.add(window.device_id)
        summary.windows += 1
        summary.swaps += window.swaps
        summary.rollbacks += window.rollbacks
        summary.snapshot = snap if summary.snapshot is None else summary.snapshot.merge(snap)
    return out
