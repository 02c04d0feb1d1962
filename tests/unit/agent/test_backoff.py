from __future__ import annotations

import random

import pytest

from edgefleet.agent.backoff import Backoff, jitter_delay


def test_full_jitter_stays_within_a_growing_capped_ceiling() -> None:
    backoff = Backoff(base=0.5, cap=10.0, rng=random.Random(1))
    ceilings = []
    for _ in range(12):
        ceiling = backoff.ceiling()
        ceilings.append(ceiling)
        delays = [jitter_delay(backoff.failures, 0.5, 10.0, random.Random(s)) for s in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > 0.8 * ceiling  # full jitter spreads over the whole range
        assert min(delays) < 0.2 * ceiling
        delay = backoff.next_delay()
        assert 0.0 <= delay <= ceiling
    assert ceilings[:6] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0]
    assert ceilings[-1] == 10.0


def test_mean_delay_grows_until_the_cap() -> None:
    rng = random.Random(7)
    means = [sum(jitter_delay(n, 1.0, 30.0, rng) for _ in range(2000)) / 2000 for n in range(7)]
    assert means == sorted(means[:5]) + means[5:]
    assert means[4] == pytest.approx(8.0, rel=0.1)
    assert means[6] == pytest.approx(15.0, rel=0.1)


def test_reset_and_huge_failure_counts() -> None:
    backoff = Backoff(base=1.0, cap=5.0)
    for _ in range(5000):
        assert backoff.next_delay() <= 5.0
    backoff.reset()
    assert backoff.ceiling() == 1.0


@pytest.mark.parametrize(("base", "cap"), [(0, 1), (1, 0), (-1, 5)])
def test_invalid_parameters(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        Backoff(base, cap)
