"""The weighted mean of encoded updates, one payload at a time.

A server aggregating 500 updates of an 11.7M-parameter model cannot hold 500 decoded dense
vectors (23 GB). :func:`streaming_mean` keeps one float64 accumulator: a sparse payload
(top-k, DGC) is scatter-added from its indices and values without building its dense vector,
any other is decoded and added, then dropped. Mean-based strategies (FedAvg, FedAvgM, FedAdam,
FedProx) give the same result for the mean as one update weighing the total as they do for
the updates themselves, so the server aggregates ``[ClientUpdate(mean, total)]``.

Examples
--------
>>> import numpy as np
>>> from edgefleet.federated.compression import from_spec
>>> codec = from_spec("topk:0.5")
>>> a, b = np.array([1, 0, 0, 4], np.float32), np.array([0, 2, 0, 0], np.float32)
>>> mean, total = streaming_mean([(codec.fresh().encode(a), 1), (codec.fresh().encode(b), 3)],
...                              4, codec)
>>> mean.tolist(), total
([0.25, 1.5, 0.0, 1.0], 4)
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from edgefleet.federated.compression import wire
from edgefleet.federated.compression.base import Codec
from edgefleet.federated.params import Vector

__all__ = ["streaming_mean"]


def streaming_mean(
    payloads: Iterable[tuple[bytes, int]], size: int, codec: Codec
) -> tuple[Vector, int]:
    """The example-weighted mean of encoded updates of ``size`` values, and the total weight.

    ``payloads`` yields ``(payload, num_examples)``; each is read once (it may be a generator
    reading files). Payloads are checked as :meth:`Codec.decode` checks them: made by
    ``codec``'s kind, of ``size`` values, well-formed, finite.

    Raises
    ------
    PayloadError
        A payload is malformed.
    ValueError
        No payload, or a weight below 1.
    """
    accumulator = np.zeros(size, np.float64)
    total = 0
    for payload, weight in payloads:
        if weight < 1:
            raise ValueError(f"an update's weight must be >= 1, got {weight}")
        message = wire.read(payload, size, codec.codec_id)
        if message.indices is not None:  # strictly increasing, so no index repeats
            accumulator[message.indices] += weight * message.values.astype(np.float64)
        else:
            accumulator += weight * codec.decode(payload, size).astype(np.float64)
        total += weight
    if total == 0:
        raise ValueError("no update to average")
    mean: Vector = (accumulator / total).astype(np.float32)
    return mean, total
