"""The streaming mean of encoded updates equals the mean of the decoded updates."""

from __future__ import annotations

import numpy as np
import pytest

from edgefleet.federated import ClientUpdate, PayloadError, codec_from_spec, strategy_from_spec
from edgefleet.federated.streaming import streaming_mean


@pytest.mark.parametrize("spec", ["dense", "fp16", "int8", "topk:0.99", "dgc:0.99"])
def test_it_matches_fedavg_of_the_decoded_updates(spec: str) -> None:
    rng = np.random.default_rng(0)
    size = 5_000
    codec = codec_from_spec(spec)
    payloads = [
        (codec.fresh().encode(rng.normal(size=size).astype(np.float32)), int(n))
        for n in rng.integers(1, 50, size=7)
    ]
    decoded = [ClientUpdate(codec.decode(p, size), n) for p, n in payloads]
    expected = strategy_from_spec("fedavg").aggregate(np.zeros(size, np.float32), decoded)
    mean, total = streaming_mean(iter(payloads), size, codec)
    assert total == sum(n for _, n in payloads)
    np.testing.assert_allclose(mean, expected, rtol=1e-6, atol=1e-7)
    once = strategy_from_spec("fedavgm:momentum=0.9").aggregate(
        np.ones(size, np.float32), [ClientUpdate(mean, total)]
    )
    every = strategy_from_spec("fedavgm:momentum=0.9").aggregate(np.ones(size, np.float32), decoded)
    np.testing.assert_allclose(once, every, rtol=1e-6, atol=1e-6)


def test_a_payload_of_another_codec_or_size_is_refused() -> None:
    dense = codec_from_spec("dense").encode(np.ones(10, np.float32))
    with pytest.raises(PayloadError, match="expected 'topk'"):
        streaming_mean([(dense, 1)], 10, codec_from_spec("topk:0.5"))
    with pytest.raises(PayloadError, match="expected 11"):
        streaming_mean([(dense, 1)], 11, codec_from_spec("dense"))


def test_no_update_or_a_weightless_one_is_an_error() -> None:
    with pytest.raises(ValueError, match="no update"):
        streaming_mean([], 3, codec_from_spec("dense"))
    payload = codec_from_spec("dense").encode(np.ones(3, np.float32))
    with pytest.raises(ValueError, match="weight must be >= 1"):
        streaming_mean([(payload, 0)], 3, codec_from_spec("dense"))
