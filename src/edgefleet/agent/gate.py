"""When the agent may activate a verified model: not while held, only inside a maintenance window.

Downloads and checks happen ahead regardless; only the swap waits. A deferred activation is
retried by the updater without a new desired state (see :meth:`Updater.retry_deferred`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from edgefleet.agent.hold import UpdateHold
from edgefleet.errors import ConfigurationError
from edgefleet.protocol.cron import next_window_start, window_open
from edgefleet.protocol.v1 import UpdatePolicy

__all__ = ["ActivationGate", "Deferral", "format_utc"]


def format_utc(t: float) -> str:
    """``t`` (Unix seconds) as ``YYYY-MM-DDTHH:MM:SSZ``.

    >>> format_utc(0)
    '1970-01-01T00:00:00Z'
    """
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Deferral:
    """Why an activation (or a download) waits: ``hold``, ``window`` or ``budget``."""

    kind: str
    detail: str


class ActivationGate:
    """Decides whether a verified model may be swapped in now.

    Parameters
    ----------
    hold
        The local update hold, if the agent offers one.
    clock
        Unix time.
    """

    def __init__(
        self, hold: UpdateHold | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.hold = hold
        self.clock = clock

    def deferral(self, policy: UpdatePolicy | None) -> Deferral | None:
        """Why activation must wait now (``None``: it may go ahead)."""
        hold = self.hold
        since = hold.held_since if hold is not None else None
        if hold is not None and since is not None:
            why = f": {hold.reason}" if hold.reason else ""
            return Deferral(
                "hold", f"update hold taken by local software at {format_utc(since)}{why}"
            )
        if policy is None or not policy.windows:
            return None
        now = self.clock()
        try:
            if window_open(policy.windows, now):
                return None
            start = next_window_start(policy.windows, now)
        except ConfigurationError as exc:  # never activate against a policy we cannot read
            return Deferral("window", f"the maintenance windows cannot be read: {exc}")
        when = format_utc(start) if start is not None else "never (no window starts again)"
        return Deferral("window", f"outside the maintenance windows; the next opens at {when}")
