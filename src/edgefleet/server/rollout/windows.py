"""The telemetry a rollout's evaluation reads, merged per device as it arrives.

A rollout stage is judged on every window its devices reported since the stage began. Reading
them all again at every evaluation costs time proportional to the stage's age times the fleet
(minutes per evaluation after an hour on a thousand devices); instead, the evaluating process
keeps, per rollout stage, one merged :class:`CohortMetrics` per device, model version and role,
and reads only the windows received since its last read.

Windows are read again from a margin (:data:`OVERLAP_S`) before the last read, and those already
merged are skipped by row id: a window committed out of id order by another server process, or
stamped by a clock slightly behind, is still counted once. A window that reaches the database
later than that (a server clock more than the margin behind the others, a write stalled for
minutes) would be missed by the incremental reads, so the stage is read in full again every
:data:`REFRESH_S` and whenever the caller asks (the evaluation does before it advances or
completes a rollout: a pass is never decided on an incremental read). Everything lives in
memory and is rebuilt from the store after a restart or when another process takes the
evaluation over.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from edgefleet.server.rollout.metrics import CohortMetrics
from edgefleet.server.store.rows import RolloutRow, TelemetryRow

__all__ = ["OVERLAP_S", "REFRESH_S", "StageWindows", "WindowCache"]

Fetch = Callable[[float | None], list[TelemetryRow]]
"""Reads the rollout's model's windows since the stage began, received at or after the time
given (``None``: all of them)."""

OVERLAP_S = 120.0
"""How far before the last read windows are read again (seconds of server time)."""

REFRESH_S = 600.0
"""How often a stage is read in full again (seconds of this process's clock)."""

_Key = tuple[str, str, str]
"""``(device, version, role)``."""


@dataclass
class StageWindows:
    """The windows of one rollout stage, merged per device, version and role."""

    stage: tuple[int, float]
    built_at: float = field(default_factory=time.monotonic)
    full: bool = True
    """Whether the last read was a full one."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    """Held by :meth:`WindowCache.read` while it adds, and by :meth:`collect`."""
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
        with self.lock:
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
        self._lock = threading.Lock()  # the API's start() and the loop may read at once

    def read(self, row: RolloutRow, fetch: Fetch, *, full: bool = False) -> StageWindows:
        """The rollout's current stage with every window received so far merged in.

        ``full``: read the whole stage again instead of what arrived since the last read.
        """
        stage = (row.stage, row.stage_started_at)
        with self._lock:
            entry = self._stages.get(row.rollout_id)
            stale = entry is not None and time.monotonic() - entry.built_at >= REFRESH_S
            if entry is None or entry.stage != stage or full or stale:
                entry = self._stages[row.rollout_id] = StageWindows(stage)
        with entry.lock:
            if entry.read_until is None:
                entry.full = True
                entry.add(fetch(None))
            else:
                entry.full = False
                entry.add(fetch(entry.read_until - OVERLAP_S))
        return entry

    def forget(self, rollout_id: str) -> None:
        """Drop a rollout that ended or is evaluated elsewhere."""
        with self._lock:
            self._stages.pop(rollout_id, None)

    def clear(self) -> None:
        """Drop everything (this process no longer evaluates rollouts)."""
        with self._lock:
            self._stages.clear()
