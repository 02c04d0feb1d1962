"""What a relay holds for one federated round: its region's updates, summed, until it forwards.

The relay checks each device's update the way the control plane would (example count, size,
codec, finite values), adds ``delta * examples`` to a running sum and keeps the count; with
differential privacy at the relay (``privacy: dp:...,at=relay``) it keeps the decoded updates
instead and noises their clipped mean once. Only :meth:`HeldRound.aggregate` leaves the relay.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgefleet.federated import DenseCodec
from edgefleet.federated.privacy import PrivacySpec, from_spec, private_mean
from edgefleet.server.fl.checks import check_examples, decode_update

__all__ = ["HeldRound", "check_update"]


def check_update(
    compression: str, num_params: int, payload: bytes, examples: str | None
) -> tuple[np.ndarray[Any, Any], int]:
    """Decode a device's update as the control plane would; its delta (float64) and count.

    Raises
    ------
    PayloadTooLargeError
        Over the job's limit.
    ProtocolError
        No or a bad example count, an empty payload, one the codec refuses, NaN or Inf.
    """
    count = check_examples(examples)
    delta = decode_update(compression, payload, num_params)
    return np.asarray(delta, np.float64), count


@dataclass
class HeldRound:
    """One round of one job as this relay sees it.

    ``expected`` are the round's selected devices in this region; ``state`` moves from
    ``holding`` to ``sending`` to ``sent`` (or ``failed`` when the control plane refused the
    aggregate, or ``lost`` when the round closed before anything was forwarded).
    """

    job_id: str
    round: int
    deadline: float
    deadline_s: float
    compression: str
    num_params: int
    expected: frozenset[str]
    privacy: str | None = None
    state: str = "holding"
    examples: int = 0
    devices: dict[str, str] = field(default_factory=dict)
    """Device id -> SHA-256 of the update it sent (to acknowledge a retried upload)."""
    _sum: np.ndarray[Any, Any] | None = None
    _updates: list[np.ndarray[Any, Any]] = field(default_factory=list)

    @property
    def private(self) -> PrivacySpec | None:
        """The job's privacy spec when it adds noise at the relay, else None."""
        if not self.privacy:
            return None
        spec = from_spec(self.privacy)
        return spec if spec.at == "relay" else None

    @property
    def complete(self) -> bool:
        """Every selected device of the region has sent."""
        return bool(self.devices) and self.expected <= set(self.devices)

    def due(self, now: float, margin_s: float) -> bool:
        """Time to forward what is held: the deadline is within the margin."""
        return now >= self.deadline - min(margin_s, 0.2 * self.deadline_s)

    def add(
        self, device_id: str, delta: np.ndarray[Any, Any], examples: int, payload: bytes
    ) -> None:
        """Hold one checked update."""
        if self.private is not None:
            self._updates.append(delta.astype(np.float32))
        else:
            weighted = delta * examples
            self._sum = weighted if self._sum is None else self._sum + weighted
        self.examples += examples
        self.devices[device_id] = hashlib.sha256(payload).hexdigest()

    def aggregate(self, rng: np.random.Generator) -> bytes:
        """The region's aggregate, dense float32: the weighted mean, or the private mean."""
        spec = self.private
        if spec is not None:
            mean, _ = private_mean(self._updates, spec.mechanism(), rng)
            return DenseCodec().encode(np.asarray(mean, np.float32))
        assert self._sum is not None, "nothing held"
        return DenseCodec().encode((self._sum / self.examples).astype(np.float32))

    def forget(self) -> None:
        """Drop the held updates (after forwarding, or when the round is lost)."""
        self._sum = None
        self._updates = []
