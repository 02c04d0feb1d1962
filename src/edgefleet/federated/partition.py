"""Split a data set into client shards: IID, or label-skewed with a Dirichlet distribution.

Simulations give each simulated device a shard of one training set. :func:`iid` deals the
examples out uniformly at random. :func:`dirichlet` skews labels the way real devices differ:
for every class it draws the clients' shares from a Dirichlet distribution with concentration
``alpha`` and splits that class's examples accordingly; a small ``alpha`` (0.1) gives each
client a few dominant classes, a large one (100) is close to IID. Draws where a client would
get fewer than ``min_size`` examples are redrawn (at most 1000 times).

Both return one sorted int64 index array per client; every example is in exactly one shard,
and the same seed gives the same shards. :func:`from_spec` parses ``"iid"`` and
``"dirichlet:0.5"``.

Examples
--------
>>> import numpy as np
>>> labels = np.repeat(np.arange(3), 4)
>>> [shard.tolist() for shard in iid(labels, 3, seed=0)]
[[2, 4, 7, 9], [0, 3, 5, 11], [1, 6, 8, 10]]
>>> shards = partition(labels, 2, "dirichlet:0.5", seed=1)
>>> sorted(np.concatenate(shards).tolist()) == list(range(12))
True
>>> from_spec("dirichlet:-1")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
edgefleet.federated.partition.PartitionSpecError: ... alpha must be a finite number > 0, got -1.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from edgefleet.errors import ConfigurationError

__all__ = [
    "PartitionSpec",
    "PartitionSpecError",
    "dirichlet",
    "from_spec",
    "iid",
    "partition",
]

Shards = list[NDArray[np.int64]]
MAX_DRAWS = 1000


class PartitionSpecError(ConfigurationError, ValueError):
    """A partition spec such as ``"dirichlet:0.5"`` is invalid."""


@dataclass(frozen=True)
class PartitionSpec:
    """A parsed partition spec: ``kind`` is ``"iid"`` or ``"dirichlet"`` (with ``alpha``)."""

    kind: str
    alpha: float | None = None

    def __str__(self) -> str:
        return self.kind if self.alpha is None else f"{self.kind}:{self.alpha!r}"


def from_spec(text: str) -> PartitionSpec:
    """Parse ``"iid"`` or ``"dirichlet:ALPHA"``; :class:`PartitionSpecError` names the problem."""
    name, colon, rest = text.strip().partition(":")
    try:
        if name == "iid":
            if colon:
                raise ValueError("iid takes no parameter")
            return PartitionSpec("iid")
        if name == "dirichlet":
            if not rest.strip():
                raise ValueError("dirichlet needs a concentration, e.g. dirichlet:0.5")
            try:
                alpha = float(rest)
            except ValueError:
                raise ValueError(f"alpha {rest.strip()!r} is not a number") from None
            if not math.isfinite(alpha) or alpha <= 0:
                raise ValueError(f"alpha must be a finite number > 0, got {alpha}")
            return PartitionSpec("dirichlet", alpha)
        raise ValueError(f"unknown partition {name!r} (known: iid, dirichlet:ALPHA)")
    except ValueError as exc:
        raise PartitionSpecError(f"partition spec {text!r}: {exc}") from None


def _check_clients(n_examples: int, n_clients: int, min_size: int) -> None:
    if n_clients < 1:
        raise ValueError(f"need at least one client, got {n_clients}")
    if n_examples < n_clients * min_size:
        raise ValueError(f"{n_examples} examples cannot give {n_clients} clients {min_size} each")


def iid(labels: NDArray[np.generic], n_clients: int, *, seed: int = 0) -> Shards:
    """Deal the examples out at random: shard sizes differ by at most one."""
    n = len(labels)
    _check_clients(n, n_clients, 1)
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(part).astype(np.int64) for part in np.array_split(order, n_clients)]


def dirichlet(
    labels: NDArray[np.generic],
    n_clients: int,
    alpha: float,
    *,
    seed: int = 0,
    min_size: int = 1,
) -> Shards:
    """Label skew: each class split over the clients by shares drawn from Dirichlet(alpha).

    Raises
    ------
    ValueError
        ``alpha`` not > 0, fewer examples than ``n_clients * min_size``, or no draw in
        :data:`MAX_DRAWS` gave every client ``min_size`` examples.
    """
    if not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"alpha must be a finite number > 0, got {alpha}")
    labels = np.asarray(labels)
    _check_clients(len(labels), n_clients, min_size)
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    for _ in range(MAX_DRAWS):
        parts: list[list[NDArray[np.int64]]] = [[] for _ in range(n_clients)]
        for members in by_class:
            shuffled = rng.permutation(members)
            shares = rng.dirichlet(np.full(n_clients, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(shuffled)).astype(np.int64)
            for client, piece in enumerate(np.split(shuffled, cuts)):
                parts[client].append(piece)
        shards = [np.sort(np.concatenate(p)).astype(np.int64) for p in parts]
        if min(len(s) for s in shards) >= min_size:
            return shards
    raise ValueError(
        f"no Dirichlet({alpha}) draw in {MAX_DRAWS} gave all {n_clients} clients "
        f"{min_size} example(s); use fewer clients or a larger alpha"
    )


def partition(
    labels: NDArray[np.generic], n_clients: int, spec: str | PartitionSpec, *, seed: int = 0
) -> Shards:
    """Shards by a spec (``"iid"`` or ``"dirichlet:ALPHA"``)."""
    parsed = from_spec(spec) if isinstance(spec, str) else spec
    if parsed.kind == "dirichlet" and parsed.alpha is not None:
        return dirichlet(labels, n_clients, parsed.alpha, seed=seed)
    return iid(labels, n_clients, seed=seed)
