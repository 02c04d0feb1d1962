from __future__ import annotations

import dataclasses

import pytest

from edgefleet.errors import ConflictError, NotFoundError
from edgefleet.server.store import Store

from .helpers import NOW, push, release, sha


def test_a_pushed_model_version_keeps_every_field(store: Store) -> None:
    row, created = store.add_model_version(
        name="digits",
        version="1",
        sha256=sha("a"),
        size_bytes=1234,
        opset=17,
        inputs=[{"name": "x", "shape": [-1, 64]}],
        outputs=[{"name": "probs", "shape": [-1, 10]}],
        memory_estimate_bytes=10_000,
        golden_sha256=None,
        calibration=None,
        metadata={"producer": "pytorch"},
        created_at=NOW,
    )
    assert created
    assert store.get_model_version("digits", "1") == row
    fields = dataclasses.asdict(row)
    del fields["id"]
    assert fields == {
        "name": "digits",
        "version": "1",
        "sha256": sha("a"),
        "size_bytes": 1234,
        "opset": 17,
        "inputs": [{"name": "x", "shape": [-1, 64]}],
        "outputs": [{"name": "probs", "shape": [-1, 10]}],
        "memory_estimate_bytes": 10_000,
        "golden_sha256": None,
        "calibration": None,
        "metadata": {"producer": "pytorch"},
        "created_at": NOW,
    }


def test_pushing_the_same_version_with_the_same_bytes_again_returns_the_stored_row(
    store: Store,
) -> None:
    first = push(store, sha256=sha("a"))
    again, created = store.add_model_version(
        "digits", "1", sha("a"), 1, 1, [], [], 1, None, None, {}, NOW + 60
    )
    assert not created
    assert again == first
    assert store.list_model_versions() == [first]


def test_pushing_the_same_version_with_other_bytes_is_a_conflict(store: Store) -> None:
    first = push(store, sha256=sha("a"))
    with pytest.raises(ConflictError, match=r"digits.*'1'.*other bytes"):
        push(store, sha256=sha("b"))
    assert store.list_model_versions("digits") == [first]


def test_an_unknown_model_version_is_not_found(store: Store) -> None:
    push(store, version="1")
    assert store.get_model_version("digits", "2") is None
    assert store.get_model_version("other", "1") is None
    assert store.latest_model_version("other") is None


def test_model_versions_are_listed_by_name_then_oldest_first(store: Store) -> None:
    d2 = push(store, "digits", "2", sha("2"), at=NOW + 2)
    d1 = push(store, "digits", "1", sha("1"), at=NOW + 1)
    a1 = push(store, "audio", "1", sha("3"), at=NOW + 3)
    assert store.list_model_versions() == [a1, d1, d2]
    assert store.list_model_versions("digits") == [d1, d2]
    assert store.latest_model_version("digits") == d2


def test_releases_of_a_model_are_numbered_one_two_three(store: Store) -> None:
    push(store, "digits", "1")
    push(store, "digits", "2", sha("b"))
    first = store.add_release(
        "digits", "1", "models/digits/r1.onnx", sha("a"), 1234, {"golden": None}, NOW
    )
    assert (first.name, first.release, first.version) == ("digits", 1, "1")
    assert (first.target, first.sha256, first.length) == ("models/digits/r1.onnx", sha("a"), 1234)
    assert (first.custom, first.created_at) == ({"golden": None}, NOW)
    assert [release(store, "digits", "2"), release(store, "digits", "1")] == [2, 3]
    assert [r.release for r in store.list_releases("digits")] == [1, 2, 3]
    assert store.get_release("digits", 1) == first


def test_release_counters_of_different_models_are_independent(store: Store) -> None:
    push(store, "digits")
    push(store, "audio")
    assert [release(store, "digits"), release(store, "audio"), release(store, "digits")] == [
        1,
        1,
        2,
    ]


def test_deploying_an_older_version_again_publishes_a_higher_release(store: Store) -> None:
    push(store, "digits", "1")
    push(store, "digits", "2", sha("b"))
    numbers = [release(store, "digits", v) for v in ("1", "2", "1")]
    assert numbers == [1, 2, 3]
    latest = store.latest_release("digits")
    assert latest is not None
    assert (latest.release, latest.version) == (3, "1")
    of_two = store.latest_release("digits", "2")
    assert of_two is not None
    assert of_two.release == 2


def test_a_release_of_a_version_never_pushed_is_refused(store: Store) -> None:
    push(store, "digits", "1")
    with pytest.raises(NotFoundError, match="digits@9"):
        release(store, "digits", "9")
    assert store.list_releases("digits") == []
    assert release(store, "digits", "1") == 1


def test_unknown_releases_are_not_found(store: Store) -> None:
    push(store)
    release(store)
    assert store.get_release("digits", 2) is None
    assert store.get_release("other", 1) is None
    assert store.list_releases("other") == []
    assert store.latest_release("other") is None
    assert store.latest_release("digits", "9") is None
