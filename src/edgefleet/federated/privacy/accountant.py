"""The privacy spent by a federated job: Renyi DP accounting of the sampled Gaussian mechanism.

Each round, the server samples devices from a population and the Gaussian mechanism
(:mod:`~edgefleet.federated.privacy.gaussian`) releases a noised mean of their clipped updates.
With sampling rate ``q = selected / population`` and noise multiplier ``z``, one round is a
Poisson-subsampled Gaussian mechanism; ``k`` rounds are its ``k``-fold composition. The
accountant adds up their Renyi differential privacy (Mironov, 2017; Mironov, Talwar and Zhang,
2019) and converts the total to the ``(epsilon, delta)`` guarantee: after the job, any single
device's participation changes the probability of any outcome by a factor of at most
``exp(epsilon)``, except with probability ``delta``.

The numbers come from Google's ``dp-accounting`` library (its ``RdpAccountant``), imported
only when an epsilon is asked for; it is the ``privacy`` extra:
``pip install 'edgefleet[privacy]'``.

The accountant keeps the rounds done per ``(q, z)`` pair, nothing else: RDP composes by
addition, so that is all epsilon depends on. :meth:`PrivacyAccountant.state_dict` gives it as
plain JSON, and epsilon is recomputed from it after a restart.

Two approximations, both documented in ``docs/federated.md``: the analysis assumes Poisson
sampling (each device joins a round independently with probability ``q``) while the server
selects a fixed number; and with device placement the mean carries more noise than ``z * C``
(see :meth:`~edgefleet.federated.privacy.gaussian.GaussianMechanism.mean_noise_std`), so the
figure here is an upper bound on what an observer of the aggregates learns.

Examples
--------
>>> accountant = PrivacyAccountant()
>>> accountant.record(sampling_rate(10, 1000), noise_multiplier=1.1, rounds=100)
>>> accountant.rounds
100
>>> 0.5 < accountant.epsilon(delta=1e-5) < 2
True
>>> restored = PrivacyAccountant.from_state_dict(accountant.state_dict())
>>> restored.epsilon(1e-5) == accountant.epsilon(1e-5)
True
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from edgefleet.federated.privacy._checks import count, open_unit, positive, rate

__all__ = [
    "INSTALL_HINT",
    "PrivacyAccountant",
    "epsilon_after",
    "require_dp_accounting",
    "sampling_rate",
]

INSTALL_HINT = "pip install 'edgefleet[privacy]'"
"""How to install what the accountant needs."""

_STATE_VERSION = 1


def require_dp_accounting() -> ModuleType:
    """The ``dp_accounting`` module, or ``ImportError`` saying how to install it."""
    try:
        return importlib.import_module("dp_accounting")
    except ImportError as exc:
        raise ImportError(
            f"the privacy accountant needs Google's dp-accounting library: {INSTALL_HINT}"
        ) from exc


def sampling_rate(selected: int, population: int) -> float:
    """``q = selected / population``: the chance that a given device takes part in a round.

    Raises
    ------
    ValueError
        Unless ``1 <= selected <= population``.
    """
    chosen = count("selected", selected)
    total = count("population", population)
    if chosen > total:
        raise ValueError(f"selected ({chosen}) must not exceed population ({total})")
    return chosen / total


class PrivacyAccountant:
    """Rounds done per ``(sampling_rate, noise_multiplier)``, and the epsilon they add up to.

    Device-level privacy with the add-or-remove-one-device neighbouring relation. Starts with no
    rounds (epsilon 0). Not thread-safe: one job, one accountant, updated as rounds complete.
    """

    def __init__(self) -> None:
        self._rounds: dict[tuple[float, float], int] = {}

    def __repr__(self) -> str:
        return f"PrivacyAccountant(rounds={self.history!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PrivacyAccountant):
            return NotImplemented
        return self._rounds == other._rounds

    def record(self, sampling_rate: float, noise_multiplier: float, rounds: int = 1) -> None:
        """Account for ``rounds`` more rounds at sampling rate ``q`` and noise multiplier ``z``.

        Raises
        ------
        ValueError
            Unless ``0 < sampling_rate <= 1``, ``noise_multiplier > 0`` (both finite) and
            ``rounds`` is an integer >= 1.
        """
        key = (
            rate("sampling_rate", sampling_rate),
            positive("noise_multiplier", noise_multiplier),
        )
        self._rounds[key] = self._rounds.get(key, 0) + count("rounds", rounds)

    @property
    def rounds(self) -> int:
        """How many rounds have been recorded, over every ``(q, z)``."""
        return sum(self._rounds.values())

    @property
    def history(self) -> dict[tuple[float, float], int]:
        """A copy of the rounds per ``(sampling_rate, noise_multiplier)``."""
        return dict(self._rounds)

    def epsilon(self, delta: float) -> float:
        """The epsilon spent so far at this ``delta``: 0 before any round.

        Raises
        ------
        ValueError
            Unless ``0 < delta < 1``.
        ImportError
            If ``dp-accounting`` is not installed (the message says how to install it).
        """
        target = open_unit("delta", delta)
        if not self._rounds:
            return 0.0
        dp = require_dp_accounting()
        accountant = dp.rdp.RdpAccountant()
        for (q, z), rounds in sorted(self._rounds.items()):
            round_event = dp.PoissonSampledDpEvent(q, dp.GaussianDpEvent(z))
            accountant.compose(round_event, rounds)
        return float(accountant.get_epsilon(target))

    def state_dict(self) -> dict[str, Any]:
        """The rounds done as plain JSON (``json.dumps`` takes it as it is)."""
        return {
            "version": _STATE_VERSION,
            "rounds": [
                {"sampling_rate": q, "noise_multiplier": z, "rounds": rounds}
                for (q, z), rounds in sorted(self._rounds.items())
            ],
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> PrivacyAccountant:
        """The accountant :meth:`state_dict` described.

        Raises
        ------
        ValueError
            Naming the bad part if ``state`` is not such a dict: another version, missing or
            extra keys, values out of range.
        """
        if not isinstance(state, Mapping) or set(state) != {"version", "rounds"}:
            raise ValueError(
                f"accountant state must be a dict with keys version, rounds, got {state!r:.80}"
            )
        if state["version"] != _STATE_VERSION:
            raise ValueError(
                f"accountant state has version {state['version']!r}; this edgefleet reads "
                f"version {_STATE_VERSION}"
            )
        entries = state["rounds"]
        if not isinstance(entries, list):
            raise ValueError(f"accountant state rounds must be a list, got {entries!r:.80}")
        accountant = cls()
        expected = {"sampling_rate", "noise_multiplier", "rounds"}
        for index, entry in enumerate(entries):
            if not isinstance(entry, Mapping) or set(entry) != expected:
                raise ValueError(
                    f"accountant state rounds[{index}] must be a dict with keys "
                    f"{', '.join(sorted(expected))}, got {entry!r:.80}"
                )
            try:
                accountant.record(
                    entry["sampling_rate"], entry["noise_multiplier"], entry["rounds"]
                )
            except ValueError as exc:
                raise ValueError(f"accountant state rounds[{index}]: {exc}") from None
        return accountant


def epsilon_after(
    rounds: int, *, sampling_rate: float, noise_multiplier: float, delta: float
) -> float:
    """The epsilon of ``rounds`` rounds at one ``(q, z)``: for planning a job before it starts.

    Examples
    --------
    >>> round(epsilon_after(10_000, sampling_rate=0.01, noise_multiplier=1.1, delta=1e-5), 2)
    5.63
    """
    accountant = PrivacyAccountant()
    accountant.record(sampling_rate, noise_multiplier, rounds)
    return accountant.epsilon(delta)
