"""Every codec decodes what it encoded within the error it states (L-infinity, against target)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from edgefleet.federated.compression import Codec, decode_update, from_spec
from edgefleet.federated.params import Vector

from .vectors import ALL, SPARSE, STATELESS, error, rounds_of, vectors


def check_round(codec: Codec, update: Vector) -> None:
    target = codec.target(update)
    bound = codec.error_bound(update)
    payload = codec.encode(update)
    decoded = codec.decode(payload, update.size)
    assert decoded.dtype == np.float32
    assert decoded.shape == update.shape
    assert error(decoded, target) <= bound
    assert np.array_equal(decode_update(payload, update.size), decoded)


@pytest.mark.parametrize("spec", ALL)
@settings(deadline=None, max_examples=25)
@given(update=vectors())
def test_one_round_is_within_the_stated_bound(spec: str, update: Vector) -> None:
    check_round(from_spec(spec), update)


@pytest.mark.parametrize("spec", SPARSE)
@settings(deadline=None, max_examples=15)
@given(updates=rounds_of(size=64, count=6))
def test_every_round_of_a_stateful_codec_is_within_the_stated_bound(
    spec: str, updates: list[Vector]
) -> None:
    codec = from_spec(spec)
    for update in updates:
        check_round(codec, update)


@settings(max_examples=20)
@given(update=vectors(max_size=50))
def test_stateless_codecs_do_not_depend_on_earlier_calls(update: Vector) -> None:
    for spec in STATELESS:
        codec = from_spec(spec)
        first = codec.encode(update)
        codec.encode(np.ones(7, np.float32))
        assert codec.encode(update) == first
        assert codec.state_bytes() == b""


def test_the_bounds_are_what_the_docs_state() -> None:
    x = np.array([1.0, -0.5, 0.25, 0.0], np.float32)
    assert from_spec("dense").error_bound(x) == 0.0
    assert from_spec("fp16").error_bound(x) == 2.0**-11 + 2.0**-25
    assert from_spec("int8").error_bound(x) == pytest.approx(1 / 254, rel=1e-4)
    # top-k at 50% sends 1.0 and -0.5; 0.25 (the 3rd largest) is held back
    assert from_spec("topk:0.5").error_bound(x) == 0.25
    assert from_spec("topk:0.5,values=fp32").error_bound(x) == 0.25
    # over float16's range the values go as float32, exactly
    assert from_spec("fp16").error_bound(np.array([7e4], np.float32)) == 0.0


def test_the_exact_codecs_are_bit_exact() -> None:
    x = np.array([1e-40, -3.4e38, 0.1, -0.0], np.float32)
    assert from_spec("dense").decode(from_spec("dense").encode(x), 4).tobytes() == x.tobytes()
    big = np.array([7e4, 0.1], np.float32)
    assert np.array_equal(from_spec("fp16").decode(from_spec("fp16").encode(big), 2), big)


def test_an_empty_vector_round_trips() -> None:
    empty = np.zeros(0, np.float32)
    for spec in ALL:
        codec = from_spec(spec)
        assert codec.decode(codec.encode(empty), 0).size == 0, spec


BAD_UPDATES: list[Vector] = [
    np.array([1.0, np.nan], np.float32),
    np.array([np.inf], np.float32),
    np.ones((2, 2), np.float32),
]


def test_a_bad_update_is_refused_with_a_value_error() -> None:
    for spec in ALL:
        codec = from_spec(spec)
        for bad in BAD_UPDATES:
            with pytest.raises(ValueError, match=r"non-finite|flat vector"):
                codec.encode(bad)
        assert codec.state_bytes() == from_spec(spec).state_bytes()  # nothing changed
