"""Checks of an uploaded update, shared by the control plane and regional relays (no I/O).

Each raises a :class:`~edgefleet.errors.ProtocolError` (or
:class:`~edgefleet.errors.PayloadTooLargeError`) whose message names what is wrong; the caller
stores it as the reason the update was rejected.

Examples
--------
>>> import numpy as np
>>> from edgefleet.federated import DenseCodec
>>> check_examples("40"), check_metrics('{"loss": 0.5}')
(40, {'loss': 0.5})
>>> decode_update("dense", DenseCodec().encode(np.ones(3, np.float32)), 3).tolist()
[1.0, 1.0, 1.0]
>>> decode_update("dense", DenseCodec().encode(np.ones(3, np.float32)), 4)
Traceback (most recent call last):
...
edgefleet.errors.ProtocolError: update does not decode as dense: ...
>>> check_examples("0")
Traceback (most recent call last):
...
edgefleet.errors.ProtocolError: example count must be in [1, 1000000000], got 0
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgefleet.errors import PayloadTooLargeError, ProtocolError
from edgefleet.federated import codec_from_spec
from edgefleet.federated.compression import PayloadError
from edgefleet.runtime.oip.bounded_json import loads_bounded
from edgefleet.server.fl.spec import max_update_bytes

__all__ = ["MAX_EXAMPLES", "MAX_METRICS_HEADER", "check_examples", "check_metrics", "decode_update"]

MAX_EXAMPLES = 10**9
"""The largest example count an update may claim."""
MAX_METRICS_HEADER = 4096
"""The longest metrics header read (32 metrics with 64-character names fit with room)."""


def check_examples(header: str | None) -> int:
    """The example count of an update (its ``X-Edgefleet-Examples`` header)."""
    if header is None:
        raise ProtocolError("the update names no example count (X-Edgefleet-Examples header)")
    try:
        count = int(header)
    except ValueError:
        raise ProtocolError(f"example count {header[:40]!r} is not an integer") from None
    if not 1 <= count <= MAX_EXAMPLES:
        raise ProtocolError(f"example count must be in [1, {MAX_EXAMPLES}], got {count}")
    return count


def check_metrics(header: str | None) -> dict[str, float]:
    """The device's training metrics (``X-Edgefleet-Metrics``: a JSON object of numbers).

    The header's length is bounded, and so is its nesting (a flat object) before it is parsed.

    >>> check_metrics("[" * 2000)
    Traceback (most recent call last):
    ...
    edgefleet.errors.ProtocolError: the update's metrics header nests JSON 2000 levels deep; ...
    """
    if not header:
        return {}
    if len(header) > MAX_METRICS_HEADER:
        raise ProtocolError(
            f"the update's metrics header is {len(header)} characters long; "
            f"at most {MAX_METRICS_HEADER} are read"
        )
    data = loads_bounded(
        header.encode("utf-8", "surrogateescape"), max_depth=1, what="the update's metrics header"
    )
    if not isinstance(data, dict) or len(data) > 32:
        raise ProtocolError("the update's metrics must be a JSON object of at most 32 numbers")
    out: dict[str, float] = {}
    for key, value in data.items():
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ProtocolError(f"metric {str(key)[:40]!r} is not a number")
        out[str(key)[:64]] = float(value)
    return out


def decode_update(compression: str, payload: bytes, num_params: int) -> np.ndarray[Any, Any]:
    """Decode an update payload of a model with ``num_params`` parameters; finite values only."""
    limit = max_update_bytes(num_params)
    if len(payload) > limit:
        raise PayloadTooLargeError(
            f"update of {len(payload)} bytes is over this job's limit of {limit} bytes "
            f"({num_params} parameters)"
        )
    if not payload:
        raise ProtocolError("the update is empty")
    try:
        delta = codec_from_spec(compression).decode(payload, num_params)
    except PayloadError as exc:
        raise ProtocolError(f"update does not decode as {compression}: {exc}") from exc
    except ValueError as exc:
        raise ProtocolError(f"update does not fit the model: {exc}") from exc
    if not np.all(np.isfinite(delta)):
        bad = int(np.count_nonzero(~np.isfinite(delta)))
        raise ProtocolError(f"update holds {bad} NaN or infinite values")
    return delta
