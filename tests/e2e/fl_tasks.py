"""A federated task for end-to-end tests: the digits task, stalled on demand on one device.

``EDGEFLEET_TEST_STALL_FLAG`` names a file; while it exists, the second local training of the
agent process waits (as a device busy or stuck mid-round does), so a test can kill the agent in
the middle of its second round at a moment it controls instead of racing the training.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from edgefleet.federated.task import Dataset, TrainConfig
from edgefleet.federated.tasks.digits import DigitsTask

__all__ = ["StallableDigits"]


class StallableDigits(DigitsTask):
    """:class:`DigitsTask` whose training waits while the stall flag file exists."""

    trainings = 0

    def train(self, model: Any, data: Dataset, epochs: int, config: TrainConfig) -> int:
        """On the second call, wait while the flag exists (up to 10 minutes); then train."""
        StallableDigits.trainings += 1
        flag = os.environ.get("EDGEFLEET_TEST_STALL_FLAG")
        deadline = time.monotonic() + 600
        while (
            StallableDigits.trainings == 2
            and flag
            and Path(flag).exists()
            and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        return super().train(model, data, epochs, config)
