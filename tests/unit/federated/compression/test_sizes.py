"""The saving shows on the wire: bytes per kept value, and the ratio to dense float32."""

from __future__ import annotations

import numpy as np
import pytest

from edgefleet.federated.compression import from_spec

N = 1_000_000


@pytest.fixture(scope="module")
def update() -> np.ndarray:
    return np.random.default_rng(0).normal(scale=1e-3, size=N).astype(np.float32)


@pytest.mark.parametrize("spec", ["topk:0.999", "dgc:0.999,warmup=0"])
def test_999_sparsity_is_at_least_100x_smaller_than_dense(spec: str, update: np.ndarray) -> None:
    payload = from_spec(spec).encode(update)
    dense = from_spec("dense").encode(update)
    assert len(payload) * 100 <= 4 * N
    assert len(payload) * 100 <= len(dense)
    assert len(payload) / 1000 < 4.0  # bytes per kept value: gap varint + float16, compressed


@pytest.mark.parametrize(
    ("spec", "most_bytes_per_value"),
    [("fp16", 2.0), ("int8", 1.02), ("int8:chunk=64", 1.07), ("topk:0.99", 3.0)],
)
def test_bytes_per_value(spec: str, most_bytes_per_value: float, update: np.ndarray) -> None:
    payload = from_spec(spec).encode(update)
    kept = 10_000 if spec.startswith("topk") else N
    assert len(payload) / kept <= most_bytes_per_value
