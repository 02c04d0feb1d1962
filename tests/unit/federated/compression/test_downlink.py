"""Downlink: the new global model as a delta against the device's base, or in full."""

from __future__ import annotations

import numpy as np
import pytest

from edgefleet.federated.compression import (
    BaseMismatchError,
    PayloadError,
    apply_downlink,
    downlink_for,
    encode_downlink,
    from_spec,
    model_hash,
)
from edgefleet.federated.compression.base import fp16_error


def models(n: int = 5_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    old = rng.normal(size=n).astype(np.float32)
    return old, old + rng.normal(scale=1e-2, size=n).astype(np.float32)


def test_the_hash_is_sha256_of_the_float32_bytes() -> None:
    import hashlib

    x = np.array([1.0, 2.0], np.float32)
    assert model_hash(x) == hashlib.sha256(x.astype("<f4").tobytes()).hexdigest()[:16]
    assert model_hash(np.array([1.0, 2.0], np.float64)) == model_hash(x)
    assert model_hash(x) != model_hash(x[::-1].copy())


def test_a_delta_gives_the_device_exactly_the_model_the_server_recorded() -> None:
    old, new = models()
    down = encode_downlink(new, old)
    assert down.is_delta
    assert down.base_hash == model_hash(old)
    held = apply_downlink(down.payload, old)
    assert held.tobytes() == down.model.tobytes()
    assert model_hash(held) == down.model_hash
    assert np.max(np.abs(held - new)) <= fp16_error(float(np.max(np.abs(new - old)))) + 1e-6


def test_a_full_model_is_exact_and_needs_no_base() -> None:
    _, new = models()
    down = encode_downlink(new)
    assert not down.is_delta
    assert apply_downlink(down.payload, None, size=new.size).tobytes() == new.tobytes()
    with pytest.raises(ValueError, match="needs the model size"):
        apply_downlink(down.payload, None)


def test_the_server_falls_back_to_the_full_model_for_an_unknown_base() -> None:
    old, new = models()
    bases = {model_hash(old): old}
    assert downlink_for(new, model_hash(old), bases).is_delta
    assert not downlink_for(new, "0000000000000000", bases).is_delta
    assert not downlink_for(new, None, bases).is_delta
    # a base of another size (the architecture changed) also gets the full model
    assert not encode_downlink(new, old[:10]).is_delta


def test_a_delta_against_another_base_is_refused() -> None:
    old, new = models()
    down = encode_downlink(new, old)
    with pytest.raises(BaseMismatchError, match=f"delta is against model {model_hash(old)}"):
        apply_downlink(down.payload, old + 1)
    with pytest.raises(BaseMismatchError, match="needs a model to apply to"):
        apply_downlink(down.payload, None)


def test_errors_do_not_build_up_over_rounds() -> None:
    rng = np.random.default_rng(1)
    server_global = rng.normal(size=2_000).astype(np.float32)
    device = encode_downlink(server_global)
    held = apply_downlink(device.payload, None, size=server_global.size)
    bases = {device.model_hash: device.model}
    for _ in range(20):
        step = rng.normal(scale=1e-2, size=server_global.size).astype(np.float32)
        server_global = server_global + step
        down = downlink_for(server_global, model_hash(held), bases, codec=from_spec("int8"))
        assert down.is_delta
        held = apply_downlink(down.payload, held)
        bases[down.model_hash] = down.model
        # the gap to the true global is one delta's quantization, not twenty
        bound = from_spec("int8").error_bound(server_global - bases[down.base_hash or ""])
        assert np.max(np.abs(held - server_global)) <= bound + 1e-6


def test_a_sparse_delta_codec_catches_up_over_rounds() -> None:
    old, new = models(n=1_000)
    held = old
    for _ in range(30):  # the global stands still; each delta sends the largest 10% left
        held = apply_downlink(encode_downlink(new, held, codec=from_spec("topk:0.9")).payload, held)
    assert np.max(np.abs(held - new)) < 1e-4


def test_a_tampered_downlink_is_a_value_error() -> None:
    old, new = models()
    down = encode_downlink(new, old)
    with pytest.raises(PayloadError, match="shorter than its header"):
        apply_downlink(down.payload[:10], old)
    with pytest.raises(PayloadError, match="does not start with"):
        apply_downlink(b"XX" + down.payload[2:], old)
    with pytest.raises(PayloadError, match="unsupported downlink version 9"):
        apply_downlink(down.payload[:2] + b"\x09" + down.payload[3:], old)
    with pytest.raises(PayloadError, match="unknown downlink kind 5"):
        apply_downlink(down.payload[:3] + b"\x05" + down.payload[4:], old)
    wrong_result = down.payload[:12] + bytes(8) + down.payload[20:]
    with pytest.raises(PayloadError, match="the server sent 0000000000000000"):
        apply_downlink(wrong_result, old)
    with pytest.raises(PayloadError):
        apply_downlink(down.payload[:-5], old)
