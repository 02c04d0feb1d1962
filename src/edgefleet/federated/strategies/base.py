"""The strategy interface: client updates in, the next global model out, state as JSON.

A round of federated learning starts from a global model ``w``. Each device trains locally from
``w`` and sends back its **update** ``delta = w_local - w``: a flat float32 vector (see
:mod:`edgefleet.federated.params`) with the number of examples it trained on. A
:class:`Strategy` turns the round's updates into the next global model.

Strategies with server-side memory (momentum, Adam moments) expose it through
:meth:`Strategy.state_dict` and :meth:`Strategy.load_state_dict` as a JSON-ready dict, because
the server persists every round and must resume after a restart exactly where it stopped. The
hyperparameters are not part of that state: they are the strategy's spec
(:func:`~edgefleet.federated.strategies.spec.spec_of`), persisted beside it.

Examples
--------
>>> update = ClientUpdate(np.array([1.0, -1.0], np.float32), num_examples=10)
>>> update.delta.dtype, update.num_examples, dict(update.metrics)
(dtype('float32'), 10, {})
>>> ClientUpdate(np.zeros(2, np.float32), num_examples=-1)
Traceback (most recent call last):
...
ValueError: num_examples must be a non-negative integer, got -1
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, TypeAlias

import numpy as np
from numpy.typing import NDArray

from edgefleet.federated.params import Vector

__all__ = ["STATE_VERSION", "ClientUpdate", "JSONValue", "Strategy"]

JSONValue: TypeAlias = "bool | int | float | str | list[JSONValue] | dict[str, JSONValue] | None"
"""What ``json.dumps`` accepts and ``json.loads`` gives back."""

STATE_VERSION = 1
"""Version of the ``state_dict`` layout; a state of another version is refused on load."""


@dataclass(frozen=True, eq=False)
class ClientUpdate:
    """One device's contribution to a round.

    Parameters
    ----------
    delta
        The device's local model minus the global model it started from, as one flat vector.
        It is converted to float32, the dtype of every model vector.
    num_examples
        How many training examples produced it: the update's weight in weighted strategies.
        Zero is allowed (the update then carries no weight) but at least one update of a round
        must have examples.
    metrics
        Whatever the device reported beside it (training loss, accuracy); strategies ignore it.
    """

    delta: Vector
    num_examples: int
    metrics: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.num_examples
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise ValueError(f"num_examples must be a non-negative integer, got {n!r}")
        delta = np.asarray(self.delta)
        if not (np.issubdtype(delta.dtype, np.floating) or np.issubdtype(delta.dtype, np.integer)):
            raise ValueError(f"delta must be a vector of numbers, got dtype {delta.dtype}")
        if delta.ndim != 1:
            raise ValueError(f"delta must be a flat (1-D) vector, got shape {delta.shape}")
        with np.errstate(over="ignore"):
            as_float32 = delta.astype(np.float32, copy=False)
        if np.isinf(as_float32).sum() > np.isinf(delta).sum():
            raise ValueError("delta has finite values beyond float32's range (about 3.4e38)")
        object.__setattr__(self, "num_examples", int(n))
        object.__setattr__(self, "delta", as_float32)


class Strategy(abc.ABC):
    """Turns a round's client updates into the next global model.

    Subclasses set :attr:`name` (the word used in specs such as ``fedavgm:momentum=0.9``) and
    :attr:`PARAMETERS` (their hyperparameters, in canonical order, each stored as a float
    attribute of that name and accepted as a keyword argument of that name by ``__init__``).
    Stateful subclasses override :meth:`_state` and :meth:`_load_state`.
    """

    name: ClassVar[str]
    """The strategy's name in specs and in its ``state_dict``."""

    PARAMETERS: ClassVar[tuple[str, ...]] = ()
    """Hyperparameter names, in the order :func:`spec_of` writes them."""

    @abc.abstractmethod
    def aggregate(self, global_model: Vector, updates: Sequence[ClientUpdate]) -> Vector:
        """The new global model after this round.

        Parameters
        ----------
        global_model
            The model every update was computed against (flat float32 vector).
        updates
            This round's client updates; none of them is modified.

        Returns
        -------
        Vector
            A new float32 vector of the same shape as ``global_model``.

        Raises
        ------
        ValueError
            No updates, an update whose shape differs from the global model, NaN or Inf in an
            update or the model, zero total weight, server state for a model of another size,
            or a result that overflows float32.
        """

    def hyperparameters(self) -> dict[str, float]:
        """The hyperparameters by name, in canonical order."""
        return {p: float(getattr(self, p)) for p in self.PARAMETERS}

    def config_for_client(self) -> dict[str, JSONValue]:
        """What a device needs to train for this strategy (e.g. FedProx's ``mu``); JSON-ready."""
        return {}

    def state_dict(self) -> dict[str, JSONValue]:
        """The server-side state, JSON-ready; feed it to :meth:`load_state_dict` to resume.

        Vectors are stored as base64 of their little-endian float32 bytes (a third of the
        size of a JSON list of floats, and exact).
        """
        return {"strategy": self.name, "version": STATE_VERSION, **self._state()}

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        """Restore what :meth:`state_dict` returned; the state is untouched on ``ValueError``.

        Raises
        ------
        ValueError
            The state belongs to another strategy or layout version, or is malformed.
        """
        if state.get("strategy") != self.name:
            raise ValueError(
                f"state belongs to strategy {state.get('strategy')!r}, not {self.name!r}"
            )
        if state.get("version") != STATE_VERSION:
            raise ValueError(
                f"state version {state.get('version')!r} is not supported "
                f"(this code reads version {STATE_VERSION})"
            )
        body = {k: v for k, v in state.items() if k not in ("strategy", "version")}
        self._load_state(body)

    def _state(self) -> dict[str, JSONValue]:
        return {}

    def _load_state(self, state: Mapping[str, object]) -> None:
        if state:
            raise ValueError(f"unexpected keys in {self.name} state: {sorted(state)}")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"


