"""Per-device state survives a restart: saved to bytes, loaded, the next rounds are identical."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet.federated.compression import PayloadError, from_spec, spec_of
from edgefleet.federated.params import Vector

from .vectors import SPARSE, rounds_of


@pytest.mark.parametrize("spec", SPARSE)
@settings(deadline=None, max_examples=15)
@given(updates=rounds_of(size=40, count=6, max_abs=1e4), cut=st.integers(0, 6))
def test_continuing_after_a_restore_gives_the_identical_result(
    spec: str, updates: list[Vector], cut: int
) -> None:
    running = from_spec(spec)
    for update in updates[:cut]:
        running.encode(update)
    saved = running.state_bytes()
    restarted = from_spec(spec_of(running))  # a new process: settings from the spec text
    restarted.load_state(saved)
    assert restarted.state_bytes() == saved
    for update in updates[cut:]:
        assert restarted.encode(update) == running.encode(update)
    assert restarted.state_bytes() == running.state_bytes()


def test_dgc_restores_mid_warmup_with_sampling() -> None:
    rng = np.random.default_rng(0)
    updates = [rng.normal(size=200_000).astype(np.float32) for _ in range(5)]
    running = from_spec("dgc:0.999,momentum=0.9,clip=100")
    running.encode(updates[0])
    running.encode(updates[1])
    restarted = from_spec("dgc:0.999,momentum=0.9,clip=100")
    restarted.load_state(running.state_bytes())
    assert [restarted.encode(u) for u in updates[2:]] == [running.encode(u) for u in updates[2:]]


def test_stateless_codecs_have_an_empty_state() -> None:
    for spec in ["dense", "fp16", "int8"]:
        codec = from_spec(spec)
        assert codec.state_bytes() == b""
        codec.load_state(b"")
        with pytest.raises(PayloadError, match="keeps no state"):
            codec.load_state(b"\x00")


def test_empty_bytes_mean_a_fresh_state() -> None:
    for spec in ["topk:0.9", "dgc:0.9"]:
        codec = from_spec(spec)
        codec.encode(np.ones(5, np.float32))
        codec.load_state(b"")
        assert codec.state_bytes() == from_spec(spec).state_bytes()


def saved_state(spec: str) -> bytes:
    codec = from_spec(spec)
    codec.encode(np.linspace(-1, 1, 10, dtype=np.float32))
    return codec.state_bytes()


def with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def nan_state() -> bytes:
    body = bytearray(saved_state("topk:0.5")[:-4])
    body[-4:] = np.array([np.nan], "<f4").tobytes()
    return with_crc(bytes(body))


BAD_STATES = {
    "truncated": (saved_state("topk:0.5")[:-1], "header implies|CRC"),
    "too short": (b"EFS", "shorter than its header"),
    "not a state": (b"x" * 40, "not a codec state"),
    "flipped byte": (
        saved_state("topk:0.5")[:30] + b"\xff" + saved_state("topk:0.5")[31:],
        "CRC-32",
    ),
    "other codec": (saved_state("dgc:0.5"), "belongs to codec 'dgc', not 'topk'"),
    "newer version": (
        with_crc(b"EFS\x02" + saved_state("topk:0.5")[4:-4]),
        "unsupported codec state version 2",
    ),
    "NaN residual": (nan_state(), "non-finite"),
}


@pytest.mark.parametrize(("data", "message"), BAD_STATES.values(), ids=BAD_STATES.keys())
def test_a_bad_state_is_a_value_error_and_changes_nothing(data: bytes, message: str) -> None:
    codec = from_spec("topk:0.5")
    codec.encode(np.ones(10, np.float32))
    before = codec.state_bytes()
    with pytest.raises(ValueError, match=message):
        codec.load_state(data)
    assert codec.state_bytes() == before
