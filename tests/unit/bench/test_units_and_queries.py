"""Durations on the command line, and the query library built before timing starts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgefleet.bench.queries import labelled_queries, random_queries
from edgefleet.bench.units import parse_duration
from edgefleet.errors import ConfigurationError
from edgefleet.runtime import TensorSpec
from edgefleet.runtime.dtypes import from_numpy


def spec(name: str, dtype: type, *shape: int | str | None) -> TensorSpec:
    return TensorSpec(name, from_numpy(np.dtype(dtype)), tuple(shape))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10", 10.0),
        ("30s", 30.0),
        ("45m", 2700.0),
        ("1h30m", 5400.0),
        ("250ms", 0.25),
        (" 2.5 ", 2.5),
    ],
)
def test_durations_accept_seconds_and_units(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten", "10x", "-5s", "5 m", "m"])
def test_bad_durations_name_the_option(text: str) -> None:
    with pytest.raises(ConfigurationError, match=r"--sustained .* is not a duration"):
        parse_duration(text, "--sustained")


def test_random_queries_follow_the_model_inputs_with_batch_on_the_dynamic_dim() -> None:
    inputs = [
        spec("image", np.float32, "batch", 3, None),
        spec("mask", np.bool_, "batch", 3),
        spec("ids", np.int64, 2),
        spec("text", np.object_, "batch"),
    ]
    qs = random_queries(inputs, batch=4, count=3, seed=7)
    first = qs.samples[0]
    assert first["image"].shape == (4, 3, 1)
    assert first["image"].dtype == np.float32
    assert first["mask"].dtype == np.bool_
    assert first["ids"].shape == (2,)
    assert first["text"].shape == (4,)
    again = random_queries(inputs, batch=4, count=3, seed=7)
    np.testing.assert_array_equal(again.samples[2]["image"], qs.samples[2]["image"])
    assert qs.labels is None


def test_labelled_queries_cut_rows_into_batches(tmp_path: Path) -> None:
    path = tmp_path / "data.npz"
    np.savez(path, x=np.ones((10, 1, 8, 8), np.float64), y=np.arange(10))
    qs = labelled_queries(path, [spec("input", np.float32, "batch", 1, 8, 8)], batch=3)
    assert len(qs) == 3  # the last, shorter batch is dropped
    assert qs.samples[0]["input"].dtype == np.float32
    assert qs.labels is not None
    assert qs.labels[1].tolist() == [3, 4, 5]
    assert qs.batch == 3


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"x": np.ones((4, 2))}, "no array 'y'"),
        ({"y": np.arange(4)}, "needs an array 'x'"),
        ({"x": np.ones((4, 2)), "y": np.arange(3)}, "has 4 rows but 'y' has 3"),
        ({"x": np.ones((4, 2)), "y": np.ones(4)}, "one integer class id per row"),
        ({"x": np.ones((4, 2)), "y": np.zeros((4, 2), np.int64)}, "one integer class id per row"),
        ({"x": np.ones((4, 3)), "y": np.arange(4)}, r"rows of 'input' have shape \[3\]"),
        ({"x": np.ones((4, 2, 2)), "y": np.arange(4)}, "the model expects"),
    ],
)
def test_bad_label_files_say_what_is_wrong(
    tmp_path: Path, content: dict[str, np.ndarray], message: str
) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **content)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=message):
        labelled_queries(path, [spec("input", np.float32, "batch", 2)])


def test_missing_and_unreadable_label_files(tmp_path: Path) -> None:
    inputs = [spec("input", np.float32, "batch", 2)]
    with pytest.raises(ConfigurationError, match="does not exist"):
        labelled_queries(tmp_path / "nope.npz", inputs)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(ConfigurationError, match=r"not a readable \.npz"):
        labelled_queries(junk, inputs)
