"""Hypothesis strategies for update vectors, shared by the codec tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgefleet.federated.params import Vector

STATELESS = ["dense", "fp16", "int8", "int8:chunk=3", "fp16:level=0"]
SPARSE = [
    "topk:0.5",
    "topk:0.9",
    "topk:0.0",
    "topk:0.75,values=fp32",
    "dgc:0.9,warmup=0",
    "dgc:0.999",
    "dgc:0.9,momentum=0.9,clip=10.0,warmup=2",
    "dgc:0.5,momentum=0.5,values=fp32",
]
ALL = STATELESS + SPARSE


def vectors(
    max_size: int = 300, max_abs: float | None = None, min_size: int = 0
) -> st.SearchStrategy[Vector]:
    """Float32 vectors with every finite value float32 has, or within ``max_abs``."""
    if max_abs is None:
        elements = st.floats(allow_nan=False, allow_infinity=False, width=32)
    else:
        elements = st.floats(-max_abs, max_abs, allow_nan=False, width=32)
    return hnp.arrays(np.float32, st.integers(min_size, max_size), elements=elements)


def rounds_of(size: int, count: int, max_abs: float = 1e6) -> st.SearchStrategy[list[Vector]]:
    """``count`` vectors of ``size`` values each."""
    elements = st.floats(-max_abs, max_abs, allow_nan=False, width=32)
    one = hnp.arrays(np.float32, size, elements=elements)
    return st.lists(one, min_size=count, max_size=count)


def error(decoded: Vector, target: Vector) -> float:
    """Max absolute difference, computed in float64."""
    if decoded.size == 0:
        return 0.0
    return float(np.max(np.abs(decoded.astype(np.float64) - target.astype(np.float64))))
