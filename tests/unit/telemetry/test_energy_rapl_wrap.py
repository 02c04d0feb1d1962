"""RAPL counters that wrap during a run: a background thread reads them often enough.

Simulated time drives the fake counter: the meter's thread asks to wait its poll interval, the
test moves the counter on by exactly that much at the counter's power, then lets the thread
read. No sleeps, no wall clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefleet.errors import MeterError
from edgefleet.telemetry.energy import RaplMeter
from edgefleet.telemetry.energy.rapl import MAX_PLAUSIBLE_WATTS, poll_interval_for
from edgefleet.testing.sysfs import FakeRaplCounter, FakeSysfs, HandTicker


@pytest.fixture
def ticker() -> Iterator[HandTicker]:
    hand = HandTicker()
    yield hand
    hand.close()


def run_for(seconds: float, counter: FakeRaplCounter, ticker: HandTicker) -> int:
    """Let ``seconds`` of simulated time pass, one poll interval at a time; the polls made."""
    elapsed, polls = 0.0, 0
    while elapsed < seconds:
        interval = ticker.next_wait()
        counter.advance(interval)
        elapsed += interval
        ticker.release()
        polls += 1
    ticker.next_wait()  # the last poll is done
    return polls


def test_a_15_w_counter_wrapping_every_13_s_reads_15_w_over_30_s(
    tmp_path: Path, ticker: HandTicker
) -> None:
    counter = FakeRaplCounter(FakeSysfs(tmp_path), watts=15.0, wrap_s=13.0, start_uj=123_456)
    with RaplMeter(counter.fake.root, wait=ticker.wait) as meter:
        run_for(30.0, counter, ticker)
        joules = meter.read_joules()
        ticker.close()
    assert counter.true_joules == pytest.approx(450.0, rel=0.01)  # two wraps happened
    assert joules == pytest.approx(counter.true_joules)


@pytest.mark.parametrize("watts", [5.0, 60.0])
def test_no_wrap_is_lost_however_many_there_are(
    tmp_path: Path, ticker: HandTicker, watts: float
) -> None:
    # a counter that wraps every half second at 60 W, watched for 40 wraps' worth of time
    counter = FakeRaplCounter(FakeSysfs(tmp_path), watts=watts, wrap_s=0.5 * 60.0 / watts)
    with RaplMeter(counter.fake.root, max_power_w=60.0, wait=ticker.wait) as meter:
        polls = run_for(20.0, counter, ticker)
        joules = meter.read_joules()
        ticker.close()
    assert counter.true_joules / (counter.max_range + 1) * 1e6 >= 40 * watts / 60.0
    assert polls >= 8 * 40  # at least eight reads per wrap at the assumed maximum power
    assert joules == pytest.approx(counter.true_joules)


def test_the_poll_interval_is_an_eighth_of_the_wrap_time_at_the_assumed_maximum_power(
    tmp_path: Path,
) -> None:
    counter = FakeRaplCounter(FakeSysfs(tmp_path), watts=15.0, wrap_s=13.0)
    with RaplMeter(counter.fake.root) as meter:
        wrap_s_at_max = (counter.max_range + 1) / (MAX_PLAUSIBLE_WATTS * 1e6)
        assert meter.poll_interval_s == pytest.approx(wrap_s_at_max / 8)
    with RaplMeter(counter.fake.root, max_power_w=15.0) as meter:
        assert meter.poll_interval_s == pytest.approx(13.0 / 8)


def test_the_smallest_range_among_the_zones_sets_the_interval(tmp_path: Path) -> None:
    fake = FakeSysfs(tmp_path)
    fake.add_rapl(0, max_energy_range_uj=262_143_328_850)
    fake.add_rapl(1, max_energy_range_uj=999_999_999)
    with RaplMeter(fake.root) as meter:
        assert meter.poll_interval_s == poll_interval_for(999_999_999)


def test_a_counter_the_thread_cannot_read_is_reported_by_the_next_read(
    tmp_path: Path, ticker: HandTicker
) -> None:
    counter = FakeRaplCounter(FakeSysfs(tmp_path), watts=15.0, wrap_s=13.0)
    energy = tmp_path / "sys/class/powercap/intel-rapl:0/energy_uj"
    meter = RaplMeter(counter.fake.root, wait=ticker.wait)
    ticker.next_wait()
    energy.unlink()
    energy.mkdir()  # unreadable, even for root
    ticker.release()
    meter.close()  # joins the thread, which stops at the failed read
    energy.rmdir()
    counter.advance(1.0)  # readable again, but a wrap may have gone unseen meanwhile
    with pytest.raises(MeterError, match="energy_uj"):
        meter.read_joules()


@pytest.mark.parametrize("interval", [0.0, -1.0])
def test_a_poll_interval_that_is_not_positive_is_refused(tmp_path: Path, interval: float) -> None:
    FakeSysfs(tmp_path).add_rapl(0)
    with pytest.raises(MeterError, match="poll_interval_s must be positive"):
        RaplMeter(tmp_path, poll_interval_s=interval)
