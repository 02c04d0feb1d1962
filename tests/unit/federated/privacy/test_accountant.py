"""The privacy accountant: epsilon as dp-accounting computes it, monotone, and restart-safe."""

from __future__ import annotations

import importlib
import json
import math
import sys
from typing import Any

import pytest

from edgefleet.federated.privacy.accountant import (
    PrivacyAccountant,
    epsilon_after,
    sampling_rate,
)

DELTA = 1e-5

# DP-SGD on MNIST (Abadi et al., 2016, "Deep Learning with Differential Privacy"; the TensorFlow
# Privacy tutorial): 60,000 examples, lots of 256, noise multiplier 1.1, 60 epochs.
MNIST_Q = 256 / 60_000
MNIST_STEPS = round(60 * 60_000 / 256)  # 14,062.5 steps: 14,062


def dp_accounting() -> Any:
    """The library itself, to compute reference values independently of the accountant."""
    return importlib.import_module("dp_accounting")


def reference_epsilon(rounds: list[tuple[float, float]], delta: float) -> float:
    """Epsilon of the given ``(q, z)`` rounds, composed one call per round, straight from the
    library."""
    dp = dp_accounting()
    accountant = dp.rdp.RdpAccountant()
    for q, z in rounds:
        accountant.compose(dp.PoissonSampledDpEvent(q, dp.GaussianDpEvent(z)))
    return float(accountant.get_epsilon(delta))


def test_no_rounds_spend_nothing() -> None:
    accountant = PrivacyAccountant()
    assert accountant.rounds == 0
    assert accountant.epsilon(DELTA) == 0.0


def test_epsilon_matches_dp_accounting_composed_round_by_round() -> None:
    # Two phases of a job, interleaved: the accountant groups rounds per (q, z), the reference
    # composes each round in the order it happened; RDP composition is additive, so they agree.
    rounds = [(0.02, 1.0), (0.05, 1.5)] * 4 + [(0.02, 1.0)] * 3
    accountant = PrivacyAccountant()
    for q, z in rounds:
        accountant.record(q, z)
    assert accountant.rounds == 11
    assert accountant.history == {(0.02, 1.0): 7, (0.05, 1.5): 4}
    expected = reference_epsilon(rounds, DELTA)
    assert expected > 0.1  # a real figure, not the empty accountant's 0
    assert accountant.epsilon(DELTA) == pytest.approx(expected, rel=1e-9)


def test_mnist_dp_sgd_spends_about_three_epsilon() -> None:
    epsilon = epsilon_after(MNIST_STEPS, sampling_rate=MNIST_Q, noise_multiplier=1.1, delta=DELTA)
    # The published figure, about 3, converts the RDP curve with the classic bound
    # eps = min over orders a of rdp(a) + log(1 / delta) / (a - 1). dp-accounting uses a
    # tighter conversion of the same curve, so it reports less: 2.60.
    dp = dp_accounting()
    rdp = dp.rdp.RdpAccountant()
    rdp.compose(dp.PoissonSampledDpEvent(MNIST_Q, dp.GaussianDpEvent(1.1)), MNIST_STEPS)
    classic = min(
        r + math.log(1 / DELTA) / (a - 1) for a, r in zip(rdp.orders, rdp.rdp, strict=True)
    )
    assert classic == pytest.approx(3.0, abs=0.1)
    assert epsilon == pytest.approx(2.60, abs=0.01)
    assert epsilon < classic


def test_a_typical_federated_job_spends_a_plausible_epsilon() -> None:
    # 1% of the devices per round, z = 1.1, 10,000 rounds.
    epsilon = epsilon_after(10_000, sampling_rate=0.01, noise_multiplier=1.1, delta=DELTA)
    assert 1 < epsilon < 10
    assert epsilon == pytest.approx(5.63, abs=0.01)


def test_epsilon_grows_with_rounds() -> None:
    epsilons = [
        epsilon_after(k, sampling_rate=0.01, noise_multiplier=1.1, delta=DELTA)
        for k in (1, 10, 100, 1000, 10_000)
    ]
    assert epsilons == sorted(epsilons)
    assert len(set(epsilons)) == len(epsilons)


def test_epsilon_grows_with_the_sampling_rate() -> None:
    epsilons = [
        epsilon_after(100, sampling_rate=q, noise_multiplier=1.1, delta=DELTA)
        for q in (0.001, 0.01, 0.1, 1.0)
    ]
    assert epsilons == sorted(epsilons)
    assert len(set(epsilons)) == len(epsilons)


def test_epsilon_shrinks_with_the_noise_multiplier() -> None:
    epsilons = [
        epsilon_after(100, sampling_rate=0.01, noise_multiplier=z, delta=DELTA)
        for z in (0.8, 1.1, 2.0, 4.0)
    ]
    assert epsilons == sorted(epsilons, reverse=True)
    assert len(set(epsilons)) == len(epsilons)


def test_epsilon_shrinks_as_delta_grows() -> None:
    accountant = PrivacyAccountant()
    accountant.record(0.01, 1.1, rounds=1000)
    assert accountant.epsilon(1e-7) > accountant.epsilon(1e-5) > accountant.epsilon(1e-3)


def test_recording_in_pieces_equals_recording_at_once() -> None:
    pieces, whole = PrivacyAccountant(), PrivacyAccountant()
    for _ in range(3):
        pieces.record(0.01, 1.1, rounds=10)
    whole.record(0.01, 1.1, rounds=30)
    assert pieces == whole
    assert pieces.epsilon(DELTA) == whole.epsilon(DELTA)


