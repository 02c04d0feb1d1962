"""The telemetry a rollout's evaluation reads, merged per device as it arrives.

A rollout stage is judged on every window its devices reported since the stage began. Reading
them all again at every evaluation costs time proportional to the stage's age times the fleet
(minutes per evaluation after an hour on a thousand devices); instead, the evaluating process
keeps, per rollout stage, one merged :class:`CohortMetrics` per device, model version and role,
and reads only the windows received since its last read.

Windows are read again from a margin (:data:`OVERLAP_S`) before the last read, and those already
merged are skipped by row id: a window committed out of id order by another server process, or
stamped by a clock slightly behind, is still counted once. Everything lives in memory and is
rebuilt from the store after a restart or when another process takes the evaluation over.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from edgefleet.server.rollout.metrics import CohortMetrics
from edgefleet.server.store.rows import RolloutRow, TelemetryRow

__all__ = ["OVERLAP_S", "StageWindows", "WindowCache"]

Fetch = Callable[[float | None], list[TelemetryRow]]
"""Reads the rollout's model's windows since the stage began, received at or after the time
given (``None``: all of them)."""

OVERLAP_S = 120.0
"""How far before the last read windows are read again (seconds of server time)."""

_Key = tuple[str, str, str]
"""``(device, version, role)``."""


@dataclass
class StageWindows:
    """The windows of one rollout stage, merged per device, version and role."""

    stage: tuple[int, float]
    per_device: dict[_Key, CohortMetrics] = field(default_factory=dict)
    read_until: float | None = None
    recent: dict[int, float] = field(default_factory=dict)
    """Row id -> received time, for the windows inside the overlap."""

    def add(self, rows: Iterable[TelemetryRow]) -> None:
        """Merge the rows not merged yet."""
        for row in rows:
            if row.id in self.recent:
                continue
            self.recent[row.id] = row.received_at
            key = (row.device_id, row.version, row.role)
            self.per_device.setdefault(key, CohortMetrics()).add(row)
            if self.read_until is None or row.received_at > self.read_until:
                self.read_until = row.received_at
        if self.read_until is not None:
            horizon = self.read_until - OVERLAP_S
            self.recent = {i: at for i, at in self.recent.items() if at >= horizon}

    def collect(
        self, *, version: str, role: str, classes: Mapping[str, str]
    ) -> dict[str, CohortMetrics]:
        """Merge the devices in ``classes`` (device -> hardware class) per class."""
        out: dict[str, CohortMetrics] = {}
        for (device, v, r), metrics in self.per_device.items():
            hw = classes.get(device)
            if hw is None or v != version or r != role:
                continue
            out.setdefault(hw, CohortMetrics()).absorb(metrics)
        return out


class WindowCache:
    """One :class:`StageWindows` per rollout, for the rollouts this process evaluates."""

    def __init__(self) -> None:
        self._stages: dict[str, StageWindows] = {}

    def read(self, row: RolloutRow, fetch: Fetch) -> StageWindows:
        """The rollout's current stage with every window received so far merged in."""
        stage = (row.stage, row.stage_started_at)
        entry = self._stages.get(row.rollout_id)
        if entry is None or entry.stage != stage:
            entry = self._stages[row.rollout_id] = StageWindows(stage)
        entry.add(fetch(None if entry.read_until is None else entry.read_until - OVERLAP_S))
        return entry

    def forget(self, rollout_id: str) -> None:
        """Drop a rollout that ended."""
        self._stages.pop(rollout_id, None)
