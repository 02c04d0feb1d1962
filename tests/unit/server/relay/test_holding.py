"""What a relay holds for a round, and the one aggregate it forwards."""

from __future__ import annotations

import numpy as np
import pytest

from edgefleet.errors import ProtocolError
from edgefleet.federated import DenseCodec, codec_from_spec
from edgefleet.server.relay.holding import HeldRound, check_update

SIZE = 2_000


def held(privacy: str | None = None) -> HeldRound:
    return HeldRound(
        job_id="fl-1",
        round=1,
        deadline=100.0,
        deadline_s=60.0,
        compression="dense",
        num_params=SIZE,
        expected=frozenset({"a", "b"}),
        privacy=privacy,
    )


def test_the_aggregate_is_the_example_weighted_mean_and_complete_once_all_sent() -> None:
    round_ = held()
    one, two = np.full(SIZE, 1.0), np.full(SIZE, 4.0)
    round_.add("a", one, 1, b"x")
    complete = [round_.complete]
    round_.add("b", two, 3, b"y")
    complete.append(round_.complete)
    assert complete == [False, True]
    mean = DenseCodec().decode(round_.aggregate(np.random.default_rng(0)), SIZE)
    np.testing.assert_allclose(mean, 3.25)
    assert round_.examples == 4


def test_privacy_at_the_relay_clips_each_update_and_noises_their_mean() -> None:
    round_ = held("dp:clip=0.5,noise=2.0,at=relay")
    big = np.full(SIZE, 10.0)  # norm about 447: clipped to 0.5
    round_.add("a", big, 1, b"x")
    round_.add("b", -big, 100, b"y")  # weights are ignored: the private mean is unweighted
    mean = DenseCodec().decode(round_.aggregate(np.random.default_rng(1)), SIZE)
    # clipped updates cancel; what is left is noise of std 2.0 * 0.5 / 2 = 0.5 per value
    assert abs(float(np.mean(mean))) < 0.05
    assert 0.45 < float(np.std(mean)) < 0.55


def test_privacy_on_the_device_adds_nothing_at_the_relay() -> None:
    round_ = held("dp:clip=0.5,noise=2.0,at=device")
    assert round_.private is None
    round_.add("a", np.full(SIZE, 2.0), 1, b"x")
    np.testing.assert_allclose(
        DenseCodec().decode(round_.aggregate(np.random.default_rng(0)), SIZE), 2.0
    )


def test_an_update_is_checked_as_the_control_plane_checks_it() -> None:
    payload = codec_from_spec("dense").encode(np.ones(SIZE, np.float32))
    delta, count = check_update("dense", SIZE, payload, "7")
    assert (float(delta.sum()), count) == (SIZE, 7)
    with pytest.raises(ProtocolError, match="no example count"):
        check_update("dense", SIZE, payload, None)
    with pytest.raises(ProtocolError, match="expected 2001"):
        check_update("dense", SIZE + 1, payload, "7")