def test_sampling_rate_is_selected_over_population() -> None:
    assert sampling_rate(10, 1000) == 0.01
    assert sampling_rate(5, 5) == 1.0


# Persistence


def test_state_round_trips_through_json_and_the_job_continues() -> None:
    accountant = PrivacyAccountant()
    accountant.record(sampling_rate(10, 1000), 1.1, rounds=50)
    accountant.record(sampling_rate(20, 1000), 1.3, rounds=7)
    text = json.dumps(accountant.state_dict())
    restored = PrivacyAccountant.from_state_dict(json.loads(text))
    assert restored == accountant
    assert restored.rounds == 57
    assert restored.epsilon(DELTA) == accountant.epsilon(DELTA)
    # After the restart, the job goes on as if it never stopped.
    restored.record(0.01, 1.1)
    accountant.record(0.01, 1.1)
    assert restored.state_dict() == accountant.state_dict()
    assert restored.epsilon(DELTA) == accountant.epsilon(DELTA)


def test_state_is_plain_and_readable() -> None:
    accountant = PrivacyAccountant()
    accountant.record(0.01, 1.1, rounds=3)
    assert accountant.state_dict() == {
        "version": 1,
        "rounds": [{"sampling_rate": 0.01, "noise_multiplier": 1.1, "rounds": 3}],
    }
    assert PrivacyAccountant().state_dict() == {"version": 1, "rounds": []}


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ([], "must be a dict with keys version, rounds"),
        ({"version": 1}, "must be a dict with keys version, rounds"),
        ({"version": 2, "rounds": []}, "has version 2; this edgefleet reads version 1"),
        ({"version": 1, "rounds": {}}, "rounds must be a list"),
        ({"version": 1, "rounds": [{"sampling_rate": 0.1}]}, r"rounds\[0\] must be a dict"),
        (
            {
                "version": 1,
                "rounds": [
                    {"sampling_rate": 0.1, "noise_multiplier": 1.0, "rounds": 2},
                    {"sampling_rate": 1.5, "noise_multiplier": 1.0, "rounds": 2},
                ],
            },
            r"rounds\[1\]: sampling_rate must be in \(0, 1\], got 1.5",
        ),
        (
            {"version": 1, "rounds": [{"sampling_rate": 0.1, "noise_multiplier": 1, "rounds": 0}]},
            r"rounds\[0\]: rounds must be >= 1",
        ),
        (
            {
                "version": 1,
                "rounds": [{"sampling_rate": 0.1, "noise_multiplier": "1", "rounds": 1}],
            },
            r"rounds\[0\]: noise_multiplier must be a number, got '1'",
        ),
    ],
)
def test_malformed_state_is_refused_naming_the_bad_part(state: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PrivacyAccountant.from_state_dict(state)


# Bad inputs


@pytest.mark.parametrize(
    ("q", "z", "rounds", "message"),
    [
        (0.0, 1.1, 1, r"sampling_rate must be in \(0, 1\], got 0.0"),
        (1.01, 1.1, 1, r"sampling_rate must be in \(0, 1\], got 1.01"),
        (math.nan, 1.1, 1, "sampling_rate must be a finite number"),
        (0.1, 0.0, 1, "noise_multiplier must be > 0, got 0.0"),
        (0.1, -1.0, 1, "noise_multiplier must be > 0"),
        (0.1, math.inf, 1, "noise_multiplier must be a finite number"),
        (0.1, 1.1, 0, "rounds must be >= 1, got 0"),
        (0.1, 1.1, 1.5, "rounds must be an integer, got 1.5"),
        (0.1, 1.1, True, "rounds must be an integer, got True"),
    ],
)
def test_bad_rounds_are_refused_naming_the_parameter(
    q: float, z: float, rounds: int, message: str
) -> None:
    accountant = PrivacyAccountant()
    with pytest.raises(ValueError, match=message):
        accountant.record(q, z, rounds)
    assert accountant.rounds == 0


@pytest.mark.parametrize("delta", [0.0, 1.0, -1e-5, 2.0, math.nan])
def test_delta_must_be_in_the_open_unit_interval(delta: float) -> None:
    accountant = PrivacyAccountant()
    accountant.record(0.01, 1.1)
    with pytest.raises(ValueError, match="delta must be"):
        accountant.epsilon(delta)
    with pytest.raises(ValueError, match="delta must be"):
        PrivacyAccountant().epsilon(delta)


@pytest.mark.parametrize(
    ("selected", "population", "message"),
    [
        (0, 10, "selected must be >= 1, got 0"),
        (1, 0, "population must be >= 1, got 0"),
        (11, 10, r"selected \(11\) must not exceed population \(10\)"),
        (1.0, 10, "selected must be an integer"),
    ],
)
def test_bad_sampling_rates_are_refused(selected: int, population: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sampling_rate(selected, population)


def test_without_dp_accounting_epsilon_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A None entry in sys.modules makes `import dp_accounting` fail as if it were not installed.
    monkeypatch.setitem(sys.modules, "dp_accounting", None)
    accountant = PrivacyAccountant()
    accountant.record(0.01, 1.1)
    assert PrivacyAccountant.from_state_dict(accountant.state_dict()) == accountant
    with pytest.raises(ImportError, match=r"pip install 'edgefleet\[privacy\]'"):
        accountant.epsilon(DELTA)
