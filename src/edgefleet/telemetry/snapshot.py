"""Point-in-time telemetry of one model: counts, latency quantiles, confidence statistics."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from edgefleet.telemetry.confidence_stats import ConfidenceStats
from edgefleet.telemetry.latency_sketch import LatencySketch

__all__ = ["SNAPSHOT_SCHEMA", "TelemetrySnapshot"]

SNAPSHOT_SCHEMA = 1


@dataclass
class TelemetrySnapshot:
    """What one model saw between ``started_at`` and ``ended_at`` (Unix seconds).

    ``count`` are successful inferences (samples for batched calls are in ``confidence``),
    ``errors`` failed while running, ``rejected`` were refused for bad inputs. ``latency`` holds
    the latency of successful calls in seconds. Pipelines carry one snapshot per stage in
    ``stages``. Snapshots serialise to JSON and merge across processes and devices.
    """

    model: str
    version: str
    started_at: float
    ended_at: float
    count: int = 0
    errors: int = 0
    rejected: int = 0
    error_seconds: float = 0.0
    latency: LatencySketch = field(default_factory=LatencySketch)
    confidence: ConfidenceStats = field(default_factory=ConfidenceStats)
    stages: dict[str, TelemetrySnapshot] = field(default_factory=dict)

    def latency_ms(self) -> dict[str, float]:
        """Latency percentiles in milliseconds: p50, p90, p99, p999, mean and max."""
        q = self.latency.quantile
        return {
            "p50": q(0.5) * 1e3,
            "p90": q(0.9) * 1e3,
            "p99": q(0.99) * 1e3,
            "p999": q(0.999) * 1e3,
            "mean": self.latency.mean * 1e3,
            "max": q(1.0) * 1e3,
        }

    def merge(self, other: TelemetrySnapshot) -> TelemetrySnapshot:
        """Return a new snapshot holding both this one and ``other`` (same model and version)."""
        merged = self.copy()
        merged.merge_in(other)
        return merged

    def merge_in(self, other: TelemetrySnapshot) -> None:
        """Add ``other`` (same model and version) to this snapshot, in place.

        ``other`` is left unchanged and shares nothing with this snapshot afterwards.
        """
        if (other.model, other.version) != (self.model, self.version):
            raise ValueError(
                f"cannot merge telemetry of {other.model}:{other.version} "
                f"into {self.model}:{self.version}"
            )
        self.started_at = min(self.started_at, other.started_at)
        self.ended_at = max(self.ended_at, other.ended_at)
        self.count += other.count
        self.errors += other.errors
        self.rejected += other.rejected
        self.error_seconds += other.error_seconds
        self.latency.merge(other.latency)
        self.confidence.merge(other.confidence)
        for name, stage in other.stages.items():
            mine = self.stages.get(name)
            if mine is None:
                self.stages[name] = stage.copy()
            else:
                mine.merge_in(stage)

    def copy(self) -> TelemetrySnapshot:
        """An independent copy."""
        return TelemetrySnapshot.from_dict(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """Serialise to plain JSON types (with a schema number)."""
        return {
            "schema": SNAPSHOT_SCHEMA,
            "model": self.model,
            "version": self.version,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "count": self.count,
            "errors": self.errors,
            "rejected": self.rejected,
            "error_seconds": self.error_seconds,
            "latency": self.latency.to_dict(),
            "confidence": self.confidence.to_dict(),
            "stages": {name: s.to_dict() for name, s in self.stages.items()},
        }

    def to_json(self) -> str:
        """Serialise to a JSON string."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TelemetrySnapshot:
        """Rebuild from :meth:`to_dict` output; raises ``ValueError`` on anything else."""
        if not isinstance(data, dict) or data.get("schema") != SNAPSHOT_SCHEMA:
            raise ValueError(f"not a telemetry snapshot of schema {SNAPSHOT_SCHEMA}")
        try:
            return cls(
                model=str(data["model"]),
                version=str(data["version"]),
                started_at=float(data["started_at"]),
                ended_at=float(data["ended_at"]),
                count=int(data["count"]),
                errors=int(data["errors"]),
                rejected=int(data["rejected"]),
                error_seconds=float(data["error_seconds"]),
                latency=LatencySketch.from_dict(data["latency"]),
                confidence=ConfidenceStats.from_dict(data["confidence"]),
                stages={k: cls.from_dict(v) for k, v in data["stages"].items()},
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed telemetry snapshot: {exc!r}") from exc

    @classmethod
    def from_json(cls, text: str | bytes) -> TelemetrySnapshot:
        """Rebuild from :meth:`to_json` output."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"telemetry snapshot is not JSON: {exc}") from exc
        return cls.from_dict(data)