def check_round(global_model: Vector, updates: Sequence[ClientUpdate]) -> NDArray[np.float64]:
    """Validate a round's inputs; the global model as float64 (``ValueError`` if unusable)."""
    model = np.asarray(global_model)
    if model.ndim != 1:
        raise ValueError(f"the global model must be a flat (1-D) vector, got shape {model.shape}")
    bad = int(np.size(model) - np.count_nonzero(np.isfinite(model)))
    if bad:
        raise ValueError(f"the global model contains {bad} non-finite value(s) (NaN or Inf)")
    if len(updates) == 0:
        raise ValueError("no updates to aggregate")
    for i, update in enumerate(updates):
        delta = update.delta
        if delta.shape != model.shape:
            raise ValueError(
                f"update {i} has shape {delta.shape} but the global model has shape {model.shape}"
            )
        bad = int(delta.size - np.count_nonzero(np.isfinite(delta)))
        if bad:
            raise ValueError(f"update {i} contains {bad} non-finite value(s) (NaN or Inf)")
    if sum(u.num_examples for u in updates) == 0:
        raise ValueError(f"total weight is zero: all {len(updates)} update(s) have num_examples=0")
    return model.astype(np.float64)


def weighted_mean(updates: Sequence[ClientUpdate], size: int) -> NDArray[np.float64]:
    """Mean of the deltas weighted by ``num_examples`` (checked by :func:`check_round`)."""
    total = sum(u.num_examples for u in updates)
    mean = np.zeros(size, np.float64)
    for update in updates:
        if update.num_examples:
            mean += (update.num_examples / total) * update.delta.astype(np.float64)
    return mean


def new_model(global_model: NDArray[np.float64], step: NDArray[np.float64]) -> Vector:
    """``global_model + step`` as float32; ``ValueError`` if that overflows float32."""
    return to_float32(global_model + step, "the new global model")


def to_float32(values: NDArray[np.float64], what: str) -> Vector:
    """``values`` as float32; ``ValueError`` naming ``what`` if they overflow float32."""
    with np.errstate(over="ignore", invalid="ignore"):
        result = values.astype(np.float32)
    if not np.isfinite(result).all():
        raise ValueError(f"{what} overflows float32: the aggregated updates are too big")
    return result
