"""The daily download budget: model bytes fetched per UTC day, persisted across restarts.

An :class:`~edgefleet.protocol.v1.UpdatePolicy` may cap the model bytes a device downloads per
UTC day (``daily_download_bytes``). Every byte of a model or golden file written to
``downloads/`` is counted in ``download_budget.json``; once the day's budget is spent, a
download stops where it is (the partial file is kept and resumed with ``Range``) and the next
UTC day continues it.

>>> import tempfile
>>> from pathlib import Path
>>> budget = DownloadBudget(Path(tempfile.mkdtemp()) / "b.json", clock=lambda: 86400.0 * 3 + 5)
>>> budget.limit = 1000
>>> budget.spend(400)
>>> budget.remaining()
600
>>> budget.resumes_at()
345600.0
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from edgefleet.agent._files import read_json, write_json_atomic
from edgefleet.errors import UplinkError

__all__ = ["BudgetSpentError", "DownloadBudget"]

log = logging.getLogger(__name__)

_DAY_S = 86400


class BudgetSpentError(UplinkError):
    """Today's download budget is spent; the download resumes the next UTC day."""

    code = "agent.budget_spent"


class DownloadBudget:
    """Counts model bytes downloaded per UTC day against :attr:`limit`.

    Parameters
    ----------
    path
        The JSON file that keeps today's count (``{"day": "YYYY-MM-DD", "bytes": N}``).
    clock
        Unix time.
    """

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock
        self.limit: int | None = None
        """Bytes allowed per UTC day; ``None``: no budget (set from the desired state)."""
        self._lock = threading.Lock()
        self._day, self._bytes = self._load()

    def _today(self) -> str:
        return datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%d")

    def _load(self) -> tuple[str, int]:
        if not self.path.exists():
            return "", 0
        try:
            data = read_json(self.path)
            return str(data["day"]), max(0, int(data["bytes"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # Unknown usage counts as spent, so a damaged file can never overrun a budget.
            log.error("cannot read %s (%s); treating today's budget as spent", self.path, exc)
            return self._today(), 2**62

    def used_today(self) -> int:
        """Bytes downloaded so far this UTC day."""
        with self._lock:
            return self._bytes if self._day == self._today() else 0

    def remaining(self) -> int | None:
        """Bytes left today; ``None`` without a limit."""
        limit = self.limit
        if limit is None:
            return None
        return max(0, limit - self.used_today())

    def spend(self, nbytes: int) -> None:
        """Count ``nbytes`` downloaded now (persisted at once)."""
        if nbytes <= 0:
            return
        with self._lock:
            today = self._today()
            if self._day != today:
                self._day, self._bytes = today, 0
            self._bytes += nbytes
            write_json_atomic(self.path, {"day": self._day, "bytes": self._bytes})

    def resumes_at(self) -> float:
        """The next UTC midnight (Unix seconds), when a new day's budget starts."""
        return float((int(self.clock()) // _DAY_S + 1) * _DAY_S)

    def spent_error(self, what: str) -> BudgetSpentError:
        """The error a download stopped by the budget raises."""
        at = datetime.fromtimestamp(self.resumes_at(), UTC).strftime("%Y-%m-%d %H:%M UTC")
        return BudgetSpentError(
            f"{what}: the daily download budget of {self.limit} bytes is spent "
            f"({self.used_today()} bytes today); the download resumes at {at}"
        )
