from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.federated.params import Vector
from edgefleet.federated.strategies import STRATEGIES, ClientUpdate, FedAdam, FedAvgM, Strategy

from .rounds import property_test, sizes, updates_of_size, vectors


def trained(strategy: Strategy, size: int = 3, rounds: int = 2) -> Strategy:
    w: Vector = np.zeros(size, np.float32)
    for r in range(rounds):
        delta = np.arange(size, dtype=np.float32) - r
        w = strategy.aggregate(w, [ClientUpdate(delta, 2)])
    return strategy


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_state_survives_a_trip_through_json(name: str) -> None:
    original = trained(STRATEGIES[name]())
    text = json.dumps(original.state_dict())
    restored = STRATEGIES[name]()
    restored.load_state_dict(json.loads(text))
    assert restored.state_dict() == original.state_dict()
    assert restored.state_dict()["strategy"] == name


@property_test
@given(st.data(), sizes, st.integers(min_value=1, max_value=3))
def test_fedavgm_restored_from_its_json_state_continues_exactly_as_if_never_stopped(
    data: st.DataObject, size: int, rounds_after: int
) -> None:
    w: Vector = data.draw(vectors(size))
    first = data.draw(updates_of_size(size))
    uninterrupted, first_life = FedAvgM(momentum=0.9), FedAvgM(momentum=0.9)
    w_uninterrupted = uninterrupted.aggregate(w, first)
    w_restarted = first_life.aggregate(w, first)
    second_life = FedAvgM(momentum=0.9)
    second_life.load_state_dict(json.loads(json.dumps(first_life.state_dict())))
    for _ in range(rounds_after):
        updates = data.draw(updates_of_size(size))
        w_uninterrupted = uninterrupted.aggregate(w_uninterrupted, updates)
        w_restarted = second_life.aggregate(w_restarted, updates)
        np.testing.assert_array_equal(w_restarted, w_uninterrupted)


def test_a_restore_without_state_loses_the_momentum() -> None:
    """The check above can fail: a strategy that forgets its velocity steps differently."""
    w, update = np.zeros(1, np.float32), [ClientUpdate(np.array([1.0], np.float32), 1)]
    remembering = FedAvgM(momentum=0.9)
    w = remembering.aggregate(w, update)
    assert (
        remembering.aggregate(w, update).item() != FedAvgM(momentum=0.9).aggregate(w, update).item()
    )


def test_vectors_are_stored_as_base64_of_little_endian_float32() -> None:
    strategy = trained(FedAvgM(momentum=0.5), size=4)
    stored = strategy.state_dict()["velocity"]
    assert isinstance(stored, dict)
    assert stored["dtype"] == "<f4"
    assert stored["shape"] == [4]
    assert isinstance(stored["base64"], str)
    decoded = np.frombuffer(base64.b64decode(stored["base64"]), "<f4")
    assert isinstance(strategy, FedAvgM)
    assert strategy.velocity is not None
    np.testing.assert_array_equal(decoded, strategy.velocity)


def good_adam_state() -> dict[str, object]:
    state = trained(FedAdam()).state_dict()
    return json.loads(json.dumps(state))  # type: ignore[no-any-return]


def with_changes(**changes: object) -> dict[str, object]:
    state = good_adam_state()
    for key, value in changes.items():
        if value is ...:
            del state[key]
        else:
            state[key] = value
    return state


def vector(values: list[float], dtype: str = "<f4") -> dict[str, object]:
    raw = np.array(values, dtype).tobytes()
    return {"dtype": dtype, "shape": [len(values)], "base64": base64.b64encode(raw).decode()}


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (with_changes(strategy="fedavgm"), "state belongs to strategy 'fedavgm', not 'fedadam'"),
        (with_changes(version=2), "state version 2 is not supported"),
        (with_changes(v=...), r"needs exactly the keys m, v, got \['m'\]"),
        (with_changes(extra=1), r"needs exactly the keys m, v, got \['extra', 'm', 'v'\]"),
        (
            with_changes(m=[0.1, 0.2, 0.3]),
            "fedadam m must be a dict with keys dtype, shape, base64",
        ),
        (with_changes(m=None), "both be null or both vectors"),
        (with_changes(m=vector([0.0, 0.0])), "both be null or both vectors of one size"),
        (with_changes(v=vector([-1.0, 0.0, 0.0])), "cannot be negative"),
        (with_changes(m=vector([0.0, np.nan, 0.0])), "fedadam m contains non-finite values"),
        (with_changes(m=vector([0.0, 0.0, 0.0], "<f8")), "dtype '<f8', expected '<f4'"),
        (
            with_changes(m={"dtype": "<f4", "shape": [3], "base64": "not base64!"}),
            "fedadam m is not valid base64",
        ),
        (
            with_changes(m={"dtype": "<f4", "shape": [4], "base64": vector([1, 2, 3])["base64"]}),
            "holds 12 bytes, not 4 x 4",
        ),
        (with_changes(m={"dtype": "<f4", "shape": 3, "base64": ""}), r"shape \[n\], got 3"),
    ],
)
def test_a_malformed_state_is_refused_and_the_current_state_kept(
    state: dict[str, object], message: str
) -> None:
    strategy = trained(FedAdam(), rounds=1)
    before = strategy.state_dict()
    with pytest.raises(ValueError, match=message):
        strategy.load_state_dict(state)
    assert strategy.state_dict() == before


def test_a_stateless_strategy_refuses_state_with_unexpected_keys() -> None:
    with pytest.raises(ValueError, match=r"unexpected keys in fedavg state: \['velocity'\]"):
        STRATEGIES["fedavg"]().load_state_dict(
            {"strategy": "fedavg", "version": 1, "velocity": None}
        )
