"""What a federated job is asked to do: :class:`JobConfig`, checked once when the job starts.

Examples
--------
>>> config = JobConfig(rounds=3, per_round=4, compression="dgc:0.999", deadline_s=300)
>>> config.min_results, config.to_json()["compression"]
(4, 'dgc:0.999')
>>> JobConfig.from_json(config.to_json()) == config
True
>>> JobConfig(rounds=3, per_round=4, min_results=5)
Traceback (most recent call last):
...
edgefleet.errors.ConfigurationError: min_results (5) cannot exceed per_round (4)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from edgefleet.errors import ConfigurationError
from edgefleet.federated import codec_from_spec, privacy_from_spec, strategy_from_spec

__all__ = ["JobConfig", "max_update_bytes"]


@dataclass(frozen=True)
class JobConfig:
    """A federated job's settings.

    Parameters
    ----------
    rounds, per_round
        Rounds to run and devices selected per round.
    min_results
        Close a round as soon as this many updates arrived (default: ``per_round``, i.e. wait
        for every selected device or the deadline).
    strategy, compression
        Aggregation strategy and uplink codec specs (:mod:`edgefleet.federated`).
    deadline_s
        A round closes this long after it opened, with whatever arrived; late and missing
        devices never block it.
    local_epochs, learning_rate, batch_size
        Local training on each device (``None``: the task's default).
    seed
        Seeds device selection and local training.
    privacy
        Differential privacy spec, or None.
    """

    rounds: int
    per_round: int
    min_results: int = 0
    strategy: str = "fedavg"
    compression: str = "dense"
    deadline_s: float = 300.0
    local_epochs: int = 1
    learning_rate: float | None = None
    batch_size: int | None = None
    seed: int = 0
    privacy: str | None = None

    def __post_init__(self) -> None:
        for name in ("rounds", "per_round", "local_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be an integer >= 1, got {value!r}")
        if self.rounds > 10_000:
            raise ConfigurationError(f"rounds must be at most 10000, got {self.rounds}")
        if self.min_results == 0:
            object.__setattr__(self, "min_results", self.per_round)
        if self.min_results < 1:
            raise ConfigurationError(f"min_results must be >= 1, got {self.min_results}")
        if self.min_results > self.per_round:
            raise ConfigurationError(
                f"min_results ({self.min_results}) cannot exceed per_round ({self.per_round})"
            )
        if not (math.isfinite(self.deadline_s) and self.deadline_s > 0):
            raise ConfigurationError(f"deadline must be > 0 seconds, got {self.deadline_s}")
        if self.learning_rate is not None and not (
            math.isfinite(self.learning_rate) and self.learning_rate > 0
        ):
            raise ConfigurationError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigurationError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.seed < 0:
            raise ConfigurationError(f"seed must be >= 0, got {self.seed}")
        try:
            strategy_from_spec(self.strategy)
        except ValueError as exc:
            raise ConfigurationError(f"strategy: {exc}") from exc
        try:
            codec_from_spec(self.compression)
        except ValueError as exc:
            raise ConfigurationError(f"compression: {exc}") from exc
        if self.privacy is not None:
            try:
                privacy_from_spec(self.privacy)
            except ValueError as exc:
                raise ConfigurationError(f"privacy: {exc}") from exc

    def to_json(self) -> dict[str, Any]:
        """The settings as a JSON object."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobConfig:
        """Settings from :meth:`to_json` (unknown keys, from a newer server, are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def max_update_bytes(num_params: int) -> int:
    """The largest update payload a job accepts: 8 bytes per parameter and a header.

    That is twice a dense float32 copy of the model: every codec's payload of a well-formed
    update fits (sparse ones are far smaller), and nothing much larger is ever read.

    >>> max_update_bytes(1000)
    8096
    """
    return 8 * num_params + 96
